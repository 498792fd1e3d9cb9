"""One retry policy for every chat request (tenacity), and what counts as a usable answer.

    classify(exc, params) -> the exception to raise for what one attempt raised:
        AttemptFailed (retried: 408/409/429/5xx, timeouts, connection errors), RequestRefused (recorded, not
        retried: other 4xx), ResponseFormatRejected (400 to response_format), InstructgenError (bad key, 404,
        a 429 that says the quota is spent: `insufficient_quota` stops the run at once)
    parse_completion(body: bytes) -> Completion, or BadAnswer (an AttemptFailed): a 200 whose body is not
        JSON (an HTML page from a proxy, garbage, a truncated body), has no choices, or null/empty content
    policy(config, stopped, sleep, before_sleep, deadline) -> tenacity.AsyncRetrying: at most `max_attempts`;
        waits max(Retry-After cut to `max_retry_after`, exponential backoff with full jitter); never starts a
        wait that would end past the request's deadline (`max_request_seconds` after its first attempt was
        sent: time spent queueing for a concurrency slot does not count); stops at once when `stopped` is set
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import orjson
from tenacity import (AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, stop_when_event_set,
                      wait_random_exponential)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from ..errors import InstructgenError
from .config import ClientConfig

BACKOFF_CAP = 60.0  # seconds: the longest backoff of our own (the server's Retry-After has its own cap)
RAW_LIMIT = 100_000  # characters of a bad answer kept for the failures file
# 429 codes that say the account cannot pay (OpenAI: insufficient_quota; Azure: quota exceeded): waiting never helps
PERMANENT_429 = ("insufficient_quota", "billing_hard_limit_reached", "billing_not_active")


class ResponseFormatRejected(Exception):
    """The endpoint answered 400 to a request with `response_format`."""


class Stopped(Exception):
    """The run is stopping (Ctrl-C, or too many failures in a row): no new attempt is made."""


class RequestRefused(Exception):
    """An answer no retry can change (a 4xx other than 408/409/429): the request is recorded as failed."""

    def __init__(self, kind: str, message: str, raw: str | None = None):
        super().__init__(message)
        self.kind, self.message, self.raw = kind, message, raw


class AttemptFailed(Exception):
    """One attempt failed in a way a retry may fix; `retry_after` is what the server asked for, if anything."""

    def __init__(self, kind: str, message: str, retry_after: float | None = None, raw: str | None = None):
        super().__init__(message)
        self.kind, self.message, self.retry_after, self.raw = kind, message, retry_after, raw


class BadAnswer(AttemptFailed):
    """A 200 answer that is not a usable chat completion."""

    def __init__(self, why: str, raw: bytes | str):
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        super().__init__(f"bad answer: {why}", f"a 200 answer that is not a usable chat completion: {why}",
                         raw=text[:RAW_LIMIT])


@dataclass(slots=True)
class Completion:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int


def parse_completion(body: bytes) -> Completion:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        head = body.lstrip()[:15].lower()
        raise BadAnswer("an HTML page" if head.startswith((b"<!doctype", b"<html")) else "not JSON", body) from None
    choices = doc.get("choices") if isinstance(doc, dict) else None
    if not isinstance(choices, list) or not choices:
        raise BadAnswer("no choices", body)
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if content is None:
        refusal = message.get("refusal") if isinstance(message, dict) else None
        raise BadAnswer(f"refused: {refusal}" if isinstance(refusal, str) and refusal else "null content", body)
    if not isinstance(content, str) or not content.strip():
        raise BadAnswer("empty content", body)
    usage = doc.get("usage") if isinstance(doc.get("usage"), dict) else {}
    return Completion(content, choices[0].get("finish_reason"), _count(usage, "prompt_tokens"),
                      _count(usage, "completion_tokens"))


def _count(usage: dict[str, Any], name: str) -> int:
    value = usage.get(name)
    return value if isinstance(value, int) and value >= 0 else 0


def retry_after_seconds(headers: Any) -> float | None:
    """The server's Retry-After (seconds or an HTTP date; or retry-after-ms), or None."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, parsed.timestamp() - time.time())


