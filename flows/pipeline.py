"""The pipeline as a Prefect flow: the plain pipeline (instructgen.pipeline.run) with Prefect running its steps.

What Prefect adds, and nothing else:
- a task per shard for the CPU work (`curate`: read + filter + MinHash sketch), run by the chosen task runner
  (threads, processes, Dask, Ray); the cheap steps run as plain tasks;
- retries with backoff on the remote steps (`download`, `generate`, `publish`), except for errors no retry
  can fix (a missing key or token, an unknown model);
- caching: an unchanged `generate` step (same settings, same seed files) is not run again;
- artifacts: the stage counts as a table, the report as markdown, the Hub commit as a link.

`pipeline_flow` is what `instructgen run` calls and what `instructgen serve` and prefect.yaml deploy. Its
parameters are JSON-able (a config path, an output folder, a runner spec) so a deployment can be triggered
from the UI or the CLI.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from contextlib import nullcontext
from typing import Any, Callable, Iterable, Iterator

from prefect import flow, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging.handlers import PrefectConsoleHandler
from prefect.tasks import exponential_backoff

from instructgen.errors import InstructgenError
from instructgen.pipeline import OutputFolder, run
from instructgen.pipeline.layout import OutputLayout, output_folder
from instructgen.pipeline.config import load_config
from instructgen.pipeline.remote import generation_key
from instructgen.progress import wanted as progress_wanted
from instructgen.report import counts_table, render_markdown
from instructgen_flows.runners import lookahead, make_task_runner



def _worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    """The library retries transient HTTP errors itself (one policy per remote) and then fails with an
    InstructgenError that says why: retrying that cannot help. Anything unexpected gets another go."""
    try:
        state.result()
    except InstructgenError:
        return False
    except Exception:  # noqa: BLE001 - a connection torn down mid-stream and the like
        return True
    return False


def _generation_cache_key(context: Any, parameters: dict[str, Any]) -> str:
    return "instructgen-generate-" + generation_key(parameters["args"][0])


REMOTE = dict(retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=5), retry_jitter_factor=0.5,
              retry_condition_fn=_worth_retrying, cache_policy=NO_CACHE, persist_result=False)
STEP_OPTIONS: dict[str, dict[str, Any]] = {
    "download": REMOTE,
    "publish": REMOTE,
    "score": REMOTE,  # a judge endpoint: retried like the other remotes; answers already paid for are cached
    "generate": {**REMOTE, "retries": 2, "cache_policy": None, "cache_key_fn": _generation_cache_key,
                 "persist_result": True},
}
# shard data is big and used once: neither hashed for a cache key nor persisted
LOCAL = dict(cache_policy=NO_CACHE, persist_result=False)


class _ExpectedErrors(logging.Filter):
    """Keeps off the console Prefect's tracebacks of the errors `instructgen run` reports in one line when it
    ends (InstructgenError: a reason a person can act on; OSError: a file that could not be written, named).
    Prefect's API handler still records them, so the UI keeps the whole story."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, (InstructgenError, OSError))


