"""Dedup's pass 1 over files: every record read once and sketched into one `SketchBuffer`, with where it is.

    SketchBuffer(config)                                    the run's sketches in one block of arrays
    Indexed                                                 one file's rows of the buffer, its records' lines
                                                            and (plain JSONL) byte offsets
    index_file(path, fmt, config, into, workers, bar)       pass 1 over one file (byte ranges in worker
                                                            processes when it is a big plain JSONL file)
    index_small_files(paths, fmt, config, into, detected)   pass 1 over small files, sketched in shared batches
    index_range(job), range_jobs(...), index_by_ranges(...) a byte range's work, for a process pool or Dask
    sketch_items(items, config), sketch_conversations(...)  the sketches of a batch of records

A record keeps only what the decisions need: its `dedup.Sketches` row (exact key, MinHash values, length,
anchor hash) and where it is (its line, and its byte offset in a plain JSONL file), about 540 bytes a
record at 128 permutations and two parts. A plain record (one the format's direct-path reader takes) is
sketched without building a Conversation; lines that are not records are left to pass 2 (dedup_write),
whose converter rejects them with their reasons, once.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
import orjson

from .. import convert_parallel, formats
from ..convert import ReadOptions, DetectedFormats, lines_until, open_in_folder, open_source, parse_rows
from ..io import MAX_ROW_BYTES, kind_of, rows_from_lines
from ..io import open_source as open_file
from ..record import Conversation
from ..runlog import RunLog
from .dedup import BATCH, DedupConfig, Sketches, dedup_parts, join_anchors, parse_fields, plain_parts, sketch, \
    tool_calls_text


def quiet(_message: str) -> None:
    pass


class SketchBuffer:
    """Pass 1's sketches of every file of a run in one block of arrays, so that the decisions read them in
    place (no concatenation, which would hold them twice). Reserved ahead when the number of records is
    known (a plain JSONL file's lines); grown by half when an estimate falls short."""

    FIELDS = ("keys", "sigs", "lengths", "anchors")

    def __init__(self, config: DedupConfig):
        self.shape = (len(parse_fields(config.fields)), config.num_perm)
        self.size = 0
        self._arrays = Sketches(np.empty(0, np.uint64), np.empty((0, *self.shape), np.uint16),
                                np.empty(0, np.uint32), np.empty(0, np.uint32))

    def reserve(self, n: int) -> None:
        if self.size + n <= len(self._arrays):
            return
        capacity = max(self.size + n, len(self._arrays) * 3 // 2)
        grown = []
        for name in self.FIELDS:
            old = getattr(self._arrays, name)
            new = np.empty((capacity, *old.shape[1:]), old.dtype)
            new[:self.size] = old[:self.size]
            grown.append(new)
            setattr(self._arrays, name, np.empty((0, *old.shape[1:]), old.dtype))  # the old block goes now
        self._arrays = Sketches(*grown)

    def append(self, sk: Sketches) -> None:
        n = len(sk)
        if not n:
            return
        if sk.sigs.shape[1:] != self.shape:
            raise ValueError(f"signatures of shape {sk.sigs.shape[1:]}, expected {self.shape}")
        self.reserve(n)
        for name in self.FIELDS:
            getattr(self._arrays, name)[self.size:self.size + n] = getattr(sk, name)
        self.size += n

    def view(self, start: int = 0, stop: int | None = None) -> Sketches:
        stop = self.size if stop is None else stop
        return Sketches(*(getattr(self._arrays, name)[start:stop] for name in self.FIELDS))


@dataclass
class Indexed:
    """Pass 1's result for one file: its records' sketches (rows start:stop of the run's buffer) and where
    each record is."""

    path: str
    format: str
    buffer: SketchBuffer
    start: int
    stop: int
    lines: np.ndarray  # int64: the record's line (JSONL), or its position among the file's records
    offsets: np.ndarray  # int64: byte offset of its line in a plain JSONL file (else empty)
    reused: bool = False

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def sketches(self) -> Sketches:
        return self.buffer.view(self.start, self.stop)

    @property
    def by_lines(self) -> bool:
        return by_lines(self.path)

    @property
    def seekable(self) -> bool:
        return kind_of(self.path) == "jsonl"


def by_lines(path: str) -> bool:
    """A JSONL file (plain or gzip): read and converted as lines."""
    return path != "-" and kind_of(path) in ("jsonl", "jsonl.gz")


def sketch_conversations(records: list[Conversation], config: DedupConfig) -> Sketches:
    """dedup.sketch_records in this process (workers call it; they start no workers of their own)."""
    return sketch_items([(c, None) for c in records], config)


def sketch_items(items: list[tuple[Conversation | None, tuple[str, ...] | None]], config: DedupConfig) -> Sketches:
    """Sketches of records given as (Conversation, None) or, for plain records, (None, their dedup_parts)."""
    parts = parse_fields(config.fields)
    texts = [given if conv is None else dedup_parts(conv, parts) for conv, given in items]
    ids = ["\n".join(dedup_parts(conv, parts, tools=False)) if conv is not None and conv.tools else "\n".join(t)
           for (conv, _), t in zip(items, texts)] if config.identifiers else None
    calls = [tool_calls_text(conv) if conv is not None and config.tool_calls else "" for conv, _ in items]
    return sketch(texts, config, join_anchors(config, ids, calls))


def numbered_lines(lines: Iterable[bytes], start_line: int, start_byte: int) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset or -1, line)."""
    offset = start_byte
    for lineno, line in enumerate(lines, start_line):
        yield lineno, offset, line
        if offset >= 0:
            offset += len(line)


def line_records(positioned: Iterable[tuple[int, int, bytes]], name: str, spec: formats.FormatSpec
                  ) -> Iterator[tuple[Conversation, int, int]]:
    """(record, line, offset) of the lines that are records; the others are left to pass 2 to reject."""
    log = RunLog("dedup-index")
    opts = ReadOptions(from_format=spec.name, announce=quiet)
    for lineno, offset, line in positioned:
        for conv in parse_rows(rows_from_lines((line,), name, lineno), spec, log, opts):
            yield conv, lineno, offset


def line_items(positioned: Iterable[tuple[int, int, bytes]], name: str, spec: formats.FormatSpec,
                config: DedupConfig) -> Iterator[tuple[tuple, int, int]]:
    """((Conversation, None) or (None, dedup_parts), line, offset) of the lines that are records: a plain
    record (the format's direct-path reader takes it) skips building a Conversation; the others are parsed."""
    parts = parse_fields(config.fields)
    read_plain = spec.read_plain if plain_parts((None, [], {}), parts) is not None else None
    loads = orjson.loads
    log = RunLog("dedup-index")
    opts = ReadOptions(from_format=spec.name, announce=quiet)
    for lineno, offset, line in positioned:
        if read_plain is not None and lineno > 1 and len(line) <= MAX_ROW_BYTES:  # line 1 may hold a BOM
            try:
                data = loads(line)
            except orjson.JSONDecodeError:
                data = None
            plain = read_plain(data) if type(data) is dict else None
            if plain is not None:
                yield (None, plain_parts(plain, parts)), lineno, offset
                continue
        for conv in parse_rows(rows_from_lines((line,), name, lineno), spec, log, opts):
            yield (conv, None), lineno, offset


def index_records(found: Iterable[tuple[tuple, int, int]], config: DedupConfig,
                   into: SketchBuffer | None = None) -> tuple[Sketches | None, np.ndarray, np.ndarray]:
    """Sketches of ((Conversation, None) or (None, parts), line, offset) items (appended to `into` batch by
    batch when given, else returned), their lines and offsets."""
    shards: list[Sketches] = []
    lines: list[int] = []
    offsets: list[int] = []
    batch: list[tuple] = []

    def flush() -> None:
        sk = sketch_items(batch, config)
        into.append(sk) if into is not None else shards.append(sk)

    for item, line, offset in found:
        batch.append(item)
        lines.append(line)
        offsets.append(offset)
        if len(batch) == BATCH:
            flush()
            batch = []
    if batch or (into is None and not shards):
        flush()
    sk = Sketches.concat(shards) if into is None else None
    return sk, np.asarray(lines, dtype=np.int64), np.asarray(offsets, dtype=np.int64)


def index_range(job: tuple[str, str, DedupConfig, int, int, int]) -> tuple[Sketches, np.ndarray, np.ndarray]:
    """Pass 1 over the byte range [a, b) of a plain JSONL file, whose first line is line `first`: the
    work a process pool or a Dask worker does."""
    path, spec_name, config, a, b, first = job
    with open(path, "rb") as fh:
        fh.seek(a)
        positioned = numbered_lines(lines_until(fh, b - a), first, a)
        return index_records(line_items(positioned, path, formats.get(spec_name), config), config)


def range_jobs(path: str, spec_name: str, config: DedupConfig, n: int, pool_map=map) -> tuple[list[tuple], int]:
    """(index_range jobs of about n byte ranges of a plain JSONL file, its number of lines); the lines are
    counted with `pool_map`."""
    ranges = convert_parallel.byte_ranges(path, n)
    counts = list(pool_map(convert_parallel.count_lines, [(path, a, b) for a, b in ranges]))
    firsts = np.cumsum([1, *counts[:-1]]).tolist()
    return [(path, spec_name, config, a, b, first) for (a, b), first in zip(ranges, firsts)], sum(counts)


def index_by_ranges(path: str, read_as: str, spec_name: str, config: DedupConfig, into: SketchBuffer, n: int,
                    pool_map, pool_imap, bar=None) -> Indexed:
    """Pass 1 over about n byte ranges of a plain JSONL file (read by workers as `read_as`), their results
    appended to `into` in range order as they come (`pool_imap` must keep the order)."""
    start = into.size
    jobs, n_lines = range_jobs(read_as, spec_name, config, n, pool_map)
    into.reserve(n_lines)  # at most one record a line
    lines, offsets = [], []
    for job, (sk, job_lines, job_offsets) in zip(jobs, pool_imap(index_range, jobs)):
        into.append(sk)
        lines.append(job_lines)
        offsets.append(job_offsets)
        if bar is not None:
            bar.update(job[4] - job[3])
    joined = [np.concatenate(a) if a else np.empty(0, np.int64) for a in (lines, offsets)]
    return Indexed(path, spec_name, into, start, into.size, *joined)


def worth_parallel(path: str, workers: int) -> bool:
    return workers > 1 and kind_of(path) == "jsonl" and os.path.getsize(path) >= convert_parallel.MIN_BYTES


def _pool(workers: int):
    # spawn, not fork: sketching uses polars, whose thread pool does not survive a fork of a process that
    # used it (a forked worker then waits forever)
    return mp.get_context("spawn").Pool(workers)


def index_file(path: str, fmt: str | None, config: DedupConfig, into: SketchBuffer, workers: int = 1, bar=None,
               announce: Callable[[str], None] = quiet) -> Indexed:
    """Pass 1 over one file (its format given, or detected and announced); its sketches go into `into`."""
    spec, rows = open_source(path, RunLog("dedup-index"), ReadOptions(from_format=fmt, announce=announce))
    start = into.size
    if by_lines(path):
        next(iter(rows), None)  # an empty or blank file is an error (read_rows says so) before anything
        del rows
        if worth_parallel(path, workers):
            with _pool(workers) as pool:
                n_ranges = workers * convert_parallel.RANGES_PER_WORKER
                return index_by_ranges(path, path, spec.name, config, into, n_ranges, pool.map, pool.imap, bar)
        with open_file(path) as source:
            start_byte = 0 if kind_of(path) == "jsonl" else -1
            found = line_items(numbered_lines(source.complete_lines(), 1, start_byte), path, spec, config)
            _, lines, offsets = index_records(found, config, into)
        indexed = Indexed(path, spec.name, into, start, into.size, lines, offsets if start_byte == 0 else offsets[:0])
    else:
        records = parse_rows(rows, spec, RunLog("dedup-index"), ReadOptions(from_format=spec.name, announce=quiet))
        _, lines, _ = index_records((((c, None), k, -1) for k, c in enumerate(records)), config, into)
        indexed = Indexed(path, spec.name, into, start, into.size, lines, np.empty(0, np.int64))
    if bar is not None:
        bar.update(os.path.getsize(path))
    return indexed


def index_small_files(paths: list[str], fmt: str | None, config: DedupConfig, into: SketchBuffer,
                      detected: DetectedFormats, bar=None) -> list[Indexed]:
    """Pass 1 over small files in order, their records sketched in shared batches; the format of each
    given, or detected (and announced once per folder through `detected`)."""
    done: list[tuple[str, str, int]] = []  # (path, format, records)
    log, opts = RunLog("dedup-index"), ReadOptions(from_format=fmt, announce=detected.announce)  # one for all files

    def items() -> Iterator[tuple[tuple, int, int]]:
        for path in paths:
            spec, rows = open_in_folder(path, log, opts, detected)
            n = 0
            for n, found in enumerate(_file_items(path, spec, rows, config, log), 1):
                yield found
            done.append((path, spec.name, n))
            if bar is not None:
                bar.update(os.path.getsize(path))

    start = into.size
    _, lines, offsets = index_records(items(), config, into)
    indexed, a = [], 0
    for path, name, n in done:
        seek = offsets[a:a + n] if kind_of(path) == "jsonl" else offsets[:0]
        indexed.append(Indexed(path, name, into, start + a, start + a + n, lines[a:a + n], seek))
        a += n
    return indexed


def _file_items(path: str, spec: formats.FormatSpec, rows, config: DedupConfig, log: RunLog
                ) -> Iterator[tuple[tuple, int, int]]:
    """pass 1's (item, line, offset) of one file, read in `spec` (its rows opened once for detection)."""
    if by_lines(path):
        next(iter(rows), None)  # an empty or blank file is an error (read_rows says so) before anything
        del rows
        with open_file(path) as source:
            start_byte = 0 if kind_of(path) == "jsonl" else -1
            yield from line_items(numbered_lines(source.complete_lines(), 1, start_byte), path, spec, config)
        return
    records = parse_rows(rows, spec, log, reading_as(spec.name))
    yield from (((c, None), k, -1) for k, c in enumerate(records))


@functools.lru_cache(maxsize=None)
def reading_as(name: str) -> ReadOptions:
    """Quiet read options of a known format (one object for every file read so)."""
    return ReadOptions(from_format=name, announce=quiet)
