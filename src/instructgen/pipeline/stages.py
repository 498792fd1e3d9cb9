"""The pipeline's shard functions: plain Python, each a pure function of its arguments, no Prefect.

A shard is a slice of consecutive rows of one source. Each shard function returns its records
together with a shard log (a RunLog that keeps its drops in memory), and `merge_logs` replays shard
logs in shard order into one RunLog per stage: the rejects file, the counts and the record order are
then the same whatever ran the shards (a loop, threads, processes, Dask) and however many there were.

Shard data travels in plain slotted objects (`Carrier`): orchestrators such as Prefect walk lists,
dicts and dataclasses in task arguments looking for futures, which over 20,000 records a shard costs
more than the work; they never look inside other objects.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Iterator

from .. import formats
from ..convert import ReadOptions, open_source, parse_rows, read_records, write_records
from ..curate import dedup
from ..curate.filter import FilterConfig, filter_records
from ..formats.base import DumpOptions
from ..io import Row, RowWriter
from ..record import Conversation
from ..runlog import RunLog


def shard_log(stage: str) -> RunLog:
    """A RunLog that keeps what it dropped (in order) instead of writing a file, so shards can run anywhere."""
    return RunLog(stage, None, keep_entries=True)


def merge_logs(stage: str, logs: list[RunLog], rejects_path: str | os.PathLike | None) -> RunLog:
    """One RunLog for a stage from its shard logs, replayed in shard order (writes the rejects file)."""
    merged = RunLog(stage, rejects_path)
    for log in logs:
        merged.absorb(log.n_in, log.n_out, log.entries or [], log.losses)
        for key, value in log.info.items():  # per-rule counters add up across shards
            if isinstance(value, Counter):
                merged.info.setdefault(key, Counter()).update(value)
            else:
                merged.info.setdefault(key, value)
    merged.close()
    return merged


class Carrier:
    __slots__ = ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({getattr(self, 'label', '')!r})"


class RowShard(Carrier):
    __slots__ = ("label", "format", "columns", "rows")

    def __init__(self, label: str, format: str, columns: dict[str, str] | None, rows: list[Row]):
        self.label, self.format, self.columns, self.rows = label, format, columns, rows


class Batch(Carrier):
    """Records handed to a step whole (writing a format, publishing)."""

    __slots__ = ("label", "records")

    def __init__(self, records: list[Conversation], label: str = ""):
        self.label, self.records = label, records


# -- reading --------------------------------------------------------------------------------------------

def row_shards(path: str, fmt: str | None, columns: dict[str, str] | None, shard_size: int,
               announce=print) -> Iterator[RowShard]:
    """Slices of `shard_size` rows of one file, with its format (detected from the first rows when not given)."""
    spec, rows = open_source(path, RunLog("read"), ReadOptions(from_format=fmt, columns=columns, announce=announce))
    name = Path(path).name
    for i in itertools.count():
        chunk = list(itertools.islice(rows, shard_size))
        if not chunk:
            return
        yield RowShard(f"{name}#{i}", spec.name, columns, chunk)


class Curated(Carrier):
    """One shard after reading, filtering and sketching: its records, a log per stage, its sketches."""

    __slots__ = ("label", "records", "logs", "sketches")

    def __init__(self, label: str, records: list[Conversation], logs: dict[str, RunLog],
                 sketches: dedup.Sketches | None):
        self.label, self.records, self.logs, self.sketches = label, records, logs, sketches


# Shards filtered at once in threads of one process once saw a half-built language detector and
# filtered records at random. One shard at a time per process keeps any shared state of the rules out
# of races, and costs nothing: the rules are pure Python, serialised by the GIL anyway.
_FILTER_LOCK = threading.Lock()


def curate_shard(shard: RowShard, filter_config: FilterConfig | None, dedup_config: dedup.DedupConfig | None
                 ) -> Curated:
    """Read, filter and sketch one shard: rows -> records (unreadable rows dropped with their reason) ->
    records that pass every rule (the others dropped as `filtered`) -> exact keys and MinHash signatures."""
    read = shard_log("read")
    opts = ReadOptions(from_format=shard.format, columns=shard.columns, announce=lambda _m: None)
    records = list(parse_rows(iter(shard.rows), formats.get(shard.format), read, opts))
    read.emitted(len(records))
    logs = {"read": read}
    if filter_config is not None:
        with _FILTER_LOCK:
            log = logs["filter"] = shard_log("filter")
            log.took_in(len(records))
            records = list(filter_records(records, filter_config, log))
            log.emitted(len(records))
    sketches = dedup.sketch_records(records, dedup_config) if dedup_config is not None else None
    return Curated(shard.label, records, logs, sketches)


def reference_records(path: str) -> list[Conversation]:
    """A reference dataset's records (its unreadable rows are skipped: it is only compared against)."""
    return list(read_records([path], RunLog("reference"), ReadOptions(announce=lambda _m: None)))


def cluster_step(reference: list[dedup.Sketches], shards: list[dedup.Sketches], config: dedup.DedupConfig,
                 n_reference: int) -> dedup.Clusters:
    """Decisions over all sketches in record order (reference first, never removed): shard-independent."""
    return dedup.cluster([*reference, *shards], config, n_reference=n_reference)


# -- writing --------------------------------------------------------------------------------------------

def write_format(target: tuple[str, str], batch: Batch, turns: str | None = None) -> RunLog:
    """Write every record as (format, path); records the format cannot hold are dropped with the reason.
    `turns` applies to formats with one prompt per row (the others ignore it)."""
    fmt, path = target
    turns = turns if turns in formats.get(fmt).turns else None
    log = shard_log(f"write:{fmt}")
    with RowWriter(path) as writer:
        log.took_in(len(batch.records))
        write_records(batch.records, writer, fmt, log, DumpOptions(turns=turns))
    return log
