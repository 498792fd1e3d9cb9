"""Plain per-shard functions the curate flow wraps in Prefect tasks (this module never imports Prefect).

A shard is a slice of consecutive rows of one source. Each shard function
returns its records together with a `ShardLog` (a RunLog that keeps its
dropped entries in memory, `keep_entries`), and the flow merges shard logs in shard order
into one RunLog per stage with `merge_logs`: the rejects file, counts and
record order are then the same whatever runner ran the shards, and however
many shards there were.
"""

from __future__ import annotations

import itertools
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from instructgen import formats
from instructgen.convert import ReadOptions, parse_rows, open_source, write_records
from instructgen.formats import source_row
from instructgen.errors import InstructgenError
from instructgen.formats.base import DumpOptions
from instructgen.io import Row, RowWriter
from instructgen.record import Conversation
from instructgen.runlog import RunLog


def ShardLog(stage: str) -> RunLog:  # noqa: N802 - reads as the type it makes
    """A RunLog that keeps what it dropped (in order) instead of writing a file, so shards can run anywhere."""
    return RunLog(stage, None, keep_entries=True)


class Carrier:
    """Plain objects carry shard data between tasks: Prefect walks lists, dicts, dataclasses and pydantic
    models in task arguments and flow results (looking for futures), which over 20,000 records a shard
    cost more than the work itself (2.5x the direct calls in benchmarks/pipeline.py); it never looks
    inside other objects."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({getattr(self, 'label', '')!r})"


class Shard(Carrier):
    __slots__ = ("label", "records", "log")

    def __init__(self, label: str, records: list[Conversation], log: RunLog):
        self.label = label  # "file.jsonl#3": names the Prefect task run
        self.records = records
        self.log = log  # made by ShardLog()


class Batch(Carrier):
    """Records handed to a task whole (writing, publishing)."""

    __slots__ = ("label", "records")

    def __init__(self, records: list[Conversation], label: str = ""):
        self.label = label
        self.records = records


def merge_logs(stage: str, logs: list[RunLog], rejects_path: str | os.PathLike | None) -> RunLog:
    """One RunLog for a stage from its shard logs, replayed in shard order (writes the rejects file)."""
    merged = RunLog(stage, rejects_path)
    for log in logs:
        merged.absorb(log.n_in, log.n_out, log.entries or [], log.losses)
    merged.close()
    return merged


# -- reading --------------------------------------------------------------------------------------------

class RowShard(Carrier):
    __slots__ = ("label", "format", "columns", "rows")

    def __init__(self, label: str, format: str, columns: dict[str, str] | None, rows: list[Row]):
        self.label, self.format, self.columns, self.rows = label, format, columns, rows


def row_shards(path: str, fmt: str | None, columns: dict[str, str] | None, shard_size: int,
               announce=print) -> Iterator[RowShard]:
    """Slices of `shard_size` rows of one file, with its format (detected from the first rows when not given)."""
    spec, rows = open_source(path, RunLog("read"), ReadOptions(from_format=fmt, columns=columns, announce=announce))
    fmt = spec.name  # an unknown name has failed by now, before any task runs
    name = Path(path).name
    for i in itertools.count():
        chunk = list(itertools.islice(rows, shard_size))
        if not chunk:
            return
        yield RowShard(f"{name}#{i}", fmt, columns, chunk)


def parse_shard(shard: RowShard) -> Shard:
    """Rows -> canonical records; unreadable rows are dropped with their reason (the convert stage's code)."""
    log = ShardLog("read")
    opts = ReadOptions(from_format=shard.format, columns=shard.columns, announce=lambda _m: None)
    records = list(parse_rows(iter(shard.rows), formats.get(shard.format), log, opts))
    log.emitted(len(records))
    return Shard(shard.label, records, log)


# -- quality filter -------------------------------------------------------------------------------------

def filter_options(cfg) -> dict[str, Any]:
    """The [filter] section as keyword arguments of curate.filter.FilterConfig (validated with the config)."""
    return cfg.model_dump(exclude={"enabled"})


# Shards filtered at once in threads of one process once saw a half-built language detector and
# filtered records at random (langid now builds it under a lock). Filtering one shard at a time per
# process keeps any shared state in the rules out of races, and costs nothing: the rules are pure
# Python, serialised by the GIL anyway.
_FILTER_LOCK = threading.Lock()


def filter_shard(shard: Shard, options: dict[str, Any]) -> Shard:
    """Records that pass every rule; the others are dropped as `filtered`, reason = the first rule that fired."""
    with _FILTER_LOCK:
        return _filter_shard(shard, options)


def _filter_shard(shard: Shard, options: dict[str, Any]) -> Shard:
    from instructgen.curate.filter import FilterConfig, filter_records

    log = ShardLog("filter")
    log.took_in(len(shard.records))
    kept = list(filter_records(shard.records, FilterConfig(**options), log))
    log.emitted(len(kept))
    return Shard(shard.label, kept, log)


# -- writing --------------------------------------------------------------------------------------------

def write_format(records: list[Conversation], fmt: str, path: str) -> RunLog:
    """Write every record in `fmt`; records the format cannot hold are dropped with the reason."""
    log = ShardLog(f"write:{fmt}")
    with RowWriter(path) as writer:
        log.took_in(len(records))
        write_records(records, writer, fmt, log, DumpOptions())
    return log


# -- dedup: sketches per shard, one clustering pass in record order -------------------------------------

class Signatures(Carrier):
    __slots__ = ("label", "origins", "sketches")

    def __init__(self, label: str, origins: list[str], sketches: Any):
        self.label = label
        self.origins = origins
        self.sketches = sketches  # instructgen.curate.dedup.Sketches: exact keys, MinHash signatures, lengths


class Duplicates(Carrier):
    __slots__ = ("label", "items", "info")

    def __init__(self, items: list["Duplicate"], info: dict[str, Any]):
        self.label = "duplicates"
        self.items = items
        self.info = info


@dataclass(slots=True, frozen=True)
class Duplicate:
    index: int  # position of the removed record in the record order
    of: int  # position of the record it duplicates, or -1 - k for the k-th reference record
    similarity: float
    kind: str  # "exact" or "near"
    ref_origin: str | None = None  # the reference record it duplicates


def dedup_options(cfg) -> dict[str, Any]:
    """The [dedup] section as keyword arguments of curate.dedup.DedupConfig (validated with the config)."""
    return cfg.model_dump(exclude={"enabled"})


def _texts(records: list[Conversation], options: dict[str, Any]) -> list[str]:
    from instructgen.curate.dedup import dedup_text, parse_fields

    fields = parse_fields(options["fields"])
    return [dedup_text(c, fields) for c in records]


def sign_shard(shard: Shard, options: dict[str, Any]) -> Signatures:
    """Exact keys and MinHash signatures of a shard's records: a pure function of each record."""
    from instructgen.curate.dedup import DedupConfig, sketch

    sk = sketch(_texts(shard.records, options), DedupConfig(**options))
    return Signatures(shard.label, [c.origin for c in shard.records], sk)


def sign_reference(path: str, options: dict[str, Any]) -> Signatures:
    """Sketches of a reference dataset (its unreadable rows are skipped: it is only compared against)."""
    from instructgen.convert import read_records

    records = list(read_records([path], RunLog("reference"), ReadOptions(announce=lambda _m: None)))
    return sign_shard(Shard(Path(path).name, records, ShardLog("reference")), options)


def find_duplicates(signed: list[Signatures], references: list[Signatures], options: dict[str, Any]) -> Duplicates:
    """Clustering over all sketches in record order (references first, never removed): shard-independent."""
    from instructgen.curate.dedup import EXACT, DedupConfig, cluster

    n_ref = sum(len(r.origins) for r in references)
    ref_origins = [o for r in references for o in r.origins]
    result = cluster([r.sketches for r in references] + [s.sketches for s in signed], DedupConfig(**options),
                     n_reference=n_ref)
    dups = []
    for k in map(int, (result.dup_of[n_ref:] >= 0).nonzero()[0]):
        parent = int(result.dup_of[n_ref + k])
        dups.append(Duplicate(k, parent - n_ref if parent >= n_ref else -1 - parent,
                              round(float(result.similarity[n_ref + k]), 4),
                              "exact" if result.stage[n_ref + k] == EXACT else "near",
                              ref_origins[parent] if parent < n_ref else None))
    return Duplicates(dups, {**options, "reference_records": n_ref, **result.info})


def apply_duplicates(records: list[Conversation], dups: list[Duplicate], rejects_path: str | os.PathLike
                     ) -> tuple[list[Conversation], RunLog, list[dict[str, Any]]]:
    """(kept records in order, the dedup RunLog, clusters.jsonl rows) from the clustering's decisions."""
    log = RunLog("dedup", rejects_path)
    log.took_in(len(records))
    removed = {d.index: d for d in dups}
    kept, clusters = [], []
    for i, conv in enumerate(records):
        d = removed.get(i)
        if d is None:
            kept.append(conv)
            continue
        of = d.ref_origin if d.ref_origin is not None else records[d.of].origin
        reason = f"{d.kind} duplicate" + (" of reference" if d.ref_origin is not None else "")
        log.drop(conv.origin, reason, source_row(conv), kind="duplicates", duplicate_of=of, similarity=d.similarity)
        clusters.append({"origin": conv.origin, "duplicate_of": of, "similarity": d.similarity, "stage": d.kind,
                         "reference": d.ref_origin is not None})
    log.emitted(len(kept))
    log.close()
    return kept, log, clusters


def cluster_sizes(dups: list[Duplicate]) -> list[int]:
    """Records per cluster (a kept record plus everything removed as its duplicate, directly or through a
    record that was itself removed later), largest first. Reference matches count with their reference record."""
    from collections import Counter

    of = {d.index: d.of for d in dups}

    def root(i: int) -> int:
        while i in of:
            i = of[i]
        return i

    return sorted((n + 1 for n in Counter(root(d.index) for d in dups).values()), reverse=True)
