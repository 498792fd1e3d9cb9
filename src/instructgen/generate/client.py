"""The chat client: async `openai`, bounded concurrency, client-side rate limits, one retry policy, a cache.

    client = ChatClient(ClientConfig(base_url=..., model=..., concurrency=16), api_key, cache)
    result = await client.complete(ChatRequest(messages, {"temperature": 1.0, "seed": 7}))

`complete` never raises for a request that finally failed: the `ChatResult`
carries the error and the request is recorded in `client.failures` (with the
last raw answer, secrets scrubbed). Only a usable answer is cached. It raises
`ResponseFormatRejected` when the endpoint answers 400 to `response_format`
(the caller falls back to the plain-text prompt) and `InstructgenError` for
errors no retry can fix (bad key, unknown model). Retries: `retry.policy`.

`stop(reason)` ends the run's sending: no new attempt starts, retry waits end,
requests already in flight finish and are cached. The client stops itself
after `max_failures_in_a_row` requests in a row failed for good.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Sequence
from urllib.parse import urlparse

from ..errors import InstructgenError
from .cache import RequestCache, request_key
from .config import URL_CREDENTIALS, ClientConfig, redact_url, url_credentials
from .limits import RateLimiter, estimate_tokens
from .retry import AttemptFailed, Completion, RequestRefused, Stopped, classify, parse_completion, policy

LOCAL_PLACEHOLDER_KEY = "not-needed"
FAILING = "failing"  # stop reason: too many requests in a row failed for good
INTERRUPTED = "interrupted"  # stop reason: Ctrl-C
# sent through the SDK's `post` (its HTTP stack, headers and errors) with the body as JSON as it is: the typed
# `chat.completions.create` walks every message through its TypedDict transform, which cost more CPU than the
# rest of a request (benchmarks/generate.py); our bodies hold plain strings, numbers and dicts it leaves unchanged
CHAT_COMPLETIONS = "/chat/completions"
REASK = "reask:"  # cache entries: requests whose cached answer could not be read, to be sent again (--retry-failed)


@dataclass(slots=True)
class ChatRequest:
    messages: list[dict[str, str]]
    params: dict[str, Any]  # temperature, top_p, max_tokens, seed, response_format, ...
    tag: str = ""  # what the request is for (shown in failures)
    row: str = ""  # the row of the run it belongs to ("evolution 2.7"): --retry-failed sends whole rows


@dataclass(slots=True)
class ChatResult:
    request: ChatRequest
    key: str
    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    attempts: int = 0
    error: str | None = None
    interrupted: bool = False  # not sent (or not retried) because the run is stopping: not a failure
    started: float | None = None  # monotonic time of the first send
    deadline: float | None = None  # no wait may end past it: started + max_request_seconds
    asked: str = ""  # the key of the request as the loop built it (`key` differs once it is re-asked)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(slots=True)
class Usage:
    requests_sent: int = 0  # HTTP requests, retries included
    responses: int = 0  # usable answers received from the endpoint
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0  # requests that failed for good
    interrupted: int = 0  # requests not sent or not finished because the run stopped
    not_sent: int = 0  # requests --retry-failed did not send (not in the ledger, not in the cache)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    waited_seconds: float = 0.0  # time spent waiting before retries (backoff and Retry-After)
    longest_wait: float = 0.0
    in_flight: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # error kind -> attempts that failed with it
    causes: dict[str, int] = field(default_factory=dict)  # error kind -> requests that failed for good with it
    # model -> [prompt, completion] tokens paid, when one run asks several models (ChatClient.sibling)
    tokens_by_model: dict[str, list[int]] = field(default_factory=dict)

    def cost(self, prices: dict[str, Any] | None, model: str) -> float | None:
        """USD for the tokens paid in this run; prices: {model: {"prompt": usd_per_1M, "completion": ...}}, "*"
        for any model. Several models: each at its own price, None if one of them has none."""
        paid = self.tokens_by_model or {model: [self.prompt_tokens, self.completion_tokens]}
        total = 0.0
        for name, (prompt, completion) in paid.items():
            price = (prices or {}).get(name) or (prices or {}).get("*")
            if not price:
                return None
            total += (prompt * float(price.get("prompt", 0)) + completion * float(price.get("completion", 0))) / 1e6
        return total

    def paid(self, model: str, prompt: int, completion: int) -> None:
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        tokens = self.tokens_by_model.setdefault(model, [0, 0])
        tokens[0] += prompt
        tokens[1] += completion

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if k != "in_flight"}


def scrub(text: str, secret: str | Sequence[str] | None) -> str:
    """`text` without the API key (or each of several secrets), bearer and basic credentials, the user and
    password of any URL, or anything shaped like an OpenAI key."""
    for one in ([secret] if isinstance(secret, str) else secret or ()):
        if one and len(one) >= 4:
            text = text.replace(one, "***")
    text = URL_CREDENTIALS.sub(r"\1***@", text)
    text = re.sub(r"(?i)((?:bearer|basic)\s+)[^\s\"'<>]+", r"\1***", text)
    return re.sub(r"\bsk-[A-Za-z0-9_\-]{8,}", "sk-***", text)


class ChatClient:
    def __init__(self, config: ClientConfig, api_key: str, cache: RequestCache | None = None):
        from openai import AsyncOpenAI

        self.config = config
        self._api_key = api_key
        self.secrets = [api_key, *url_credentials(config.base_url)]  # what `scrub` removes from every text
        self.cache = cache
        self.usage = Usage()
        self.failures: list[dict[str, Any]] = []
        self.stop_reason: str | None = None
        self.failures_in_a_row = 0
        # --retry-failed: the request keys and rows of the ledger; a request of neither (not cached) is not sent
        self.only_keys: set[str] | None = None
        self.only_rows: set[str] = set()
        # the SDK's own retries are off: one policy (retry.policy) for every error, bad 200 answers included
        self._openai = AsyncOpenAI(api_key=api_key, base_url=config.base_url, timeout=config.timeout, max_retries=0)
        self._stopped = asyncio.Event()
        self._slots = asyncio.Semaphore(config.concurrency)
        self._rpm = RateLimiter(config.requests_per_minute) if config.requests_per_minute else None
        self._tpm = RateLimiter(config.tokens_per_minute) if config.tokens_per_minute else None
        self.cache_scope = ""  # the main endpoint's keys are (model, request); a sibling's add its endpoint
        self._siblings: list[ChatClient] = []
        self._leader: ChatClient | None = None

    # -- stopping -----------------------------------------------------------------------------
    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def stop(self, reason: str) -> None:
        if self._leader is not None:  # a sibling stops the run through the client the run watches
            self._leader.stop(reason)
        elif not self.stopped:
            self.stop_reason = reason
            self._stopped.set()

    # -- requests -----------------------------------------------------------------------------
    def key_of(self, request: ChatRequest) -> str:
        return request_key(self.config.model + self.cache_scope, request.messages, request.params)

    def sibling(self, base_url: str | None, model: str, api_key: str) -> "ChatClient":
        """A client for another endpoint of the same run: the same limits (each endpoint gets its own
        concurrency and rate caps), cache (keyed by endpoint and model), usage, failures list and stop switch,
        so a Ctrl-C, a budget or --max-failures-in-a-row stops every endpoint at once."""
        other = ChatClient(self.config.model_copy(update={"base_url": base_url, "model": model}), api_key, self.cache)
        other.cache_scope = "@" + (redact_url(base_url) or "openai")
        other.usage, other.failures, other._stopped, other._leader = self.usage, self.failures, self._stopped, self
        other.only_keys, other.only_rows = self.only_keys, self.only_rows
        self.secrets.extend(s for s in other.secrets if s not in self.secrets)
        other.secrets = self.secrets
        self._siblings.append(other)
        return other

    async def complete(self, request: ChatRequest) -> ChatResult:
        asked = self.key_of(request)
        request, key = self._reasked(request, asked)
        hit = self._cached(key)
        if hit is not None:
            return ChatResult(request, key, hit["text"], hit.get("finish_reason"), hit.get("prompt_tokens", 0),
                              hit.get("completion_tokens", 0), cached=True, asked=asked)
        result = ChatResult(request, key, asked=asked)
        if self.only_keys is not None and asked not in self.only_keys and request.row not in self.only_rows:
            result.error, result.interrupted = "not sent: --retry-failed sends only the rows of the ledger", True
            self.usage.not_sent += 1
            return result
        try:
            done = await policy(self.config, self._stopped, self._sleep, self._before_sleep,
                                lambda: result.deadline)(self._attempt, request, result)
        except Stopped:
            return self._interrupted(result)
        except (AttemptFailed, RequestRefused) as e:
            if self.stopped and isinstance(e, AttemptFailed):  # stopped while retrying: not a failure of its own
                return self._interrupted(result)
            self._failed(result, e)
            return result
        self._succeeded(result, done)
        return result

    def reask(self, key: str) -> None:
        """Ask the request with this key again although its answer is cached (the answer could not be read):
        from now on it is sent with another `seed`, so the endpoint samples a new answer (kept in the cache)."""
        if self.cache is not None:
            done = self.cache.get(REASK + key) or {}
            self.cache.put(REASK + key, {"text": "", "times": int(done.get("times", 0)) + 1})

    def _reasked(self, request: ChatRequest, key: str) -> tuple[ChatRequest, str]:
        salt = self.cache.get(REASK + key) if self.cache is not None else None
        if not salt:
            return request, key
        seed = int(hashlib.sha256(f"{request.params.get('seed', 0)}:reask:{salt['times']}".encode()).hexdigest()[:8],
                   16) % 2**31
        again = ChatRequest(request.messages, {**request.params, "seed": seed}, request.tag, request.row)
        return again, self.key_of(again)

    def _cached(self, key: str) -> dict[str, Any] | None:
        """A usable cached answer; an empty one (cached by an older version) counts as a miss."""
        hit = self.cache.get(key) if self.cache is not None else None
        if hit is None or not isinstance(hit.get("text"), str) or not hit["text"].strip():
            return None
        self.usage.cache_hits += 1
        self.usage.cached_prompt_tokens += hit.get("prompt_tokens", 0)
        self.usage.cached_completion_tokens += hit.get("completion_tokens", 0)
        return hit

    async def _attempt(self, request: ChatRequest, result: ChatResult) -> Completion:
        if self.stopped:
            raise Stopped()
        result.attempts += 1
        async with self._slots:
            await self._pace(request)
            if self.stopped:
                raise Stopped()
            now = time.monotonic()
            if result.deadline is None:  # the request's total time runs from its first send
                result.started, result.deadline = now, now + self.config.max_request_seconds
            self.usage.requests_sent += 1
            self.usage.in_flight += 1
            try:
                # httpx's read timeout restarts with every byte: only an overall deadline stops a trickling body
                async with asyncio.timeout(max(0.01, min(self.config.timeout, result.deadline - now))):
                    body = await self._openai.post(CHAT_COMPLETIONS, cast_to=bytes, body={
                        "model": self.config.model, "messages": request.messages, **request.params})
            except Exception as e:  # noqa: BLE001 - classify() sorts them; anything unknown is re-raised
                error = classify(e, request.params, self.config.model, self._scrub)
                if isinstance(error, AttemptFailed):
                    self._count(error.kind)
                raise error from None
            finally:
                self.usage.in_flight -= 1
        try:
            return parse_completion(body)
        except AttemptFailed as e:
            e.raw = self._scrub(e.raw or "")
            self._count(e.kind)
            raise

    async def _pace(self, request: ChatRequest) -> None:
        if self.stopped:
            raise Stopped()
        if self._rpm:
            await self._rpm.acquire(1)
        if self._tpm:
            await self._tpm.acquire(estimate_tokens(request.messages, request.params.get("max_tokens")))

    async def _sleep(self, seconds: float) -> None:
        """A retry wait that ends early when the run stops."""
        try:
            await asyncio.wait_for(self._stopped.wait(), timeout=seconds)
        except TimeoutError:
            pass

    def _before_sleep(self, state: Any) -> None:
        self.usage.retries += 1
        self.usage.waited_seconds += state.upcoming_sleep
        self.usage.longest_wait = max(self.usage.longest_wait, state.upcoming_sleep)

    def _succeeded(self, result: ChatResult, done: Completion) -> None:
        self.failures_in_a_row = 0
        self.usage.responses += 1
        result.text, result.finish_reason = done.text, done.finish_reason
        result.prompt_tokens, result.completion_tokens = done.prompt_tokens, done.completion_tokens
        self.usage.paid(self.config.model, done.prompt_tokens, done.completion_tokens)
        if self.cache is not None:
            self.cache.put(result.key, {"text": done.text, "finish_reason": done.finish_reason,
                                        "prompt_tokens": done.prompt_tokens,
                                        "completion_tokens": done.completion_tokens})

    def _interrupted(self, result: ChatResult) -> ChatResult:
        result.error, result.interrupted = "not finished: the run is stopping", True
        self.usage.interrupted += 1
        return result

    def _failed(self, result: ChatResult, error: AttemptFailed | RequestRefused) -> None:
        cfg = self.config
        elapsed = time.monotonic() - (result.started or time.monotonic())
        if isinstance(error, RequestRefused):
            result.error = error.message
        elif result.attempts < cfg.max_attempts:
            result.error = (f"gave up after {_attempts(result.attempts)} and {elapsed:.0f} s: the next wait would pass "
                            f"--max-request-seconds {cfg.max_request_seconds:g}; last error: {error.message}")
        else:
            result.error = f"gave up after {_attempts(result.attempts)}; last error: {error.message}"
        self.usage.failures += 1
        self.usage.causes[error.kind] = self.usage.causes.get(error.kind, 0) + 1
        entry = {"kind": "request failed", "tag": result.request.tag, "row": result.request.row, "cause": error.kind,
                 "error": result.error,
                 "attempts": result.attempts, "key": result.key, "messages": result.request.messages}
        if error.raw:
            entry["raw"] = error.raw
        if self.cache_scope:  # a sibling endpoint: say which one failed
            entry["endpoint"], entry["model"] = self.config.redacted_base_url, self.config.model
        self.failures.append(entry)
        self.failures_in_a_row += 1
        if self.failures_in_a_row >= cfg.max_failures_in_a_row:
            self.stop(FAILING)

    def _count(self, kind: str) -> None:
        self.usage.errors[kind] = self.usage.errors.get(kind, 0) + 1

    def _scrub(self, text: str) -> str:
        return scrub(text, self.secrets)

    async def aclose(self) -> None:
        for other in self._siblings:
            await other.aclose()
        await self._openai.close()


def _attempts(n: int) -> str:
    return f"{n} attempt{'s' if n != 1 else ''}"


# -- the API key ---------------------------------------------------------------------------------

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


def resolve_api_key(config: ClientConfig) -> str:
    """The key from the named variable; a placeholder for local endpoints; never echoed anywhere."""
    key = os.environ.get(config.api_key_env, "").strip()
    if key:
        return key
    if is_local(config.base_url):
        return LOCAL_PLACEHOLDER_KEY
    where = f"for {config.redacted_base_url}" if config.base_url else "for the OpenAI API"
    raise InstructgenError(f"no API key {where}: set the environment variable {config.api_key_env} "
                           "(or name another one with --api-key-env)")
