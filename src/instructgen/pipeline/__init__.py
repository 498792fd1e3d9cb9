"""The pipeline: [generate] -> read -> filter -> dedup -> [score] -> [select] -> write each format -> [publish]
-> stats + report.

One plain-Python function owns the stages' order and what each hands the next:

    with OutputFolder("out") as layout:
        summary = run(config, layout)                  # every step here, one after another
        summary = run(config, layout, steps)           # an orchestrator runs the steps (flows/ uses Prefect)

`steps` decides only HOW a step runs: `map(step, fn, items, *args)` over shards and `call(step, fn, *args)`
for one piece of work. The step names (`curate`, `cluster`, `score`, `select`, `write`, `download`, `generate`,
`publish`)
are what an orchestrator attaches retries, caching and names to; the functions themselves are the same
ones the single-stage commands use (convert.parse_rows, curate.filter.filter_records, curate.dedup,
convert.write_records, hub).

No step holds a stage's whole data. Shards are read as the orchestrator asks for them (a bounded number
ahead); `curate` writes each shard's surviving records to a spool file in the staging folder and hands
back its logs, its dedup sketches and where each record is. The sketches of every record (about 540
bytes each) go into one buffer for the dedup decisions; the run-wide stages (`passes.RUN_STAGES`: score,
select) then each stream the records that reached them and answer with a mask (and, score, a spool of the
records with their scores); then `write` makes one pass over the spools in order, dropping duplicates and
what later stages dropped, writing every format at once, and samples the report's profile on the way. Publishing takes the formats written in data/ as they are; only a format published but
not written is converted from the surviving records, streamed from the spools again. Memory: about 1 GB plus 700 bytes a
record (the sketches, the decisions and each record's spool offset).
"""

from __future__ import annotations

import errno
import os
import shutil
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

from ..curate import dedup
from ..errors import InstructgenError
from ..inputs import expand_inputs
from ..progress import BarMaker, bar_maker
from ..report import ReportData, write_report
from ..runlog import RunLog
from . import passes, remote, signatures, stages, summary, workers
from .config import PipelineConfig
from .layout import OutputFolder, OutputLayout


class Steps(Protocol):
    def map(self, step: str, fn: Callable[..., Any], items: Iterable[Any], *args: Any) -> Iterator[Any]:
        """`fn(item, *args)` for each item, results in item order; items are taken as they are needed
        (a bounded number ahead), so they need not all exist at once."""

    def call(self, step: str, fn: Callable[..., Any], *args: Any, fresh: bool = False) -> Any:
        """One piece of work; `fresh`: do not reuse a remembered result of an earlier run."""


class InProcess:
    """Runs every step in this process; a map's items a few at a time in threads (a shard's work goes on to
    the run's worker processes, `workers.ShardPool`), results in item order."""

    def map(self, step: str, fn: Callable[..., Any], items: Iterable[Any], *args: Any) -> Iterator[Any]:
        window = 2 * max(1, os.cpu_count() or 1)
        with ThreadPoolExecutor(window, thread_name_prefix=step) as threads:
            pending: deque = deque()
            for item in items:
                pending.append(threads.submit(fn, item, *args))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def call(self, step: str, fn: Callable[..., Any], *args: Any, fresh: bool = False) -> Any:
        return fn(*args)


@dataclass
class RunSummary:
    stages: list[dict[str, Any]]  # counts per stage (in = out + rejected + filtered + duplicates), in order
    outputs: dict[str, str]  # format -> file (where it is once the run has finished)
    report: ReportData
    hub: dict[str, Any] | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)
    generation: dict[str, Any] | None = None

    @property
    def balanced(self) -> bool:
        return all(s["balanced"] for s in self.stages)


def run(config: PipelineConfig, layout: OutputLayout, steps: Steps | None = None,
        announce: Callable[[str], None] = print, runner_name: str = "in-process", progress: bool = False
        ) -> RunSummary:
    """The whole pipeline into `layout`; `progress`: bars with ETA on stderr for the passes over the data.
    A file that cannot be written (a full disk) is an InstructgenError naming the file, else the folder."""
    try:
        return _run(config, layout, steps or InProcess(), announce, runner_name, progress)
    except OSError as e:
        raise _named(e, layout) from e


