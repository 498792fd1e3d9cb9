"""The chat client: async `openai`, bounded concurrency, client-side rate limits, sane retries, a cache.

    client = ChatClient(ClientConfig(base_url=..., model=..., concurrency=16), api_key, cache)
    result = await client.complete(ChatRequest(messages, {"temperature": 1.0, "seed": 7}))

`complete` never raises for a request that finally failed: the `ChatResult`
carries the error and the request is recorded in `client.failures`. It raises
`ResponseFormatRejected` when the endpoint answers 400 to `response_format`
(the caller falls back to the plain-text prompt) and `InstructgenError` for
errors no retry can fix (bad key, unknown model). Retries: 429, 5xx,
timeouts and connection errors, exponential backoff with full jitter, at
least the server's `Retry-After`, at most `max_attempts` attempts.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import InstructgenError
from .cache import RequestCache, request_key


@dataclass(slots=True)
class ClientConfig:
    model: str = "gpt-4o-mini"
    base_url: str | None = None
    concurrency: int = 16
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    timeout: float = 120.0
    max_attempts: int = 6
    backoff_base: float = 1.0
    backoff_cap: float = 60.0


@dataclass(slots=True)
class ChatRequest:
    messages: list[dict[str, str]]
    params: dict[str, Any]  # temperature, top_p, max_tokens, seed, response_format, ...
    tag: str = ""  # what the request is for (shown in failures)


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

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(slots=True)
class Usage:
    requests_sent: int = 0  # HTTP requests, retries included
    responses: int = 0  # answers received from the endpoint
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    in_flight: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # error kind -> count (retried or not)

    def cost(self, prices: dict[str, Any] | None, model: str) -> float | None:
        """USD for the tokens paid in this run; prices: {model: {"prompt": usd_per_1M, "completion": ...}}."""
        price = (prices or {}).get(model) or (prices or {}).get("*")
        if not price:
            return None
        return (self.prompt_tokens * float(price.get("prompt", 0)) +
                self.completion_tokens * float(price.get("completion", 0))) / 1e6

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if k != "in_flight"}


class ResponseFormatRejected(Exception):
    """The endpoint answered 400 to a request with `response_format`."""


class RateLimiter:
    """A leaky bucket: at most `per_minute` units a minute, bursts of up to a tenth of that."""

    def __init__(self, per_minute: float):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, per_minute / 10.0)
        self.level = 0.0
        self.last = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self, amount: float = 1.0) -> None:
        amount = min(amount, self.capacity)  # one oversized request must still pass, alone
        async with self._lock:
            while True:
                now = time.monotonic()
                self.level = max(0.0, self.level - (now - self.last) * self.rate)
                self.last = now
                if self.level + amount <= self.capacity:
                    self.level += amount
                    return
                await asyncio.sleep((self.level + amount - self.capacity) / self.rate)


def estimate_tokens(messages: list[dict[str, str]], max_tokens: int | None) -> int:
    """A cheap upper-ish estimate for TPM budgeting: ~4 characters a token, 1 per CJK character."""
    chars = sum(len(m.get("content") or "") for m in messages)
    cjk = sum(1 for m in messages for ch in (m.get("content") or "") if "\u3400" <= ch <= "\u9fff")
    return (chars - cjk) // 4 + cjk + 8 * len(messages) + (max_tokens or 1024)


def retry_after_seconds(headers: Any) -> float | None:
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return float(value) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


class ChatClient:
    def __init__(self, config: ClientConfig, api_key: str, cache: RequestCache | None = None,
                 jitter_seed: int | None = None):
        from openai import AsyncOpenAI

        self.config = config
        self._api_key = api_key
        self.cache = cache
        self.usage = Usage()
        self.failures: list[dict[str, Any]] = []
        self._openai = AsyncOpenAI(api_key=api_key, base_url=config.base_url, timeout=config.timeout,
                                   max_retries=0)
        self._slots = asyncio.Semaphore(max(1, config.concurrency))
        self._rpm = RateLimiter(config.requests_per_minute) if config.requests_per_minute else None
        self._tpm = RateLimiter(config.tokens_per_minute) if config.tokens_per_minute else None
        self._jitter = random.Random(jitter_seed)  # timing only; never affects what is generated

    def key_of(self, request: ChatRequest) -> str:
        return request_key(self.config.model, request.messages, request.params)

    async def complete(self, request: ChatRequest) -> ChatResult:
        key = self.key_of(request)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.usage.cache_hits += 1
                self.usage.cached_prompt_tokens += hit.get("prompt_tokens", 0)
                self.usage.cached_completion_tokens += hit.get("completion_tokens", 0)
                return ChatResult(request, key, hit["text"], hit.get("finish_reason"), hit.get("prompt_tokens", 0),
                                  hit.get("completion_tokens", 0), cached=True)
        result = ChatResult(request, key)
        async with self._slots:
            self.usage.in_flight += 1
            try:
                await self._attempts(request, result)
            finally:
                self.usage.in_flight -= 1
        if result.ok:
            if self.cache is not None:
                self.cache.put(key, {"text": result.text, "finish_reason": result.finish_reason,
                                     "prompt_tokens": result.prompt_tokens,
                                     "completion_tokens": result.completion_tokens})
        else:
            self.usage.failures += 1
            self.failures.append({"key": key, "tag": request.tag, "error": result.error, "attempts": result.attempts,
                                  "messages": request.messages, "params": request.params})
        return result

    async def _attempts(self, request: ChatRequest, result: ChatResult) -> None:
        import openai

        cfg = self.config
        for attempt in range(1, cfg.max_attempts + 1):
            result.attempts = attempt
            if self._rpm:
                await self._rpm.acquire(1)
            if self._tpm:
                await self._tpm.acquire(estimate_tokens(request.messages, request.params.get("max_tokens")))
            self.usage.requests_sent += 1
            wait_at_least = 0.0
            try:
                response = await self._openai.chat.completions.create(
                    model=cfg.model, messages=request.messages, **request.params)
            except openai.BadRequestError as e:
                if "response_format" in request.params:
                    raise ResponseFormatRejected(self._scrub(str(e))) from None
                self._count("400")
                result.error = f"400 bad request: {self._scrub(str(e))}"
                return
            except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
                raise InstructgenError(
                    f"the endpoint refused the API key (HTTP {e.status_code}); check the key in the variable "
                    "named by --api-key-env") from None
            except openai.NotFoundError as e:
                raise InstructgenError(f"the endpoint answered 404 for model {cfg.model!r}: {self._scrub(str(e))}; "
                                       "check --model and --base-url") from None
            except openai.APIStatusError as e:
                kind = str(e.status_code)
                self._count(kind)
                if e.status_code != 429 and e.status_code < 500:
                    result.error = f"HTTP {e.status_code}: {self._scrub(str(e))}"
                    return
                result.error = f"HTTP {e.status_code}: {self._scrub(str(e))}"
                wait_at_least = retry_after_seconds(e.response.headers) or 0.0
            except openai.APITimeoutError:
                self._count("timeout")
                result.error = f"timed out after {cfg.timeout:g} s"
            except openai.APIConnectionError as e:
                self._count("connection")
                result.error = f"connection error: {self._scrub(str(e))}"
            else:
                self._take(response, result)
                return
            if attempt == cfg.max_attempts:
                result.error = f"gave up after {attempt} attempts; last error: {result.error}"
                return
            self.usage.retries += 1
            backoff = self._jitter.uniform(0, min(cfg.backoff_cap, cfg.backoff_base * 2 ** (attempt - 1)))
            await asyncio.sleep(max(wait_at_least, backoff))

    def _take(self, response: Any, result: ChatResult) -> None:
        self.usage.responses += 1
        result.error = None
        choice = response.choices[0] if response.choices else None
        result.text = (choice.message.content or "") if choice else ""
        result.finish_reason = choice.finish_reason if choice else None
        if response.usage is not None:
            result.prompt_tokens = response.usage.prompt_tokens or 0
            result.completion_tokens = response.usage.completion_tokens or 0
        self.usage.prompt_tokens += result.prompt_tokens
        self.usage.completion_tokens += result.completion_tokens

    def _count(self, kind: str) -> None:
        self.usage.errors[kind] = self.usage.errors.get(kind, 0) + 1

    def _scrub(self, text: str) -> str:
        if self._api_key and len(self._api_key) >= 4:
            text = text.replace(self._api_key, "***")
        return text[:500]

    async def aclose(self) -> None:
        await self._openai.close()
