"""The whole pipeline as one Prefect flow: [generate] -> curate -> [publish] -> stats.json + report.

Every stage is optional (the config's `enabled` switches). `run_pipeline` is
what `instructgen run` calls; `pipeline_flow` is what `instructgen serve` and
prefect.yaml deploy. Parameters are JSON-able (a config path, an output
folder, a runner spec) so a deployment can be triggered from the UI or CLI.
"""

import time
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from instructgen import report as R
from instructgen.pipeline_config import PipelineConfig, load_config
from instructgen.runlog import RunLog, write_stats
from instructgen_flows.curate import curate_flow
from instructgen_flows.runners import make_task_runner
from instructgen_flows.shards import Batch

DEFAULT_OUTPUT = "instructgen-output"


def output_dir_for(cfg: PipelineConfig, output_dir: str | None) -> Path:
    return Path(output_dir or cfg.pipeline.output_dir or DEFAULT_OUTPUT)


@flow(name="instructgen-pipeline", log_prints=True)
def pipeline_flow(
    config_path: str | None = None,
    output_dir: str | None = None,
    runner: str | None = None,
    runner_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run every enabled stage of the pipeline config (the bundled example when no path is given)."""
    started = time.time()
    cfg = load_config(config_path)
    out = output_dir_for(cfg, output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "stats.json").unlink(missing_ok=True)  # stats of an earlier run in this folder would mislead
    task_runner = make_task_runner(runner or cfg.pipeline.runner, dask_cluster_kwargs=runner_options)

    logs: list[RunLog] = []
    extra_sources: list[str] = []
    generation: dict[str, Any] | None = None
    if cfg.generate.enabled:
        from instructgen_flows.generate import generate_flow

        gen = generate_flow(cfg.generate, str(out / "generated"))
        logs += gen.logs
        extra_sources.append(gen.path)
        generation = gen.summary

    cur = curate_flow.with_options(task_runner=task_runner)(cfg, str(out), extra_sources)
    logs += cur.logs

    hub: dict[str, Any] | None = None
    if cfg.publish.enabled:
        from instructgen_flows.publish import publish_task

        files = [{"path": str(s.path)} for s in cfg.sources if s.path is not None]
        card_stats = {"stages": [log.to_dict() for log in logs], "sources": files + cur.sources,
                      **({"generation": generation} if generation else {}),
                      **({"filters": cfg.filter.model_dump(mode="json")} if cfg.filter.enabled else {}),
                      **({"dedup": cfg.dedup.model_dump(mode="json")} if cfg.dedup.enabled else {})}
        hub = publish_task(Batch(cur.records), cfg.publish, cfg.pipeline.formats, card_stats, str(out / "hub"))

    publish_stages = hub.pop("stages", []) if hub else []
    stages = [log.to_dict() for log in logs] + publish_stages
    write_stats(out / "stats.json", stages, pipeline=cfg.pipeline.name, runner=runner or cfg.pipeline.runner,
                outputs=cur.outputs, **({"sources": cur.sources} if cur.sources else {}),
                **({"generation": generation} if generation else {}),
                **({"hub": hub} if hub else {}))

    data = R.ReportData(
        title=f"{cfg.pipeline.name}: pipeline report",
        stages=stages,
        examples=_examples(logs),
        profile=R.profile_records(cur.records, lang_of=_language_of()),
        cluster_sizes=cur.cluster_sizes,
        outputs=cur.outputs,
        hub=hub,
        notes=[f"config: {cfg.config_path}", f"runner: {runner or cfg.pipeline.runner}"],
    )
    md_path = html_path = None
    if cfg.pipeline.report:
        md_path, html_path = R.write_report(out, data)
    _publish_artifacts(data, hub)

    balanced = all(s["balanced"] for s in stages)
    print(f"output in {out}/ ({time.time() - started:.1f} s); every stage balances: {balanced}")
    return {
        "output_dir": str(out),
        "stats": str(out / "stats.json"),
        "report_md": str(md_path) if md_path else None,
        "report_html": str(html_path) if html_path else None,
        "outputs": cur.outputs,
        "stages": R.counts_table(stages),
        "balanced": balanced,
        "hub": hub,
    }


def _language_of():
    """The curate stage's detector (script first, then seeded langdetect); 'unknown' when it has no opinion."""
    from instructgen.curate.langid import get_detector

    detector = get_detector("script+langdetect", ())
    return lambda text: detector.detect(text) or "unknown"


def _examples(logs: list[RunLog]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for log in logs:
        for reason, entries in log.examples.items():
            out.setdefault(f"{log.stage}: {reason}", entries)
    return out


def _publish_artifacts(data: R.ReportData, hub: dict[str, Any] | None) -> None:
    create_table_artifact(R.counts_table(data.stages), key="instructgen-stage-counts",
                          description="records in/out of each stage (in = out + rejected + filtered + duplicates)")
    create_markdown_artifact(R.render_markdown(data), key="instructgen-report", description="pipeline report")
    if hub and hub.get("commit_url"):
        create_link_artifact(hub["commit_url"], link_text=f"Hub commit of {hub.get('repo', '')}",
                             key="instructgen-hub-commit")


def run_pipeline(config_path: str | None = None, output_dir: str | None = None, runner: str | None = None,
                 runner_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the pipeline flow in this process (Prefect starts its temporary local server if no API is set)."""
    return pipeline_flow(config_path=config_path, output_dir=output_dir, runner=runner, runner_options=runner_options)