def quiet_expected_tracebacks() -> None:
    """In this process (the flow's, and each worker process a task runs in, where Prefect logs its failure)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not any(isinstance(f, _ExpectedErrors)
                                                                   for f in handler.filters):
            handler.addFilter(_ExpectedErrors())


def _call(fn: Callable[..., Any], args: tuple) -> Any:
    quiet_expected_tracebacks()
    return fn(*args)


class PrefectSteps:
    """The pipeline's steps as Prefect tasks: `map` submits one task per item to the flow's task runner,
    at most `window` ahead of the result it waits for (items are read as they are submitted)."""

    def __init__(self, window: int = 4) -> None:
        self.cache_hits: dict[str, bool] = {}
        self.window = window

    def _task(self, step: str, fn: Callable[..., Any]):
        options = {k: v for k, v in STEP_OPTIONS.get(step, LOCAL).items() if v is not None}
        return task(_call, name=step, **options)

    def map(self, step: str, fn: Callable[..., Any], items: Iterable[Any], *args: Any) -> Iterator[Any]:
        t = self._task(step, fn)
        pending: deque = deque()
        for i, item in enumerate(items):
            pending.append(t.with_options(task_run_name=f"{step} {getattr(item, 'label', '') or i}")
                           .submit(fn, (item, *args)))
            if len(pending) >= self.window:
                yield pending.popleft().result()  # the future goes with it: its result is not held twice
        while pending:
            yield pending.popleft().result()

    def call(self, step: str, fn: Callable[..., Any], *args: Any, fresh: bool = False) -> Any:
        t = self._task(step, fn)
        state = (t.with_options(refresh_cache=True) if fresh else t)(fn, args, return_state=True)
        self.cache_hits[step] = state.name == "Cached"
        return state.result()


@flow(name="instructgen-pipeline", log_prints=True)
def pipeline_flow(
    config_path: str | None = None,
    output_dir: str | None = None,
    runner: str | None = None,
    runner_options: dict[str, Any] | None = None,
    progress: bool | None = None,
    opened: OutputLayout | None = None,
) -> dict[str, Any]:
    """Run every enabled stage of the pipeline config (the bundled example when no path is given);
    `progress`: bars on stderr (None: the config's `pipeline.progress`, auto = when stderr is a terminal).
    The output folder is locked once per run, by whoever opens it: this flow, unless its caller has already
    opened it (`opened`: `instructgen run` opens it before Prefect starts, so a folder in use or holding
    planted files is refused in one line; the caller then swaps the outputs in when the flow returns)."""
    started = time.time()
    quiet_expected_tracebacks()
    cfg = load_config(config_path)
    out = opened.final if opened is not None else output_folder(output_dir, cfg.pipeline.output_dir)
    runner = runner or cfg.pipeline.runner
    if progress is None:
        progress = progress_wanted(cfg.pipeline.progress)
    with nullcontext(opened) if opened is not None else OutputFolder(out) as layout:
        stages = _stages.with_options(task_runner=make_task_runner(runner, dask_cluster_kwargs=runner_options))
        summary, cache_hits = stages(config_path, layout, runner, progress)
    _artifacts(summary)
    print(f"output in {out}/ ({time.time() - started:.1f} s); every stage balances: {summary.balanced}")
    done = OutputLayout.finished(out)
    return {
        "output_dir": str(out),
        "stats": str(done.stats),
        "report_md": str(done.report_md) if cfg.pipeline.report else None,
        "report_html": str(done.report_html) if cfg.pipeline.report else None,
        "outputs": summary.outputs,
        "stages": counts_table(summary.stages),
        "balanced": summary.balanced,
        "hub": summary.hub,
        "generation_cache_hit": cache_hits.get("generate"),
    }


@flow(name="stages", log_prints=True, validate_parameters=False)
def _stages(config_path: str | None, layout, runner: str, progress: bool = False):
    """The stages under the chosen task runner (a subflow, so the runner is chosen per run). It takes the
    config's path, not the config: Prefect stores a flow run's parameters, and the config may hold a key
    (a `base_url` with credentials in it)."""
    cfg = load_config(config_path)
    steps = PrefectSteps(lookahead(runner))
    return run(cfg, layout, steps, runner_name=runner, progress=progress), steps.cache_hits


def _artifacts(summary) -> None:
    create_table_artifact(counts_table(summary.stages), key="instructgen-stage-counts",
                          description="records in/out of each stage (in = out + rejected + filtered + duplicates)")
    create_markdown_artifact(render_markdown(summary.report), key="instructgen-report", description="pipeline report")
    if summary.hub and summary.hub.get("commit_url"):
        create_link_artifact(summary.hub["commit_url"], link_text=f"Hub commit of {summary.hub.get('repo', '')}",
                             key="instructgen-hub-commit")


def run_pipeline(config_path: str | None = None, output_dir: str | None = None, runner: str | None = None,
                 runner_options: dict[str, Any] | None = None, progress: bool | None = None,
                 opened: OutputLayout | None = None) -> dict[str, Any]:
    """Run the pipeline flow in this process (Prefect starts its temporary local server if no API is set);
    `opened`: the output folder, already opened (locked) by the caller."""
    return pipeline_flow(config_path=config_path, output_dir=output_dir, runner=runner, runner_options=runner_options,
                         progress=progress, opened=opened)
