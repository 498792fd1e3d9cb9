"""Where a command writes, decided and checked before anything is opened.

    derived(path, what)            "data.jsonl", "rejects.jsonl" -> "data.rejects.jsonl" (the one helper for names
                                   made from another file's name: rejects, stats, failures, caches)
    CommandPaths                   every file and folder a command reads and writes; `check()` refuses, in one
                                   line, an output that is an input (the same file by any name: symlinks,
                                   `./../` aliases, hard links), two outputs that are one file, an input inside
                                   a folder the command replaces, an output inside an input folder (the next
                                   run would read it back), and an input named twice. Linear in the inputs.

A default name that collides is moved aside (`data.rejects.1.jsonl`) instead of refused: the user did
not choose it. A name the user gave is never changed: the collision is an error that says what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InstructgenError

STDIO = "-"
DATA_SUFFIXES = (".jsonl.gz", ".json.gz", ".jsonl", ".ndjson", ".json", ".parquet")


def stem(path: str | os.PathLike) -> str:
    """The file name without its data suffix: 'a/b.jsonl.gz' -> 'b'."""
    name = Path(path).name
    for suffix in DATA_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def derived(path: str | os.PathLike, what: str, stdio_default: str | None = None) -> str:
    """A file named after `path`: derived('out/x.jsonl', 'rejects.jsonl') -> 'out/x.rejects.jsonl'.
    For stdin/stdout ('-') the name is `stdio_default` (or `what` itself) in the current folder."""
    if str(path) == STDIO:
        return stdio_default or what
    return str(Path(path).with_name(f"{stem(path)}.{what}"))


@dataclass(frozen=True, slots=True)
class _Entry:
    label: str  # how the user named it: "-o", "--rejects", "input", "the default rejects file"
    path: str
    chosen: bool = True  # named by the user (an error on collision) or a default (moved aside)


def _identity(path: str) -> tuple:
    """What makes two names one file: device and inode (for existing files; `stat` follows links the way
    the kernel opens them), else the resolved path."""
    try:
        st = os.stat(path)
        return ("inode", st.st_dev, st.st_ino)
    except (OSError, ValueError):
        return ("path", os.path.realpath(path))


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    if STDIO in (str(a), str(b)):
        return False
    return _identity(str(a)) == _identity(str(b))


class _RealPaths:
    """realpath of many files that share a few folders: each folder resolved once (a file that is itself
    a link is resolved whole)."""

    def __init__(self):
        self._folders: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        if os.path.islink(path):
            return os.path.realpath(path)
        folder, name = os.path.split(os.path.abspath(path))
        real = self._folders.get(folder)
        if real is None:
            real = self._folders[folder] = os.path.realpath(folder)
        return os.path.join(real, name)


def _inside(path: str, folder: str, real=os.path.realpath) -> bool:
    try:
        return Path(real(path)).is_relative_to(os.path.realpath(folder))
    except ValueError:
        return False


@dataclass
class CommandPaths:
    """Inputs and outputs of one command, checked against each other before anything is written.
    Linear in the number of inputs (a folder may hold a million files): each name is resolved once."""

    inputs: list[_Entry] = field(default_factory=list)
    outputs: list[_Entry] = field(default_factory=list)
    folders: list[_Entry] = field(default_factory=list)  # output folders whose contents the command replaces
    read_folders: list[_Entry] = field(default_factory=list)  # input folders: everything in them is read
    _ids: dict[tuple, _Entry] = field(default_factory=dict, repr=False)  # identity -> first entry named so

    def read(self, path: str | os.PathLike, label: str = "input") -> str:
        entry = _Entry(label, str(path))
        self.inputs.append(entry)
        self._remember(entry)
        return str(path)

    def read_all(self, paths, label: str = "input") -> list[str]:
        """Register every input; a listing from `inputs.expand_inputs` also registers the folders it read."""
        for folder in getattr(paths, "folders", ()):
            self.read_folders.append(_Entry(f"{label} folder", str(folder)))
        return [self.read(p, label) for p in paths]

    def write(self, path: str | os.PathLike, label: str, chosen: bool = True) -> str:
        """Register an output; a default (`chosen=False`) that collides is renamed, and the name to use returned."""
        path = str(path)
        if not chosen and path != STDIO:
            path = self._free_default(path)
        entry = _Entry(label, path, chosen)
        self.outputs.append(entry)
        self._remember(entry)
        return path

    def write_folder(self, path: str | os.PathLike, label: str) -> str:
        self.folders.append(_Entry(label, str(path)))
        return str(path)

    def _remember(self, entry: _Entry) -> None:
        if entry.path != STDIO:
            self._ids.setdefault(_identity(entry.path), entry)

    def _taken(self, path: str) -> bool:
        return _identity(path) in self._ids or any(_inside(path, f.path) for f in self.folders)

    def _free_default(self, path: str) -> str:
        if not self._taken(path):
            return path
        base = Path(path)
        suffix = "".join(base.suffixes[-1:]) or ""
        root = str(base)[: len(str(base)) - len(suffix)] if suffix else str(base)
        for k in range(1, 1000):
            candidate = f"{root}.{k}{suffix}"
            if not self._taken(candidate):
                return candidate
        raise InstructgenError(f"no free name for {path}")  # pragma: no cover - a thousand collisions

    def check(self) -> "CommandPaths":
        """Raise InstructgenError (one line, naming both paths and the flag to change) on any collision."""
        ids = {id(e): _identity(e.path) for e in (*self.inputs, *self.outputs) if e.path != STDIO}
        seen: dict[tuple, _Entry] = {}
        for e in self.inputs:
            if e.path == STDIO:
                continue
            twin = seen.setdefault(ids[id(e)], e)
            if twin is not e:
                same = "" if twin.path == e.path else f" (also named {twin.path})"
                raise InstructgenError(f"{e.label} {e.path} is named twice{same}; name each input once")
        written: dict[tuple, _Entry] = {}
        for out in self.outputs:
            if out.path == STDIO:
                continue
            if (inp := seen.get(ids[id(out)])) is not None:
                raise InstructgenError(
                    f"{out.label} {out.path} is the {inp.label} {inp.path}: writing it would destroy the "
                    f"input; choose another {out.label if out.chosen else '-o'}")
            if (other := written.setdefault(ids[id(out)], out)) is not out:
                raise InstructgenError(
                    f"{out.label} {out.path} and {other.label} {other.path} are the same file; "
                    f"give them different names")
        self._check_folders()
        return self

    def _check_folders(self) -> None:
        real = _RealPaths()
        for folder in self.read_folders:
            for out in self.outputs:
                if out.path != STDIO and _inside(out.path, folder.path, real):
                    raise InstructgenError(
                        f"{out.label} {out.path} is inside the {folder.label} {folder.path}, which is read "
                        f"whole: the next run would read this output back as input; write it outside the folder")
        for folder in self.folders:
            for inp in self.inputs:
                if inp.path != STDIO and (_inside(inp.path, folder.path, real) or same_file(inp.path, folder.path)):
                    raise InstructgenError(
                        f"{inp.label} {inp.path} is inside {folder.label} {folder.path}, whose contents this "
                        f"command replaces; move the input or choose another {folder.label}")
            for inp in [*self.inputs, *self.read_folders]:
                if inp.path != STDIO and os.path.isdir(inp.path) and _inside(folder.path, inp.path):
                    raise InstructgenError(
                        f"{folder.label} {folder.path} is inside the folder {inp.label} {inp.path}, which is read "
                        f"as input: a later run would read this run's outputs; choose another {folder.label}")
            for out in self.outputs:
                if out.path != STDIO and _inside(out.path, folder.path):
                    raise InstructgenError(
                        f"{out.label} {out.path} is inside {folder.label} {folder.path}; choose a path outside it")
