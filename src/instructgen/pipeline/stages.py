"""The pipeline's shard functions and its write pass: plain Python, each a pure function of its arguments
(besides the files it names), no Prefect.

A shard is a slice of consecutive rows of one source (a plain JSONL file's shards are byte ranges, read by
whoever curates them: `pipeline.workers`). `curate_shard` reads one shard (rows -> records),
runs it through each per-shard stage of `SHARD_STAGES` in order (today `filter`), sketches what is left
for dedup, writes the surviving records to a spool file (canonical records, one orjson line of
`Conversation.to_dict()` each) and returns only small things: a log per stage (RunLogs that keep their
drops in memory), the shard's MinHash sketches, and where each record is in its spool. `absorb_log`
replays shard logs in shard order into one RunLog per stage: the rejects file, the counts and the
record order are then the same whatever ran the shards (a loop, threads, processes, Dask) and however
many there were.

A new per-shard stage is one entry in `SHARD_STAGES`: its name (its log, rejects file and stats row), how
it finds its config in the run's config (None: off), and `apply(records, config, log) -> records kept`.
The pipeline makes its log, merges the shards' logs and adds its settings to the key of saved dedup
sketches from that entry alone. Stages over the whole run (score, select) are entries of
`pipeline.passes.RUN_STAGES` instead: they run after dedup's decisions, before the write pass.

`write_outputs` is the one pass over the spools after the dedup decisions and the run-wide stages
(pipeline.passes): every record is dropped as a duplicate, skipped as dropped by a later stage, or handed to
every format's writer, and the report's profile is sampled on the way.

Shard data travels in plain slotted objects (`Carrier`): orchestrators such as Prefect walk lists,
dicts and dataclasses in task arguments looking for futures, which over 20,000 records a shard costs
more than the work; they never look inside other objects.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import orjson
from pydantic import BaseModel

from .. import formats
from ..convert import ReadOptions, open_source, parse_rows, write_records
from ..curate import dedup
from ..curate.filter import FilterConfig, filter_records
from ..formats.base import DumpOptions
from ..io import Row, RowWriter
from ..record import Conversation
from ..report import Profile
from ..runlog import RunLog

WRITE_BATCH = 2_000  # records handed to each format's writer at a time in the write pass


def shard_log(stage: str) -> RunLog:
    """A RunLog that keeps what it dropped (in order) instead of writing a file, so shards can run anywhere."""
    return RunLog(stage, None, keep_entries=True)


def absorb_log(merged: RunLog, log: RunLog) -> None:
    """Add a shard's log to its stage's log (its drops are written to the stage's rejects file)."""
    merged.absorb(log.n_in, log.n_out, log.entries or [], log.losses)
    for key, value in log.info.items():  # per-rule counters add up across shards
        if isinstance(value, Counter):
            merged.info.setdefault(key, Counter()).update(value)
        else:
            merged.info.setdefault(key, value)


class Carrier:
    __slots__ = ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({getattr(self, 'label', '')!r})"


class RowShard(Carrier):
    """`rows` of one source; `spool`: the file its curated records go to; `sketch`: whether to sketch them
    (not when the source's signatures are reused from an earlier run)."""

    __slots__ = ("label", "format", "columns", "rows", "spool", "sketch")

    def __init__(self, label: str, format: str, columns: dict[str, str] | None, rows: list[Row],
                 spool: str = "", sketch: bool = True):
        self.label, self.format, self.columns, self.rows = label, format, columns, rows
        self.spool, self.sketch = spool, sketch


# -- reading --------------------------------------------------------------------------------------------

def row_shards(path: str, fmt: str | None, columns: dict[str, str] | None, shard_size: int,
               announce=print) -> Iterator[RowShard]:
    """Slices of `shard_size` rows of one file, read as they are asked for, with its format (detected from
    the first rows when not given)."""
    spec, rows = open_source(path, RunLog("read"), ReadOptions(from_format=fmt, columns=columns, announce=announce))
    name = Path(path).name
    for i in itertools.count():
        chunk = list(itertools.islice(rows, shard_size))
        if not chunk:
            return
        yield RowShard(f"{name}#{i}", spec.name, columns, chunk)


def row_bytes(shard: RowShard) -> int:
    """About how many bytes of its file a shard's rows took (for a progress bar)."""
    return sum(len(r.raw) + 1 for r in shard.rows if r.raw is not None)


class Curated(Carrier):
    """One shard after reading, filtering and sketching: a log per stage, its sketches (None when not
    sketched), and its records' spool file with each record's byte offset and a digest of its line."""

    __slots__ = ("label", "logs", "sketches", "spool", "offsets", "digests")

    def __init__(self, label: str, logs: dict[str, RunLog], sketches: dedup.Sketches | None, spool: str,
                 offsets: np.ndarray, digests: np.ndarray):
        self.label, self.logs, self.sketches = label, logs, sketches
        self.spool, self.offsets, self.digests = spool, offsets, digests

    @property
    def count(self) -> int:
        return len(self.offsets)


# Shards filtered at once in threads of one process once saw a half-built language detector and
# filtered records at random. One shard at a time per process keeps any shared state of the rules out
# of races, and costs nothing: the rules are pure Python, serialised by the GIL anyway.
_FILTER_LOCK = threading.Lock()


def filter_shard(records: list[Conversation], config: FilterConfig, log: RunLog) -> list[Conversation]:
    with _FILTER_LOCK:
        return list(filter_records(records, config, log))


def filter_section(config) -> FilterConfig | None:
    return config.filter if config.filter.enabled else None


@dataclass(frozen=True)
class ShardStage:
    """A stage that runs on each shard's records between reading and sketching. `name`: its RunLog, its
    rejects file and its row in stats.json; `section(pipeline_config)`: its pydantic config for this run
    (None: the stage is off); `apply(records, config, log)`: the records it keeps, each drop recorded in
    `log` (`log.drop(...)`). Both functions are module-level: shards may run in other processes."""

    name: str
    section: Callable[[Any], BaseModel | None]
    apply: Callable[[list[Conversation], Any, RunLog], Iterable[Conversation]]


# The per-shard stages, in order. Reading (rows -> records) comes before them and the dedup sketch after.
SHARD_STAGES: list[ShardStage] = [ShardStage("filter", filter_section, filter_shard)]


class ShardPlan(Carrier):
    """What every shard of a run goes through: the enabled per-shard stages with their configs, in order,
    the names of the declared ones that are off, and the dedup settings to sketch with (None: no dedup)."""

    __slots__ = ("label", "stages", "off", "dedup")

    def __init__(self, stages: list[tuple[ShardStage, BaseModel]], off: list[str],
                 dedup_config: dedup.DedupConfig | None):
        self.label, self.stages, self.off, self.dedup = "plan", stages, off, dedup_config

    @classmethod
    def of(cls, pipeline_config, dedup_config: dedup.DedupConfig | None) -> "ShardPlan":
        """The run's plan from `SHARD_STAGES` and the run's config."""
        pairs = [(stage, stage.section(pipeline_config)) for stage in SHARD_STAGES]
        return cls([(stage, cfg) for stage, cfg in pairs if cfg is not None],
                   [stage.name for stage, cfg in pairs if cfg is None], dedup_config)

    @property
    def log_names(self) -> list[str]:
        """The stages each shard hands back a log for, in order."""
        return ["read", *(stage.name for stage, _ in self.stages)]

    def settings(self) -> dict[str, Any]:
        """Each declared stage's settings (None when off): they shape the records a source yields, so they
        are part of the key of its saved dedup sketches."""
        return {**{name: None for name in self.off},
                **{stage.name: cfg.model_dump(mode="json", exclude={"enabled"}) for stage, cfg in self.stages}}


def curate_shard(shard: RowShard, plan: ShardPlan) -> Curated:
    """Read, run the per-shard stages and sketch one shard: rows -> records (unreadable rows dropped with
    their reason) -> each stage's kept records (its drops in its log) -> exact keys and MinHash signatures;
    the records go to the shard's spool file."""
    read = shard_log("read")
    opts = ReadOptions(from_format=shard.format, columns=shard.columns, announce=lambda _m: None)
    records = list(parse_rows(iter(shard.rows), formats.get(shard.format), read, opts))
    read.emitted(len(records))
    logs = {"read": read}
    for stage, config in plan.stages:
        log = logs[stage.name] = shard_log(stage.name)
        log.took_in(len(records))
        records = list(stage.apply(records, config, log))
        log.emitted(len(records))
    sketches = dedup.sketch_records(records, plan.dedup) if plan.dedup is not None and shard.sketch else None
    offsets, digests = spool_records(records, shard.spool)
    return Curated(shard.label, logs, sketches, shard.spool, offsets, digests)


# -- spool files ----------------------------------------------------------------------------------------

def line_digest(line: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(line, digest_size=8).digest(), "little")


def spool_records(records: list[Conversation], path: str) -> tuple[np.ndarray, np.ndarray]:
    """Write records as orjson lines of `to_dict()`; (byte offset of each line, uint64 digest of each line)."""
    offsets = np.empty(len(records), np.int64)
    digests = np.empty(len(records), np.uint64)
    position = 0
    with open(path, "wb", buffering=1 << 20) as fh:
        for k, conv in enumerate(records):
            # default=str: a value JSON cannot hold (bytes from a foreign Parquet file) must not fail the run
            # here for a record that may never be written
            line = orjson.dumps(conv.to_dict(), default=str, option=orjson.OPT_APPEND_NEWLINE)
            fh.write(line)
            offsets[k] = position
            digests[k] = line_digest(line)
            position += len(line)
    return offsets, digests


def read_spool(path: str) -> Iterator[Conversation]:
    with open(path, "rb", buffering=1 << 20) as fh:
        for line in fh:
            yield Conversation.from_dict(orjson.loads(line))


class Spools(Carrier):
    """The curated records of every shard in order: their spool files and where each record is in its file."""

    __slots__ = ("label", "paths", "offsets", "bases")

    def __init__(self, paths: list[str], offsets: list[np.ndarray]):
        self.label = f"{len(paths)} spools"
        self.paths, self.offsets = paths, offsets
        self.bases = np.cumsum([0, *(len(o) for o in offsets)])  # index of each spool's first record

    def __len__(self) -> int:
        return int(self.bases[-1])

    def read_at(self, index: int) -> Conversation:
        """Record `index` (counted over all spools), read at its byte offset."""
        s = int(np.searchsorted(self.bases, index, side="right")) - 1
        with open(self.paths[s], "rb") as fh:
            fh.seek(int(self.offsets[s][index - self.bases[s]]))
            return Conversation.from_dict(orjson.loads(fh.readline()))


# -- dedup ----------------------------------------------------------------------------------------------

class SketchView(Carrier):
    """The sketches of a run (reference first) handed to the decisions without copying."""

    __slots__ = ("label", "sketches")

    def __init__(self, sketches: dedup.Sketches):
        self.label, self.sketches = f"{len(sketches)} sketches", sketches


def decide(view: SketchView, config: dedup.DedupConfig, n_reference: int, runner: str = "") -> dedup.Clusters:
    """Decisions over all sketches in record order (reference first, never removed): shard-independent.
    THE call site for the decisions: with `runner = "dask=ADDRESS"` they run on that cluster when
    instructgen.curate.dedup_dask is installed (the same decisions)."""
    kind, _, address = runner.partition("=")
    if kind == "dask" and address:
        try:
            from ..curate.dedup_dask import DaskRunner
        except ImportError:
            DaskRunner = None
        if DaskRunner is not None:
            with DaskRunner(address) as remote:
                return remote.decide(view.sketches, config, n_reference)
    return dedup.cluster([view.sketches], config, n_reference)


class SpoolHeads:
    """`heads.get(index) -> (origin, dedup_parts)` of the records duplicates are kept instead of (what
    curate.dedup_files.Decisions asks): reference records from their files, spooled ones at their offset."""

    def __init__(self, spools: Spools, references, n_reference: int, config: dedup.DedupConfig):
        self.spools, self.references, self.n_reference = spools, references, n_reference
        self.parts = dedup.parse_fields(config.fields)
        self.get = lru_cache(maxsize=4096)(self._get)  # a big cluster's head is asked for again and again

    def _get(self, index: int) -> tuple[str, tuple[str, ...]]:
        if index < self.n_reference:
            return self.references.get(index)
        conv = self.spools.read_at(index - self.n_reference)
        return conv.origin or f"record {index}", dedup.dedup_parts(conv, self.parts)


class DedupPass(Carrier):
    """What the write pass needs to drop duplicates: the decisions and the heads they point at."""

    __slots__ = ("label", "clusters", "config", "n_reference", "heads")

    def __init__(self, clusters: dedup.Clusters, config: dedup.DedupConfig, n_reference: int, heads: SpoolHeads):
        self.label, self.clusters, self.config, self.n_reference, self.heads = \
            "dedup", clusters, config, n_reference, heads

    def dropped(self) -> np.ndarray:
        """bool per spooled record: removed as a duplicate."""
        return self.clusters.dup_of[self.n_reference:] >= 0


# -- the write pass -------------------------------------------------------------------------------------

class Written(Carrier):
    """What the write pass counted: the dedup log (when deduplicating), one log per format, the profile."""

    __slots__ = ("label", "logs", "profile")

    def __init__(self, logs: list[RunLog], profile: Profile):
        self.label, self.logs, self.profile = "written", logs, profile


def dump_options(fmt: str, turns: str | None) -> DumpOptions:
    """How the write pass writes a format: the run's `turns` choice for a format that takes one."""
    return DumpOptions(turns=turns if turns in formats.get(fmt).turns else None)


def same_rows_as_publish(fmt: str, turns: str | None) -> bool:
    """Whether the write pass's rows of a format are the ones the Hub step would write (its DumpOptions())."""
    return dump_options(fmt, turns) == DumpOptions()


class FormatOut:
    """One output format's writer and log; records arrive in batches."""

    def __init__(self, fmt: str, path: str, rejects: str, turns: str | None):
        self.fmt, self.writer, self.log = fmt, RowWriter(path, stable_keys=True), RunLog(f"write:{fmt}", rejects)
        self.opts = dump_options(fmt, turns)

    def write(self, batch: list[Conversation]) -> None:
        self.log.took_in(len(batch))
        write_records(batch, self.writer, self.fmt, self.log, self.opts)


def write_outputs(stream, outputs: dict[str, str], rejects: dict[str, str], turns: str | None,
                  deduplicating: DedupPass | None, clusters_path: str | None, profiler,
                  bar: Callable[[int], Any] | None = None) -> Written:
    """The one pass over the spools (`stream`: pipeline.passes.Stream, dedup's decisions its first pass when
    deduplicating): each duplicate goes into the dedup log and the clusters file, each record a later pass
    dropped is skipped (that pass logged it), the others are written in every format of `outputs`;
    `profiler.observe` sees each record written (and the formats are written elsewhere when `outputs` is
    empty: only the duplicates and the profile's sample are then parsed)."""
    from ..curate.dedup_toolkit import Decisions

    outs = [FormatOut(fmt, path, rejects[f"write:{fmt}"], turns) for fmt, path in outputs.items()]
    dedup_log = RunLog("dedup", rejects["dedup"]) if deduplicating is not None else None
    reviews = RowWriter(clusters_path) if deduplicating is not None else None
    decisions = Decisions(deduplicating.clusters, deduplicating.config, deduplicating.n_reference,
                          deduplicating.heads) if deduplicating is not None else None
    first_ref = deduplicating.n_reference if deduplicating is not None else 0
    writers = [o.writer for o in outs] + ([reviews] if reviews is not None else [])
    try:
        done = 0
        batch: list[Conversation] = []
        for k, conv, at in _fates(stream, lazy=not outs):
            if decisions is not None:
                dedup_log.took_in()
                if at == 0:
                    reviews.write(decisions.drop(conv(), first_ref + k, dedup_log))
                else:
                    dedup_log.emitted()
            if at < 0:
                if profiler.wants_next():
                    profiler.observe(conv())
                else:
                    profiler.skip()
                if outs:
                    batch.append(conv())
            if len(batch) == WRITE_BATCH:
                _write_batch(outs, batch)
                batch = []
            if bar is not None and k + 1 - done >= WRITE_BATCH:
                bar(k + 1 - done)
                done = k + 1
        _write_batch(outs, batch)
        if bar is not None:
            bar(len(stream.spools) - done)
        for w in writers:
            w.close()
        profile = profiler.finish()
    except BaseException:
        for w in writers:
            w.abort()
        profiler.close()
        raise
    finally:
        for log in [dedup_log, *(o.log for o in outs)]:
            if log is not None:
                log.close()
    logs = [o.log for o in outs]
    if deduplicating is not None:
        dedup_log.info["dedup"] = dedup.dedup_info(deduplicating.config, deduplicating.clusters,
                                                   deduplicating.n_reference)
        logs.insert(0, dedup_log)
    return Written(logs, profile)


def _fates(stream, lazy: bool) -> Iterator[tuple[int, Callable[[], Conversation], int]]:
    """`stream.fates()` with each record as a function that makes it. `lazy` (no format is written here) and
    every pass a mask only: a spool line is parsed only when it is asked for (a duplicate to review, a record
    the profile samples), which is all the pass then needs of most lines."""
    if not lazy or any(p.spool is not None for p in stream.passes):
        for k, conv, at in stream.fates():
            yield k, (lambda c=conv: c), at
        return
    fate = np.full(len(stream.spools), -1, dtype=np.int64)  # the first pass that dropped each record, or -1
    for i in reversed(range(len(stream.passes))):
        fate[~stream.passes[i].kept] = i
    fates = fate.tolist()
    k = 0
    for path in stream.spools.paths:
        with open(path, "rb", buffering=1 << 20) as fh:
            for line in fh:
                yield k, (lambda raw=line: Conversation.from_dict(orjson.loads(raw))), fates[k]
                k += 1


def _write_batch(outs: list[FormatOut], batch: list[Conversation]) -> None:
    for out in outs:
        out.write(batch)
