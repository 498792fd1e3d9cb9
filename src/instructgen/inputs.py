"""The files a command reads, from what the user named: files, folders (read recursively), patterns.

    expand_inputs(["data/", "extra.jsonl"], glob="*.json")

A folder gives every data file under it (.json, .jsonl, .jsonl.gz, .parquet; hidden files and
folders skipped), or with `glob` the files whose name matches it, in natural order
(conversation_9 before conversation_10). A name with wildcards that is not a file is a pattern
(`data/**/*.json`). Naming nothing that exists is an error that says what was looked for.

What a listing leaves out is said once on stderr, counted, and kept in `Inputs.skipped`:
  - in a folder, a symbolic link whose target is outside the folder (a planted `passwd.jsonl ->
    /etc/passwd` is not read);
  - a link to a folder already read (a loop such as `data/again -> ..`), in folders and patterns;
  - a file or folder whose name is not UTF-8 (named with its bytes escaped: records carry their file's
    name as their origin, which UTF-8 outputs cannot hold). A file named so directly is an error.
A listing is one scandir walk: a million files cost seconds.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from typing import Callable, Iterator

from .errors import InstructgenError
from .paths import DATA_SUFFIXES

STDIO = "-"
_WILDCARDS = re.compile(r"[*?\[]")
_DIGITS = re.compile(r"(\d+)")
_SURROGATES = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8 (os.fsdecode's surrogateescape)


class Inputs(list):
    """The files to read, in order, with the folders they were listed from (`paths.CommandPaths.read_all`
    refuses an output inside one) and what the listing skipped, by reason."""

    def __init__(self, files=(), folders=(), skipped: dict[str, list[str]] | None = None):
        super().__init__(files)
        self.folders: list[str] = list(folders)
        self.skipped: dict[str, list[str]] = skipped or {}


def expand_inputs(paths: list[str], glob: str | None = None,
                  announce: Callable[[str], None] | None = None) -> Inputs:
    """Every file to read, in order: files as given, folders and patterns expanded. What was skipped is
    announced (default: stderr) once per reason."""
    out = Inputs()
    for path in paths:
        if path == STDIO or os.path.isfile(path):
            if path != STDIO and _SURROGATES.search(path):
                raise InstructgenError(f"{escaped(path)}: the file name is not UTF-8; rename it to read it")
            out.append(path)
        elif os.path.isdir(path):
            out += _folder_files(path, glob, out.skipped)
            out.folders.append(path)
        elif _WILDCARDS.search(path):
            found = _pattern_files(path, out.skipped)
            if not found:
                raise InstructgenError(f"{path}: no file matches this pattern")
            out += found
        else:
            raise InstructgenError(f"{path}: no such file or folder")
    _say_skipped(out.skipped, announce or (lambda m: print(m, file=sys.stderr)))
    return out


def escaped(path: str) -> str:
    """A file name as printable UTF-8: bytes that are not UTF-8 as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


SKIP_REASONS = {
    "outside": "links that lead outside the folder named",
    "loop": "folders already read under another name (a link loop, or two links to one folder)",
    "not_utf8": "names that are not UTF-8 (rename them to read them)",
    "unreadable": "folders that cannot be listed (permissions)",
}


def _say_skipped(skipped: dict[str, list[str]], announce: Callable[[str], None]) -> None:
    for reason, names in skipped.items():
        shown = ", ".join(escaped(n) for n in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        announce(f"skipped {len(names)} {SKIP_REASONS[reason]}: {shown}")


@dataclass
class _Walk:
    """One recursive listing under `root`: the files, and what was skipped (links that leave the root
    when `stay_inside`, folders already seen, names that are not UTF-8)."""

    root: str
    stay_inside: bool
    max_depth: int | None = None  # folders below the root to enter (None: any)
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def files(self) -> Iterator[str]:
        st = os.stat(self.root)
        self._real_root = os.path.realpath(self.root)
        self._seen = {(st.st_dev, st.st_ino)}  # folders entered, by identity: a loop comes back to one
        yield from self._walk(self.root, 0)

    def _skip(self, reason: str, path: str) -> None:
        self.skipped.setdefault(reason, []).append(path)

    def _walk(self, folder: str, depth: int) -> Iterator[str]:
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)  # which name of a folder read twice wins
        except OSError:
            self._skip("unreadable", folder)
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = entry.path
            if _SURROGATES.search(entry.name):
                self._skip("not_utf8", path)
                continue
            is_link = entry.is_symlink()
            if is_link and self.stay_inside and not _under(os.path.realpath(path), self._real_root):
                self._skip("outside", path)
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                continue
            if is_dir:
                if self.max_depth is not None and depth >= self.max_depth:
                    continue
                st = entry.stat()
                if (st.st_dev, st.st_ino) in self._seen:
                    self._skip("loop", path)
                    continue
                self._seen.add((st.st_dev, st.st_ino))
                yield from self._walk(path, depth + 1)
            elif entry.is_file():
                yield path


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _relative(path: str, root: str) -> str:
    return path[len(root):].lstrip(os.sep) if root else path


