"""The two generation loops, `AlpacaRun` and `SelfInstructRun`, over the client, the parsers and the filters.

Both send requests concurrently but process answers strictly in request
order, so the diversity filter sees candidates in the same order on every run
with the same seed, and a resumed run (answers replayed from the cache) makes
exactly the same decisions as an uninterrupted one.

A loop ends when enough instructions are kept (`stop_reason` "done"), when its
request budget is spent ("max-requests" when `--max-requests` set it,
"request-budget" otherwise), or when the client stops ("failing": too many
requests in a row failed; "interrupted": Ctrl-C; "budget: ...": --max-tokens or --max-cost, checked
after every answer by `budget.spend_check`). A stopped client answers
at once, so the loop then only waits for the requests already in flight.
"""

from __future__ import annotations

import asyncio
import math
import random
from functools import partial
from typing import Any, Callable

from ..convert import write_records
from ..errors import InstructgenError
from ..formats.base import DumpOptions, single_turn
from ..io import RowWriter
from ..runlog import RunLog
from . import self_instruct as si
from .budget import spend_check
from .client import ChatClient, ChatRequest, ChatResult, resolve_api_key
from .config import GenerateConfig
from .filters import instruction_problem, output_problem
from .retry import ResponseFormatRejected
from .similarity import RougeLIndex

SURPLUS = "beyond --num-instructions"
LEDGER_FAILED, LEDGER_UNREADABLE = "request failed", "unreadable reply"  # rejects rows --retry-failed sends again
RECOVERED = "recovered:"  # cache entries: rows --retry-failed sent again (see GenerationLoop.recovered)
CAPABILITY_KEY = "capability:response_format_rejected:"
DONE, MAX_REQUESTS, REQUEST_BUDGET = "done", "max-requests", "request-budget"


def request_seed(run_seed: int, *parts: Any) -> int:
    """The `seed` sent with one request: fixed by the run's seed and the request's place in the run."""
    return random.Random(f"{run_seed}:" + ":".join(map(str, parts))).randrange(2**31)


def _endpoint_of(failure: dict[str, Any]) -> dict[str, Any]:
    """The endpoint and model of a failed request asked of another endpoint than --base-url (else nothing)."""
    return {"endpoint": failure["endpoint"], "model": failure["model"]} if "endpoint" in failure else {}


