"""Shard work on every core: shards that name a byte range of their file, and a pool of worker processes.

A plain JSONL file is cut into `RangeShard`s: consecutive lines, named by the file's path, a byte range and
the number of its first line. Whoever runs the shard reads those bytes itself, so only the path, two numbers
and the shard's small results (logs, sketches, spool offsets) cross a process boundary, never rows. Other
inputs (JSON arrays, .gz, Parquet, stdin) are read in this process into row shards (`stages.RowShard`) as
before.

`ShardPool` is the run's pool of worker processes (one per core). While one is open in a process, `curate`
hands each range shard to it and waits for the result: a runner that runs shards in threads of this
process (the direct loop, the threads runner) then keeps every core busy. Where no pool is open (a task of
the processes runner or a Dask worker), the shard runs where it is. The records, their order and every log
are the same either way: each shard is the same pure function of its lines.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..convert import ReadOptions, open_source, rename_rows
from ..io import kind_of, rows_from_lines
from ..runlog import RunLog
from . import stages
from .stages import Carrier, Curated, RowShard, ShardPlan

SCAN_BLOCK = 16 << 20  # bytes read at a time while finding where shards start
# Below this many bytes of range shards in a run, worker processes cost more to start (each imports the
# rules and loads the language profiles, about a second) than they save.
POOL_MIN_BYTES = 16 << 20
M_MMAP_THRESHOLD = -3  # glibc's malloc.h


def fixed_mmap_threshold(threshold: int = 128 << 10) -> bool:
    """Let blocks above `threshold` bytes go back to the OS when freed, whatever was freed before.

    glibc raises its mmap threshold each time a large block is freed, up to 32 MB, so once the first shard's
    sketches (about 10 MB an array) are freed, later ones come from the heap, whose freed memory stays with
    the process: 500,000 records held 160 MB more before the dedup decisions (benchmarks/results/
    pipeline_cores.txt). Setting the threshold (what MALLOC_MMAP_THRESHOLD_ does) stops the raising. True
    when set (glibc); elsewhere nothing changes."""
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, threshold) == 1
    except (OSError, AttributeError):
        return False


@contextmanager
def heap_reused(threshold: int = 32 << 20) -> Iterator[None]:
    """While the dedup decisions run, blocks up to `threshold` (glibc's most) come from the heap, then the
    threshold is fixed low again. The decisions allocate pieces of tens of MB hundreds of times over; mapped
    afresh each time, their pages are faulted in one thread at a time (the kernel locks the address space),
    which took the two threads' gain away: 300,000 records decided in 6.0 s instead of 3.9 s
    (benchmarks/decisions.py with MALLOC_MMAP_THRESHOLD_=131072)."""
    fixed_mmap_threshold(threshold)
    try:
        yield
    finally:
        fixed_mmap_threshold()


class RangeShard(Carrier):
    """Lines `first_line`.. of `path`, bytes [start, end): read by whoever runs the shard."""

    __slots__ = ("label", "path", "file", "format", "columns", "start", "end", "first_line", "spool", "sketch")

    def __init__(self, label: str, path: str, format: str, columns: dict[str, str] | None, start: int, end: int,
                 first_line: int, spool: str = "", sketch: bool = True):
        self.label, self.path, self.format, self.columns = label, path, format, columns
        self.file = os.path.abspath(path)  # `path` names the records; a worker elsewhere may not share our folder
        self.start, self.end, self.first_line = start, end, first_line
        self.spool, self.sketch = spool, sketch

    @property
    def nbytes(self) -> int:
        return self.end - self.start

    def row_shard(self) -> RowShard:
        """The shard's rows, read from its file, as the row reader would have read them."""
        with open(self.file, "rb") as fh:
            fh.seek(self.start)
            data = fh.read(self.end - self.start)
        rows = rows_from_lines(io.BytesIO(data), self.path, self.first_line)  # lines end at b"\n" only, as in a file
        if self.columns:
            rows = rename_rows(rows, self.columns)
        return RowShard(self.label, self.format, self.columns, list(rows), self.spool, self.sketch)


def splittable(path: str) -> bool:
    """Whether a file can be cut into byte ranges of whole records: plain (uncompressed) JSONL."""
    return path != "-" and kind_of(path) == "jsonl" and os.path.isfile(path)


def range_shards(path: str, fmt: str | None, columns: dict[str, str] | None, shard_size: int,
                 announce=print) -> Iterator[RangeShard]:
    """Slices of `shard_size` lines of a plain JSONL file as byte ranges, with its format (detected from the
    first rows when not given, as the row reader does; an empty or missing file is the same error)."""
    spec, rows = open_source(path, RunLog("read"), ReadOptions(from_format=fmt, columns=columns, announce=announce))
    first = next(iter(rows), None)  # the reader's checks (no such file, empty, only blank lines)
    getattr(rows, "close", lambda: None)()
    if first is None:
        return
    name = Path(path).name
    for i, (start, end, first_line) in enumerate(_line_ranges(path, shard_size)):
        yield RangeShard(f"{name}#{i}", path, spec.name, columns, start, end, first_line)


def _line_ranges(path: str, lines_per_range: int) -> Iterator[tuple[int, int, int]]:
    """(start byte, end byte, number of the first line) of consecutive runs of `lines_per_range` lines."""
    start, line, position, counted = 0, 1, 0, 0  # counted: lines of the current range seen so far
    with open(path, "rb") as fh:
        while block := fh.read(SCAN_BLOCK):
            at = 0
            while True:
                need = lines_per_range - counted
                if block.count(b"\n", at) < need:
                    counted += block.count(b"\n", at)
                    break
                for _ in range(need):
                    at = block.index(b"\n", at) + 1
                end = position + at
                yield start, end, line
                start, line, counted = end, line + lines_per_range, 0
            position += len(block)
    if position > start:
        yield start, position, line


class ShardPool:
    """Worker processes for range shards while open (a context manager); one per core. Runs open at once in
    one process (two flows in threads) share them; the last to close stops them."""

    _lock = threading.Lock()
    _executor: ProcessPoolExecutor | None = None
    _users = 0
    _pid = -1  # the process that opened them: a process forked from it must not use them

    def __init__(self, workers: int | None = None):
        self.workers = workers or max(1, os.cpu_count() or 1)

    def __enter__(self) -> "ShardPool":
        with ShardPool._lock:
            if ShardPool._users == 0:
                # spawn: the parent holds threads (an orchestrator's, tqdm's) that a fork would copy mid-step
                ShardPool._executor = ProcessPoolExecutor(self.workers,
                                                          mp_context=multiprocessing.get_context("spawn"))
                ShardPool._pid = os.getpid()
            ShardPool._users += 1
        return self

    def __exit__(self, *exc) -> None:
        with ShardPool._lock:
            ShardPool._users -= 1
            executor = ShardPool._executor if ShardPool._users == 0 else None
            if executor is not None:
                ShardPool._executor = None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    @classmethod
    def running(cls) -> ProcessPoolExecutor | None:
        """The open pool of this process, if there is one."""
        return cls._executor if cls._pid == os.getpid() else None


def curate(shard: RowShard | RangeShard, plan: ShardPlan) -> Curated:
    """`stages.curate_shard` of any shard: a range shard goes to this process's open pool, if there is one."""
    if isinstance(shard, RangeShard):
        pool = ShardPool.running()
        return pool.submit(curate_range, shard, plan).result() if pool is not None else curate_range(shard, plan)
    return stages.curate_shard(shard, plan)


def curate_range(shard: RangeShard, plan: ShardPlan) -> Curated:
    return stages.curate_shard(shard.row_shard(), plan)


# -- the write pass ---------------------------------------------------------------------------------------

# From this many records on, each format is written by a process of its own: it reads the spools itself (only
# the stream's file names and masks cross), so the formats are dumped at once instead of one after another.
PARALLEL_WRITE_MIN = 50_000


class FormatProcesses:
    """Formats written by worker processes alongside the write pass (a context manager): `start` hands each
    its format, `logs` waits for their logs in the order started."""

    def __init__(self, formats: int):
        self.executor = ProcessPoolExecutor(min(formats, max(1, os.cpu_count() or 1)),
                                            mp_context=multiprocessing.get_context("spawn"))
        self.futures: list = []

    def start(self, stream, fmt: str, path: str, rejects: str, turns: str | None) -> None:
        bare = type(stream)(stream.spools, [type(p)(p.label, p.kept, p.spool, None) for p in stream.passes])
        self.futures.append(self.executor.submit(write_format, bare, fmt, path, rejects, turns))

    def logs(self) -> list[RunLog]:
        return [f.result() for f in self.futures]

    def __enter__(self) -> "FormatProcesses":
        return self

    def __exit__(self, *exc) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


def parallel_write(records: int, formats: int) -> bool:
    """Whether formats are written by processes of their own: only from the process that runs the pipeline
    (a Dask worker may not start processes) and when there are records enough to pay for starting them."""
    return formats > 0 and records >= PARALLEL_WRITE_MIN and multiprocessing.parent_process() is None


def write_format(stream, fmt: str, path: str, rejects: str, turns: str | None) -> RunLog:
    """One format of the records the stream keeps, in order (the write pass's rows for it, byte for byte)."""
    out = stages.FormatOut(fmt, path, rejects, turns)
    try:
        batch: list = []
        for _k, conv, at in stream.fates():
            if at < 0:
                batch.append(conv)
                if len(batch) == stages.WRITE_BATCH:
                    out.write(batch)
                    batch = []
        out.write(batch)
        out.writer.close()
    except BaseException:
        out.writer.abort()
        raise
    finally:
        out.log.close()
    return out.log
