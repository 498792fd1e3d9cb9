"""The output folder of a pipeline run: every path in it is named here, and one run owns it at a time.

    with OutputFolder("out") as layout:      # lock out/, write into a private staging folder
        layout.data("sharegpt")              # out/.staging-PID-XXXX/data/sharegpt.jsonl during the run
        ...
    # on success the staging folder's entries replace the previous run's outputs as a whole

The files (after the run):
    data/<format>.jsonl        the curated records, one file per requested format
    rejects/<stage>.jsonl      every dropped record with stage, kind, reason, origin, raw
    clusters.jsonl             each removed duplicate -> the record it duplicates
    sources/                   published datasets, downloaded and converted
    generated/                 the generate stage's records, rejects, failures and stats
    hub/                       the Hub-shaped folder (publish dry run)
    stats.json, report.md, report.html
    .cache/                    kept between runs: the generation request cache
    signatures/                kept between runs: each source file's dedup sketches (Parquet), reused by a
                               rerun with another threshold or keep rule while the file and the settings
                               that shape its records (format, columns, filter, sketch settings) are the same
    .instructgen-run.json      what the last run wrote (the next run replaces exactly these)
    .instructgen.lock          held while a run writes here

Nothing outside the names above is ever touched: a folder holding other files of the same names that
no instructgen run wrote is refused before the run starts. Files in the folder may have been planted, so
none is trusted: the manifest may name only the entries above (plain names, nothing with `/`, `..` or an
absolute path), and it, the lock, `.cache` and `signatures` are refused when they are symbolic links (the
lock also when it is not a plain file with one name); an entry that is a link is removed as a link, never
followed.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import stat
import tempfile
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import orjson

from ..errors import InstructgenError
from ..io import write_text_atomic

DEFAULT_OUTPUT = "instructgen-output"
GENERATED_RECORDS = "generated.jsonl"  # the generate stage's records, in its cache folder and in generated/
MANIFEST = ".instructgen-run.json"
LOCK = ".instructgen.lock"
CACHE = ".cache"
SIGNATURES = "signatures"
SPOOL = ".spool"
STAGING_PREFIX = ".staging-"
OWNED = ("data", "rejects", "clusters.jsonl", "sources", "generated", "hub", "stats.json", "report.md", "report.html")


def _safe(name: str) -> str:
    """A file name from a stage or dataset name ('download:owner/repo' -> 'download-owner__repo')."""
    return re.sub(r"[^\w.-]+", "-", name.replace("/", "__")).strip("-.") or "unnamed"


def output_folder(given: str | os.PathLike | None, configured: str | os.PathLike | None) -> Path:
    """The run's output folder: the one given (-o, a flow parameter), else the config's, else the default."""
    return Path(given or configured or DEFAULT_OUTPUT)


@dataclass(frozen=True)
class OutputLayout:
    """Names every file a run writes. `root` is where files go during the run; `final` where they end up."""

    root: Path
    final: Path
    cache: Path

    @classmethod
    def finished(cls, folder: str | os.PathLike) -> "OutputLayout":
        """The names of a folder a run has finished writing (where its files are now)."""
        return cls(Path(folder), Path(folder), Path(folder) / CACHE)

    def data(self, fmt: str) -> Path:
        return self.root / "data" / f"{fmt}.jsonl"

    def rejects(self, stage: str) -> Path:
        return self.rejects_folder / f"{_safe(stage)}.jsonl"

    @property
    def rejects_folder(self) -> Path:
        return self.root / "rejects"

    @property
    def clusters(self) -> Path:
        return self.root / "clusters.jsonl"

    def source(self, index: int, dataset: str) -> Path:
        return self.root / "sources" / f"{index:02d}-{_safe(dataset)}.jsonl"

    @property
    def generated(self) -> Path:
        return self.root / "generated"

    @property
    def generated_records(self) -> Path:
        return self.generated / GENERATED_RECORDS

    @property
    def spool(self) -> Path:
        """The curated records of each shard between the stages (inside the staging folder, removed by the run)."""
        return self.root / SPOOL

    @property
    def signatures(self) -> Path:
        """Saved dedup sketches, written in place (not staged): they describe inputs, not this run's outputs."""
        return self.final / SIGNATURES

    @property
    def hub(self) -> Path:
        return self.root / "hub"

    @property
    def stats(self) -> Path:
        return self.root / "stats.json"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    def public(self, path: str | os.PathLike) -> str:
        """Where a file written during the run will be once the run has finished (for stats and reports)."""
        p = Path(path)
        try:
            return str(self.final / p.relative_to(self.root))
        except ValueError:
            return str(p)

    def relative(self, path: str | os.PathLike) -> str:
        """A path as the report shows it: relative to the output folder."""
        p = Path(path)
        for base in (self.root, self.final):
            try:
                return str(p.relative_to(base))
            except ValueError:
                continue
        return str(p)


