"""Which files of a Hub repo to fetch: from the registry entry, the card's `configs`, or the file names.

Everything here comes from the remote side and is untrusted: a repo file name or a `data_files`
pattern that is absolute, holds `..`, a backslash, a drive letter or a URL is refused, so nothing
chosen here can point outside the repo.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from ..errors import InstructgenError
from .registry import PublishedSet

DATA_SUFFIXES = (".parquet", ".jsonl", ".json", ".ndjson", ".jsonl.gz", ".json.gz")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
DEFAULT_CONFIG = "default"  # what `datasets` calls the one config of a repo whose card lists none


def unsafe_reason(name: str) -> str | None:
    """Why a remote path cannot be used, or None."""
    if not name or "\0" in name:
        return "an empty name"
    if name.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", name):
        return "an absolute path"
    if "\\" in name:
        return "a backslash"
    if "://" in name:
        return "a URL"
    if any(part in ("", ".", "..") for part in name.split("/")):
        return "'..' or an empty part"
    return None


def safe_remote_name(name: str, where: str) -> str:
    """`name` if it is a plain relative path inside the repo; else a clear error."""
    problem = unsafe_reason(name)
    if problem:
        raise InstructgenError(f"{where}: refusing {name!r}, which has {problem}; a repo path must stay inside "
                               f"the repo (this repo is malformed or hostile)")
    return name


def choose_files(siblings: list[str], card: dict[str, Any], entry: PublishedSet | None, config: str | None,
                 split: str | None) -> tuple[list[str], str, str]:
    """(data files to fetch, config, split) from the registry entry, the card's `configs`, or the file names."""
    configs = [c for c in card.get("configs") or [] if isinstance(c, dict) and c.get("config_name")]
    if configs and (config is not None or not (entry and entry.data_files)):
        return _from_card(siblings, configs, config, split)
    known = (entry.config if entry and entry.config else DEFAULT_CONFIG)
    if config is not None and config != known:
        raise InstructgenError(f"no config {config!r}: the card lists no configs, so the repo has only "
                               f"{known!r}; leave --config out")
    if entry is not None and entry.data_files:
        split = split or entry.split
        if split not in entry.data_files:
            raise InstructgenError(f"{entry.repo}: no split {split!r}; known: {', '.join(entry.data_files)}")
        return _match(siblings, entry.data_files[split], f"the registry entry {entry.name!r}"), known, split
    return _by_name(siblings, split or "train"), known, split or "train"


def _from_card(siblings: list[str], configs: list[dict], config: str | None, split: str | None
               ) -> tuple[list[str], str, str]:
    by_name = {str(c["config_name"]): c for c in configs}
    if config is not None and config not in by_name:
        raise InstructgenError(f"no config {config!r}; the card lists: {', '.join(by_name)}")
    chosen = by_name[config] if config else next((c for c in configs if c.get("default")), configs[0])
    name = str(chosen["config_name"])
    splits = _card_splits(chosen.get("data_files"), name)
    if not splits:
        raise InstructgenError(f"config {name!r} lists no data_files in the card")
    split = split or ("train" if "train" in splits else next(iter(splits)))
    if split not in splits:
        raise InstructgenError(f"config {name!r} has no split {split!r}; it has: {', '.join(splits)}")
    return _match(siblings, splits[split], f"the card's data_files of {name!r}"), name, split


def _card_splits(data_files: Any, config: str) -> dict[str, list[str]]:
    if isinstance(data_files, str) or (isinstance(data_files, list) and all(isinstance(d, str) for d in data_files)):
        found = {"train": [data_files] if isinstance(data_files, str) else list(data_files)}
    elif isinstance(data_files, dict):  # {split: pattern(s)}
        found = {str(k): [v] if isinstance(v, str) else list(v or []) for k, v in data_files.items()}
    else:
        found = {}
        for item in data_files or []:
            if isinstance(item, dict):
                paths = item.get("path")
                found.setdefault(str(item.get("split", "train")), []).extend(
                    [paths] if isinstance(paths, str) else list(paths or []))
    for patterns in found.values():
        for p in patterns:
            safe_remote_name(str(p), f"the card's data_files of config {config!r}")
    return found


def _match(siblings: list[str], patterns: list[str], where: str) -> list[str]:
    for p in patterns:
        safe_remote_name(p, where)
    files = sorted({s for s in siblings for p in patterns if fnmatch.fnmatchcase(s, p)})
    if not files:
        raise InstructgenError(f"no file matches {', '.join(patterns)} ({where}); the repo has: "
                               f"{', '.join(siblings[:20])}")
    return files


def _by_name(siblings: list[str], split: str) -> list[str]:
    data = [s for s in siblings if s.lower().endswith(DATA_SUFFIXES + ARCHIVE_SUFFIXES)]
    named = [s for s in data if re.search(rf"(^|[/_.-]){re.escape(split)}([/_.-]|$)", s)]
    files = named or data
    if not files:
        raise InstructgenError(f"no data file (.parquet, .json, .jsonl, .zip, .tar) in the repo; files: "
                               f"{', '.join(siblings[:20])}")
    return sorted(files)
