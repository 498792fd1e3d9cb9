"""The generate stage: seed tasks -> an OpenAI-compatible chat endpoint -> filtered, diverse instruction data.

    plan_outputs(config, out_path, rejects=, failures=, stats=, ...) -> GenerateOutputs
        every path the stage writes, checked against the seed files before anything is opened
    generate(config, out_path, log, *, failures_path=None, prices=None, progress=False, retry_failed=False,
             turn_filter=None) -> GenerateResult
        Ctrl-C: the first stops sending and waits for requests in flight (answers cached), then raises
        KeyboardInterrupt; the output is not written. `result.shortfall()` says why fewer were kept than asked.
    await agenerate(...)   the same inside a running event loop (raises `Interrupted` instead)
    run_request_batch(config, requests) -> list[ChatResult]
        one coarse batch of requests through the same client, limits, retries and cache

Modes: `alpaca` (one request asks for 20 tasks with input and output, shown 3
sampled seed tasks) and `self-instruct` (bootstrap instructions from 6 seeds +
2 generated, classify each new instruction, generate instances output-first
for classification and input-first otherwise, then Self-Instruct's clean-up).
`num_instructions` counts kept instructions; in self-instruct mode every kept
instruction yields its valid instances as records.

Accounting: each generated candidate is taken into `log`; kept -> out;
similar to a kept instruction (ROUGE-L > threshold) -> `duplicates`; rules,
blacklist, length, truncation or a response that cannot be parsed ->
`filtered` (the raw text kept). Requests that finally failed are not
candidates: they are counted in the stats and written, with the last raw
answer and any unparsable response, to the failures file. In self-instruct
mode instructions are counted in a second log, stage `generate-instructions`.

Resuming and determinism: request k's prompt and per-request `seed` depend
only on `--seed`, k and the responses processed before it, and responses are
processed in request order whatever order they arrive in; every usable answer
is in the on-disk cache as soon as it arrives (a bad one never is). Rerunning
an interrupted command replays the cached answers and sends only what is missing.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InstructgenError
from ..io import RowWriter
from ..paths import CommandPaths, derived
from ..runlog import RunLog
from .budget import check_prices
from .cache import RequestCache
from .client import INTERRUPTED, ChatClient, ChatRequest, ChatResult, resolve_api_key
from .config import GenerateConfig, redact_url
from .failures import FailureSink, read_ledger
from .interrupt import CtrlC, Interrupted
from .loops import RECOVERED, AlpacaRun, SelfInstructRun
from .result import GenerateResult
from .seeds import load_seed_tasks

OPENAI_ENDPOINT = "https://api.openai.com/v1"


@dataclass(frozen=True)
class GenerateOutputs:
    out: str
    rejects: str | None
    instruction_rejects: str | None  # self-instruct mode: dropped instructions
    failures: str
    stats: str | None
    cache_dir: str


def plan_outputs(config: GenerateConfig, out_path: str | Path, *, rejects: str | Path | None = None,
                 failures: str | Path | None = None, stats: str | Path | None = None, default_rejects: bool = True,
                 default_stats: bool = False, other_inputs: dict[str, str | Path] | None = None) -> GenerateOutputs:
    """The stage's outputs: given names are checked, default names (OUT.rejects.jsonl, OUT.failures.jsonl,
    OUT.stats.json, OUT.cache/) are moved aside if they collide; nothing may be a seed file (or one of
    `other_inputs`, {flag: path})."""
    out = str(out_path)
    plan = CommandPaths()
    plan.read_all(config.seed_tasks, "--seed-tasks")
    for flag, path in (other_inputs or {}).items():
        plan.read(path, flag)
    plan.write(out, "-o")
    rejects = _output(plan, rejects, "--rejects", derived(out, "rejects.jsonl", "generate.rejects.jsonl"),
                      default_rejects)
    instruction_rejects = None
    if rejects and config.mode == "self-instruct":
        instruction_rejects = plan.write(derived(rejects, "instructions.jsonl"), "the instruction rejects file",
                                         chosen=False)
    failures = _output(plan, failures, "--failures", derived(out, "failures.jsonl", "generate.failures.jsonl"))
    stats = _output(plan, stats, "--stats", derived(out, "stats.json", "generate.stats.json"), default_stats)
    cache_dir = str(config.cache_dir or derived(out, "cache", ".instructgen-cache"))
    plan.write(Path(cache_dir) / RequestCache.FILE, "--cache-dir")
    plan.check()
    return GenerateOutputs(out, rejects, instruction_rejects, failures, stats, cache_dir)


def _output(plan: CommandPaths, given: str | Path | None, flag: str, default: str, use_default: bool = True) -> Any:
    if given is not None:
        return plan.write(given, flag)
    return plan.write(default, f"the default {flag.lstrip('-')} file", chosen=False) if use_default else None


def generate(config: GenerateConfig, out_path: str | Path, log: RunLog, *, failures_path: str | Path | None = None,
             prices: dict[str, Any] | None = None, progress: bool = False, retry_failed: bool = False,
             turn_filter: Any = None) -> GenerateResult:
    try:
        return asyncio.run(agenerate(config, out_path, log, failures_path=failures_path, prices=prices,
                                     progress=progress, retry_failed=retry_failed, turn_filter=turn_filter))
    except Interrupted:
        raise KeyboardInterrupt from None


async def agenerate(config: GenerateConfig, out_path: str | Path, log: RunLog, *,
                    failures_path: str | Path | None = None, prices: dict[str, Any] | None = None,
                    progress: bool = False, retry_failed: bool = False, turn_filter: Any = None) -> GenerateResult:
    if not config.seed_tasks:
        raise InstructgenError("no seed tasks: give --seed-tasks FILE (--topics FILE in chat mode; seed_tasks in a "
                               "pipeline config)")
    paths = plan_outputs(config, out_path, rejects=log.rejects_path, failures=failures_path, default_rejects=False)
    seeds = [] if config.mode == "chat" else load_seed_tasks(config.seed_tasks)  # chat: topics (ChatRun)
    ledger = _read_ledgers(paths) if retry_failed else None
    check_prices(config, prices, _models(config))
    api_key = resolve_api_key(config)
    cache = RequestCache(paths.cache_dir)
    client = ChatClient(config, api_key, cache)
    if ledger is not None:
        failed, unreadable, rows = ledger
        for key in unreadable:
            client.reask(key)
        client.only_keys, client.only_rows = failed | unreadable, rows
        for row in rows:
            cache.put(RECOVERED + row, {"text": ""})
    logs = [log]
    try:
        with FailureSink(paths.failures, client.secrets) as failures, RowWriter(paths.out) as writer, \
                _progress_bar(config, progress) as bar:
            runner = _runner_class(config.mode)(config, seeds, client, writer, log, failures,
                                                paths.instruction_rejects)
            logs = [lg for lg in (getattr(runner, "instruction_log", None), log) if lg is not None]
            runner.prices = prices
            runner.turn_filter = turn_filter  # chat mode: the junk rules per turn (the caller's filter stage)
            runner.on_answer = lambda: _show(bar, runner)
            try:
                await _drive(runner, client, config, paths.cache_dir)
                runner.sweep_failures()
            finally:
                _show(bar, runner)
                for entry in client.failures:
                    failures.write(entry)
    finally:
        await client.aclose()
        cache.close()
        for lg in logs:
            lg.close()
    return GenerateResult(
        out_path=paths.out, asked=config.num_instructions, records_written=writer.count,
        instructions_kept=runner.kept_instructions, requests=runner.answered, requests_limit=runner.requests_limit,
        stop_reason=runner.stop_reason, usage=client.usage.to_dict(), cost_usd=client.usage.cost(prices, config.model),
        failures=client.usage.failures, unparsable=runner.unparsable_answers,
        lost_instructions=runner.lost_instructions, failures_path=paths.failures if failures.count else None,
        endpoint=_endpoints_named(config), failing_after=config.max_failures_in_a_row, logs=logs,
        mode=config.mode, skipped=runner.skipped_rows)


def _models(config: GenerateConfig) -> list[str]:
    """Every model the run may ask (for --max-cost's prices)."""
    models = [config.model]
    if config.mode == "pairs":
        models += [model for _, model in config.answer_endpoint_list()]
    if config.mode == "chat" and config.user_endpoint:
        models.append(config.user_endpoint[1])
    return list(dict.fromkeys(models))


def _endpoints_named(config: GenerateConfig) -> str:
    """The run's endpoint, or its endpoints when it asks several (credentials redacted)."""
    urls = [config.base_url]
    if config.mode == "pairs":
        urls += [url for url, _ in config.answer_endpoint_list()]
    if config.mode == "chat" and config.user_endpoint:
        urls.append(config.user_endpoint[0])
    named = list(dict.fromkeys(redact_url(url) or OPENAI_ENDPOINT for url in urls))
    return named[0] if len(named) == 1 else "(one of) " + ", ".join(named)


def _read_ledgers(paths: GenerateOutputs) -> tuple[set[str], set[str], set[str]]:
    """The ledger rows of the rejects file (and, in self-instruct mode, of the instruction rejects file)."""
    if not paths.rejects:
        raise InstructgenError("--retry-failed needs the rejects file of the run to retry (--rejects PATH)")
    found = read_ledger(paths.rejects)
    if paths.instruction_rejects and Path(paths.instruction_rejects).is_file():
        found = tuple(a | b for a, b in zip(found, read_ledger(paths.instruction_rejects)))
    return found


def _runner_class(mode: str) -> type:
    from .chat import ChatRun
    from .evol import EvolRun
    from .pairs import PairsRun

    return {"alpaca": AlpacaRun, "self-instruct": SelfInstructRun, "evol": EvolRun, "pairs": PairsRun,
            "chat": ChatRun}[mode]


async def _drive(runner: AlpacaRun | SelfInstructRun, client: ChatClient, config: GenerateConfig,
                 cache_dir: str) -> None:
    """Run the loop; turn a Ctrl-C into `Interrupted` once the requests in flight are settled."""
    task = asyncio.create_task(runner.run())
    with CtrlC(client, config.interrupt_wait, say) as ctrl_c:
        ctrl_c.task = task
        try:
            await task
        except asyncio.CancelledError:
            if ctrl_c.pressed:
                raise Interrupted() from None
            raise
    if client.stop_reason == INTERRUPTED:
        say(f"stopped: every answer received is in the cache ({cache_dir}); rerun the same command to resume")
        raise Interrupted()


def say(line: str) -> None:
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)


def _progress_bar(config: GenerateConfig, enabled: bool) -> Any:
    from ..progress import bar

    return bar(desc="generate", total=config.num_instructions, unit=" instructions", disable=not enabled,
               dynamic_ncols=True)


def _show(bar: Any, runner: AlpacaRun | SelfInstructRun) -> None:
    if bar.disable:
        return
    bar.update(runner.kept_instructions - bar.n)
    bar.set_postfix_str(runner.describe(), refresh=False)


def run_request_batch(config: GenerateConfig, requests: list[ChatRequest]) -> list[ChatResult]:
    """Send one batch of requests (cache, limits, retries as in `generate`); results in request order."""
    async def go() -> list[ChatResult]:
        cache = RequestCache(config.cache_dir) if config.cache_dir else None
        client = ChatClient(config, resolve_api_key(config), cache)
        try:
            return list(await asyncio.gather(*(client.complete(r) for r in requests)))
        finally:
            await client.aclose()
            if cache:
                cache.close()
    return asyncio.run(go())


__all__ = ["GenerateConfig", "GenerateOutputs", "GenerateResult", "plan_outputs", "generate", "agenerate",
           "run_request_batch", "load_seed_tasks", "resolve_api_key", "Interrupted"]
