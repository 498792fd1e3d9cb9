"""Converting one large JSONL file with a process pool, in blocks of lines.

The parent reads raw lines and hands blocks to the workers; each worker
converts its block with the function the caller passes in (`convert.convert_block`,
so this module does not import the convert stage) and writes the JSONL to a part
file beside the output (`io.temp_beside`), or sends it back through the pipe
for compressed output. The parent appends the parts in input order and adds each
block's counts and drops to its RunLog, so the output, its order, the rejects and
the counts are those of a serial run. At most two blocks per worker are in
flight, which bounds memory whatever the file size.
"""

from __future__ import annotations

import gzip
import itertools
import multiprocessing as mp
import os
from collections import Counter, deque
from typing import Any, Callable, Iterator

from .io import RowWriter, temp_beside
from .runlog import RunLog

BLOCK_LINES = 20_000
MIN_BYTES = 16 << 20  # below this, starting workers costs more than it saves
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".json.gz")

# convert_block(lines, file name, number of the first line, log, config) -> the block's JSONL
BlockConverter = Callable[[list[bytes], str, int, RunLog, Any], bytes]


def worth_parallel(path: str, writer: RowWriter, merge_turns: bool) -> bool:
    return (
        path != "-"
        and path.lower().endswith(JSONL_SUFFIXES)
        and writer.kind in ("jsonl", "jsonl.gz")
        and not merge_turns  # merging looks across rows, so across block borders
        and os.path.getsize(path) >= MIN_BYTES
    )


def convert_file(path: str, writer: RowWriter, log: RunLog, convert_block: BlockConverter, config: Any,
                 workers: int, bar=None) -> None:
    """Convert the JSONL file `path` into `writer` with `workers` processes."""
    opener = gzip.open if path.lower().endswith(".gz") else open
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    to_part = writer.kind == "jsonl" and writer.path != "-"
    parts: set[str] = set()  # part files this run created and has not appended yet
    try:
        with opener(path, "rb") as fh, ctx.Pool(workers, initializer=_init_worker,
                                                 initargs=(convert_block, config)) as pool:
            pending: deque = deque()
            for start, lines in blocks(fh):
                part = temp_beside(writer.path) if to_part else None
                if part:
                    parts.add(part)
                pending.append(pool.apply_async(_run_block, ((path, start, lines, part),)))
                while len(pending) >= 2 * workers:
                    _append(pending.popleft().get(), writer, log, parts, bar)
            while pending:
                _append(pending.popleft().get(), writer, log, parts, bar)
    finally:
        for part in parts:
            if os.path.exists(part):
                os.unlink(part)


def _append(result, writer: RowWriter, log: RunLog, parts: set[str], bar) -> None:
    data, n_in, n_out, entries, losses, info = result
    writer.append_jsonl(data, n_out)
    if isinstance(data, str):
        parts.discard(data)  # append_jsonl moved it in and removed it
    log.absorb(n_in, n_out, entries, losses)
    for key, counts in info.items():
        log.info.setdefault(key, Counter()).update(counts)
    if bar is not None:
        bar.update(n_in)


def blocks(fh) -> Iterator[tuple[int, list[bytes]]]:
    """(number of the first line, lines) of a file, BLOCK_LINES at a time."""
    start = 1
    while True:
        lines = list(itertools.islice(fh, BLOCK_LINES))
        if not lines:
            return
        yield start, lines
        start += len(lines)


_WORKER: tuple[BlockConverter, Any] | None = None


def _init_worker(convert_block: BlockConverter, config: Any) -> None:
    global _WORKER
    _WORKER = (convert_block, config)


def _run_block(block: tuple[str, int, list[bytes], str | None]):
    """Convert one block; its JSONL goes to the `part` file if given (cheaper than the pipe), else comes back."""
    convert_block, config = _WORKER
    path, start, lines, part = block
    log = RunLog("convert", keep_entries=True)
    data = convert_block(lines, path, start, log, config)
    if part is not None:
        with open(part, "wb") as fh:
            fh.write(data)
        data = part
    info = {k: v for k, v in log.info.items() if isinstance(v, Counter)}
    return data, log.n_in, log.n_out, log.entries, Counter(log.losses), info
