"""Dedup of files in two streaming passes, in bounded memory.

    index_file(path, fmt, config, workers, bar) -> Indexed     pass 1 over one file
    dedup_files(inputs, writer, config, log, ...) -> Outcome   the whole stage

Pass 1 reads every record once and keeps only what the decisions need: its `dedup.Sketches` row (exact
key, MinHash values, length, anchor hash) and where it is (its line, and its byte offset in a plain
JSONL file), about 540 bytes a record at 128 permutations and two parts. `dedup.cluster` decides over
those arrays alone. Pass 2 reads the inputs again and writes the survivors, the duplicates (to the
rejects file) and the clusters.jsonl rows. A row needs the text of the record the duplicate was kept
instead of: in a plain JSONL file it is re-read at its byte offset; in other files (compressed,
Parquet, JSON arrays) those records alone are collected first, in a pass that parses nothing else
(their texts are then held: one per cluster, nothing for the rest of the records).

Pass 2 hands every line it keeps to the converter (convert.convert_lines) exactly as `convert` does,
so unreadable lines are rejected there, with their reasons, once, and the output is the bytes
`convert` would write for the surviving lines. Plain JSONL files of at least
convert_parallel.MIN_BYTES go through both passes in worker processes, by byte ranges: the output,
its order, the rejects and the clusters file are those of one process, and the same as
`dedup.dedup_records` over the same records.

Pass 1's arrays are saved per input file in a signatures folder (Parquet, one file per input and
sketch settings), and reused when the same file (the same bytes: a digest of the file is kept with them
and checked, about a second a GB) is deduplicated again with the same sketch settings: with another
threshold or keep rule, or as an --against reference.

Small files (every file a runner does not send to its workers) are sketched here in batches shared with
their neighbours and written in one stream, so a folder of a million one-record files costs what one
file of a million records costs, plus reading each file twice.
"""

from __future__ import annotations

import functools
import hashlib
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import orjson

from .. import convert_parallel, formats
from ..convert import ReadOptions, DetectedFormats, PartFile, lines_until, open_in_folder, convert_lines, open_source, parse_rows, \
    write_records
from ..errors import InstructgenError
from ..formats.base import DumpOptions
from ..io import MAX_ROW_BYTES, RowWriter, kind_of, rows_from_lines
from ..io import open_source as open_file
from ..record import Conversation
from ..runlog import RunLog
from .dedup import (BATCH, Clusters, DedupConfig, Sketches, cluster, cluster_sizes, dedup_info, dedup_parts,
                    drop_duplicate, join_anchors, parse_fields, plain_parts, sketch, tool_calls_text)

KEEP, DUPLICATE = 1, 2  # a line's fate in pass 2 (0: not a record in pass 1: the converter says why)
SIGNATURE_VERSION = 3  # 2: dedup sketches hold a focus quarter and 32-bit MinHash (issue 18); 3: tool calls read as
# queries or code, anchors hashed with xxh3


def quiet(_message: str) -> None:
    pass


# -- pass 1 ----------------------------------------------------------------------------------------------

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


