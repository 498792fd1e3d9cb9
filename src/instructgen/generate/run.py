"""The generate stage: seed tasks -> an OpenAI-compatible chat endpoint -> filtered, diverse instruction data.

    generate(config: GenerateConfig, out_path: str, log: RunLog) -> GenerateResult
    await agenerate(config, out_path, log) -> GenerateResult          (the same, inside a running event loop)
    run_request_batch(config, requests: list[ChatRequest]) -> list[ChatResult]
        one coarse batch of requests through the same client, limits, retries and cache
    load_seed_tasks(paths) -> list[SeedTask]

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
candidates: they are counted in the stats and written, with any unparsable
response, to the failures file. In self-instruct mode instructions are
counted in a second log, stage `generate-instructions`.

Resuming and determinism: request k's prompt and per-request `seed` depend
only on `--seed`, k and the responses processed before it, and responses are
processed in request order whatever order they arrive in; every answer is in
the on-disk cache as soon as it arrives. Rerunning an interrupted command
replays the cached answers and sends only what is missing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import orjson

from ..errors import InstructgenError
from ..io import RowWriter, read_rows
from ..runlog import RunLog
from .cache import RequestCache
from .client import ChatClient, ChatRequest, ChatResult, ClientConfig, ResponseFormatRejected
from .progress import ProgressLine
from .self_instruct import LANGS, MODES, SeedTask

LOCAL_PLACEHOLDER_KEY = "not-needed"


@dataclass
class GenerateConfig:
    seed_tasks: list[str]
    num_instructions: int = 100
    mode: str = "alpaca"  # alpaca | self-instruct
    lang: str = "en"  # en | zh
    model: str = "gpt-4o-mini"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 16
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 3072
    similarity_threshold: float = 0.7
    seed: int = 0
    cache_dir: str | None = None  # default: OUT.cache beside the output
    format: str = "alpaca"
    response_format: str = "auto"  # auto: JSON, falling back to numbered text on a 400 | json | text
    timeout: float = 120.0
    max_attempts: int = 6
    retry_backoff: float = 1.0  # seconds before the first retry; doubles per attempt (full jitter), capped at 60
    prices: dict[str, Any] | None = None  # {model or "*": {"prompt": usd_per_1M, "completion": usd_per_1M}}
    tasks_per_request: int = 20  # alpaca
    examples_per_request: int = 3  # alpaca
    max_requests: int | None = None  # give up after this many (bootstrap) requests; default from num_instructions
    progress: bool | None = None  # None: when stderr is a terminal
    failures_path: str | None = None  # default: OUT.failures.jsonl

    def check(self) -> "GenerateConfig":
        if self.mode not in MODES:
            raise InstructgenError(f"--mode must be one of {', '.join(MODES)}")
        if self.lang not in LANGS:
            raise InstructgenError(f"--lang must be one of {', '.join(LANGS)}")
        if self.response_format not in ("auto", "json", "text"):
            raise InstructgenError("--response-format must be auto, json or text")
        if self.num_instructions < 1:
            raise InstructgenError("--num-instructions must be at least 1")
        if not 0 <= self.similarity_threshold <= 1:
            raise InstructgenError("--similarity-threshold must be between 0 and 1")
        return self


@dataclass
class GenerateResult:
    out_path: str
    records_written: int
    instructions_kept: int
    requests: int  # logical requests answered (cache hits included)
    usage: dict[str, Any]
    cost_usd: float | None
    failures: int
    failures_path: str | None
    logs: list[RunLog] = field(default_factory=list)

    def stats(self) -> dict[str, Any]:
        return {"usage": {**self.usage, "cost_usd": self.cost_usd}, "requests": self.requests,
                "failures": self.failures, "failures_file": self.failures_path,
                "instructions_kept": self.instructions_kept, "records_written": self.records_written}


# -- API key -------------------------------------------------------------------------------------

def is_local(base_url: str | None) -> bool:
    if not base_url:
        return False
    host = urlparse(base_url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback or ipaddress.ip_address(host).is_private
    except ValueError:
        return False


def resolve_api_key(config: GenerateConfig) -> str:
    """The key from the named variable; a placeholder for local endpoints; never echoed anywhere."""
    key = os.environ.get(config.api_key_env, "").strip()
    if key:
        return key
    if is_local(config.base_url):
        return LOCAL_PLACEHOLDER_KEY
    where = f"for {config.base_url}" if config.base_url else "for the OpenAI API"
    raise InstructgenError(f"no API key {where}: set the environment variable {config.api_key_env} "
                           "(or name another one with --api-key-env)")


# -- seeds ---------------------------------------------------------------------------------------

def load_seed_tasks(paths: list[str]) -> list[SeedTask]:
    """Self-Instruct seed files ({instruction, instances, is_classification}) or any format `convert` reads."""
    seeds: list[SeedTask] = []
    for path in paths:
        first = next((r for r in read_rows(path) if r.error is None), None)
        if first is not None and isinstance(first.data, dict) and "instances" in first.data:
            seeds.extend(_self_instruct_seeds(path))
        else:
            seeds.extend(_seeds_via_convert(path))
    if not seeds:
        raise InstructgenError(f"no seed task in {', '.join(paths)}")
    return seeds


def _self_instruct_seeds(path: str) -> list[SeedTask]:
    out = []
    for row in read_rows(path):
        if row.error is not None:
            raise InstructgenError(f"{row.origin}: {row.error}")
        d = row.data
        ok = isinstance(d, dict) and isinstance(d.get("instruction"), str) and isinstance(d.get("instances"), list)
        if not ok or not all(isinstance(i, dict) and isinstance(i.get("output"), str) for i in d["instances"]):
            raise InstructgenError(f"{row.origin}: not a Self-Instruct seed task (needs instruction and "
                                   "instances: [{input, output}])")
        instances = [(str(i.get("input") or ""), i["output"]) for i in d["instances"]]
        out.append(SeedTask(d["instruction"].strip(), instances, bool(d.get("is_classification")), str(d.get("id", ""))))
    return out


def _seeds_via_convert(path: str) -> list[SeedTask]:
    """Seed tasks from any format convert reads; like the native loader, a bad row is an error naming it."""
    from ..convert import ReadOptions, read_records

    log = RunLog("generate-seeds")
    out = []
    for conv in read_records([path], log, ReadOptions(strict=True)):
        turns = conv.turns
        if len(turns) < 2 or turns[0].role != "user" or turns[1].role != "assistant":
            raise InstructgenError(f"{conv.origin}: a seed task needs a user turn answered by the assistant")
        split = conv.meta.get("split") or {}
        instruction = split.get("instruction", turns[0].content)
        out.append(SeedTask(instruction.strip(), [(split.get("input", ""), turns[1].content)], False, conv.origin))
    return out


# -- the stage -----------------------------------------------------------------------------------

def generate(config: GenerateConfig, out_path: str, log: RunLog) -> GenerateResult:
    return asyncio.run(agenerate(config, out_path, log))


async def agenerate(config: GenerateConfig, out_path: str, log: RunLog) -> GenerateResult:
    from .pipeline import AlpacaRun, SelfInstructRun

    config.check()
    seeds = load_seed_tasks(config.seed_tasks)
    api_key = resolve_api_key(config)
    cache = RequestCache(config.cache_dir or default_cache_dir(out_path))
    client = ChatClient(_client_config(config), api_key, cache)
    failures_path = config.failures_path or sibling(out_path, "failures.jsonl")
    runner_cls = AlpacaRun if config.mode == "alpaca" else SelfInstructRun
    logs = [log]
    try:
        with RowWriter(out_path) as writer, FailureSink(failures_path) as failures:
            runner = runner_cls(config, seeds, client, writer, log, failures)
            logs = runner_logs(runner, log)
            runner.progress = progress = ProgressLine(runner.describe, enabled=config.progress)
            try:
                await runner.run()
            finally:
                progress.close()
            for f in client.failures:
                failures.write({"kind": "request failed", "tag": f["tag"], "error": f["error"],
                                "attempts": f["attempts"], "key": f["key"], "messages": f["messages"]})
    finally:
        await client.aclose()
        cache.close()
        for lg in logs:
            lg.close()
    return GenerateResult(out_path, writer.count, runner.kept_instructions, runner.answered, client.usage.to_dict(),
                          client.usage.cost(config.prices, config.model), client.usage.failures,
                          failures_path if failures.count else None, logs)


def run_request_batch(config: GenerateConfig, requests: list[ChatRequest]) -> list[ChatResult]:
    """Send one batch of requests (cache, limits, retries as in `generate`); results in request order."""
    async def go() -> list[ChatResult]:
        cache = RequestCache(config.cache_dir) if config.cache_dir else None
        client = ChatClient(_client_config(config), resolve_api_key(config), cache)
        try:
            return list(await asyncio.gather(*(client.complete(r) for r in requests)))
        finally:
            await client.aclose()
            if cache:
                cache.close()
    return asyncio.run(go())


def runner_logs(runner: Any, log: RunLog) -> list[RunLog]:
    extra = getattr(runner, "instruction_log", None)
    return [extra, log] if extra is not None else [log]


def _client_config(config: GenerateConfig) -> ClientConfig:
    return ClientConfig(model=config.model, base_url=config.base_url, concurrency=config.concurrency,
                        requests_per_minute=config.requests_per_minute, tokens_per_minute=config.tokens_per_minute,
                        timeout=config.timeout, max_attempts=config.max_attempts,
                        backoff_base=config.retry_backoff)


def sibling(out_path: str, suffix: str) -> str:
    if out_path == "-":
        return f"generate.{suffix}"
    for ext in (".jsonl.gz", ".jsonl", ".json", ".parquet"):
        if out_path.endswith(ext):
            return out_path[: -len(ext)] + "." + suffix
    return f"{out_path}.{suffix}"


def default_cache_dir(out_path: str) -> str:
    return sibling(out_path, "cache") if out_path != "-" else ".instructgen-cache"


class FailureSink:
    """Failed requests and unparsable responses, one JSON object a line, raw text kept."""

    def __init__(self, path: str):
        self.path = path
        self.count = 0
        self._fh = None
        if os.path.exists(path):
            os.unlink(path)

    def write(self, entry: dict[str, Any]) -> None:
        if self._fh is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "wb")
        self._fh.write(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE, default=str))
        self.count += 1

    def __enter__(self) -> "FailureSink":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fh is not None:
            self._fh.close()


def request_seed(run_seed: int, *parts: Any) -> int:
    """The `seed` sent with one request: fixed by the run's seed and the request's place in the run."""
    return random.Random(f"{run_seed}:" + ":".join(map(str, parts))).randrange(2**31)


__all__ = ["GenerateConfig", "GenerateResult", "generate", "agenerate", "run_request_batch", "load_seed_tasks",
           "resolve_api_key", "ResponseFormatRejected"]
