"""Dedup's pass 2 over files: the inputs read again, the survivors written, the duplicates dropped.

    HeadTexts(files, bases, config)     the texts of the records duplicates were kept instead of
    Decisions(clusters, config, n_reference, heads)   what pass 2 needs; .drop(conv, k, log) drops one
    LineFates(decisions, indexed, base) convert_lines' `skip` for one JSONL file
    write_line_file(indexed, decisions, base, writer, log, convert_config, reviews, workers, bar)
                                        pass 2 over a JSONL file (byte ranges in worker processes when big)
    write_row_files(files, decisions, writer, log, to_format, reviews, bar)
                                        pass 2 over files read as rows (JSON, Parquet), in one stream

Duplicates go to the rejects file, their clusters.jsonl rows to `reviews`. A row needs the text of the
record the duplicate was kept instead of: in a plain JSONL file it is re-read at its byte offset; in other
files (compressed, Parquet, JSON arrays) those records alone are collected first, in a pass that parses
nothing else (their texts are then held: one per cluster, nothing for the rest of the records).

Every line kept goes to the converter (convert.convert_lines) exactly as `convert` does, so unreadable
lines are rejected there, with their reasons, once, and the output is the bytes `convert` would write for
the surviving lines. In worker processes the output, its order, the rejects and the clusters file are
those of one process.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from .. import convert_parallel, formats
from ..convert import ReadOptions, PartFile, lines_until, convert_lines, open_source, parse_rows, write_records
from ..formats.base import DumpOptions
from ..io import RowWriter
from ..io import open_source as open_file
from ..record import Conversation
from ..runlog import RunLog
from .dedup import Clusters, DedupConfig, dedup_parts, drop_duplicate, parse_fields
from .dedup_sketch import Indexed, line_records, quiet, reading_as

KEEP, DUPLICATE = 1, 2  # a line's fate in pass 2 (0: not a record in pass 1: the converter says why)


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
                for conv, line, _ in line_records(chosen, indexed.path, spec):
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
        conv = next(line_records([(int(indexed.lines[k]), -1, line)], indexed.path, formats.get(indexed.format)))[0]
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
            conv = next(line_records([(lineno, -1, line)], path, self.spec))[0]
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


def write_row_files(files: list[tuple[Indexed, int]], decisions: Decisions, writer: RowWriter, log: RunLog,
                     to_format: str, reviews: RowWriter | None, bar) -> None:
    """Pass 2 over files read as rows (JSON, Parquet; each with the index of its first record), their
    survivors written in one stream (a file of one record costs no writer setup of its own)."""
    def survivors() -> Iterator[Conversation]:
        for indexed, base in files:
            opts = reading_as(indexed.format)
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
