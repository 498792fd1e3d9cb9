"""The pipeline's steps that talk to remote services: downloading published sets, generating with a model,
publishing to the Hub. Plain functions with plain results; the orchestrator adds retries and caching.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import orjson

from ..hub.card import CardInfo
from ..record import Conversation
from ..runlog import RunLog
from .config import Generate, Publish
from .layout import GENERATED_RECORDS, OutputLayout


@dataclass
class Downloaded:
    """A published dataset, converted to OpenAI-format JSONL (which keeps turns, system prompts and tools)."""

    path: str
    info: dict[str, Any]  # name, repo, revision, license, records
    log: RunLog


def download_source(dataset: str, revision: str | None, out_path: str) -> Downloaded:
    from ..hub import download

    result = download(dataset, out_path, revision=revision, to_format="openai")
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
        return str(Path(self.folder) / GENERATED_RECORDS)


GROW_SETTINGS = {"grow", "grow_max_rounds", "grow_max_records"}


def generation_key(config: Generate) -> str:
    """Same generation settings + same seed files = the same generated data (how fast it runs aside). A growing
    generation makes a new round per run, so its key is new every time (an orchestrator must not replay an
    earlier run's result: the rounds kept in the cache are checked and reused by `generate_source` itself)."""
    if config.grow:
        return f"{lineage_key(config)}-{uuid.uuid4().hex}"
    return lineage_key(config)


def lineage_key(config: Generate) -> str:
    """The settings and seed files a generation (a growing one: its every round) is made from; the caps aside."""
    settings = config.model_dump(mode="json", exclude={"enabled", "cache_dir", "concurrency", "requests_per_minute",
                                                        "tokens_per_minute", "interrupt_wait", *GROW_SETTINGS})
    h = hashlib.sha256(orjson.dumps(settings, option=orjson.OPT_SORT_KEYS))
    for seeds in config.seed_tasks:
        if Path(seeds).is_file():
            h.update(hashlib.sha256(Path(seeds).read_bytes()).digest())
    return h.hexdigest()[:24]


def generate_source(config: Generate, cache_root: str) -> Generated:
    """Generate into CACHE_ROOT/generate-KEY/ (kept between runs, so an unchanged rerun can reuse it);
    answers already paid for are replayed from the request cache. Fewer records than asked because requests
    failed is an error (the step fails, naming the cause). `grow`: one more round into the pool kept in
    CACHE_ROOT/grow-KEY/ (`generate_rounds`)."""
    from ..errors import InstructgenError
    from ..generate.config import GenerateConfig
    from ..generate.run import generate
    from .generate_rounds import grow, own_folder

    if config.grow:
        grown = grow(config, cache_root, lineage_key(config))
        return Generated(str(grown.pool), grown.logs, grown.summary)
    folder = own_folder(own_folder(Path(cache_root), "the generation cache") / f"generate-{lineage_key(config)}",
                        "a generation")
    stage_config = GenerateConfig(**{**config.model_dump(exclude={"enabled"}),
                                     "cache_dir": config.cache_dir or Path(cache_root) / "requests"})
    log = RunLog("generate", folder / "rejects.jsonl")
    try:
        result = generate(stage_config, folder / GENERATED_RECORDS, log, failures_path=folder / "failures.jsonl")
    finally:
        log.close()
    if result.failed:
        raise InstructgenError(f"generation: {result.shortfall()}")
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


def publish_records(records: Iterable[Conversation], config: Publish, card: CardInfo, hub_dir: str,
                    rejects_dir: str, progress: bool = False, written: dict[str, str] | None = None) -> dict[str, Any]:
    """Curated records -> the Hub (or, for a dry run, the Hub-shaped folder), one config per format: the
    `written` formats' rows are taken from their files, the records (streamed, read once) are converted
    only into the others."""
    from .. import hub

    publish = hub.PublishConfig(**{**config.model_dump(exclude={"enabled", "dry_run"}),
                                   "tags": (*config.tags, "instructgen")})
    if config.dry_run:
        folder = hub.write_hub_folder(records, hub_dir, publish, card, rejects_dir=rejects_dir,
                                      progress=progress, written=written)
        print(f"Hub dry run for {config.repo}: {len(folder.files)} files")
        return {"repo": config.repo, "dry_run_dir": hub_dir, "files": folder.files,
                "stages": [log.to_dict() for log in folder.logs]}
    result = hub.push(records, publish, card, rejects_dir=rejects_dir, progress=progress, written=written)
    print(f"pushed {config.repo}: {result.url}" if result.changed else
          f"{config.repo} already holds this data: no new commit")
    return {"repo": config.repo, "commit_url": result.url if result.changed else None,
            "commit_sha": result.commit_sha, "changed": result.changed, "pr_url": result.pr_url,
            "message": "unchanged: no new commit" if not result.changed else "pushed",
            "stages": [log.to_dict() for log in result.folder.logs] if result.folder else []}