def _positioned(lines: Iterable[bytes], start_line: int, start_byte: int) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset or -1, line)."""
    offset = start_byte
    for lineno, line in enumerate(lines, start_line):
        yield lineno, offset, line
        if offset >= 0:
            offset += len(line)


def _line_records(positioned: Iterable[tuple[int, int, bytes]], name: str, spec: formats.FormatSpec
                  ) -> Iterator[tuple[Conversation, int, int]]:
    """(record, line, offset) of the lines that are records; the others are left to pass 2 to reject."""
    log = RunLog("dedup-index")
    opts = ReadOptions(from_format=spec.name, announce=quiet)
    for lineno, offset, line in positioned:
        for conv in parse_rows(rows_from_lines((line,), name, lineno), spec, log, opts):
            yield conv, lineno, offset


def _line_items(positioned: Iterable[tuple[int, int, bytes]], name: str, spec: formats.FormatSpec,
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


def _index_records(found: Iterable[tuple[tuple, int, int]], config: DedupConfig,
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
        positioned = _positioned(lines_until(fh, b - a), first, a)
        return _index_records(_line_items(positioned, path, formats.get(spec_name), config), config)


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


def _worth_parallel(path: str, workers: int) -> bool:
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
        if _worth_parallel(path, workers):
            with _pool(workers) as pool:
                return index_by_ranges(path, path, spec.name, config, into, workers * convert_parallel.RANGES_PER_WORKER,
                                       pool.map, pool.imap, bar)
        with open_file(path) as source:
            start_byte = 0 if kind_of(path) == "jsonl" else -1
            found = _line_items(_positioned(source.complete_lines(), 1, start_byte), path, spec, config)
            _, lines, offsets = _index_records(found, config, into)
        indexed = Indexed(path, spec.name, into, start, into.size, lines, offsets if start_byte == 0 else offsets[:0])
    else:
        records = parse_rows(rows, spec, RunLog("dedup-index"), ReadOptions(from_format=spec.name, announce=quiet))
        _, lines, _ = _index_records((((c, None), k, -1) for k, c in enumerate(records)), config, into)
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
    _, lines, offsets = _index_records(items(), config, into)
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
            yield from _line_items(_positioned(source.complete_lines(), 1, start_byte), path, spec, config)
        return
    records = parse_rows(rows, spec, log, _reading_as(spec.name))
    yield from (((c, None), k, -1) for k, c in enumerate(records))


@functools.lru_cache(maxsize=None)
def _reading_as(name: str) -> ReadOptions:
    """Quiet read options of a known format (one object for every file read so)."""
    return ReadOptions(from_format=name, announce=quiet)


# -- signatures kept between runs --------------------------------------------------------------------------

SKETCH_SETTINGS = ("num_perm", "shingle", "fields", "seed", "identifiers", "tool_calls")


def signature_path(folder: str | os.PathLike, path: str, fmt: str | None, config: DedupConfig) -> Path:
    """Where pass 1's arrays of `path` under these sketch settings are kept."""
    settings = {k: getattr(config, k) for k in SKETCH_SETTINGS}
    key = hashlib.sha256(repr((SIGNATURE_VERSION, os.path.abspath(path), fmt, sorted(settings.items()))).encode())
    return Path(folder) / f"{Path(path).name}.{key.hexdigest()[:12]}.signatures.parquet"


def file_fingerprint(path: str) -> str:
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}"


