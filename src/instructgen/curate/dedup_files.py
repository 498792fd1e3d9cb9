"""Dedup of files in two streaming passes, in bounded memory: the stage.

    dedup_files(inputs, writer, config, log, ...) -> Outcome   the whole stage
    LocalRunner(workers)                                       where the passes run (dedup_dask.DaskRunner
                                                               is the other)
    index_all(paths, fmt, config, into, folder, runner)        pass 1 over files in order

Pass 1 (dedup_sketch, or the signatures saved by an earlier run: signature_store) reads every record once
and keeps only its sketch and where it is; `dedup.cluster` decides over those arrays alone; pass 2
(dedup_write) reads the inputs again and writes the survivors, the duplicates (to the rejects file) and
the clusters.jsonl rows. The output, its order, the rejects and the clusters file are the same as
`dedup.dedup_records` over the same records, whether big plain JSONL files go through both passes in
worker processes by byte ranges or not.

Small files (every file a runner does not send to its workers) are sketched here in batches shared with
their neighbours and written in one stream, so a folder of a million one-record files costs what one
file of a million records costs, plus reading each file twice.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..convert import DetectedFormats
from ..errors import InstructgenError
from ..formats.base import DumpOptions
from ..io import RowWriter, kind_of
from ..runlog import RunLog
from .dedup import Clusters, DedupConfig, Sketches, cluster, cluster_sizes, dedup_info, parse_fields
from .dedup_sketch import Indexed, SketchBuffer, index_file, index_small_files, quiet, worth_parallel
from .dedup_write import Decisions, HeadTexts, write_line_file, write_row_files
from .signature_store import index_or_reuse


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
        return not worth_parallel(path, self.workers)

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
            write_row_files(pending, decisions, writer, log, target, reviews, bar)
            pending = []
            convert_config = (indexed.format, target, None, False, DumpOptions())
            runner.write_lines(indexed, decisions, int(base), writer, log, convert_config, reviews, bar)
        write_row_files(pending, decisions, writer, log, target, reviews, bar)
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
