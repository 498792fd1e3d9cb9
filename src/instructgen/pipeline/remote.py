"""The pipeline's steps that talk to remote services: downloading published sets, generating with a model,
publishing to the Hub. Plain functions with plain results; the orchestrator adds retries and caching.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runlog import RunLog
from .layout import OutputLayout
from .config import Generate, Publish
from .stages import Batch


@dataclass
class Downloaded:
    """A published dataset, converted to OpenAI-format JSONL (which keeps turns, system prompts and tools)."""

    path: str
    info: dict[str, Any]  # name, repo, revision, license, records
    log: RunLog


def download_source(dataset: str, revision: str | None, out_path: str) -> Downloaded:
    from ..hub import download

    result = download(dataset, out_path, revision=revision, to_format="openai", retries=0)
    result.log.stage = f"download:{dataset}"
    info = {"name": dataset, "repo": result.repo_id, "revision": result.revision, "license": result.license,
            "records": result.log.n_out}
    return Downloaded(out_path, info, result.log)


@dataclass
class Generated:
    folder: str  # generated.jsonl, failures.jsonl, rejects.jsonl, stats.json of this generation
    logs: list[RunLog]
    summary: dict[str, Any] = field(default_factory=dict)  # usage, requests, failures, cost (no secrets)

    @property
    def path(self) -> str:
        return str(Path(self.folder) / "generated.jsonl")


def generation_key(config: Generate) -> str:
    """Same settings + same seed files = the same generated data (concurrency and cache place aside)."""
    h = hashlib.sha256(config.model_dump_json(exclude={"cache_dir", "concurrency", "enabled"}).encode())
    if config.seed_tasks is not None and Path(config.seed_tasks).is_file():
        h.update(hashlib.sha256(Path(config.seed_tasks).read_bytes()).digest())
    return h.hexdigest()[:24]


def generate_source(config: Generate, cache_root: str) -> Generated:
    """Generate into CACHE_ROOT/generate-KEY/ (kept between runs, so an unchanged rerun can reuse it);
    answers already paid for are replayed from the request cache."""
    from ..generate.run import GenerateConfig, generate

    folder = Path(cache_root) / f"generate-{generation_key(config)}"
    out_path = str(folder / "generated.jsonl")
    gconf = GenerateConfig(
        seed_tasks=[str(config.seed_tasks)], num_instructions=config.num_instructions, mode=config.mode,
        lang=config.lang, model=config.model, base_url=config.base_url, api_key_env=config.api_key_env,
        concurrency=config.concurrency, requests_per_minute=config.requests_per_minute,
        tokens_per_minute=config.tokens_per_minute, temperature=config.temperature, top_p=config.top_p,
        max_tokens=config.max_tokens, similarity_threshold=config.similarity_threshold, seed=config.seed,
        cache_dir=str(config.cache_dir) if config.cache_dir else str(Path(cache_root) / "requests"),
        progress=False,
    )
    log = RunLog("generate", folder / "rejects.jsonl")
    try:
        result = generate(gconf, out_path, log)
    finally:
        log.close()
    summary = result.stats()
    print(f"generated {result.records_written} records ({result.requests} requests answered, "
          f"{summary['usage'].get('cache_hits', 0)} from the request cache, {result.failures} failed)")
    return Generated(str(folder), result.logs, summary)


def copy_generated(generated: Generated, layout: OutputLayout) -> None:
    """The generation's files in the run's output folder: its drops with the other rejects
    (rejects/<stage>.jsonl), the rest (records, failed requests, stats) in generated/."""
    rejects = {}
    for log in generated.logs:
        if log.rejects_path:
            rejects[Path(log.rejects_path).name] = layout.rejects(log.stage)
            log.rejects_path = str(layout.rejects(log.stage))
    layout.generated.mkdir(parents=True, exist_ok=True)
    for entry in Path(generated.folder).iterdir():
        if entry.is_file():
            target = rejects.get(entry.name, layout.generated / entry.name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(entry, target)


def publish_records(batch: Batch, config: Publish, formats: list[str], card_stats: dict[str, Any],
                    hub_dir: str, rejects_dir: str) -> dict[str, Any]:
    """Curated records -> the Hub (or, for a dry run, the Hub-shaped folder), one config per format."""
    from .. import hub

    kwargs = dict(formats=formats, config_name=config.config_name, split=config.split, stats=card_stats,
                  pretty_name=None, tags=["instructgen"], rejects_dir=rejects_dir)
    if config.dry_run:
        folder = hub.write_hub_folder(batch.records, hub_dir, repo_id=config.repo, **kwargs)
        print(f"Hub dry run for {config.repo}: {len(folder.files)} files")
        return {"repo": config.repo, "dry_run_dir": hub_dir, "files": folder.files,
                "stages": [log.to_dict() for log in folder.logs]}
    result = hub.push(batch.records, config.repo, private=config.private, create_pr=config.create_pr,
                      token_env=config.token_env, retries=0, **kwargs)
    print(f"pushed {config.repo}: {result.url}" if result.changed else
          f"{config.repo} already holds this data: no new commit")
    return {"repo": config.repo, "commit_url": result.url if result.changed else None,
            "commit_sha": result.commit_sha, "changed": result.changed, "pr_url": result.pr_url,
            "message": "unchanged: no new commit" if not result.changed else "pushed",
            "stages": [log.to_dict() for log in result.folder.logs] if result.folder else []}