def _named(error: OSError, layout: OutputLayout) -> InstructgenError:
    """A write that fails deep in a stage (a buffered write to a full disk) names no file; every such write
    goes into the output folder, so that is the place to name."""
    where = error.filename or layout.final
    hint = "free some space there" if error.errno in (errno.ENOSPC, errno.EDQUOT) else \
        "lift the file-size limit (ulimit -f)" if error.errno == errno.EFBIG else "check that place"
    return InstructgenError(f"{where}: {error.strerror or error}; the run stopped and left the outputs of the "
                            f"previous run in {layout.final} as they were: {hint}, or choose another output "
                            "folder with -o")


def _run(config: PipelineConfig, layout: OutputLayout, steps: Steps, announce: Callable[[str], None],
         runner_name: str, progress: bool) -> RunSummary:
    logs: list[RunLog] = []
    inputs, published, generation = _inputs(config, layout, steps, logs)
    dedup_cfg = config.dedup if config.dedup.enabled else None
    workers.fixed_mmap_threshold()  # the shards' sketches, once copied, are given back to the OS
    bars = bar_maker(progress)
    layout.spool.mkdir(parents=True, exist_ok=True)
    try:
        sources = _curate(config, layout, inputs, steps, dedup_cfg, logs, announce, bars)
        spools = stages.Spools([c.spool for s in sources for c in s.shards],
                               [c.offsets for s in sources for c in s.shards])
        deduplicating = _decide(sources, spools, dedup_cfg, layout, steps, runner_name, announce) \
            if dedup_cfg is not None else None
        stream = passes.Stream(spools, [passes.Pass("dedup", ~deduplicating.dropped(), None, None)]
                               if deduplicating is not None else [])
        stream = _run_stages(config, layout, stream, steps, announce)
        outputs = {fmt: str(layout.data(fmt)) for fmt in config.pipeline.formats}
        written = _write(config, layout, stream, outputs, deduplicating, steps, bars)
        n_dedup = 1 if deduplicating is not None else 0
        logs += [*written.logs[:n_dedup], *(p.log for p in stream.passes[n_dedup:]), *written.logs[n_dedup:]]
        for log in logs:
            announce(log.equation())
        stage_rows = [summary.public_stage(log.to_dict(), layout) for log in logs]
        hub = None
        if config.publish.enabled:
            hub = _publish(config, layout, stream, stage_rows, published, generation, steps, progress, outputs)
    finally:
        shutil.rmtree(layout.spool, ignore_errors=True)

    report = ReportData(
        title=f"{config.pipeline.name}: pipeline report",
        stages=stage_rows,
        examples=summary.examples(logs),
        profile=written.profile,
        cluster_sizes=dedup.cluster_sizes(deduplicating.clusters, deduplicating.n_reference) if deduplicating else [],
        outputs={fmt: layout.relative(path) for fmt, path in outputs.items()},
        hub=hub,
        notes=[f"config: {summary.config_name(config)}", f"runner: {runner_name}"],
    )
    result = RunSummary(stage_rows, {fmt: layout.public(p) for fmt, p in outputs.items()}, report, hub,
                        published, generation)
    summary.write_stats(layout, config, result, runner_name)
    if config.pipeline.report:
        write_report(report, layout.report_md, layout.report_html)
    return result


