"""The score stage: judges' scores (and offline signals) added to each record's `meta.scores`.

    ScoreConfig                                  the endpoint (generate's ClientConfig) + judges, budget, cache
    score_records(records, config, log, emit, *, cache_dir, failures=None, prices=None, say=print) -> ScoreReport
        every record is emitted (`emit(conv)`, in input order) with meta.scores[judge] = a number on the judge's
        scale, or dropped into `log` with why: `unscored` (no score in the reply nor in the stricter retry;
        both replies kept), `not scored: request failed ...`, `not scored: the run stopped (...)` (budget or
        Ctrl-C; rerun with more budget: what was scored comes back from the cache)

Requests go through generate's `ChatClient`: concurrency, RPM/TPM limits, one retry policy, and the
per-request cache (SQLite, committed as each answer arrives), so a rerun after a kill -9 or a budget stop pays
for nothing twice. The budget (--max-tokens, --max-cost) counts tokens paid in this run (cache hits are free);
it is checked as answers arrive, so the requests already in flight may pass it by a little.
Records are judged concurrently, `concurrency x 4` records in flight at most, and emitted in input order.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from pydantic import Field, field_validator

from ..errors import InstructgenError
from ..formats import source_row
from ..generate.cache import RequestCache
from ..generate.client import INTERRUPTED, ChatClient, ChatRequest, resolve_api_key
from ..generate.config import ClientConfig
from ..record import Conversation
from ..runlog import RunLog
from .judges import SIGNALS, Judge, custom_judge, get_judge, stricter
from .parse import ParsedScore, parse_score

UNSCORED = "unscored"
FAILED = "failed: "  # + the request's error
UNSCORED_REASON = "unscored: no score in the judge's reply, nor after asking for the number alone"
BUDGET = "budget"


class ScoreConfig(ClientConfig):
    """The score stage: the [score] section of a pipeline config and `instructgen score`'s flags."""

    judge: tuple[str, ...] = Field(("alpagasus",), description="judges, a comma list: alpagasus (0-5), "
                                   "deita-complexity (1-6), deita-quality (1-6), mt-bench (1-10), signals (the "
                                   "filter's measures, no model); two or more report their agreement",
                                   json_schema_extra={"flag": ("--judge", "--judges"), "metavar": "A,B"})
    judge_prompt: Path | None = Field(None, description="your own judge: a prompt template file ({instruction}, "
                                      "{input}, {response}, {conversation}; optional === system === and === user "
                                      "=== sections); scored under the file's name", json_schema_extra={"metavar": "FILE"})
    judge_scale: str = Field("1-10", description="the scale --judge-prompt asks for, LOW-HIGH",
                             json_schema_extra={"metavar": "LOW-HIGH"})
    temperature: float = Field(0.0, ge=0, le=2, description="sampling temperature of the judge")
    reply_tokens: int = Field(512, ge=1, description="completion tokens per judge reply")
    seed: int = Field(0, description="sent with every request (endpoints that honour it answer the same)")
    max_tokens: int | None = Field(None, ge=1, description="stop once this many tokens were paid in this run "
                                   "(prompt + completion; cached answers are free); what was scored is kept",
                                   json_schema_extra={"metavar": "N"})
    max_cost: float | None = Field(None, gt=0, description="stop once this many USD were spent in this run "
                                   "(needs --prices); what was scored is kept", json_schema_extra={"metavar": "USD"})
    cache_dir: Path | None = Field(None, description="request cache folder; none: OUT.cache beside the output",
                                   json_schema_extra={"metavar": "DIR"})
    interrupt_wait: float = Field(60.0, ge=0, description="on Ctrl-C, seconds to wait for the requests in flight "
                                  "so their answers are cached", json_schema_extra={"metavar": "S"})

    @field_validator("judge", mode="before")
    @classmethod
    def _judges(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return tuple(dict.fromkeys(value))  # once each, in the order given

    @field_validator("judge_scale")
    @classmethod
    def _scale(cls, value: str) -> str:
        scale_of(value)
        return value

    def judges(self) -> list[Judge]:
        """The model judges (built-in, then --judge-prompt's)."""
        found = [get_judge(name) for name in self.judge if name != SIGNALS]
        if self.judge_prompt:
            found.append(custom_judge(self.judge_prompt, *scale_of(self.judge_scale)))
        return found


def request_secrets(config: ScoreConfig) -> list[str] | None:
    """What a failures file must never show: the API key and any password in base_url (None: no model judge)."""
    from ..generate.config import url_credentials

    if not config.judges():
        return None
    return [resolve_api_key(config), *url_credentials(config.base_url)]


def scale_of(text: str) -> tuple[float, float]:
    try:
        low, high = (float(p) for p in str(text).split("-", 1))
    except ValueError:
        raise ValueError(f"expected LOW-HIGH such as 1-10, got {text!r}") from None
    if not low < high:
        raise ValueError(f"expected LOW below HIGH, got {text!r}")
    return low, high


@dataclass
class JudgeTally:
    low: float
    high: float
    scored: int = 0
    unscored: int = 0
    retried: int = 0  # replies with no score, asked again with the stricter instruction
    normalised: int = 0  # scores written on another scale, mapped onto this judge's (said in meta.score_notes)
    shapes: Counter = field(default_factory=Counter)  # how the score was written
    histogram: Counter = field(default_factory=Counter)  # score rounded to the scale's integers -> records
    values: list = field(default_factory=list)  # per emitted record, None when absent (for agreement)

    def to_dict(self) -> dict[str, Any]:
        scored = [v for v in self.values if v is not None]
        return {"scale": [self.low, self.high], "scored": self.scored, "unscored": self.unscored,
                "retried_stricter": self.retried, "normalised": self.normalised, "shapes": dict(self.shapes),
                "mean": round(sum(scored) / len(scored), 4) if scored else None,
                "histogram": {f"{k:g}": v for k, v in sorted(self.histogram.items())}}


@dataclass
class ScoreReport:
    judges: dict[str, JudgeTally]
    usage: dict[str, Any]
    cost_usd: float | None
    stop_reason: str | None
    agreement: dict[str, Any]
    failures: int

    def to_dict(self) -> dict[str, Any]:
        return {"judges": {k: v.to_dict() for k, v in self.judges.items()}, "usage": self.usage,
                "cost_usd": self.cost_usd, "stop_reason": self.stop_reason, "agreement": self.agreement,
                "failed_requests": self.failures}


@dataclass
class _Verdict:
    scores: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    parsed: dict[str, ParsedScore] = field(default_factory=dict)
    unscored: dict[str, list[str]] = field(default_factory=dict)  # judge -> its replies
    failed: str | None = None
    stopped: bool = False


class _Scorer:
    def __init__(self, config: ScoreConfig, client: ChatClient, judges: list[Judge], prices: dict | None,
                 tallies: dict[str, JudgeTally]):
        self.config, self.client, self.judges, self.prices, self.tallies = config, client, judges, prices, tallies
        self.params = {"temperature": config.temperature, "max_tokens": config.reply_tokens, "seed": config.seed}

    async def verdict(self, conv: Conversation) -> _Verdict:
        verdict = _Verdict()
        answers = await asyncio.gather(*(self.ask(judge, conv) for judge in self.judges))
        for judge, (outcome, replies) in zip(self.judges, answers):
            if isinstance(outcome, ParsedScore):
                verdict.scores[judge.name], verdict.parsed[judge.name] = outcome.value, outcome
                if outcome.note:
                    verdict.notes[judge.name] = outcome.note
            elif outcome == UNSCORED:
                verdict.unscored[judge.name] = replies
            elif outcome == INTERRUPTED:
                verdict.stopped = True
            else:
                verdict.failed = verdict.failed or outcome
        return verdict

    async def ask(self, judge: Judge, conv: Conversation) -> tuple[ParsedScore | str, list[str]]:
        messages = judge.messages(conv)
        replies: list[str] = []
        for attempt in (messages, None):
            if attempt is None:  # the reply held no score: ask once more, for the number alone
                attempt = stricter(messages, replies[-1], judge)
                self.tallies[judge.name].retried += 1
            result = await self.client.complete(ChatRequest(attempt, self.params, tag=f"{judge.name} {conv.origin}"))
            self.check_budget()
            if result.interrupted:
                return INTERRUPTED, replies
            if not result.ok:
                return FAILED + result.error, replies
            replies.append(result.text)
            parsed = parse_score(result.text, judge.low, judge.high)
            if parsed is not None:
                return parsed, replies
        return UNSCORED, replies

    def check_budget(self) -> None:
        usage, cfg = self.client.usage, self.config
        if cfg.max_tokens and usage.prompt_tokens + usage.completion_tokens >= cfg.max_tokens:
            self.client.stop(f"{BUDGET}: --max-tokens {cfg.max_tokens} reached")
        cost = usage.cost(self.prices, cfg.model) if cfg.max_cost else None
        if cost is not None and cost >= cfg.max_cost:
            self.client.stop(f"{BUDGET}: --max-cost {cfg.max_cost:g} reached")


def score_records(records: Iterable[Conversation], config: ScoreConfig, log: RunLog,
                  emit: Callable[[Conversation], None], *, cache_dir: str | Path, failures: Any = None,
                  prices: dict[str, Any] | None = None, say: Callable[[str], None] | None = None) -> ScoreReport:
    try:
        return asyncio.run(ascore_records(records, config, log, emit, cache_dir=cache_dir, failures=failures,
                                          prices=prices, say=say))
    except asyncio.CancelledError:  # the second Ctrl-C
        raise KeyboardInterrupt from None


async def ascore_records(records: Iterable[Conversation], config: ScoreConfig, log: RunLog,
                         emit: Callable[[Conversation], None], *, cache_dir: str | Path, failures: Any = None,
                         prices: dict[str, Any] | None = None, say: Callable[[str], None] | None = None
                         ) -> ScoreReport:
    from ..generate.interrupt import CtrlC

    say = say or (lambda line: print(line, file=sys.stderr))
    judges = config.judges()
    with_signals = SIGNALS in config.judge
    if not judges and not with_signals:
        raise InstructgenError("no judge: give --judge NAME (alpagasus, deita-complexity, deita-quality, mt-bench, "
                               "signals) or --judge-prompt FILE")
    if config.max_cost and not (prices and (prices.get(config.model) or prices.get("*"))):
        raise InstructgenError(f"--max-cost needs the price of {config.model!r}: give --prices FILE with "
                               f'{{"{config.model}": {{"prompt": USD_PER_1M, "completion": USD_PER_1M}}}}')
    tallies = {j.name: JudgeTally(j.low, j.high) for j in judges}
    filter_config = _filter_config() if with_signals else None
    cache = RequestCache(cache_dir) if judges else None
    client = ChatClient(config, resolve_api_key(config), cache) if judges else None
    try:
        if client is None:
            for conv in records:
                _emit(conv, _Verdict(), filter_config, tallies, emit)
        else:
            scorer = _Scorer(config, client, judges, prices, tallies)
            with CtrlC(client, config.interrupt_wait, say) as ctrl_c:
                ctrl_c.task = asyncio.current_task()  # a second Ctrl-C aborts at once (nothing is written)
                await _drive(records, scorer, log, filter_config, tallies, emit, config.concurrency * 4)
    finally:
        if client is not None:
            await client.aclose()
            if failures is not None:
                for entry in client.failures:
                    failures.write(entry)
        if cache is not None:
            cache.close()
    usage = client.usage.to_dict() if client else {}
    return ScoreReport(tallies, usage, client.usage.cost(prices, config.model) if client else None,
                       client.stop_reason if client else None, _agreements(tallies),
                       client.usage.failures if client else 0)


async def _drive(records: Iterable[Conversation], scorer: _Scorer, log: RunLog, filter_config: Any,
                 tallies: dict[str, JudgeTally], emit: Callable[[Conversation], None], window: int) -> None:
    """Judge records concurrently, at most `window` in flight; emit (or drop) them in input order."""
    pending: deque[tuple[Conversation, asyncio.Task]] = deque()
    it = iter(records)
    for conv in it:
        if scorer.client.stopped:
            _drop_stopped(conv, scorer.client.stop_reason, log)
            break
        pending.append((conv, asyncio.create_task(scorer.verdict(conv))))
        while pending and (len(pending) >= window or pending[0][1].done()):
            await _settle(*pending.popleft(), scorer, log, filter_config, tallies, emit)
    while pending:
        await _settle(*pending.popleft(), scorer, log, filter_config, tallies, emit)
    for conv in it:  # the run stopped: the rest is read and dropped with the reason, so none is lost silently
        _drop_stopped(conv, scorer.client.stop_reason, log)


async def _settle(conv: Conversation, task: asyncio.Task, scorer: _Scorer, log: RunLog, filter_config: Any,
                  tallies: dict[str, JudgeTally], emit: Callable[[Conversation], None]) -> None:
    verdict = await task
    if verdict.stopped:
        _drop_stopped(conv, scorer.client.stop_reason, log)
    elif verdict.failed:
        log.drop(conv.origin, "not scored: request failed", source_row(conv), detail=verdict.failed[len(FAILED):],
                 scores=verdict.scores)
    elif verdict.unscored:
        for name in verdict.unscored:
            tallies[name].unscored += 1
        judge, replies = next(iter(verdict.unscored.items()))
        log.drop(conv.origin, UNSCORED_REASON, source_row(conv), kind=UNSCORED, judge=judge, replies=replies,
                 scores=verdict.scores)
    else:
        _emit(conv, verdict, filter_config, tallies, emit)


def _drop_stopped(conv: Conversation, reason: str | None, log: RunLog) -> None:
    why = "Ctrl-C" if reason == INTERRUPTED else (reason or "stopped")
    log.drop(conv.origin, f"not scored: the run stopped ({why.removeprefix(BUDGET + ': ')})", source_row(conv))


def _emit(conv: Conversation, verdict: _Verdict, filter_config: Any, tallies: dict[str, JudgeTally],
          emit: Callable[[Conversation], None]) -> None:
    from .signals import signals

    scores = dict(conv.meta.get("scores") or {}) if isinstance(conv.meta.get("scores"), dict) else {}
    if filter_config is not None:
        scores.update(signals(conv, filter_config))
    scores.update(verdict.scores)
    conv.meta["scores"] = scores
    if verdict.parsed:  # every judge gets a note, "" when its score was on its own scale: one shape per record
        notes = conv.meta.get("score_notes") if isinstance(conv.meta.get("score_notes"), dict) else {}
        conv.meta["score_notes"] = {**notes, **{name: p.note for name, p in verdict.parsed.items()}}
    for name, tally in tallies.items():
        parsed = verdict.parsed.get(name)
        tally.values.append(parsed.value if parsed else None)
        if parsed:
            tally.scored += 1
            tally.shapes[parsed.shape] += 1
            tally.normalised += bool(parsed.note)
            tally.histogram[float(round(parsed.value))] += 1
    emit(conv)


class ScoreLog(RunLog):
    """The score stage's RunLog: a record no reply gave a score for is counted with the rejected (so
    in = out + rejected + filtered + duplicates holds) and written to the rejects file as kind `unscored`,
    with the judge's raw replies."""

    def drop(self, origin: str, reason: str, raw: Any, kind: str = "rejected", **details: Any) -> None:
        if kind != UNSCORED:
            super().drop(origin, reason, raw, kind=kind, **details)
            return
        before = self.rejects_path
        self.rejects_path = None  # counted by RunLog, written here with its own kind
        try:
            super().drop(origin, reason, raw, kind="rejected", **details)
        finally:
            self.rejects_path = before
        entry = {"stage": self.stage, "kind": UNSCORED, "reason": reason, "origin": origin, **details, "raw": raw}
        for example in self.examples.get(reason, ()):
            if example.get("origin") == origin:
                example["kind"] = UNSCORED
        if self.entries:
            self.entries[-1]["kind"] = UNSCORED
        if self.rejects_path:
            import orjson

            from ..io import jsonl_safe

            if self._rejects_fh is None:
                self._open_rejects()
            self._rejects_fh.write(jsonl_safe(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE, default=str)))


def _filter_config() -> Any:
    from ..curate.filter import FilterConfig

    return FilterConfig()


def _agreements(tallies: dict[str, JudgeTally]) -> dict[str, Any]:
    from .agreement import agreement

    out = {}
    for (a, ta), (b, tb) in itertools.combinations(tallies.items(), 2):
        out[f"{a} vs {b}"] = agreement(ta.values, tb.values, (ta.low, ta.high), (tb.low, tb.high))
    return out
