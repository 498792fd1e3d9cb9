"""Converting one large JSONL file with a process pool.

A plain JSONL file written to a JSONL file is cut into byte ranges at line
starts; the workers count the lines of each range (so each knows the number of
its first line), then each converts its range, reading the file itself, with the
function the caller passes in (`convert.convert_range`: this module does not
import the convert stage), and writes the result straight into the output at its
place: range k's offset is known once ranges 0..k-1 have reported their sizes
(a shared array), so the output is written once, never copied from part files.
A compressed file, or compressed output, goes by blocks of lines the parent reads
and hands over (`convert.convert_block`), into part files or through the pipe,
appended by the parent. Either way the parent adds each piece's counts and drops
to its RunLog in input order, so the output, its order, the rejects and the
counts are those of a serial run. Memory stays bounded: a range holds about
1/(RANGES_PER_WORKER x workers) of the output, at most two blocks per worker are
in flight.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import time
from collections import Counter, deque
from typing import Any, Callable, Iterator

from .io import RowWriter, open_source, row_shapes, temp_beside
from .runlog import RunLog

BLOCK_LINES = 20_000
MIN_BYTES = 16 << 20  # below this, starting workers costs more than it saves
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".json.gz")

# convert_block(lines, file name, number of the first line, log, config) -> the block's JSONL
BlockConverter = Callable[[list[bytes], str, int, RunLog, Any], bytes]
# convert_range(file name, start byte, end byte, number of the first line, log, config) -> the range's JSONL
RangeConverter = Callable[[str, int, int, int, RunLog, Any], bytes]
RANGES_PER_WORKER = 16


def worth_parallel(path: str, writer: RowWriter, merge_turns: bool) -> bool:
    return (
        path != "-"
        and path.lower().endswith(JSONL_SUFFIXES)
        and writer.kind in ("jsonl", "jsonl.gz")
        and not merge_turns  # merging looks across rows, so across block borders
        and os.path.getsize(path) >= MIN_BYTES
    )


def convert_file(path: str, writer: RowWriter, log: RunLog, convert_block: BlockConverter,
                 convert_range: RangeConverter, config: Any, workers: int, bar=None) -> None:
    """Convert the JSONL file `path` into `writer` with `workers` processes."""
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    by_range = not path.lower().endswith(".gz") and writer.kind == "jsonl" and writer.path != "-"
    ranges = byte_ranges(path, workers * RANGES_PER_WORKER) if by_range else []
    sizes = ctx.Array("q", [-1] * len(ranges), lock=False)  # bytes each range wrote, -1 until it has
    target, base = writer.positional() if by_range else ("", 0)
    parts: set[str] = set()  # part files this run created and has not appended yet
    try:
        with ctx.Pool(workers, initializer=_init_worker,
                      initargs=(convert_block, convert_range, config, sizes, target, base, writer.learns_keys)) as pool:
            if by_range:
                _by_ranges(path, ranges, writer, log, pool, bar)
            else:
                _by_blocks(path, writer, log, pool, workers, parts, bar)
    finally:
        for part in parts:
            if os.path.exists(part):
                os.unlink(part)


def _by_ranges(path: str, ranges: list[tuple[int, int]], writer: RowWriter, log: RunLog, pool, bar) -> None:
    first, starts = 1, []
    for n in pool.map(count_lines, [(path, a, b) for a, b in ranges]):
        starts.append(first)
        first += n
    jobs = [(k, path, a, b, start) for k, ((a, b), start) in enumerate(zip(ranges, starts))]
    for (size, n_in, n_out, entries, losses, info), shapes in pool.imap(_run_range, jobs):  # in range order
        writer.advance(size, n_out, shapes)
        absorb_counts((n_in, n_out, entries, losses, info), log, bar)


def _by_blocks(path: str, writer: RowWriter, log: RunLog, pool, workers: int, parts: set[str], bar) -> None:
    to_part = writer.kind == "jsonl" and writer.path != "-"
    with open_source(path) as source:  # a truncated .gz ends the lines early instead of raising
        pending: deque = deque()
        for start, lines in blocks(source.complete_lines()):
            part = temp_beside(writer.path) if to_part else None
            if part:
                parts.add(part)
            pending.append(pool.apply_async(_run_block, ((path, start, lines, part),)))
            while len(pending) >= 2 * workers:
                _append(pending.popleft().get(), writer, log, parts, bar)
        while pending:
            _append(pending.popleft().get(), writer, log, parts, bar)
        if (cut := source.cut_row(path)) is not None:  # the lines before the cut were converted; the cut is one reject
            log.took_in()
            log.drop(cut.origin, cut.error, cut.raw)


def byte_ranges(path: str, n: int) -> list[tuple[int, int]]:
    """About n (start, end) byte ranges of a file, each starting at the start of a line."""
    size = os.path.getsize(path)
    cuts = [0]
    with open(path, "rb") as fh:
        for k in range(1, n):
            fh.seek(max(size * k // n - 1, cuts[-1]))
            fh.readline()  # to the start of the next line
            cuts.append(max(fh.tell(), cuts[-1]))
    cuts.append(size)
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if a < b]


def count_lines(job: tuple[str, int, int]) -> int:
    path, a, b = job
    n, left = 0, b - a
    with open(path, "rb") as fh:
        fh.seek(a)
        while left:
            chunk = fh.read(min(left, 1 << 20))
            if not chunk:
                break
            left -= len(chunk)
            n += chunk.count(b"\n")
    return n


def _append(result, writer: RowWriter, log: RunLog, parts: set[str], bar) -> None:
    (data, *counts), shapes = result
    writer.append_jsonl(data, counts[1], shapes)
    if isinstance(data, str):
        parts.discard(data)  # append_jsonl moved it in and removed it
    absorb_counts(counts, log, bar)


def absorb_counts(counts, log: RunLog, bar) -> None:
    n_in, n_out, entries, losses, info = counts
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


_WORKER: tuple | None = None


def _init_worker(convert_block: BlockConverter, convert_range: RangeConverter, config: Any, sizes, target: str,
                 base: int, learn_keys: bool) -> None:
    global _WORKER
    _WORKER = (convert_block, convert_range, config, sizes, target, base, learn_keys)


def _run_block(block: tuple[str, int, list[bytes], str | None]):
    """Convert one block; its JSONL goes to the `part` file if given (cheaper than the pipe), else comes back;
    with the keys of its rows when the writer makes keys stable (read here, on every core, not by the writer)."""
    convert_block, _, config, *_, learn_keys = _WORKER
    path, start, lines, part = block
    log = RunLog("convert", keep_entries=True)
    data = convert_block(lines, path, start, log, config)
    shapes = row_shapes(data) if learn_keys else None
    if part is not None:
        with open(part, "wb") as fh:
            fh.write(data)
        data = part
    return range_result(data, log), shapes


def _run_range(job: tuple[int, str, int, int, int]):
    """Convert byte range k of the file and write it into the output where it belongs: after ranges 0..k-1,
    whose sizes this waits for (they were handed out before it, so they are being converted)."""
    _, convert_range, config, sizes, target, base, learn_keys = _WORKER
    k, path, a, b, start = job
    log = RunLog("convert", keep_entries=True)
    data = convert_range(path, a, b, start, log, config)
    while any(sizes[j] < 0 for j in range(k)):
        time.sleep(0.002)
    fd = os.open(target, os.O_WRONLY)
    try:
        offset, view = base + sum(sizes[:k]), memoryview(data)
        while view:
            done = os.pwrite(fd, view, offset)
            offset, view = offset + done, view[done:]
    finally:
        os.close(fd)
    sizes[k] = len(data)
    return range_result(len(data), log), row_shapes(data) if learn_keys else None


def range_result(data: bytes | str, log: RunLog):
    info = {k: v for k, v in log.info.items() if isinstance(v, Counter)}
    return data, log.n_in, log.n_out, log.entries, Counter(log.losses), info