def _curate(config: PipelineConfig, layout: OutputLayout, inputs, steps: Steps, dedup_cfg,
            logs: list[RunLog], announce, bars: BarMaker | None) -> list[signatures.Source]:
    """Read every shard, run it through the per-shard stages (`stages.SHARD_STAGES`) and sketch it (each
    shard's records go to its spool file); each stage's logs are merged as the shards finish, in order."""
    plan = stages.ShardPlan.of(config, dedup_cfg)
    folder = layout.signatures if dedup_cfg is not None else None
    sources = [signatures.plan_source(path, fmt, columns, folder if _kept_between_runs(path, layout) else None,
                                      plan.settings(), dedup_cfg) for path, fmt, columns in inputs]
    merged = {name: RunLog(name, layout.rejects(name)) for name in plan.log_names}
    owners: deque[tuple[signatures.Source, int]] = deque()  # shards out, not yet back: (source, row bytes)
    bar = bars and bars("curate", sum(os.path.getsize(s.path) for s in sources), "B")
    in_ranges = sum(os.path.getsize(s.path) for s in sources if workers.splittable(s.path))
    try:
        shards = _shards(sources, config.pipeline.shard_size, layout, owners, announce)
        with workers.ShardPool() if in_ranges >= workers.POOL_MIN_BYTES else nullcontext():
            _merge_shards(steps.map("curate", workers.curate, shards, plan), merged, owners, bar)
        if bar is not None:
            bar.update(bar.total - bar.n)  # what rows do not account for (newlines of a JSON array, Parquet)
    finally:
        for log in merged.values():
            log.close()
        if bar is not None:
            bar.close()
    logs += merged.values()
    return sources


def _merge_shards(results: Iterator[stages.Curated], merged: dict[str, RunLog], owners: deque, bar) -> None:
    """Each shard's logs into its stage's log and the shard to its source, in shard order."""
    for curated in results:
        for name, log in merged.items():
            stages.absorb_log(log, curated.logs[name])
        curated.logs = {}
        source, nbytes = owners.popleft()
        source.shards.append(curated)
        if bar is not None:
            bar.update(min(nbytes, bar.total - bar.n))


def _shards(sources: list[signatures.Source], shard_size: int, layout: OutputLayout, owners: deque, announce
            ) -> Iterator[stages.RowShard | workers.RangeShard]:
    """Every source's shards in order, each read when the orchestrator asks for it, with its spool file: plain
    JSONL files as byte ranges (read by whoever runs the shard), other files as rows read here."""
    n = 0
    folder = layout.spool.resolve()  # workers elsewhere (Dask) do not share our working folder
    for source in sources:
        cut = workers.range_shards if workers.splittable(source.path) else stages.row_shards
        for shard in cut(source.path, source.format, source.columns, shard_size, announce):
            shard.spool, shard.sketch = str(folder / f"{n:06d}.jsonl"), not source.reuse
            source.detected = shard.format
            n += 1
            owners.append((source, shard.nbytes if isinstance(shard, workers.RangeShard) else stages.row_bytes(shard)))
            yield shard


def _kept_between_runs(path: str, layout: OutputLayout) -> bool:
    """Signatures are kept for the run's own files only: generated and downloaded sources are new each run."""
    return not Path(path).resolve().is_relative_to(layout.root.resolve())


def _decide(sources: list[signatures.Source], spools: stages.Spools, config, layout: OutputLayout, steps: Steps,
            runner_name: str, announce) -> stages.DedupPass:
    """The dedup decisions over every record's sketch (reference files first), and what pass 2 needs."""
    buffer, references = signatures.build(sources, config, layout.signatures, announce)
    n_reference = sum(len(r) for r in references)
    with workers.heap_reused():
        clusters = steps.call("cluster", stages.decide, stages.SketchView(buffer.view()), config, n_reference,
                              runner_name)
    del buffer  # the decisions are all pass 2 needs: let the sketches go (the references' view of them too)
    for reference in references:
        reference.buffer = None
    heads = signatures.reference_heads(references, clusters, n_reference, config)
    return stages.DedupPass(clusters, config, n_reference, stages.SpoolHeads(spools, heads, n_reference, config))


def _run_stages(config: PipelineConfig, layout: OutputLayout, stream: passes.Stream, steps: Steps, announce
                ) -> passes.Stream:
    """Each enabled run-wide stage (`passes.RUN_STAGES`) over the records the earlier ones kept."""
    for stage in passes.RUN_STAGES:
        stage_config = stage.section(config)
        if stage_config is not None:
            step = steps.call(stage.name, stage.apply, stream, stage_config, layout)
            stream = stream.then(step)
            announce(f"{stage.name}: kept {len(stream)} records")
    return stream