def classify(exc: BaseException, params: dict[str, Any], model: str, scrub: Callable[[str], str]) -> Exception:
    """What an exception from the openai SDK means for the request (see the module docstring)."""
    import openai

    if isinstance(exc, TimeoutError):  # our overall deadline (asyncio.timeout)
        return AttemptFailed("timeout", "no complete answer within --timeout")
    if isinstance(exc, openai.APITimeoutError):
        return AttemptFailed("timeout", "timed out (httpx)")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        detail = scrub(str(cause or exc) or type(cause).__name__)
        if type(cause).__name__ == "RemoteProtocolError":  # reached, but the answer broke off (or was not HTTP)
            return AttemptFailed("protocol", "broken answer: " + detail)
        return AttemptFailed("connection", "connection error: " + detail)
    if not isinstance(exc, openai.APIStatusError):
        return exc if isinstance(exc, Exception) else RuntimeError(repr(exc))
    status = exc.status_code
    raw = scrub(exc.response.text[:RAW_LIMIT]) if exc.response is not None else None
    detail = f"HTTP {status}: {scrub(str(exc))[:300]}"
    if status == 400 and "response_format" in params:
        return ResponseFormatRejected(detail)
    if status in (401, 403):
        return InstructgenError(f"the endpoint refused the API key (HTTP {status}); check the key in the variable "
                                "named by --api-key-env")
    if status == 404:
        return InstructgenError(f"the endpoint answered 404 for model {model!r}: {scrub(str(exc))[:300]}; "
                                "check --model and --base-url")
    if status == 429 and _error_code(exc) in PERMANENT_429:
        return InstructgenError(f"the endpoint refuses every request: HTTP 429 {_error_code(exc)}: "
                                f"{scrub(_error_message(exc))[:300]}; no retry can fix that: add credit or quota to "
                                "the account (or use another key or --base-url), then rerun the same command")
    if status in (408, 409, 429) or status >= 500:
        return AttemptFailed(str(status), detail, retry_after_seconds(exc.response.headers), raw)
    return RequestRefused(str(status), detail, raw)


def _error_field(exc: Any, name: str) -> str:
    """`error.<name>` of an OpenAI-style error body ('' when there is none)."""
    body = getattr(exc, "body", None)
    error = body.get("error", body) if isinstance(body, dict) else None
    value = error.get(name) if isinstance(error, dict) else None
    return value if isinstance(value, str) else ""


def _error_code(exc: Any) -> str:
    return _error_field(exc, "code") or _error_field(exc, "type")


def _error_message(exc: Any) -> str:
    return _error_field(exc, "message") or str(exc)


class wait_retry_after(wait_base):
    """The server's Retry-After (cut to `cap`) or our backoff with full jitter, whichever is longer."""

    def __init__(self, backoff: float, cap: float):
        self.backoff = wait_random_exponential(multiplier=backoff, max=BACKOFF_CAP)
        self.cap = cap

    def __call__(self, retry_state: RetryCallState) -> float:
        ours = self.backoff(retry_state)
        told = getattr(retry_state.outcome.exception(), "retry_after", None) if retry_state.outcome else None
        return ours if told is None else max(min(told, self.cap), ours)


class stop_before_deadline(stop_base):
    """Stop when the next wait would end past the deadline (None: no deadline yet)."""

    def __init__(self, deadline: Callable[[], float | None]):
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        deadline = self.deadline()
        return deadline is not None and time.monotonic() + retry_state.upcoming_sleep >= deadline


def policy(config: ClientConfig, stopped: Any, sleep: Callable[[float], Awaitable[None]],
           before_sleep: Callable[[RetryCallState], None], deadline: Callable[[], float | None]) -> AsyncRetrying:
    return AsyncRetrying(
        retry=retry_if_exception_type(AttemptFailed),
        wait=wait_retry_after(config.retry_backoff, config.max_retry_after),
        stop=stop_after_attempt(config.max_attempts) | stop_before_deadline(deadline) | stop_when_event_set(stopped),
        sleep=sleep, before_sleep=before_sleep, reraise=True)
