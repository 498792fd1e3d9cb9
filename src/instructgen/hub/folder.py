"""The Hub-shaped folder: <config>/<split>-0000i-of-0000n.parquet per output format + README.md (the card).

    write_hub_folder(records_or_paths, out_dir, config, card=None, *, read_options=None, dump_options=None,
                     rejects_dir=None, progress=False, holdings=None, written=None) -> HubFolder

`written` (format -> a JSONL file of that format's rows, such as the pipeline's data/<fmt>.jsonl) is taken
as it is: those formats are not converted from the records a second time.

This is `push --dry-run DIR`, and what `push` uploads; `datasets.load_dataset(DIR, "<config>")`
reads it. The folder is written beside `out_dir` first and moved in when complete; a shard of
the same config and split left in `out_dir` by an earlier run (which `datasets` would load with
the new ones) is an error, never deleted: this run did not create it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..convert import ReadOptions, read_records, write_records
from ..errors import InstructgenError
from ..formats.base import DumpOptions
from ..io import RowWriter, write_text_atomic
from ..paths import CommandPaths
from ..record import Conversation
from ..runlog import RunLog
from .card import CardInfo, ConfigCard, render_card
from .config import PublishConfig
from .parquet import detect_languages, spool_to_parquet

Records = Sequence[str | os.PathLike] | Iterable[Conversation]


def shard_pattern(config: str, split: str) -> re.Pattern:
    return re.compile(rf"{re.escape(config)}/{re.escape(split)}-\d{{5}}-of-\d{{5}}\.parquet")


@dataclass(slots=True)
class RemoteHoldings:
    """What the remote repo already holds beside this push: our configs' other splits, other configs."""

    other_splits: dict[str, list[str]] = field(default_factory=dict)  # config -> splits not pushed now
    other_configs: list[dict[str, Any]] = field(default_factory=list)  # card `configs` entries kept as they are


@dataclass(slots=True)
class HubFolder:
    path: Path
    configs: list[ConfigCard]
    files: list[str]  # paths inside the folder, README.md included
    logs: list[RunLog] = field(default_factory=list)
    card: CardInfo = field(default_factory=CardInfo)


def is_paths(records_or_paths: Records) -> bool:
    return isinstance(records_or_paths, (str, os.PathLike)) or (
        isinstance(records_or_paths, (list, tuple))
        and all(isinstance(i, (str, os.PathLike)) for i in records_or_paths))


def plan_paths(records_or_paths: Records, config: PublishConfig, out_dir: str | os.PathLike | None,
               rejects_dir: str | os.PathLike | None, more_inputs: dict[str, str] | None = None,
               written: dict[str, str] | None = None) -> dict[str, str]:
    """Check every path push writes against every input, before anything is opened; the rejects file of
    each step ("read", then one per format) is returned, renamed if its default name is taken."""
    plan = CommandPaths()
    if is_paths(records_or_paths):
        items = [records_or_paths] if isinstance(records_or_paths, (str, os.PathLike)) else records_or_paths
        plan.read_all(items)
    for label, path in (more_inputs or {}).items():
        plan.read(path, label)
    for fmt, path in (written or {}).items():
        plan.read(path, f"the {fmt} rows already written")
    if out_dir is not None:
        plan.write_folder(out_dir, "--dry-run")
    rejects = {}
    if rejects_dir is not None:
        for step in ("read", *(f for f in config.formats if f not in (written or {}))):
            rejects[step] = plan.write(Path(rejects_dir) / f"push-{step}.jsonl",  # rejects/<stage>.jsonl
                                       f"the {step} rejects file in --rejects-dir", chosen=False)
    plan.check()
    return rejects


def write_hub_folder(records_or_paths: Records, out_dir: str | os.PathLike, config: PublishConfig,
                     card: CardInfo | None = None, *, read_options: ReadOptions | None = None,
                     dump_options: DumpOptions | None = None, rejects_dir: str | os.PathLike | None = None,
                     progress: bool = False, holdings: RemoteHoldings | None = None,
                     written: dict[str, str] | None = None) -> HubFolder:
    """Convert the records to every format of `config` not `written` yet and write the folder at out_dir."""
    written = {f: str(p) for f, p in (written or {}).items() if f in config.formats}
    rejects = plan_paths(records_or_paths, config, out_dir, rejects_dir, written=written)
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        folder = _build(records_or_paths, building, config, card or CardInfo(), rejects, read_options,
                        dump_options, progress, holdings or RemoteHoldings(), written)
        _move_in(folder, out, config)
    finally:
        shutil.rmtree(building, ignore_errors=True)  # made by this run, emptied by _move_in on success
    folder.path = out
    return folder