def _write(config: PipelineConfig, layout: OutputLayout, stream: passes.Stream, outputs: dict[str, str],
           deduplicating: stages.DedupPass | None, steps: Steps, bars: BarMaker | None) -> stages.Written:
    """The one pass over the spools: duplicates and what later stages dropped out, every format written, the
    report's profile sampled. With records enough, each format is written at the same time by a process of its
    own that reads the spools itself (`workers.FormatProcesses`); the pass here then only reviews duplicates
    and samples the profile, parsing just those records."""
    rejects = {stage: str(layout.rejects(stage)) for stage in ["dedup", *(f"write:{f}" for f in outputs)]}
    aside = list(outputs) if workers.parallel_write(len(stream.spools), len(outputs)) else []
    bar = bars and bars("write", len(stream.spools), " rec")
    profiler = summary.ProfileSampler(len(stream))
    try:
        with workers.FormatProcesses(len(aside)) if aside else nullcontext() as others:
            for fmt in aside:
                others.start(stream, fmt, outputs[fmt], rejects[f"write:{fmt}"], config.pipeline.turns)
            here = {fmt: path for fmt, path in outputs.items() if fmt not in aside}
            written = steps.call("write", stages.write_outputs, stream, here, rejects, config.pipeline.turns,
                                 deduplicating, str(layout.clusters), profiler, bar.update if bar is not None else None)
            if aside:
                written.logs += others.logs()
            return written
    finally:
        profiler.close()  # its detector processes, should the pass have failed
        if bar is not None:
            bar.close()


def _publish(config: PipelineConfig, layout: OutputLayout, survivors: passes.Stream, stage_rows, published,
             generation, steps: Steps, progress: bool, outputs: dict[str, str]) -> dict[str, Any]:
    """The Hub step: the formats written in data/ are published from those files; only the others are
    converted from the surviving records."""
    card = summary.card_info(config, stage_rows, published, generation)
    written = {fmt: path for fmt, path in outputs.items() if stages.same_rows_as_publish(fmt, config.pipeline.turns)}
    hub = steps.call("publish", remote.publish_records, survivors, config.publish, card, str(layout.hub),
                     str(layout.rejects_folder), progress, written)
    stage_rows += [summary.public_stage(s, layout) for s in hub.pop("stages", [])]
    if hub.get("dry_run_dir"):
        hub["dry_run_dir"] = layout.public(hub["dry_run_dir"])
    return hub


def _inputs(config: PipelineConfig, layout: OutputLayout, steps: Steps, logs: list[RunLog]
            ) -> tuple[list[tuple[str, str | None, dict | None]], list[dict[str, Any]], dict[str, Any] | None]:
    """(files to read with their format and columns, published datasets read, the generation summary)."""
    inputs: list[tuple[str, str | None, dict | None]] = []
    published: list[dict[str, Any]] = []
    generation = None
    if config.generate.enabled:
        gen: remote.Generated = steps.call("generate", remote.generate_source, config.generate, str(layout.cache))
        reused = bool(getattr(steps, "cache_hits", {}).get("generate"))
        if reused and not Path(gen.path).exists():  # a remembered result whose files were deleted since
            gen = steps.call("generate", remote.generate_source, config.generate, str(layout.cache), fresh=True)
            reused = False
        remote.copy_generated(gen, layout)
        logs += gen.logs
        inputs.append((str(layout.generated_records), None, None))
        generation = {**gen.summary, "reused_earlier_result": reused}
    for i, source in enumerate(config.sources):
        if source.path is not None:  # a file, or every file of a folder (recursively, natural order)
            inputs += [(path, source.format, source.columns) for path in expand_inputs([str(source.path)], source.glob)]
            continue
        got: remote.Downloaded = steps.call("download", remote.download_source, source.dataset, source.revision,
                                            str(layout.source(i, source.dataset)))
        published.append(got.info)
        logs.append(got.log)
        inputs.append((got.path, "openai", None))
    return inputs, published, generation


__all__ = ["InProcess", "OutputFolder", "OutputLayout", "PipelineConfig", "RunSummary", "Steps", "run"]