def _folder_files(folder: str, glob: str | None, skipped: dict[str, list[str]]) -> list[str]:
    walk = _Walk(folder, stay_inside=True, skipped=skipped)
    if glob:
        wanted = _segments_regex(glob.split("/"), anchored=False)
        files = [p for p in walk.files() if wanted.fullmatch(_relative(p, folder).replace(os.sep, "/"))]
    else:
        files = [p for p in walk.files() if p.lower().endswith(DATA_SUFFIXES)]
    if not files:
        wanted_text = f"matching {glob!r}" if glob else f"with a data suffix ({', '.join(DATA_SUFFIXES)})"
        raise InstructgenError(f"{folder}: no file {wanted_text} in this folder or below it")
    return sorted(files, key=natural_key)


def _pattern_files(pattern: str, skipped: dict[str, list[str]]) -> list[str]:
    """A glob pattern ('**' for any folders below), walked once from its first folder with a wildcard below
    it; links are followed as the shell follows them, loops are not."""
    parts = pattern.split("/")
    fixed = next(k for k, part in enumerate(parts) if _WILDCARDS.search(part))
    root = "/".join(parts[:fixed]) or ("/" if pattern.startswith("/") else "")
    rest = parts[fixed:]
    if not os.path.isdir(root or "."):
        return []
    depth = None if "**" in rest else len(rest) - 1
    wanted = _segments_regex(rest, anchored=True)
    walk = _Walk(root or ".", stay_inside=False, max_depth=depth, skipped=skipped)
    prefix = "" if not root else root if root.endswith("/") else root + "/"
    found = []
    for path in walk.files():
        relative = path[2:] if not root and path.startswith("./") else _relative(path, root)
        if wanted.fullmatch(relative):
            found.append(prefix + relative if root else relative)
    return sorted(found, key=natural_key)


def _segments_regex(segments: list[str], anchored: bool) -> re.Pattern:
    """A regex over '/'-joined relative paths for glob segments; '**' is any number of folders. Not
    `anchored`: the segments match the end of the path (Path.rglob's rule for --glob)."""
    out = [] if anchored else ["(?:[^/]+/)*"]
    for k, segment in enumerate(segments):
        last = k == len(segments) - 1
        if segment == "**":
            out.append(r"(?:(?!\.)[^/]+/)*" + (r"(?!\.)[^/]+" if last else ""))
            continue
        out.append(_segment_regex(segment) + ("" if last else "/"))
    return re.compile("".join(out), re.DOTALL)


def _segment_regex(segment: str) -> str:
    """One name: '*' and '?' never cross '/', nor match a leading '.' (glob's rule for hidden names)."""
    out = [r"(?!\.)"] if segment[:1] in "*?[" and segment else []
    k = 0
    while k < len(segment):
        c = segment[k]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and (end := segment.find("]", k + 2 if segment[k + 1:k + 2] in "!^" else k + 1)) > k:
            body = segment[k + 1:end]
            negate = body[:1] in "!^"
            body = re.escape(body[1:] if negate else body).replace(r"\-", "-")
            out.append(f"[{'^/' if negate else ''}{body}]")
            k = end
        else:
            out.append(re.escape(c))
        k += 1
    return "".join(out)


def natural_key(path: str) -> list:
    """'a/conv_10.json' after 'a/conv_9.json': digit runs compare as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in _DIGITS.split(path)]