async def cancel_all(tasks: Any) -> None:
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class GenerationLoop:
    mode = "alpaca"

    def __init__(self, config: GenerateConfig, seeds: list[si.SeedTask], client: ChatClient, writer: RowWriter,
                 log: RunLog, failures: Any, instruction_rejects: str | None = None):
        self.config = config
        self.seeds = seeds
        self.client = client
        self.writer = writer
        self.log = log
        self.failures = failures
        self.instruction_rejects = instruction_rejects
        self.on_answer: Callable[[], None] | None = None  # progress display
        self.index = RougeLIndex(config.similarity_threshold)
        for s in seeds:
            self.index.add(s.instruction)
        self.kept_instructions = 0
        self.answered = 0
        self.unparsable_answers = 0
        self.lost_instructions = 0  # kept, but no record: their instances request failed (self-instruct)
        self.skipped_rows = 0  # rows not sent: the run stopped, or --retry-failed sends only the ledger's rows
        self.ledger_keys: set[str] = set()  # failed requests already in the rejects file
        self.budget_spent = False  # evol, pairs, chat: --max-requests requests started, later rows not sent
        self.started = 0  # requests started by send_plain (cache hits included)
        self.requests_limit = 0
        self.stop_reason: str | None = None
        self.prices: dict[str, Any] | None = None  # --prices, for --max-cost
        self._endpoints: dict[tuple[str | None, str], ChatClient] = {}
        self.form = "text" if config.response_format == "text" else "json"
        self._settled = asyncio.Event()
        self._probing = False
        if config.response_format != "auto" or (client.cache and client.cache.get(self._capability_key())):
            if config.response_format == "auto":
                self.form = "text"
            self._settled.set()

    # -- requests -----------------------------------------------------------------------------
    def params(self, form: str, *seed_parts: Any) -> dict[str, Any]:
        c = self.config
        p: dict[str, Any] = {"temperature": c.temperature, "top_p": c.top_p, "max_tokens": c.reply_tokens,
                             "seed": request_seed(c.seed, *seed_parts)}
        if form == "json":
            p["response_format"] = {"type": "json_object"}
        return p

    async def ask(self, build: Callable[[str], ChatRequest]) -> tuple[ChatResult, str]:
        """Send one request; in `auto` mode the first one goes alone and settles JSON vs text for the run."""
        if not self._settled.is_set():
            if self._probing:
                await self._settled.wait()
            else:
                self._probing = True
                try:
                    return await self._send(build)
                finally:
                    self._settled.set()
        return await self._send(build)

    async def _send(self, build: Callable[[str], ChatRequest]) -> tuple[ChatResult, str]:
        form = self.form
        try:
            result = await self.client.complete(build(form))
        except ResponseFormatRejected as e:
            if self.config.response_format == "json":
                raise InstructgenError(f"the endpoint rejects response_format (HTTP 400: {e}); "
                                       "use --response-format text or auto") from None
            self.form = form = "text"
            if self.client.cache is not None:
                self.client.cache.put(self._capability_key(), {"text": "", "rejected": True})
            result = await self.client.complete(build(form))
        self.answered += result.ok
        spend_check(self.client, self.config, self.prices)
        self.log.info["response_form"] = form
        if self.on_answer:
            self.on_answer()
        return result, form

    def sweep_failures(self) -> None:
        """Requests that failed for good and are not in the ledger yet (the run was done before their turn, or
        another request of the same row failed first): in the ledger too."""
        for failure in self.client.failures:
            if failure.get("key") not in self.ledger_keys:
                self.ledger_keys.add(failure.get("key"))
                self.drop(self.log, failure.get("tag") or "request", f"request failed: {failure.get('cause')}",
                          failure.get("raw"), kind="rejected", ledger=LEDGER_FAILED, key=failure.get("key"),
                          tag=failure.get("tag"), error=failure.get("error"), mode=self.mode,
                          row=failure.get("row") or failure.get("tag") or "request", **_endpoint_of(failure))

    def recovered(self, row: str) -> bool:
        """The row failed in an earlier run and --retry-failed recovered it (marked in the cache, so every later
        run decides alike): it is decided after all others, and changes nothing decided before, so no record
        of the earlier run is lost or changed by the retry."""
        return self.client.cache is not None and self.client.cache.get(RECOVERED + row) is not None

    def endpoint_client(self, base_url: str | None, model: str) -> ChatClient:
        """The client of another endpoint (--answer-endpoints, --user-base-url/--user-model): one per endpoint
        and model, sharing the run's cache, limits, usage, ledger and stop switch (ChatClient.sibling)."""
        if (base_url, model) == (self.config.base_url, self.config.model):
            return self.client
        key = (base_url, model)
        if key not in self._endpoints:
            config = self.config.model_copy(update={"base_url": base_url, "model": model})
            self._endpoints[key] = self.client.sibling(base_url, model, resolve_api_key(config))
        return self._endpoints[key]

    async def send_plain(self, messages: list[dict[str, str]], seed_parts: tuple, tag: str, row: str,
                         temperature: float | None = None, client: ChatClient | None = None) -> ChatResult:
        """One plain-text request of a row (evol, pairs, chat modes): the run's sampling (or `temperature`) and a
        `seed` fixed by `--seed` and `seed_parts`, to the run's endpoint or `client`'s."""
        c = self.config
        params = {"temperature": c.temperature if temperature is None else temperature, "top_p": c.top_p,
                  "max_tokens": c.reply_tokens, "seed": request_seed(c.seed, *seed_parts)}
        request = ChatRequest(messages, params, tag=tag, row=row)
        if c.max_requests and self.started >= c.max_requests:  # the cap: the row waits for a rerun with more
            self.budget_spent = True
            return ChatResult(request, "", error="not sent: --max-requests reached", interrupted=True)
        self.started += 1
        result = await (client or self.client).complete(request)
        self.answered += result.ok
        spend_check(self.client, self.config, self.prices)
        if self.on_answer:
            self.on_answer()
        return result

    def _capability_key(self) -> str:
        return CAPABILITY_KEY + self.config.model

    # -- accounting -----------------------------------------------------------------------------
    def drop(self, log: RunLog, origin: str, reason: str, raw: Any, kind: str = "filtered", **details: Any) -> None:
        log.took_in()
        log.drop(origin, reason, raw, kind=kind, **details)

    def unparsable(self, log: RunLog, origin: str, result: ChatResult) -> None:
        self.unreadable(log, origin, "unparsable response", result, result.text)

    def unreadable(self, log: RunLog, origin: str, reason: str, result: ChatResult | None, raw: Any,
                   row: str | None = None) -> None:
        """A reply nothing could be read from: in the rejects file (the ledger, with its request key so
        --retry-failed asks again) and in the failures file."""
        self.unparsable_answers += 1
        finish = result.finish_reason if result else None
        key = {"key": result.asked or result.key} if result else {}
        self.drop(log, origin, reason, raw, finish_reason=finish, ledger=LEDGER_UNREADABLE, mode=self.mode,
                  row=row or origin, **key)
        self.failures.write({"kind": reason, "origin": origin, "tag": result.request.tag if result else "",
                             "finish_reason": finish, "raw": raw, **key})

    def failed_request(self, log: RunLog, origin: str, result: ChatResult, **details: Any) -> None:
        """A request that failed for good, in the rejects file (the ledger): the cause, the error, the last raw
        reply and the request key (--retry-failed sends it again). Counted in as one rejected row."""
        if result.interrupted:
            self.skipped_rows += 1
            return
        self.ledger_keys.add(result.key)
        failure = next((f for f in reversed(self.client.failures) if f.get("key") == result.key), {})
        details.setdefault("mode", self.mode)
        details.setdefault("row", result.request.row or origin)
        details.update(_endpoint_of(failure))
        self.drop(log, origin, f"request failed: {failure.get('cause', 'error')}", failure.get("raw"),
                  kind="rejected", ledger=LEDGER_FAILED, key=result.asked or result.key, tag=result.request.tag,
                  error=result.error,
                  **details)

    def novel_instruction(self, log: RunLog, origin: str, instruction: str, raw: Any) -> bool:
        """Count the candidate in; True if it passes the rules and the diversity filter (not yet added)."""
        reason = instruction_problem(instruction, self.config.lang)
        if reason:
            self.drop(log, origin, reason, raw)
            return False
        match = self.index.most_similar_above(instruction)
        if match is not None:
            self.drop(log, origin, f"ROUGE-L > {self.config.similarity_threshold:g} against a kept instruction",
                      raw, kind="duplicates", similar_to=match.text, rouge_l=round(match.score, 4))
            return False
        log.took_in()
        return True

    @property
    def dump_options(self) -> DumpOptions:
        return DumpOptions(layout=self.config.layout)

    def write(self, instruction: str, inp: str, output: str, origin: str, meta: dict | None = None) -> None:
        conv = single_turn(instruction, inp, output, meta=meta)
        conv.origin = origin
        write_records([conv], self.writer, self.config.format, self.log, self.dump_options)

    def describe(self) -> str:
        u = self.client.usage
        logs = [lg for lg in (getattr(self, "instruction_log", None), self.log) if lg is not None]
        dropped = sum(sum(lg.dropped.values()) for lg in logs)
        return (f"{u.in_flight} in flight, {self.answered} answered ({u.cache_hits} cached), dropped {dropped}, "
                f"failed {u.failures}, tokens {u.prompt_tokens + u.completion_tokens}")

    def request_limit(self, per_request: int) -> int:
        c = self.config
        self.requests_limit = c.max_requests or 10 + 4 * math.ceil(c.num_instructions / per_request)
        return self.requests_limit

    def row_mode_stop_reason(self) -> str:
        """Why an evol, pairs or chat run ended: the client stopped, the --max-requests cap, or all rows done."""
        return self.client.stop_reason or (MAX_REQUESTS if self.budget_spent else DONE)

    def why_stopped(self) -> str:
        if self.client.stop_reason:
            return self.client.stop_reason
        if self.kept_instructions >= self.config.num_instructions:
            return DONE
        return MAX_REQUESTS if self.config.max_requests else REQUEST_BUDGET

    rows_per_slot = 1  # rows started per concurrency slot (chat: 4, its turns go one request at a time)

    def row_window(self) -> int:
        """Pairs, chat: rows started ahead of the one being decided: enough to keep the concurrency cap busy
        (rows are decided in order, so a long one holds the window), no more than the records still wanted
        (each row gives about one)."""
        busy = self.rows_per_slot * self.config.concurrency
        return max(1, min(busy, self.config.num_instructions - self.kept_instructions))

    async def finish_rows(self, tasks: Any) -> None:
        """Evol, pairs, chat: done. Nothing new is sent, and the requests in flight finish and are cached rather
        than cancelled: they are paid for, and a rerun with a larger -n replays them."""
        self.stop_reason = self.row_mode_stop_reason()
        self.client.stop(DONE)  # keeps an earlier reason (failing, interrupted)
        await asyncio.gather(*tasks, return_exceptions=True)

    async def settle(self, tasks: Any) -> None:
        """After the loop: a stopped run waits for the requests in flight (their answers get cached); a finished
        run cancels what it no longer needs."""
        if self.client.stopped:
            await asyncio.gather(*tasks, return_exceptions=True)
        else:
            await cancel_all(tasks)