def _open_plain_file(path: Path, what: str) -> int:
    """A descriptor on PATH, created exclusively if absent; a link or anything but a plain file with one name
    (a planted symlink or hard link to someone else's file) is refused: we write into this file."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise _planted(path, what, "is a symbolic link") from None
            raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise _planted(path, what, "is not a plain file" if not stat.S_ISREG(info.st_mode)
                       else f"has {info.st_nlink} names (a hard link)")
    return fd


def _planted(path: Path, what: str, problem: str) -> InstructgenError:
    return InstructgenError(f"{path} {problem}; instructgen writes {what} there itself and will not write "
                            "through anything else: remove it (and look at what else was put in that folder), "
                            "or choose another output folder with -o")


def _acquire(folder: Path):
    fh = os.fdopen(_open_plain_file(folder / LOCK, "its run lock"), "r+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read(64).strip() or "unknown"
        fh.close()
        raise InstructgenError(
            f"{folder} is in use by another instructgen run (pid {holder}); wait for it to finish or "
            "choose another output folder with -o") from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    return fh


@contextmanager
def hold_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold FOLDER's run lock (an flock, released if the process dies). A run takes it once, when its folder
    is opened (`OutputFolder`); a second hold, even in the same process, is refused like another run's."""
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    held = _acquire(path)
    try:
        yield
    finally:
        fcntl.flock(held, fcntl.LOCK_UN)
        held.close()


class OutputFolder:
    """Owns an output folder for one run: the run's one lock, a private staging folder, and the swap at the
    end. Opening it refuses in one line a folder this run must not write into (in use by another run, planted
    links, a manifest naming anything a run does not write, files of the run's names no run wrote), so a
    front end opens it before its orchestrator starts and hands the opened layout to the pipeline."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.staging: Path | None = None
        self._hold: ExitStack | None = None

    def __enter__(self) -> OutputLayout:
        with ExitStack() as stack:
            stack.enter_context(hold_lock(self.path))
            self._remove_stale_staging()
            self._refuse_links(CACHE, SIGNATURES)
            self._refuse_foreign_files()
            self.staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=self.path))
            self._hold = stack.pop_all()
        return OutputLayout(self.staging, self.path.resolve(), self.path / CACHE)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._swap()
            elif self.staging is not None:
                shutil.rmtree(self.staging, ignore_errors=True)
        finally:
            if self._hold is not None:
                self._hold.close()

    # -- what the previous run left --------------------------------------------------------------------
    def _remove_stale_staging(self) -> None:
        """Staging folders of runs that were killed (we hold the lock, so no live run owns one)."""
        for entry in self.path.glob(f"{STAGING_PREFIX}*"):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)

    def _refuse_links(self, *names: str) -> None:
        """Folders kept between runs are written in place: a planted link would send those writes elsewhere."""
        for name in names:
            if (self.path / name).is_symlink():
                raise _planted(self.path / name, f"the {name} folder", "is a symbolic link")

    def _previous(self) -> set[str]:
        """The entries the previous run wrote (what this run replaces): from the manifest, checked."""
        manifest = self.path / MANIFEST
        try:
            fd = os.open(manifest, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return self._legacy_run()
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise _planted(manifest, "the run's manifest", "is a symbolic link") from None
            raise
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise _planted(manifest, "the run's manifest", "is not a plain file")
            return _manifest_entries(manifest, fh.read(1 << 20))

    def _legacy_run(self) -> set[str]:
        """A folder written before runs kept a manifest: its stats.json (a plain file) says it is ours."""
        stats_file = self.path / "stats.json"
        if stats_file.is_symlink():
            return set()
        try:
            stats = orjson.loads(stats_file.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return set()
        return {name for name in OWNED if os.path.lexists(self.path / name)} if isinstance(stats, dict) and \
            "stages" in stats else set()

    def _refuse_foreign_files(self) -> None:
        ours = self._previous()
        foreign = [name for name in OWNED if os.path.lexists(self.path / name) and name not in ours]
        if foreign:
            raise InstructgenError(
                f"{self.path} holds {', '.join(foreign)} that no instructgen run wrote; a run replaces these "
                "names, so choose an empty or new output folder with -o")

    def _swap(self) -> None:
        """Replace the previous run's outputs with this run's, entry by entry (each a rename)."""
        assert self.staging is not None
        previous = self._previous()
        written = sorted(p.name for p in self.staging.iterdir())
        for name in sorted(previous | set(written)):
            target = self.path / name  # every name is one of OWNED (checked): a plain name inside the folder
            if name in previous and os.path.lexists(target):
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                else:
                    target.unlink()
            if name in written:
                os.replace(self.staging / name, target)

        write_text_atomic(self.path / MANIFEST, orjson.dumps({"entries": written}).decode() + "\n")
        shutil.rmtree(self.staging, ignore_errors=True)


def _manifest_entries(manifest: Path, text: bytes) -> set[str]:
    """The names a manifest lists, each one a run writes; anything else means the file was not written by a
    run (a run removes what it lists, so a planted '../victim' must never get that far)."""
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        doc = None
    entries = doc.get("entries") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise InstructgenError(f"{manifest}: not a manifest instructgen wrote (no list of entries); remove it if "
                               "you did not expect it, or choose another output folder with -o")
    strange = [e for e in entries if e not in OWNED]
    if strange:
        raise InstructgenError(
            f"{manifest}: lists {', '.join(repr(e) for e in strange[:3])}, which no instructgen run writes (a run "
            f"writes only {', '.join(OWNED)} in its folder); nothing was removed. Remove the file if you did not "
            "expect it, or choose another output folder with -o")
    return set(entries)
