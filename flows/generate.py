"""The generate flow: Self-Instruct / Alpaca generation against an OpenAI-compatible endpoint, as one cached task.

Generation is sequential by nature (request k's prompt depends on what was
kept before it), so it is one task over the whole run; the generate stage
itself sends requests concurrently. Two caches make a rerun repay nothing:
- Prefect's task cache, with the result persisted (key: the generation
  settings, the seed files' contents and the output path): an unchanged rerun
  skips the task entirely and reuses the generated file;
- the stage's own on-disk request cache: a run that was interrupted, or whose
  Prefect cache was dropped, replays the answers it already paid for.
Retries with backoff are for the world being flaky (the endpoint down); the
stage already retries single requests on 429/5xx/timeouts. Errors that no
retry can fix (no API key, unknown model) are not retried.
"""

import contextvars
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.tasks import exponential_backoff

from instructgen.errors import InstructgenError
from instructgen.pipeline_config import Generate
from instructgen.runlog import RunLog

PROGRESS_EVERY = 1.0  # seconds between progress artifact updates


@dataclass
class GenerationOutcome:
    path: str  # the generated records (alpaca JSONL), a source for the curate flow
    logs: list[RunLog]
    summary: dict[str, Any] = field(default_factory=dict)  # usage, requests, failures, cost (no secrets)


def stage_config(cfg: Generate, out_path: str) -> Any:
    """The generate stage's GenerateConfig from the [generate] section."""
    from instructgen.generate.config import GenerateConfig

    return GenerateConfig(
        seed_tasks=[str(cfg.seed_tasks)], num_instructions=cfg.num_instructions, mode=cfg.mode, lang=cfg.lang,
        model=cfg.model, base_url=cfg.base_url, api_key_env=cfg.api_key_env, concurrency=cfg.concurrency,
        requests_per_minute=cfg.requests_per_minute, tokens_per_minute=cfg.tokens_per_minute,
        temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens,
        similarity_threshold=cfg.similarity_threshold, seed=cfg.seed,
        cache_dir=str(cfg.cache_dir) if cfg.cache_dir else str(Path(out_path).parent / "request-cache"),
    )


def generation_cache_key(context: Any, parameters: dict[str, Any]) -> str:
    """Same settings + same seed files + same output path = the same generated data."""
    cfg: Generate = parameters["config"]
    h = hashlib.sha256(cfg.model_dump_json(exclude={"cache_dir", "concurrency"}).encode())
    seeds = Path(cfg.seed_tasks) if cfg.seed_tasks else None
    if seeds is not None and seeds.exists():
        h.update(hashlib.sha256(seeds.read_bytes()).digest())
    h.update(str(Path(parameters["out_path"]).resolve()).encode())
    return "instructgen-generate-" + h.hexdigest()


def _worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except InstructgenError:  # bad key, unknown model, bad seeds: retrying cannot help
        return False
    except Exception:
        return True
    return False


@task(name="generate", cache_key_fn=generation_cache_key, persist_result=True, retries=2,
      retry_delay_seconds=exponential_backoff(backoff_factor=10), retry_jitter_factor=0.5,
      retry_condition_fn=_worth_retrying)
def generate_task(config: Generate, out_path: str, rejects_path: str) -> GenerationOutcome:
    from instructgen.generate.run import generate

    gconf = stage_config(config, out_path)
    log = RunLog("generate", rejects_path)
    artifact = create_progress_artifact(0.0, key="instructgen-generation-progress",
                                        description=f"instructions kept out of {config.num_instructions}")
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(contextvars.copy_context().run, generate, gconf, out_path, log)
        last = -1.0
        while not wait([fut], timeout=PROGRESS_EVERY).done:
            pct = min(100.0, 100.0 * log.n_out / config.num_instructions)
            if pct != last:
                update_progress_artifact(artifact, pct)
                last = pct
        result = fut.result()
    update_progress_artifact(artifact, 100.0)
    summary = result.stats()
    print(f"generated {result.records_written} records ({result.requests} requests answered, "
          f"{summary['usage'].get('cache_hits', 0)} from the request cache, {result.failures} failed)")
    return GenerationOutcome(out_path, result.logs, summary)


@flow(name="generate", log_prints=True)
def generate_flow(config: Generate, output_dir: str) -> GenerationOutcome:
    """Generate into OUTPUT_DIR/generated.jsonl; a rerun with unchanged settings reuses the cached result."""
    out = Path(output_dir)
    out_path = str(out / "generated.jsonl")
    started = time.time()
    state = generate_task(config, out_path, str(out / "rejects.jsonl"), return_state=True)
    outcome: GenerationOutcome = state.result()
    cached = state.name == "Cached"
    if cached and not Path(outcome.path).exists():  # the cached result's file was deleted since
        outcome = generate_task.with_options(refresh_cache=True)(config, out_path, str(out / "rejects.jsonl"))
        cached = False
    outcome.summary = {**outcome.summary, "prefect_cache_hit": cached, "seconds": round(time.time() - started, 2)}
    print(f"generation: {'reused the cached result' if cached else 'ran'}; data in {outcome.path}")
    return outcome