class AlpacaRun(GenerationLoop):
    """One request asks for `tasks_per_request` tasks with input and output, shown 3 sampled seed tasks."""

    def build(self, k: int, form: str) -> ChatRequest:
        c = self.config
        rng = random.Random(f"{c.seed}:alpaca:{k}")
        examples = rng.sample(self.seeds, min(c.examples_per_request, len(self.seeds)))
        prompt = si.alpaca_prompt(examples, c.lang, form, c.tasks_per_request)
        return ChatRequest(si.user_message(prompt), self.params(form, "alpaca", k), tag=f"alpaca request {k}")

    async def run(self) -> None:
        c = self.config
        limit = self.request_limit(c.tasks_per_request)
        pending: dict[int, asyncio.Task] = {}
        deferred: list[tuple[int, ChatResult, str]] = []
        k = next_k = 0
        try:
            while self.kept_instructions < c.num_instructions and k < limit and not self.client.stopped:
                done = max(k, 1)
                per_request = max(0.5, self.kept_instructions / done if k else c.tasks_per_request / 2)
                want = max(1, min(c.concurrency, math.ceil((c.num_instructions - self.kept_instructions) / per_request)))
                while next_k < limit and next_k < k + want:
                    pending[next_k] = asyncio.create_task(self.ask(partial(self.build, next_k)))
                    next_k += 1
                result, form = await pending.pop(k)
                if self.recovered(f"request {k}"):
                    deferred.append((k, result, form))
                else:
                    self.absorb(k, result, form)
                k += 1
        except BaseException:
            await cancel_all(pending.values())
            raise
        await self.settle(pending.values())
        for late in deferred:
            self.absorb(*late)
        self.stop_reason = self.why_stopped()
        self.log.info["requests_planned"] = k

    def absorb(self, k: int, result: ChatResult, form: str) -> None:
        if not result.ok:
            self.failed_request(self.log, f"request {k}", result)
            return
        parse = si.parse_alpaca_json if form == "json" else si.parse_alpaca_text
        parsed = parse(result.text, result.finish_reason)
        origin = f"request {k}"
        if not parsed.items and not parsed.problems:
            self.unparsable(self.log, origin, result)
            return
        for reason, raw in parsed.problems:
            self.drop(self.log, origin, reason, raw)
        for n, task in enumerate(parsed.items):
            where = f"{origin} item {n}"
            raw = {"instruction": task.instruction, "input": task.input, "output": task.output}
            if output_problem(task.output):
                self.drop(self.log, where, "empty output", raw)
                continue
            if not self.novel_instruction(self.log, where, task.instruction, raw):
                continue
            if self.kept_instructions >= self.config.num_instructions:
                self.log.drop(where, SURPLUS, raw, kind="filtered")
                continue
            self.index.add(task.instruction)
            self.kept_instructions += 1
            self.write(task.instruction, task.input, task.output, where)


