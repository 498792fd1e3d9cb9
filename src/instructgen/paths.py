"""Where a command writes, decided and checked before anything is opened.

    derived(path, what)          "data.jsonl", "rejects.jsonl" -> "data.rejects.jsonl" (the one helper for names
                                 made from another file's name: rejects, stats, failures, caches)
    OutputPlan                   every file and folder a command reads and writes; `check()` refuses, in one
                                 line, an output that is an input (the same file by any name: symlinks,
                                 `./../` aliases, hard links), two outputs that are one file, an input inside
                                 a folder the command replaces, and an input named twice.

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
    """What makes two names one file: the resolved path, and (for existing files) device and inode."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
        return ("inode", st.st_dev, st.st_ino)
    except OSError:
        return ("path", real)


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    if STDIO in (str(a), str(b)):
        return False
    return _identity(str(a)) == _identity(str(b))


def _inside(path: str, folder: str) -> bool:
    try:
        return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))
    except ValueError:
        return False


@dataclass
class OutputPlan:
    """Inputs and outputs of one command, checked against each other before anything is written."""

    inputs: list[_Entry] = field(default_factory=list)
    outputs: list[_Entry] = field(default_factory=list)
    folders: list[_Entry] = field(default_factory=list)  # output folders whose contents the command replaces

    def read(self, path: str | os.PathLike, label: str = "input") -> str:
        self.inputs.append(_Entry(label, str(path)))
        return str(path)

    def read_all(self, paths, label: str = "input") -> list[str]:
        return [self.read(p, label) for p in paths]

    def write(self, path: str | os.PathLike, label: str, chosen: bool = True) -> str:
        """Register an output; a default (`chosen=False`) that collides is renamed, and the name to use returned."""
        path = str(path)
        if not chosen and path != STDIO:
            path = self._free_default(path)
        self.outputs.append(_Entry(label, path, chosen))
        return path

    def write_folder(self, path: str | os.PathLike, label: str) -> str:
        self.folders.append(_Entry(label, str(path)))
        return str(path)

    def _taken(self, path: str) -> bool:
        return any(same_file(path, e.path) for e in (*self.inputs, *self.outputs)) or any(
            _inside(path, f.path) for f in self.folders)

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

    def check(self) -> "OutputPlan":
        """Raise InstructgenError (one line, naming both paths and the flag to change) on any collision."""
        seen: list[_Entry] = []
        for e in self.inputs:
            if e.path == STDIO:
                continue
            twin = next((s for s in seen if same_file(s.path, e.path)), None)
            if twin is not None:
                same = "" if twin.path == e.path else f" (also named {twin.path})"
                raise InstructgenError(f"{e.label} {e.path} is named twice{same}; name each input once")
            seen.append(e)
        for k, out in enumerate(self.outputs):
            if out.path == STDIO:
                continue
            for inp in self.inputs:
                if inp.path != STDIO and same_file(out.path, inp.path):
                    raise InstructgenError(
                        f"{out.label} {out.path} is the {inp.label} {inp.path}: writing it would destroy the "
                        f"input; choose another {out.label if out.chosen else '-o'}")
            for other in self.outputs[:k]:
                if other.path != STDIO and same_file(out.path, other.path):
                    raise InstructgenError(
                        f"{out.label} {out.path} and {other.label} {other.path} are the same file; "
                        f"give them different names")
        for folder in self.folders:
            for inp in self.inputs:
                if inp.path != STDIO and (_inside(inp.path, folder.path) or same_file(inp.path, folder.path)):
                    raise InstructgenError(
                        f"{inp.label} {inp.path} is inside {folder.label} {folder.path}, whose contents this "
                        f"command replaces; move the input or choose another {folder.label}")
                if inp.path != STDIO and os.path.isdir(inp.path) and _inside(folder.path, inp.path):
                    raise InstructgenError(
                        f"{folder.label} {folder.path} is inside the folder {inp.label} {inp.path}, which is read "
                        f"as input: a later run would read this run's outputs; choose another {folder.label}")
            for out in self.outputs:
                if out.path != STDIO and _inside(out.path, folder.path):
                    raise InstructgenError(
                        f"{out.label} {out.path} is inside {folder.label} {folder.path}; choose a path outside it")
        return self
