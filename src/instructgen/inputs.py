"""The files a command reads, from what the user named: files, folders (read recursively), patterns.

    expand_inputs(["data/", "extra.jsonl"], glob="*.json")

A folder gives every data file under it (.json, .jsonl, .jsonl.gz, .parquet; hidden files and
folders skipped), or with `glob` the files whose name matches it, in natural order
(conversation_9 before conversation_10). A name with wildcards that is not a file is a pattern
(`data/**/*.json`). Naming nothing that exists is an error that says what was looked for.
"""

from __future__ import annotations

import glob as globbing
import os
import re
from pathlib import Path

from .errors import InstructgenError
from .paths import DATA_SUFFIXES

STDIO = "-"
_WILDCARDS = re.compile(r"[*?\[]")
_DIGITS = re.compile(r"(\d+)")


def expand_inputs(paths: list[str], glob: str | None = None) -> list[str]:
    """Every file to read, in order: files as given, folders and patterns expanded."""
    out: list[str] = []
    for path in paths:
        if path == STDIO or os.path.isfile(path):
            out.append(path)
        elif os.path.isdir(path):
            out += _folder_files(path, glob)
        elif _WILDCARDS.search(path):
            found = sorted((p for p in globbing.glob(path, recursive=True) if os.path.isfile(p)), key=natural_key)
            if not found:
                raise InstructgenError(f"{path}: no file matches this pattern")
            out += found
        else:
            raise InstructgenError(f"{path}: no such file or folder")
    return out


def _folder_files(folder: str, glob: str | None) -> list[str]:
    root = Path(folder)
    candidates = root.rglob(glob) if glob else root.rglob("*")
    files = [
        str(p) for p in candidates
        if p.is_file() and not _hidden(p.relative_to(root))
        and (glob is not None or p.name.lower().endswith(DATA_SUFFIXES))
    ]
    if not files:
        wanted = f"matching {glob!r}" if glob else f"with a data suffix ({', '.join(DATA_SUFFIXES)})"
        raise InstructgenError(f"{folder}: no file {wanted} in this folder or below it")
    return sorted(files, key=natural_key)


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def natural_key(path: str) -> list:
    """'a/conv_10.json' after 'a/conv_9.json': digit runs compare as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in _DIGITS.split(path)]
