"""The dedup sketches of a pipeline run in one buffer: reference files first, then every source's records
in order, each source's either sketched by its curate shards or reused from an earlier run.

A source's sketches depend on the file and on everything that decides which records it yields and what
they hold: its format and columns, the filter settings and the sketch settings. They are saved per source
file in the output folder's `signatures/` (the dedup toolkit's Parquet layout, keyed by those settings as
`signature_path`'s `reading`, checked against the file's size and modification time by `saved_match`), so a rerun with another threshold or keep rule
reads them instead of sketching again. The `line` column holds a digest of each record's spool line: a
reused file is taken only when the records read this time are exactly the ones sketched then (otherwise
the spools are sketched again).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..curate import dedup
from ..curate import dedup_toolkit as files
from . import stages


@dataclass
class Source:
    """One input file of the run and its curated shards, in order."""

    path: str
    format: str | None  # as given (None: detected)
    columns: dict[str, str] | None
    signatures: Path | None = None  # where its sketches are kept between runs (None: not kept)
    reuse: bool = False  # saved sketches look valid: its shards are not sketched
    detected: str = ""  # the format its shards were read as
    shards: list[stages.Curated] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(c.count for c in self.shards)


def plan_source(path: str, fmt: str | None, columns: dict[str, str] | None, folder: Path | None,
                stage_settings: dict[str, Any], config: dedup.DedupConfig | None) -> Source:
    """A source, with where its sketches are kept and whether the saved ones can be reused;
    `stage_settings`: each per-shard stage's settings (`stages.ShardPlan.settings`)."""
    if folder is None or config is None:
        return Source(path, fmt, columns)
    target = files.signature_path(folder, path, fmt, config, reading={"columns": columns, **stage_settings})
    return Source(path, fmt, columns, target, _saved_for(target, path, config))


def _saved_for(target: Path, path: str, config: dedup.DedupConfig) -> bool:
    """Saved sketches of this very file (size, modification time) and shape, judged from the metadata alone."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_schema(target).metadata
    except (OSError, ValueError):
        return False
    return files.saved_match(metadata, path, (len(dedup.parse_fields(config.fields)), config.num_perm))


def build(sources: list[Source], config: dedup.DedupConfig, folder: Path | None,
          announce=print) -> tuple[files.SketchBuffer, list[files.Indexed]]:
    """(the run's sketches, reference files first; the reference files as indexed). Freshly sketched
    sources are saved for the next run."""
    buffer = files.SketchBuffer(config)
    saved = str(folder) if folder is not None else None
    runner = files.LocalRunner()
    references = [files.index_or_reuse(str(p), None, config, buffer, saved, runner) for p in config.against]
    buffer.reserve(sum(s.count for s in sources))
    reused = [r.path for r in references if r.reused]
    for source in sources:
        start = buffer.size
        if source.reuse and _load(source, buffer):
            reused.append(source.path)
            continue
        buffer.size = start
        _append_shards(source, buffer, config)
        if source.signatures is not None:
            lines = np.concatenate([c.digests for c in source.shards] or [np.empty(0, np.uint64)]).view(np.int64)
            files.save_signatures(source.signatures, files.Indexed(
                source.path, source.detected, buffer, start, buffer.size, lines, np.empty(0, np.int64)))
    if reused:
        announce(f"dedup: signatures reused for {', '.join(os.path.basename(p) for p in reused)}")
        _release_arrow_memory()
    return buffer, references


def _release_arrow_memory() -> None:
    """Arrow keeps the memory of the batches it read for later reads; none follow."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def _load(source: Source, buffer: files.SketchBuffer) -> bool:
    """Append the saved sketches when they are of exactly the records curated this time."""
    found = files.load_signatures(source.signatures, source.path, buffer)
    if found is None or len(found) != source.count:
        return False
    digests = np.concatenate([c.digests for c in source.shards] or [np.empty(0, np.uint64)])
    return bool(np.array_equal(found.lines.view(np.uint64), digests))


def _append_shards(source: Source, buffer: files.SketchBuffer, config: dedup.DedupConfig) -> None:
    """The shards' sketches, in order (each shard's arrays let go once copied); shards that were not
    sketched (saved sketches that turned out stale) are sketched from their spool."""
    for shard in source.shards:
        if shard.sketches is None:
            shard.sketches = dedup.sketch_records(list(stages.read_spool(shard.spool)), config)
        buffer.append(shard.sketches)
        shard.sketches = None


def reference_heads(references: list[files.Indexed], clusters: dedup.Clusters, n_reference: int,
                    config: dedup.DedupConfig) -> files.HeadTexts:
    """The reference records duplicates point at (read at their offset, or collected once)."""
    bases = np.cumsum([0, *(len(r) for r in references)])[:-1]
    heads = files.HeadTexts(references, bases, config)
    pointed = clusters.dup_of[clusters.dup_of >= 0]
    heads.collect(np.unique(pointed[pointed < n_reference]))
    return heads
