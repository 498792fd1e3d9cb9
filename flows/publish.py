"""The publish flow: curated records -> the Hugging Face Hub (or its dry-run folder), one config per format.

`publish_task` takes the records in memory (the pipeline hands them over
from the curate flow); `publish_flow` publishes files already on disk. Pushing
is retried with backoff (the Hub is remote and sometimes flaky), except when
the token is missing or rejected, which no retry can fix. The Hub module
itself makes an unchanged push a no-op, so a retry never makes a second commit.
"""

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from instructgen.pipeline_config import Publish
from instructgen_flows.shards import Batch


def _worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except Exception as e:  # noqa: BLE001 - deciding on the message of the one-line Hub errors
        text = str(e).lower()
        return not any(word in text for word in ("token", "unauthorized", "forbidden", "permission", "401", "403"))
    return False


@task(name="publish", cache_policy=NO_CACHE, persist_result=False, retries=3,
      retry_delay_seconds=exponential_backoff(backoff_factor=5), retry_jitter_factor=0.5,
      retry_condition_fn=_worth_retrying)
def publish_task(records: Batch | list[str], config: Publish, formats: list[str],
                 stats: dict[str, Any], dry_run_dir: str) -> dict[str, Any]:
    """`records`: a Batch of curated records, or files any format `convert` reads."""
    from instructgen import hub

    if isinstance(records, Batch):
        records = records.records

    # records a Hub format cannot hold are dropped there: they go to rejects/ beside the Hub folder
    rejects_dir = Path(dry_run_dir).parent / "rejects"
    publish = hub.PublishConfig(repo=config.repo, formats=formats, config_name=config.config_name,
                                split=config.split, private=config.private, create_pr=config.create_pr,
                                token_env=config.token_env, tags=["instructgen"])
    card = hub.CardInfo.from_stats(stats)
    if config.dry_run:
        folder = hub.write_hub_folder(records, dry_run_dir, publish, card, rejects_dir=rejects_dir)
        print(f"Hub dry run for {config.repo}: {len(folder.files)} files in {dry_run_dir}")
        return {"repo": config.repo, "dry_run_dir": str(Path(dry_run_dir).resolve()), "files": folder.files,
                "stages": _counted(folder.logs)}
    result = hub.push(records, publish, card, rejects_dir=rejects_dir)
    if result.changed:
        print(f"pushed {config.repo}: {result.url}")
    else:
        print(f"{config.repo} already holds this data: no new commit")
    return {"repo": config.repo, "commit_url": result.url if result.changed else None,
            "commit_sha": result.commit_sha, "changed": result.changed, "pr_url": result.pr_url,
            "message": "unchanged: no new commit" if not result.changed else "pushed",
            "stages": _counted(result.folder.logs) if result.folder else []}


def _counted(logs: list[Any]) -> list[dict[str, Any]]:
    """Print each Hub config's `in = out + ...` line and return the counts for stats.json and the report."""
    for log in logs:
        print(log.equation())
    return [log.to_dict() for log in logs]


@flow(name="publish", log_prints=True)
def publish_flow(inputs: list[str], config: Publish, formats: list[str], dry_run_dir: str,
                 stats: dict[str, Any] | None = None) -> dict[str, Any]:
    """Publish curated files (any format `convert` reads) as one Hub config per format."""
    return publish_task(inputs, config, formats, stats or {}, dry_run_dir)