def file_digest(path: str) -> str:
    """A digest of the file's bytes (xxh3-128, a dependency of `datasets`: several GB/s, against pass 1's
    tens of MB/s), so that saved signatures are never taken for a file rewritten in place with its size and
    modification time kept."""
    import xxhash

    digest = xxhash.xxh3_128()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def save_signatures(target: Path, indexed: Indexed, digest: str | None = None) -> None:
    """Pass 1's arrays of one file as Parquet (signatures as fixed-size binary), written in batches, with the
    digest of the bytes they were computed from when given."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..tempfiles import finish_temp, temp_beside

    shape = indexed.buffer.shape
    width = shape[0] * shape[1] * 2
    meta = {"instructgen": f"{SIGNATURE_VERSION}", "file": file_fingerprint(indexed.path), "format": indexed.format,
            "shape": f"{shape[0]},{shape[1]}", **({"digest": digest} if digest else {})}
    schema = pa.schema([("key", pa.uint64()), ("length", pa.uint32()), ("anchor", pa.uint32()), ("line", pa.int64()),
                        ("offset", pa.int64()), ("signature", pa.binary(width))], metadata=meta)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(target)
    try:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as out:
            for a in range(0, max(len(indexed), 1), SAVE_BATCH):
                b = min(a + SAVE_BATCH, len(indexed))
                sk = indexed.buffer.view(indexed.start + a, indexed.start + b)
                offsets = indexed.offsets[a:b] if len(indexed.offsets) else np.full(b - a, -1, np.int64)
                sigs = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), b - a, [None, pa.py_buffer(
                    np.ascontiguousarray(sk.sigs).view(np.uint8))])
                out.write_table(pa.table([sk.keys, sk.lengths, sk.anchors, indexed.lines[a:b], offsets, sigs],
                                         schema=schema))
    except BaseException:
        os.unlink(tmp)
        raise
    finish_temp(tmp, target)


SAVE_BATCH = 200_000


def load_signatures(target: Path, path: str, into: SketchBuffer, digest: str | None = None) -> Indexed | None:
    """The saved arrays of `path` (appended to `into`), or None when there are none, they are of other
    settings, or the file changed since: its bytes, when `digest` (the file's now) is given, else its size and
    modification time (for a caller that compares each record's digest itself, as the pipeline does)."""
    import pyarrow.parquet as pq

    if not target.exists():
        return None
    try:
        source = pq.ParquetFile(target)
        meta = {k.decode(): v.decode() for k, v in (source.schema_arrow.metadata or {}).items()}
        same_file = meta.get("digest") == digest if digest else meta.get("file") == file_fingerprint(path)
        if meta.get("instructgen") != f"{SIGNATURE_VERSION}" or not same_file \
                or tuple(int(x) for x in meta["shape"].split(",")) != into.shape:
            return None
        start, lines, offsets = into.size, [], []
        for batch in source.iter_batches(batch_size=SAVE_BATCH):
            n = batch.num_rows
            raw = batch.column("signature").buffers()[1]
            sigs = np.frombuffer(raw, dtype=np.uint16, count=n * into.shape[0] * into.shape[1],
                                 offset=batch.column("signature").offset * into.shape[0] * into.shape[1] * 2)
            into.append(Sketches(batch.column("key").to_numpy(), sigs.reshape(n, *into.shape),
                                 batch.column("length").to_numpy(), batch.column("anchor").to_numpy()))
            lines.append(batch.column("line").to_numpy())
            offsets.append(batch.column("offset").to_numpy())
    except (OSError, ValueError, KeyError):  # a damaged file is computed again
        return None
    offsets_all = np.concatenate(offsets) if offsets else np.empty(0, np.int64)
    return Indexed(path, meta["format"], into, start, into.size,
                   np.concatenate(lines) if lines else np.empty(0, np.int64),
                   offsets_all if kind_of(path) == "jsonl" else offsets_all[:0], reused=True)


def index_or_reuse(path: str, fmt: str | None, config: DedupConfig, into: SketchBuffer, folder: str | None,
                   runner: "LocalRunner", bar=None, announce: Callable[[str], None] = quiet) -> Indexed:
    """Pass 1 over `path` (by `runner`), or its result saved by an earlier run; saved for the next run when
    `folder` is given."""
    target = signature_path(folder, path, fmt, config) if folder else None
    if target is None:
        return runner.index(path, fmt, config, into, bar, announce)
    before, digest = file_fingerprint(path), file_digest(path)
    start = into.size
    if (found := load_signatures(target, path, into, digest)) is not None:
        if bar is not None:
            bar.update(os.path.getsize(path))
        return found
    into.size = start  # a damaged file may have appended some
    indexed = runner.index(path, fmt, config, into, bar, announce)
    if file_fingerprint(path) == before:  # not saved when the file changed while pass 1 read it
        save_signatures(target, indexed, digest)
    return indexed


def index_all(paths: list[str], fmt: str | None, config: DedupConfig, into: SketchBuffer, folder: str | None,
              runner: "LocalRunner", bar=None, announce: Callable[[str], None] = quiet) -> list[Indexed]:
    """Pass 1 over files in order: big ones by `runner` (or their saved signatures, kept per file in
    `folder`), runs of small ones sketched here in shared batches."""
    detected = DetectedFormats(announce)
    out: list[Indexed] = []
    run: list[str] = []
    for path in paths:
        if folder is None and runner.here(path):
            run.append(path)
            continue
        out += index_small_files(run, fmt, config, into, detected, bar) if run else []
        run = []
        out.append(index_or_reuse(path, fmt, config, into, folder, runner, bar, announce))
    out += index_small_files(run, fmt, config, into, detected, bar) if run else []
    detected.finish()
    return out


# -- pass 2 ------------------------------------------------------------------------------------------------

class HeadTexts:
    """The origin and dedup_parts of the records duplicates were kept instead of, by global index: re-read
    at their byte offset from plain JSONL files, collected beforehand from the others."""

    def __init__(self, files: list[Indexed], bases: np.ndarray, config: DedupConfig):
        self.files, self.bases, self.config = files, bases, config
        self.parts = parse_fields(config.fields)
        self.collected: dict[int, tuple[str, tuple[str, ...]]] = {}
        self._fds: dict[tuple[int, str], int] = {}

    def collect(self, heads: np.ndarray) -> None:
        """Read the wanted heads of every file that cannot be read at an offset (one pass, nothing kept else)."""
        for f, indexed in enumerate(self.files):
            if indexed.seekable:
                continue
            base = int(self.bases[f])
            lo, hi = np.searchsorted(heads, [base, base + len(indexed)])  # heads are sorted (np.unique)
            mine = heads[lo:hi] - base
            if not len(mine):
                continue
            wanted = {int(indexed.lines[k]): base + int(k) for k in mine}
            for conv, position in self._records(indexed, wanted):
                self.collected[wanted[position]] = (conv.origin, dedup_parts(conv, self.parts))

    def _records(self, indexed: Indexed, wanted: dict[int, int]) -> Iterator[tuple[Conversation, int]]:
        spec = formats.get(indexed.format)
        if indexed.by_lines:
            with open_file(indexed.path) as source:
                chosen = ((n, -1, line) for n, line in enumerate(source.complete_lines(), 1) if n in wanted)
                for conv, line, _ in _line_records(chosen, indexed.path, spec):
                    yield conv, line
            return
        _, rows = open_source(indexed.path, RunLog("dedup-heads"), ReadOptions(from_format=spec.name, announce=quiet))
        records = parse_rows(rows, spec, RunLog("dedup-heads"), ReadOptions(from_format=spec.name, announce=quiet))
        for k, conv in enumerate(records):
            if k in wanted:
                yield conv, k

    def origin(self, index: int) -> str:
        """Where the record is, without reading it (a plain JSONL file) or as collected."""
        if index in self.collected:
            return self.collected[index][0]
        f = int(np.searchsorted(self.bases, index, side="right")) - 1
        indexed = self.files[f]
        return f"{indexed.path}:{int(indexed.lines[index - int(self.bases[f])])}"

    def get(self, index: int) -> tuple[str, tuple[str, ...]]:
        if index in self.collected:
            return self.collected[index]
        f = int(np.searchsorted(self.bases, index, side="right")) - 1
        indexed, k = self.files[f], index - int(self.bases[f])
        line = self._line_at(indexed.path, int(indexed.offsets[k]))
        conv = next(_line_records([(int(indexed.lines[k]), -1, line)], indexed.path, formats.get(indexed.format)))[0]
        return conv.origin, dedup_parts(conv, self.parts)

    def close(self) -> None:
        """Close the descriptors this process opened (a worker's own are closed with it)."""
        for (pid, _path), fd in list(self._fds.items()):
            if pid == os.getpid():
                os.close(fd)
                del self._fds[(pid, _path)]

    def _line_at(self, path: str, offset: int) -> bytes:
        key = (os.getpid(), path)  # a worker process opens its own descriptor
        if key not in self._fds:
            self._fds[key] = os.open(path, os.O_RDONLY)
        fd, chunks = self._fds[key], []
        while True:
            chunk = os.pread(fd, 1 << 16, offset)
            end = chunk.find(b"\n")
            if end >= 0 or not chunk:
                chunks.append(chunk[:end + 1] if end >= 0 else chunk)
                return b"".join(chunks)
            chunks.append(chunk)
            offset += len(chunk)


@dataclass
class Decisions:
    """What pass 2 needs: the clusters over reference + inputs and where each file's records start."""

    clusters: Clusters
    config: DedupConfig
    n_reference: int
    heads: HeadTexts
    review: bool = True  # clusters.jsonl rows are wanted (their texts and word diffs cost more than the rest)

    def duplicate(self, k: int) -> bool:
        return bool(self.clusters.dup_of[k] >= 0)

    def drop(self, conv: Conversation, k: int, log: RunLog) -> dict[str, Any] | None:
        """Drop duplicate `k` into `log`; its clusters.jsonl row when rows are wanted, else None."""
        head = int(self.clusters.dup_of[k])
        origin, parts = self.heads.get(head) if self.review else (self.heads.origin(head), None)
        return drop_duplicate(conv, k, self.clusters, self.config, log, self.n_reference, origin, parts)


class LineFates:
    """convert_lines' `skip` for one JSONL file: duplicates are parsed, dropped into the log and reviewed;
    every other line goes on to the converter."""

    def __init__(self, decisions: Decisions, indexed: Indexed, base: int):
        self.decisions, self.indexed, self.base = decisions, indexed, base
        last = int(indexed.lines[-1]) if len(indexed) else 0
        self.fate = np.zeros(last + 2, dtype=np.uint8)
        self.fate[indexed.lines] = KEEP
        removed = decisions.clusters.dup_of[base:base + len(indexed)] >= 0
        self.fate[indexed.lines[removed]] = DUPLICATE
        self.spec = formats.get(indexed.format)

    def skipper(self, log: RunLog, review: Callable[[dict], None]) -> Callable[[int, bytes], bool]:
        fate, lines, path = self.fate, self.indexed.lines, self.indexed.path

        def skip(lineno: int, line: bytes) -> bool:
            if lineno >= len(fate) or fate[lineno] != DUPLICATE:
                return False
            conv = next(_line_records([(lineno, -1, line)], path, self.spec))[0]
            log.took_in()
            row = self.decisions.drop(conv, self.base + int(np.searchsorted(lines, lineno)), log)
            if row is not None:
                review(row)
            return True

        return skip


class _Reviews:
    """clusters.jsonl rows of one worker's piece, in a part file named by its first line (sorts in order)."""

    def __init__(self, folder: str | None, first: int):
        self.path = os.path.join(folder, f"{first:015d}.jsonl") if folder else None
        self.fh = None

    def __call__(self, row: dict) -> None:
        if self.path is None:
            return
        if self.fh is None:
            self.fh = open(self.path, "wb")
        PartFile(self.fh).write(row)

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()


# pass 2's state in worker processes (inherited through fork: the decisions are not copied or pickled;
# pass 2 never calls polars, which a forked process could not use)
_PASS2: tuple[LineFates, tuple, str | None] | None = None


def _dedup_range(name: str, a: int, b: int, first: int, log: RunLog, _config) -> bytes:
    fates, convert_config, review_dir = _PASS2
    reviews = _Reviews(review_dir, first)
    import io

    out = io.BytesIO()
    try:
        with open(name, "rb") as fh:
            fh.seek(a)
            convert_lines(lines_until(fh, b - a), name, first, PartFile(out), log, convert_config,
                          skip=fates.skipper(log, reviews))
    finally:
        reviews.close()
    return out.getvalue()


def _dedup_block(lines: list[bytes], name: str, first: int, log: RunLog, _config) -> bytes:
    from ..convert import JsonlBlob

    fates, convert_config, review_dir = _PASS2
    reviews = _Reviews(review_dir, first)
    out = JsonlBlob()
    try:
        convert_lines(lines, name, first, out, log, convert_config, skip=fates.skipper(log, reviews))
    finally:
        reviews.close()
    return b"".join(out.parts)


def write_line_file(indexed: Indexed, decisions: Decisions, base: int, writer: RowWriter, log: RunLog,
                     convert_config: tuple, reviews: RowWriter | None, workers: int, bar) -> None:
    global _PASS2
    fates = LineFates(decisions, indexed, base)
    path = indexed.path
    if workers > 1 and convert_parallel.worth_parallel(path, writer, False):
        review_dir = tempfile.mkdtemp(prefix=".dedup-review.", dir=os.path.dirname(os.path.abspath(writer.path)))
        _PASS2 = (fates, convert_config, review_dir if reviews is not None else None)
        try:
            convert_parallel.convert_file(path, writer, log, _dedup_block, _dedup_range, None, workers, bar)
            if reviews is not None:
                for part in sorted(os.listdir(review_dir)):
                    reviews.append_jsonl(os.path.join(review_dir, part), 0)
        finally:
            _PASS2 = None
            shutil.rmtree(review_dir, ignore_errors=True)
        return
    review = reviews.write if reviews is not None else (lambda _row: None)
    with open_file(path) as source:
        convert_lines(source.complete_lines(), path, 1, writer, log, convert_config, bar,
                      skip=fates.skipper(log, review))
        if (cut := source.cut_row(path)) is not None:
            log.took_in()
            log.drop(cut.origin, cut.error, cut.raw)


def _write_row_files(files: list[tuple[Indexed, int]], decisions: Decisions, writer: RowWriter, log: RunLog,
                     to_format: str, reviews: RowWriter | None, bar) -> None:
    """Pass 2 over files read as rows (JSON, Parquet; each with the index of its first record), their
    survivors written in one stream (a file of one record costs no writer setup of its own)."""
    def survivors() -> Iterator[Conversation]:
        for indexed, base in files:
            opts = _reading_as(indexed.format)
            spec, rows = open_source(indexed.path, log, opts)
            for k, conv in enumerate(parse_rows(rows, spec, log, opts), base):
                if bar is not None:
                    bar.update()
                if decisions.duplicate(k):
                    row = decisions.drop(conv, k, log)
                    if row is not None:
                        reviews.write(row)
                else:
                    yield conv

    if files:
        write_records(survivors(), writer, to_format, log, DumpOptions())


# -- the stage ---------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    clusters: Clusters
    n_reference: int
    formats: list[str]
    reused: list[str]  # files whose signatures came from an earlier run

    def cluster_sizes(self) -> list[int]:
        return cluster_sizes(self.clusters, self.n_reference)




class LocalRunner:
    """How the passes run: here, with a process pool of `workers` for big plain JSONL files. Another runner
    (dedup_dask.DaskRunner) overrides where the work goes; the decisions and the bytes written are the same."""

    def __init__(self, workers: int = 1):
        self.workers = workers

    def index(self, path: str, fmt: str | None, config: DedupConfig, into: SketchBuffer, bar=None,
              announce: Callable[[str], None] = quiet) -> Indexed:
        return index_file(path, fmt, config, into, self.workers, bar, announce)

    def here(self, path: str) -> bool:
        """Pass 1 over this file runs in this process (in batches shared with its neighbours: a folder of a
        million one-record files costs a batch per BATCH records, not one a file)."""
        return not _worth_parallel(path, self.workers)

    def decide(self, sketches: Sketches, config: DedupConfig, n_reference: int) -> Clusters:
        return cluster([sketches], config, n_reference)

    def write_lines(self, indexed: Indexed, decisions: Decisions, base: int, writer: RowWriter, log: RunLog,
                    convert_config: tuple, reviews: RowWriter | None, bar=None) -> None:
        write_line_file(indexed, decisions, base, writer, log, convert_config, reviews, self.workers, bar)


def dedup_files(inputs: list[str], writer: RowWriter, config: DedupConfig, log: RunLog, *,
                from_format: str | None = None, to_format: str | None = None, against: list[str] = (),
                reviews: RowWriter | None = None, signatures: str | None = None, runner: LocalRunner | None = None,
                progress: Callable[[str, int, str], Any] | None = None, announce: Callable[[str], None] = print
                ) -> Outcome:
    """The dedup stage over files: pass 1 (or saved signatures), the decisions, pass 2 into `writer`
    (clusters.jsonl rows into `reviews`). `progress(description, total, unit)` makes a bar."""
    runner = runner or LocalRunner()
    check_disk(inputs, writer.path, signatures, config)
    clock = {"start": time.perf_counter()}
    total_bytes = sum(os.path.getsize(p) for p in [*against, *inputs])
    bar = progress("pass 1: sketch", total_bytes, "B") if progress else None
    buffer = SketchBuffer(config)
    reference = index_all(against, None, config, buffer, signatures, runner, bar, quiet)
    files = index_all(inputs, from_format, config, buffer, signatures, runner, bar, announce)
    if bar is not None:
        bar.close()
    n_reference = sum(len(r) for r in reference)
    if against:
        announce(f"reference: {n_reference} records from {', '.join(against)}")
    target = to_format or _single_format(files, from_format)
    clock["pass 1"] = time.perf_counter()
    clusters = runner.decide(buffer.view(), config, n_reference)
    clock["decisions"] = time.perf_counter()
    everything = [*reference, *files]
    bases = np.cumsum([0, *(len(f) for f in everything)])[:-1]
    heads = HeadTexts(everything, bases, config)
    heads.collect(np.unique(clusters.dup_of[clusters.dup_of >= 0]))
    decisions = Decisions(clusters, config, n_reference, heads, review=reviews is not None)
    bar = progress("pass 2: write", int(sum(len(f) for f in files)), " rec") if progress else None
    try:
        pending: list[tuple[Indexed, int]] = []  # files of rows in a row, written in one go
        for indexed, base in zip(files, bases[len(reference):]):
            if not indexed.by_lines:
                pending.append((indexed, int(base)))
                continue
            _write_row_files(pending, decisions, writer, log, target, reviews, bar)
            pending = []
            convert_config = (indexed.format, target, None, False, DumpOptions())
            runner.write_lines(indexed, decisions, int(base), writer, log, convert_config, reviews, bar)
        _write_row_files(pending, decisions, writer, log, target, reviews, bar)
    finally:
        heads.close()
    if bar is not None:
        bar.close()
    clock["pass 2"] = time.perf_counter()
    marks = list(clock.items())
    seconds = {name: round(t - marks[k - 1][1], 1) for k, (name, t) in enumerate(marks) if k}
    log.info["dedup"] = {**dedup_info(config, clusters, n_reference), "seconds": seconds, "records": buffer.size}
    announce("dedup took " + ", ".join(f"{name} {s:.1f} s" for name, s in seconds.items()))
    return Outcome(clusters, n_reference, [f.format for f in files], [f.path for f in everything if f.reused])


EXPANSION = {"jsonl.gz": 5, "json.gz": 5, "parquet": 3}  # how much bigger as JSONL, at most, roughly


def check_disk(inputs: list[str], output: str, signatures: str | None, config: DedupConfig) -> None:
    """Refuse before pass 1 when the output's disk (and the signatures') cannot hold what the run will
    write: about the inputs' size as JSONL, plus ~540 bytes a record of saved signatures."""
    if output == "-":
        return
    need: dict[int, tuple[str, int]] = {}

    def add(folder: str, n: int) -> None:
        folder = os.path.abspath(folder or ".")
        while not os.path.exists(folder):
            folder = os.path.dirname(folder)
        dev = os.stat(folder).st_dev
        need[dev] = (need.get(dev, (folder, 0))[0], need.get(dev, (folder, 0))[1] + n)

    sizes = {p: os.path.getsize(p) * EXPANSION.get(kind_of(p), 1) for p in inputs}
    add(os.path.dirname(output), sum(sizes.values()))
    if signatures:
        width = len(parse_fields(config.fields)) * config.num_perm * 2 + 36
        add(signatures, sum(size // _mean_line_bytes(p) * width for p, size in sizes.items()))
    for folder, n in need.values():
        free = shutil.disk_usage(folder).free
        if n > free:
            raise InstructgenError(f"{folder}: about {n / 1e9:.1f} GB is needed for the output"
                                   f"{' and the signatures' if signatures else ''}, and {free / 1e9:.1f} GB is "
                                   "free; free some space or write to another disk (-o, --signatures)")


def _mean_line_bytes(path: str) -> int:
    """Bytes a record as JSONL, from the first lines (100 when unknown)."""
    if kind_of(path) != "jsonl":
        return 100
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    return max(1, len(head) // max(1, head.count(b"\n"))) if head else 100


def _single_format(files: list[Indexed], given: str | None) -> str:
    found = sorted({f.format for f in files if len(f)})
    if len(found) > 1:
        raise InstructgenError(f"inputs are in several formats ({', '.join(found)}); choose the output's with --to")
    return found[0] if found else (given or "alpaca")
