"""The one place for talking to the Hub: the token, the client, the retry policy and error messages.

    resolve_token(token_env="HF_TOKEN", required=True) -> str | None
    hub_client(token, endpoint=None) -> Hub                  an HfApi, its endpoint and the token (for scrubbing)
    HUB_RETRY.call(fn, what, hub)                            fn() retried on transient failures (tenacity)
    hub_errors(hub, repo_id, revision=None, access="read")   a context: any Hub failure -> one scrubbed HubError line

Transient = HTTP 408, 429 and 5xx, or no answer at all (refused, reset, timed out, cut). Everything
else (401, 403, 404, a bad request) fails at once: waiting cannot fix it. huggingface_hub already
retries LFS uploads and resumes cut downloads inside one call; this policy wraps whole calls.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

from ..errors import InstructgenError

T = TypeVar("T")
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class HubError(InstructgenError):
    """A Hub call failed; the message is one line and never holds the token."""


# -- the token and the client ---------------------------------------------------------------------

def resolve_token(token_env: str = "HF_TOKEN", required: bool = True) -> str | None:
    """The token from $token_env, else from the Hub's login cache (`hf auth login`); never printed."""
    value = os.environ.get(token_env, "").strip()
    if value:
        return value
    from huggingface_hub import constants

    cache = Path(constants.HF_TOKEN_PATH)
    if cache.is_file():
        cached = cache.read_text(encoding="utf-8").strip()
        if cached:
            return cached
    if required:
        raise HubError(f"no Hugging Face token: set {token_env} (a token with write access) or run `hf auth login`")
    return None


def scrub(text: str, token: str | None) -> str:
    """`text` without the token, nor the user and password of any URL in it (`https://user:KEY@host`)."""
    text = text.replace(token, "***") if token else text
    return re.sub(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/?#'\"<>@]+@", r"\1***@", text)


def one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.strip().splitlines() if line.strip())[:400]


@dataclass(slots=True)
class Hub:
    """A client for one Hub endpoint with one token (or none)."""

    api: Any  # huggingface_hub.HfApi
    endpoint: str
    token: str | None
    token_env: str = "HF_TOKEN"


def hub_client(token: str | None, endpoint: str | None = None, token_env: str = "HF_TOKEN") -> Hub:
    from huggingface_hub import HfApi, constants

    endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
    return Hub(HfApi(endpoint=endpoint, token=token or False), endpoint, token, token_env)


# -- what failed ----------------------------------------------------------------------------------

def causes(e: BaseException) -> Iterable[BaseException]:
    seen = set()
    current: BaseException | None = e
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def status_of(e: BaseException) -> int | None:
    for c in causes(e):
        code = getattr(getattr(c, "response", None), "status_code", None)
        if isinstance(code, int):
            return code
    return None


def response_of(e: BaseException) -> Any:
    return next((c.response for c in causes(e) if getattr(c, "response", None) is not None), None)


_TRANSPORT_NAMES = ("ConnectError", "TimeoutException", "ReadTimeout", "ConnectTimeout", "WriteTimeout",
                    "PoolTimeout", "ReadError", "WriteError", "RemoteProtocolError", "NetworkError")


def is_transport(e: BaseException) -> bool:
    """A network failure with no HTTP answer (connection refused, reset, timeout, a cut response)."""
    for c in causes(e):
        if isinstance(c, (ConnectionError, TimeoutError)):
            return True
        if type(c).__module__.split(".")[0] in ("httpx", "httpx2") and type(c).__name__.endswith(_TRANSPORT_NAMES):
            return True
    return False


def is_transient(e: BaseException) -> bool:
    if isinstance(e, InstructgenError):
        return False
    status = status_of(e)
    return status in TRANSIENT_STATUS or (status is None and is_transport(e))


