"""`download`: a published instruction set (registry name or OWNER/REPO) at a pinned revision -> records.

See the signature in instructgen.hub's docstring; `instructgen.hub.download` is this function.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import formats as format_registry
from .convert import ReadOptions, read_records, write_records
from .errors import InstructgenError
from .hub import _api, _ErrorContext, _is_transient, _one_line, resolve_token, scrub
from .hub_data import choose_files, find_published, published, stage_files
from .io import RowWriter
from .runlog import RunLog, write_stats


@dataclass(slots=True)
class DownloadResult:
    repo_id: str
    revision: str  # the resolved commit SHA
    license: str | None
    files: list[str]
    format: str
    to_format: str
    log: RunLog



def download(
    name_or_repo: str,
    out: str | os.PathLike,
    *,
    revision: str | None = None,
    to_format: str | None = None,
    config: str | None = None,
    split: str | None = None,
    token_env: str = "HF_TOKEN",
    stats_path: str | os.PathLike | None = None,
    rejects_path: str | os.PathLike | None = None,
    endpoint: str | None = None,
    retries: int = 3,
) -> DownloadResult:
    """Fetch a published set at a pinned revision and convert it to records in `to_format` at `out`."""
    entry = find_published(name_or_repo)
    repo_id = entry.repo if entry else name_or_repo
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
        known = ", ".join(sorted(published()))
        raise InstructgenError(f"{name_or_repo!r} is neither a known name ({known}) nor OWNER/REPO")
    token = resolve_token(token_env, required=False)
    api, endpoint = _api(endpoint, token)
    ctx = _ErrorContext(endpoint, token, token_env, repo_id, revision)
    with ctx:
        info = api.dataset_info(repo_id, revision=revision)
    sha = info.sha
    card = info.card_data.to_dict() if info.card_data is not None else {}
    license = card.get("license") or (entry.license if entry else None)
    siblings = [s.rfilename for s in info.siblings or []]
    files, config, split = choose_files(siblings, card, entry, config, split)
    from_format = entry.format if entry else None
    target = to_format or from_format
    if target is not None:
        _check_writable(target)

    def fetch(filename: str) -> str:
        from huggingface_hub import hf_hub_download

        for attempt in range(retries + 1):
            with ctx:
                try:
                    return hf_hub_download(repo_id, filename, repo_type="dataset", revision=sha,
                                           token=token or False, endpoint=endpoint)
                except Exception as e:
                    if attempt < retries and _is_transient(e):
                        print(f"instructgen download: {filename}: {_one_line(scrub(str(e), token))}; retrying",
                              file=sys.stderr)
                        time.sleep(min(2 ** attempt, 8))
                        continue
                    raise
        raise AssertionError("unreachable")

    out = Path(out)
    log = RunLog("download", rejects_path or _default_rejects(out))
    with tempfile.TemporaryDirectory(prefix="instructgen-download-") as staging:
        local = stage_files({f: fetch(f) for f in files}, Path(staging) / f"{repo_id.replace('/', '__')}@{sha[:12]}")
        seen: list[str] = []

        def announce(msg: str) -> None:
            seen.extend(re.findall(r"detected format (\S+)", msg))
            print(f"{repo_id}@{sha[:12]}: detected format {seen[-1]}" if seen else msg, file=sys.stderr)

        opts = ReadOptions(from_format=from_format, columns=entry.columns if entry else None, announce=announce)
        records = read_records(local, log, opts)
        first = next(records, None)  # the format is detected here
        if target is None:  # default: the format the data is in
            target = first.source_format if first is not None else "sharegpt"
            _check_writable(target)
        with RowWriter(out) as writer:
            write_records(itertools.chain([first] if first else [], records), writer, target, log)
        log.close()
    detected = from_format or ",".join(dict.fromkeys(seen)) or "unknown"
    source = {"repo": repo_id, "revision": sha, "requested_revision": revision, "license": license,
              "config": config, "split": split, "files": files, "format": detected, "endpoint": endpoint,
              "records": log.n_out}
    write_stats(stats_path or _default_stats(out), [log], source=source)
    return DownloadResult(repo_id, sha, license, files, detected, target, log)


def _check_writable(fmt: str) -> None:
    if not format_registry.get(fmt).writable:
        raise InstructgenError(f"{fmt} can be read but not written; pass --to with one of "
                               f"{', '.join(format_registry.names(writable_only=True))}")


def _default_rejects(out: Path) -> str:
    return str(out.with_name(_stem(out) + ".rejects.jsonl"))


def _default_stats(out: Path) -> str:
    return str(out.with_name(_stem(out) + ".stats.json"))


def _stem(out: Path) -> str:
    name = out.name
    for suffix in (".jsonl.gz", ".json.gz", ".jsonl", ".json", ".parquet"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name
