"""The pipeline: [generate] -> read -> filter -> dedup -> write each format -> [publish] -> stats + report.

One plain-Python function owns the stages' order and what each hands the next:

    with OutputFolder("out") as layout:
        summary = run(config, layout)                  # every step here, one after another
        summary = run(config, layout, steps)           # an orchestrator runs the steps (flows/ uses Prefect)

`steps` decides only HOW a step runs: `map(step, fn, items, *args)` over shards and `call(step, fn, *args)`
for one piece of work. The step names (`curate`, `cluster`, `write`, `download`, `generate`, `publish`)
are what an orchestrator attaches retries, caching and names to; the functions themselves are the same
ones the single-stage commands use (convert.parse_rows, curate.filter.filter_records, curate.dedup,
convert.write_records, hub).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from ..inputs import expand_inputs
from ..report import ReportData
from ..runlog import RunLog
from . import remote, stages, summary
from .config import PipelineConfig
from .layout import OutputFolder, OutputLayout


class Steps(Protocol):
    def map(self, step: str, fn: Callable[..., Any], items: list[Any], *args: Any) -> list[Any]: ...

    def call(self, step: str, fn: Callable[..., Any], *args: Any, fresh: bool = False) -> Any:
        """One piece of work; `fresh`: do not reuse a remembered result of an earlier run."""


class InProcess:
    """Runs every step in this process, one after another."""

    def map(self, step: str, fn: Callable[..., Any], items: list[Any], *args: Any) -> list[Any]:
        return [fn(item, *args) for item in items]

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
        announce: Callable[[str], None] = print, runner_name: str = "in-process") -> RunSummary:
    steps = steps or InProcess()
    logs: list[RunLog] = []
    inputs, published, generation = _inputs(config, layout, steps, logs)

    filter_cfg = config.filter if config.filter.enabled else None  # a section is its stage's config
    dedup_cfg = config.dedup if config.dedup.enabled else None
    shards = [rs for path, fmt, columns in inputs
              for rs in stages.row_shards(path, fmt, columns, config.pipeline.shard_size, announce)]
    curated = steps.map("curate", stages.curate_shard, shards, filter_cfg, dedup_cfg)
    del shards
    logs.append(stages.merge_logs("read", [c.logs["read"] for c in curated], layout.rejects("read")))
    if filter_cfg is not None:
        logs.append(stages.merge_logs("filter", [c.logs["filter"] for c in curated], layout.rejects("filter")))
    records = [r for c in curated for r in c.records]

    cluster_sizes: list[int] = []
    if dedup_cfg is not None:
        records, dedup_log, cluster_sizes = _dedup(records, [c.sketches for c in curated], dedup_cfg, layout, steps)
        logs.append(dedup_log)
    del curated

    outputs = {fmt: str(layout.data(fmt)) for fmt in config.pipeline.formats}
    batch = stages.Batch(records)
    for log in steps.map("write", stages.write_format, list(outputs.items()), batch, config.pipeline.turns):
        logs.append(stages.merge_logs(log.stage, [log], layout.rejects(log.stage)))
    for log in logs:
        announce(log.equation())

    stage_rows = [summary.public_stage(log.to_dict(), layout) for log in logs]
    hub = None
    if config.publish.enabled:
        card_stats = summary.card_stats(config, stage_rows, published, generation)
        hub = steps.call("publish", remote.publish_records, batch, config.publish, card_stats, str(layout.hub),
                         str(layout.root / "rejects"))
        stage_rows += [summary.public_stage(s, layout) for s in hub.pop("stages", [])]
        if hub.get("dry_run_dir"):
            hub["dry_run_dir"] = layout.public(hub["dry_run_dir"])

    report = ReportData(
        title=f"{config.pipeline.name}: pipeline report",
        stages=stage_rows,
        examples=summary.examples(logs),
        profile=summary.profile_records(records),
        cluster_sizes=cluster_sizes,
        outputs={fmt: layout.relative(path) for fmt, path in outputs.items()},
        hub=hub,
        notes=[f"config: {summary.config_name(config)}", f"runner: {runner_name}"],
    )
    result = RunSummary(stage_rows, {fmt: layout.public(p) for fmt, p in outputs.items()}, report, hub,
                        published, generation)
    summary.write_stats(layout, config, result, runner_name)
    if config.pipeline.report:
        summary.write_report(layout, report)
    return result


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
        inputs.append((str(layout.generated / "generated.jsonl"), None, None))
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


def _dedup(records, sketches, config, layout: OutputLayout, steps: Steps):
    from ..curate import dedup
    from ..io import write_rows

    references = [stages.reference_records(str(p)) for p in config.against]
    reference = [r for refs in references for r in refs]
    ref_sketches = steps.map("sketch-reference", dedup.sketch_records, references, config) if references else []
    clusters = steps.call("cluster", stages.cluster_step, ref_sketches, sketches, config, len(reference))
    log = RunLog("dedup", layout.rejects("dedup"))
    log.took_in(len(records))
    kept, rows = dedup.drop_duplicates(records, clusters, config, log, reference)
    log.emitted(len(kept))
    log.close()
    write_rows(layout.clusters, rows)
    return kept, log, dedup.cluster_sizes(clusters, len(reference))


__all__ = ["InProcess", "OutputFolder", "OutputLayout", "PipelineConfig", "RunSummary", "Steps", "run"]
