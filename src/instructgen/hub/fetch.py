"""`download` (hub.download): a published set (registry name or OWNER/REPO) at a pinned revision -> records.

    download(name_or_repo, out, options=None, *, stats_path=None, rejects_path=None, endpoint=None,
             **option_fields) -> DownloadResult

`options` is a DownloadOptions (or its fields as keywords). The repo is untrusted: file names and
card patterns are checked (hub.files), archives are unpacked by hub.archive into a private temporary
folder under names of our own, and both the decompressed bytes (--max-bytes) and the records
(--max-records) are bounded. The output is written atomically, so a refused download leaves no
partial file. The resolved commit SHA and licence go to the output's stats file.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from typing import Any, Iterator

from .. import formats as format_registry
from ..convert import ReadOptions, open_source, records_of, write_records
from ..errors import InstructgenError
from ..io import Row, RowWriter
from ..paths import CommandPaths, derived
from ..record import Conversation
from ..runlog import RunLog, write_stats
from .archive import Stager, Staged, size_text
from .config import REPO_PATTERN, DownloadOptions
from .files import choose_files, safe_remote_name
from .http import HUB_RETRY, Hub, hub_client, hub_errors, resolve_token
from .registry import find_published, published


@dataclass(slots=True)
class DownloadResult:
    repo_id: str
    revision: str  # the resolved commit SHA
    license: str | None
    files: list[str]
    format: str
    to_format: str
    log: RunLog
    stats_path: str | None = None
    config: str | None = None
    split: str | None = None


def download(name_or_repo: str, out: str | os.PathLike, options: DownloadOptions | None = None, *,
             stats_path: str | os.PathLike | None = None, rejects_path: str | os.PathLike | None = None,
             endpoint: str | None = None, **option_fields: Any) -> DownloadResult:
    """Fetch a published set at a pinned revision and convert it to records in options.to_format at `out`."""
    if option_fields or options is None:  # keywords add to (and override) the options given
        options = DownloadOptions(**{**(options.model_dump() if options else {}), **option_fields})
    out, rejects_path, stats_path = _plan(out, rejects_path, stats_path)
    entry = find_published(name_or_repo)
    repo_id = entry.repo if entry else name_or_repo
    if not re.fullmatch(REPO_PATTERN, repo_id):
        raise InstructgenError(f"{name_or_repo!r} is neither a known name ({', '.join(sorted(published()))}) "
                               f"nor OWNER/REPO")
    hub = hub_client(resolve_token(options.token_env, required=False), endpoint, options.token_env)
    with hub_errors(hub, repo_id, options.revision):
        info = HUB_RETRY.call(lambda: hub.api.dataset_info(repo_id, revision=options.revision, files_metadata=True),
                              f"read {repo_id}", hub)
    sha = info.sha
    card = info.card_data.to_dict() if info.card_data is not None else {}
    license = card.get("license") or (entry.license if entry else None)
    sizes = {s.rfilename: s.size or 0 for s in info.siblings or []}
    files, config, split = choose_files(sorted(sizes), card, entry, options.config, options.split)
    for f in files:
        safe_remote_name(f, f"{repo_id}@{sha[:12]}")
    if sum(sizes[f] for f in files) > options.max_bytes:
        raise InstructgenError(f"{repo_id}: the files to fetch hold {size_text(sum(sizes[f] for f in files))}, more "
                               f"than --max-bytes {size_text(options.max_bytes)}; raise --max-bytes if you trust "
                               f"this repo")
    from_format = options.from_format or (entry.format if entry else None)
    where = f"{repo_id}@{sha[:12]}"
    log = RunLog("download", rejects_path)
    detected: list[str] = []
    with tempfile.TemporaryDirectory(prefix="instructgen-download-") as private:
        stager = Stager(private, options.max_bytes)
        staged = [s for f in files for s in stager.stage(f, _fetch(hub, repo_id, sha, f))]
        read_opts = ReadOptions(from_format=from_format, columns=options.columns or (entry.columns if entry else None))
        records = _read(staged, log, read_opts, where, detected, options.max_records)
        first = next(records, None)  # the format is detected here
        target = options.to_format or (first.source_format if first is not None else from_format or "sharegpt")
        _check_writable(target)
        try:
            with RowWriter(out) as writer:
                write_records(itertools.chain([first] if first else [], records), writer, target, log)
        finally:
            log.close()
    fmt = from_format or ",".join(dict.fromkeys(detected)) or "unknown"
    source = {"repo": repo_id, "revision": sha, "requested_revision": options.revision, "license": license,
              "config": config, "split": split, "files": files, "format": fmt, "endpoint": hub.endpoint,
              "records": log.n_out}
    write_stats(stats_path, [log], source=source)
    return DownloadResult(repo_id, sha, license, files, fmt, target, log, stats_path, config, split)


def _plan(out, rejects_path, stats_path) -> tuple[str, str, str]:
    """-o, --rejects and --stats: checked against each other before anything is opened."""
    plan = CommandPaths()
    out = plan.write(out, "-o")
    rejects = plan.write(rejects_path, "--rejects") if rejects_path else \
        plan.write(derived(out, "rejects.jsonl"), "the default rejects file", chosen=False)
    stats = plan.write(stats_path, "--stats") if stats_path else \
        plan.write(derived(out, "stats.json"), "the default stats file", chosen=False)
    plan.check()
    return out, rejects, stats


def _fetch(hub: Hub, repo_id: str, sha: str, filename: str) -> str:
    """The Hub's cached copy of one file (huggingface_hub keeps it in its cache and resumes cut transfers)."""
    from huggingface_hub import hf_hub_download

    def fetch() -> str:
        return hf_hub_download(repo_id, filename, repo_type="dataset", revision=sha, token=hub.token or False,
                               endpoint=hub.endpoint)

    with hub_errors(hub, repo_id, sha):
        return HUB_RETRY.call(fetch, f"download {filename}", hub)


def _read(staged: list[Staged], log: RunLog, opts: ReadOptions, where: str, detected: list[str],
          max_records: int) -> Iterator[Conversation]:
    """The records of every staged file; origins and messages name the remote file, never the local copy."""
    seen = [0]  # rows so far, over all files
    for item in staged:
        label = f"{where}/{item.label}"

        def announce(msg: str, label: str = label, path: str = item.path) -> None:
            found = re.findall(r"detected format (\S+)", msg)
            detected.extend(found)
            print(f"{label}: detected format {found[-1]}" if found else msg.replace(path, label), file=sys.stderr)

        item_opts = dataclasses.replace(opts, announce=announce)
        try:
            spec, rows = open_source(item.path, log, item_opts)
        except InstructgenError as e:
            raise InstructgenError(str(e).replace(item.path, label)) from None
        yield from records_of(_bounded(rows, item.path, label, seen, max_records), spec, log, item_opts)


def _bounded(rows: Iterator[Row], path: str, label: str, seen: list[int], max_records: int) -> Iterator[Row]:
    """The rows, their origins naming the remote file; past max_records rows in all, a clear error."""
    for row in rows:
        seen[0] += 1
        if seen[0] > max_records:
            raise InstructgenError(f"{label}: more than --max-records {max_records} records; raise --max-records "
                                   f"if you trust this repo")
        if row.origin.startswith(path):
            row.origin = label + row.origin[len(path):]
        yield row


def _check_writable(fmt: str) -> None:
    if not format_registry.get(fmt).writable:
        raise InstructgenError(f"{fmt} can be read but not written; pass --to with one of "
                               f"{', '.join(format_registry.names(writable_only=True))}")


__all__ = ["DownloadResult", "download"]
