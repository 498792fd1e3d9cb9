"""Converting a large JSONL file with a process pool, in shards of lines.

The parent reads raw lines and appends the JSONL the workers write (to part
files beside the output, or through the pipe for compressed output) in input
order; each worker decodes, parses, dumps and serialises its shard and sends
back its counts and drops, which the parent adds to its RunLog (drops go to
the rejects file there). The output, its order and the counts are the same as
a serial run.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
from collections import Counter
from typing import Any

import orjson

from . import formats
from .formats.base import DumpOptions
from .io import RowWriter, rows_from_lines
from .runlog import RunLog

SHARD_LINES = 20_000
MIN_BYTES = 16 << 20  # below this, starting workers costs more than it saves


def worth_sharding(path: str, writer: RowWriter, read_opts) -> bool:
    return (
        path != "-"
        and path.lower().endswith((".jsonl", ".ndjson", ".jsonl.gz", ".json.gz"))
        and writer.kind in ("jsonl", "jsonl.gz")
        and not read_opts.merge_turns  # merging looks across rows, so across shard borders
        and os.path.getsize(path) >= MIN_BYTES
    )


def convert_file(path: str, spec_name: str, writer: RowWriter, to_format: str, log: RunLog,
                 read_opts, dump_opts: DumpOptions, workers: int, bar=None) -> None:
    import gzip

    opener = gzip.open if path.lower().endswith(".gz") else open
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    config = (spec_name, to_format, read_opts.columns, read_opts.strict, dump_opts)
    with opener(path, "rb") as fh, ctx.Pool(workers, initializer=_init_worker, initargs=(config,)) as pool:
        shards = _shards(fh, path, writer.spill_dir if writer.kind == "jsonl" else None)
        for part, n_in, n_out, entries, losses in pool.imap(_convert_shard, shards):
            writer.append_jsonl(part, n_out)
            log.absorb(n_in, n_out, entries, losses)
            if bar is not None:
                bar.update(n_in)


def _shards(fh, path: str, spill_dir: str | None):
    start = 1
    for n in itertools.count():
        lines = list(itertools.islice(fh, SHARD_LINES))
        if not lines:
            return
        part = os.path.join(spill_dir, f".shard-{os.getpid()}-{n}.jsonl") if spill_dir else None
        yield path, start, lines, part
        start += len(lines)


_CONFIG: tuple[Any, ...] | None = None


def _init_worker(config: tuple[Any, ...]) -> None:
    global _CONFIG
    _CONFIG = config


class _Blob:
    """A writer that serialises rows to one JSONL bytes blob."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, row: Any) -> None:
        self.parts.append(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))


def _convert_shard(shard: tuple[str, int, list[bytes], str | None]):
    """Convert one shard; its JSONL goes to the `part` file if given (cheaper than the pipe), else comes back."""
    from .convert import ReadOptions, parse_rows, rename_rows, write_records

    path, start, lines, part = shard
    spec_name, to_format, columns, strict, dump_opts = _CONFIG
    opts = ReadOptions(from_format=spec_name, columns=columns, strict=strict)
    log = RunLog("convert", keep_entries=True)
    rows = rows_from_lines(lines, path, start)
    if columns:
        rows = rename_rows(rows, columns)
    blob = _Blob()
    write_records(parse_rows(rows, formats.get(spec_name), log, opts), blob, to_format, log, dump_opts, strict=strict)
    data = b"".join(blob.parts)
    if part is not None:
        with open(part, "wb") as fh:
            fh.write(data)
        data = part
    return data, log.n_in, log.n_out, log.entries, Counter(log.losses)