class SelfInstructRun(GenerationLoop):
    """Bootstrap (6 seeds + 2 generated in context) -> classify -> instances -> clean-up."""

    mode = "self-instruct"

    bootstrap_count = 8

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.instruction_log = RunLog("generate-instructions", self.instruction_rejects)
        # a growing pipeline's earlier rounds are machine-generated instructions, as in Self-Instruct's pool
        self.machine: list[str] = list(dict.fromkeys(s.instruction for s in self.seeds if s.machine))
        self.human = [s for s in self.seeds if not s.machine] or self.seeds
        clf = [s for s in self.human if s.is_classification][:6]
        other = [s for s in self.human if not s.is_classification][:6]
        self.classify_examples = [s for pair in zip(other, clf) for s in pair] + other[len(clf):] + clf[len(other):]
        self.unclear_classifications = 0

    def build_bootstrap(self, r: int, j: int, machine: list[str], form: str) -> ChatRequest:
        c = self.config
        rng = random.Random(f"{c.seed}:bootstrap:{r}:{j}")
        shown = rng.sample(machine, min(2, len(machine)))
        shown += [s.instruction for s in rng.sample(self.human, min(8 - len(shown), len(self.human)))]
        rng.shuffle(shown)
        prompt = si.bootstrap_prompt(shown, c.lang, form, self.bootstrap_count)
        return ChatRequest(si.user_message(prompt), self.params(form, "bootstrap", r, j), tag=f"bootstrap {r}.{j}")

    async def run(self) -> None:
        c = self.config
        limit = self.request_limit(self.bootstrap_count)
        chains: list[asyncio.Task] = []
        written = sent = r = 0
        try:
            while self.kept_instructions < c.num_instructions and sent < limit and not self.client.stopped:
                need = math.ceil((c.num_instructions - self.kept_instructions) / (self.bootstrap_count / 2))
                batch = max(1, min(c.concurrency, need, limit - sent))
                snapshot = list(self.machine)
                results = await asyncio.gather(*(self.ask(partial(self.build_bootstrap, r, j, snapshot))
                                                 for j in range(batch)))
                for j, (result, form) in enumerate(results):
                    for idx, instruction in self.absorb(f"bootstrap {r}.{j}", result, form):
                        chains.append(asyncio.create_task(self.chain(idx, instruction)))
                sent += batch
                r += 1
                written = self._write_done(chains, written)
            for task in chains[written:]:  # a stopped client answers at once: only requests in flight are waited for
                await task
            self._write_done(chains, written)
        except BaseException:
            await cancel_all(chains)
            raise
        self.stop_reason = self.why_stopped()
        self.log.info["unclear_classification_answers"] = self.unclear_classifications
        self.instruction_log.info["bootstrap_requests"] = sent

    def _write_done(self, chains: list[asyncio.Task], written: int) -> int:
        while written < len(chains) and chains[written].done():
            for instruction, inp, out, origin in chains[written].result():
                self.write(instruction, inp, out, origin)
            written += 1
        return written

    def absorb(self, origin: str, result: ChatResult, form: str) -> list[tuple[int, str]]:
        log = self.instruction_log
        if not result.ok:
            self.failed_request(log, origin, result)
            return []
        parsed = (si.parse_instructions_json if form == "json" else si.parse_instructions_text)(
            result.text, result.finish_reason)
        if not parsed.items and not parsed.problems:
            self.unparsable(log, origin, result)
            return []
        for reason, raw in parsed.problems:
            self.drop(log, origin, reason, raw)
        new = []
        for n, instruction in enumerate(parsed.items):
            where = f"{origin} item {n}"
            if not self.novel_instruction(log, where, instruction, instruction):
                continue
            if self.kept_instructions >= self.config.num_instructions:
                log.drop(where, SURPLUS, instruction, kind="filtered")
                continue
            self.index.add(instruction)
            self.machine.append(instruction)
            log.emitted()
            new.append((self.kept_instructions, instruction))
            self.kept_instructions += 1
        return new

    async def chain(self, idx: int, instruction: str) -> list[tuple[str, str, str, str]]:
        c = self.config
        origin = f"instruction {idx}"
        result, _ = await self.ask(lambda form: ChatRequest(
            si.user_message(si.classify_prompt(instruction, self.classify_examples, c.lang, form)),
            self.params(form, "classify", instruction), tag=f"classify {idx}", row=origin))
        is_clf = si.parse_classification(result.text) if result.ok else None
        if not result.ok:
            self.failed_request(self.log, origin, result, instruction=instruction,
                                consequence="classification taken as no")
        if result.ok and is_clf is None:
            self.unclear_classifications += 1
            self.failures.write({"kind": "unclear classification answer (taken as no)", "origin": origin,
                                 "raw": result.text})
        is_clf = bool(is_clf)
        rng = random.Random(f"{c.seed}:instances:{instruction}")
        pool = [s for s in self.human if s.is_classification == is_clf and s.instances] or \
               [s for s in self.human if s.instances]
        examples = rng.sample(pool, min(2, len(pool)))
        result, form = await self.ask(lambda form: ChatRequest(
            si.user_message(si.instances_prompt(instruction, examples, is_clf, c.lang, form)),
            self.params(form, "instances", instruction), tag=f"instances {idx}", row=origin))
        if not result.ok:
            self.lost_instructions += not result.interrupted
            self.failed_request(self.log, origin, result, instruction=instruction)
            return []
        parsed = (si.parse_instances_json if form == "json" else si.parse_instances_text)(
            result.text, result.finish_reason)
        if not parsed.items and not parsed.problems:
            self.unparsable(self.log, origin, result)
            return []
        for reason, raw in parsed.problems:
            self.drop(self.log, origin, reason, {"instruction": instruction, "raw": raw})
        kept, dropped = si.clean_instances(parsed.items)
        for kind, reason, (inp, out) in dropped:
            self.drop(self.log, origin, reason, {"instruction": instruction, "input": inp, "output": out}, kind=kind)
        self.log.took_in(len(kept))
        tag = "classification" if is_clf else "generation"
        return [(instruction, inp, out, f"{origin} ({tag}) instance {n}") for n, (inp, out) in enumerate(kept)]