# -- the retry policy -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long a Hub call is retried on a transient failure (exponential backoff, jitter)."""

    attempts: int = 4
    first_wait: float = 1.0
    max_wait: float = 8.0

    def call(self, fn: Callable[[], T], what: str, hub: Hub | None = None,
             transient: Callable[[BaseException], bool] = is_transient) -> T:
        """fn(), again after a transient failure; each retry is announced on stderr (scrubbed)."""
        import tenacity

        token = hub.token if hub else None

        def announce(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            print(f"instructgen: {what}: {one_line(scrub(str(error), token)) or type(error).__name__}; retrying "
                  f"({state.attempt_number}/{self.attempts - 1}) in {state.upcoming_sleep:.1f} s", file=sys.stderr)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=tenacity.wait_exponential(multiplier=self.first_wait, max=self.max_wait)
                 + tenacity.wait_random(0, self.first_wait),
            retry=tenacity.retry_if_exception(transient),
            before_sleep=announce,
            reraise=True,
        )
        return retrying(fn)


HUB_RETRY = RetryPolicy()  # the one policy for every call to the Hub


# -- one line for the user ------------------------------------------------------------------------

class hub_errors:  # noqa: N801 - used as a `with` block
    """Turns any exception from a Hub call into one scrubbed HubError that says what to do."""

    def __init__(self, hub: Hub, repo_id: str, revision: str | None = None, access: str = "read"):
        self.hub, self.repo_id, self.revision, self.access = hub, repo_id, revision, access

    def __enter__(self) -> "hub_errors":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or isinstance(exc, (InstructgenError, KeyboardInterrupt)):
            return False
        raise HubError(scrub(self.message(exc), self.hub.token)) from None

    def message(self, e: BaseException) -> str:
        from huggingface_hub.errors import (EntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError,
                                            RevisionNotFoundError)

        endpoint, status, response = self.hub.endpoint, status_of(e), response_of(e)
        kinds = tuple(type(c) for c in causes(e))
        detail = one_line(str(e)) or type(e).__name__

        def raised(*types: type) -> bool:
            return any(issubclass(k, types) for k in kinds)

        if raised(OfflineModeIsEnabled):
            return f"HF_HUB_OFFLINE is set, so the Hub at {endpoint} is not contacted; unset it to go online"
        if status is None and is_transport(e):
            return f"cannot reach the Hub at {endpoint}: {detail}; check your network or HF_ENDPOINT"
        if response is not None and not _from_a_hub(response):
            return (f"cannot reach the Hub at {endpoint}: something answered HTTP {status} without the Hub's "
                    f"headers (a proxy or firewall?); check your network or HF_ENDPOINT")
        if status == 401:
            if not self.hub.token:
                return f"the Hub at {endpoint} needs a token for {self.repo_id}: set {self.hub.token_env}"
            return (f"the Hub at {endpoint} rejected the token from ${self.hub.token_env} or the login cache "
                    f"(401 Unauthorized); set {self.hub.token_env} to a valid token with {self.access} access")
        if raised(RevisionNotFoundError):
            return f"{self.repo_id}: revision {self.revision!r} not found on {endpoint}"
        if raised(EntryNotFoundError):
            return f"{self.repo_id}: a file is missing at this revision ({detail})"
        if status == 404 or raised(RepositoryNotFoundError):
            return (f"dataset repo {self.repo_id} not found on {endpoint} (or it is private and the token cannot "
                    f"read it)")
        if status == 403:
            return f"no {self.access} access to {self.repo_id} with this token (403 Forbidden)"
        return f"Hub error on {self.repo_id}: {detail}"


def _from_a_hub(response: Any) -> bool:
    """Hub errors carry X-Error-* / X-Request-Id headers or a JSON body; a proxy's bare 404 does not."""
    headers = {k.lower() for k in response.headers}
    if headers & {"x-error-code", "x-error-message", "x-request-id", "x-repo-commit"}:
        return True
    return "json" in response.headers.get("content-type", "")