def _build(records_or_paths: Records, out: Path, config: PublishConfig, card: CardInfo, rejects: dict[str, str],
           read_options: ReadOptions | None, dump_options: DumpOptions | None, progress: bool,
           holdings: RemoteHoldings, written: dict[str, str]) -> HubFolder:
    names = config.config_names()
    converting = [f for f in config.formats if f not in written]
    read_log = RunLog("push:read", rejects.get("read"))
    logs = {f: RunLog(f"push:{f}", rejects.get(f)) for f in converting}
    with tempfile.TemporaryDirectory(prefix="instructgen-push-") as rows_dir:
        format_rows = {f: Path(written[f]) if f in written else Path(rows_dir) / f"{f}.jsonl" for f in config.formats}
        if converting:
            records = _records(records_or_paths, read_log, read_options)
            _write_format_rows(records, {f: format_rows[f] for f in converting}, logs, read_log,
                               dump_options or DumpOptions(), progress)
        for fmt in written:
            logs[fmt] = _rows_read_back(fmt, format_rows[fmt])
        if converting and read_log.n_out == 0:
            raise InstructgenError("no record to push" + (f" (all {read_log.n_in} were rejected; see "
                                                          f"{read_log.rejects_path})" if read_log.n_in else ""))
        cards, files = [], []
        for fmt in config.formats:
            if logs[fmt].n_out == 0:
                top = logs[fmt].reasons.most_common(1)
                raise InstructgenError(f"no record could be written as {fmt}" + (f": {top[0][0][1]}" if top else ""))
            name = names[fmt]
            written, schema, examples = spool_to_parquet(format_rows[fmt], out / name, config.split, config.shard_rows)
            files += [f"{name}/{w}" for w in written]
            splits = sorted({config.split, *holdings.other_splits.get(name, [])})
            cards.append(ConfigCard(name, fmt, logs[fmt].n_out, schema, examples, splits))
        languages = card.languages or tuple(config.languages) or tuple(detect_languages(format_rows[config.formats[0]]))
    info = card.with_choices(config.pretty_name, config.license, languages, config.tags)
    write_text_atomic(out / "README.md", render_card(config.repo, cards, info, holdings.other_configs))
    steps = [*([read_log] if converting else []), *(logs[f] for f in config.formats)]
    return HubFolder(out, cards, sorted(files) + ["README.md"], steps, info)


def _rows_read_back(fmt: str, path: Path) -> RunLog:
    """The count of a format's rows written before (one JSONL line each): every one is published."""
    log = RunLog(f"push:{fmt}", None)
    with open(path, "rb") as fh:
        rows = sum(1 for _ in fh)
    log.took_in(rows)
    log.emitted(rows)
    return log


def _write_format_rows(records: Iterable[Conversation], format_rows: dict[str, Path], logs: dict[str, RunLog],
                       read_log: RunLog, opts: DumpOptions, progress: bool) -> None:
    """Each record as a row of every format, into that format's JSONL file (read again into Parquet), every row
    with the same keys as in the pipeline's data/<fmt>.jsonl (the card's examples are its first rows)."""
    writers = {f: RowWriter(path, stable_keys=True) for f, path in format_rows.items()}
    if progress:
        from ..progress import bar

        records = bar(records, desc="push")
    try:
        for conv in records:
            read_log.emitted()
            for fmt, writer in writers.items():
                logs[fmt].took_in()
                write_records((conv,), writer, fmt, logs[fmt], opts)
        for w in writers.values():
            w.close()
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    finally:
        for log in [read_log, *logs.values()]:
            log.close()


def _records(records_or_paths: Records, log: RunLog, read_options: ReadOptions | None) -> Iterable[Conversation]:
    if is_paths(records_or_paths):
        items = [records_or_paths] if isinstance(records_or_paths, (str, os.PathLike)) else records_or_paths
        return read_records([str(i) for i in items], log, read_options or ReadOptions())
    return _counted(records_or_paths, log)


def _counted(records: Iterable[Conversation], log: RunLog) -> Iterable[Conversation]:
    for conv in records:
        log.took_in()
        yield conv


def _move_in(folder: HubFolder, out: Path, config: PublishConfig) -> None:
    """Move the finished files into `out`, after making sure no shard of an earlier run would mix in."""
    ours = [shard_pattern(c, config.split) for c in config.config_names().values()]
    if out.is_dir():
        stale = sorted(p.relative_to(out).as_posix() for p in out.glob("*/*.parquet")
                       if any(r.fullmatch(p.relative_to(out).as_posix()) for r in ours)
                       and p.relative_to(out).as_posix() not in folder.files)
        if stale:
            raise InstructgenError(f"{out} already holds {', '.join(stale)} from an earlier run, which would be "
                                   f"loaded with the new shards; remove it or write to another folder")
    for name in folder.files:
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(folder.path / name, target)
