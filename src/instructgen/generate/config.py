"""The generate stage's settings: ONE pydantic model, used as the `[generate]` TOML section, as the source of
`instructgen generate`'s flags (through `cli.options.add_options`) and as the library argument.

    ClientConfig     the endpoint, concurrency, rate limits, timeout and retry policy (what `ChatClient` takes)
    GenerateConfig   ClientConfig + what to generate (seeds, count, mode, language, sampling, filter, output)

Each field is defined once, with its one default and a description (the flag's help). Unknown keys are errors.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# `scheme://user:password@host`: the userinfo of any URL in a text (it may hold a key)
URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/?#'\"<>@]+@")


def redact_url(url: str | None) -> str | None:
    """`url` with any user and password replaced by `***` (what may be shown, logged or stored)."""
    return URL_CREDENTIALS.sub(r"\1***@", url) if url else url


def url_credentials(url: str | None) -> list[str]:
    """The password written in `url` (raw and decoded), to scrub from any text; a user name alone counts as
    one when it is long enough to be a key (`http://KEY@host`), a short one (`user`) would scrub common words."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    secret = parts.password or (parts.username if parts.username and len(parts.username) >= 8 else None)
    found = {v for v in (secret, unquote(secret or "")) if v and len(v) >= 4}
    return sorted(found, key=len, reverse=True)


class ClientConfig(BaseModel):
    """How to talk to the endpoint: one retry policy for every request (tenacity), one overall deadline each.

    A key written into `base_url` (`http://user:KEY@host/v1`) is never shown: `redacted_base_url` is what
    messages use, `repr()` and `redacted_dump()` (for logs, Prefect parameters, reports) carry it redacted.
    """

    model_config = ConfigDict(extra="forbid")

    model: str = Field("gpt-4o-mini", description="model name sent to the endpoint")
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1; "
                                 "none: the OpenAI API", json_schema_extra={"metavar": "URL"})
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the API key (not needed "
                             "for a local --base-url); the key is never printed, cached or written",
                             json_schema_extra={"metavar": "VAR"})
    concurrency: int = Field(16, ge=1, description="HTTP requests in flight at once")
    requests_per_minute: float | None = Field(None, gt=0, description="client-side request rate limit",
                                              json_schema_extra={"metavar": "R"})
    tokens_per_minute: float | None = Field(None, gt=0, description="client-side token rate limit (estimated)",
                                            json_schema_extra={"metavar": "T"})
    timeout: float = Field(120.0, gt=0, description="seconds one attempt may take, the whole answer included (a "
                           "body that trickles in is cut off at this deadline too); then it is retried",
                           json_schema_extra={"metavar": "S"})
    max_attempts: int = Field(6, ge=1, description="attempts per request, retries included (429, 5xx, timeouts, "
                              "connection errors and answers that are not a usable chat completion)")
    retry_backoff: float = Field(1.0, ge=0, description="seconds before the first retry; doubled per attempt, "
                                 "capped at 60, full jitter", json_schema_extra={"metavar": "S"})
    max_retry_after: float = Field(120.0, ge=0, description="longest Retry-After the endpoint may impose before a "
                                   "retry (longer ones are cut to this)", json_schema_extra={"metavar": "S"})
    max_request_seconds: float = Field(600.0, gt=0, description="total time one request may take, all attempts "
                                       "and waits included; then it is recorded as failed",
                                       json_schema_extra={"metavar": "S"})
    max_failures_in_a_row: int = Field(8, ge=1, description="stop the run after this many requests in a row "
                                       "failed for good (endpoint down, every answer bad)")

    @property
    def redacted_base_url(self) -> str | None:
        return redact_url(self.base_url)

    def redacted_dump(self, **kw: Any) -> dict[str, Any]:
        """`model_dump(mode="json")` with credentials in `base_url` redacted: what may be logged or stored."""
        data = self.model_dump(mode="json", **kw)
        if data.get("base_url"):
            data["base_url"] = redact_url(data["base_url"])
        return data

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, (redact_url(value) if name == "base_url" else value)


class GenerateConfig(ClientConfig):
    """The generate stage: the [generate] section of a pipeline config and `instructgen generate`'s flags."""

    seed_tasks: list[Path] = Field(default_factory=list, description="Self-Instruct seed files (instruction, "
                                   "instances, is_classification) or any format convert reads; chat mode: the "
                                   "topics (--topics), one a line in a .txt file or the instructions of seed tasks",
                                   json_schema_extra={"nargs": "+", "metavar": "FILE", "flag": ("--topics",)})
    num_instructions: int = Field(100, ge=1, description="instructions to keep",
                                  json_schema_extra={"flag": ("-n",)})
    mode: Literal["alpaca", "self-instruct", "evol", "pairs", "chat"] = Field(
        "alpaca", description="alpaca: one request asks for --tasks-per-request tasks; self-instruct: bootstrap, "
        "classify, instances, clean-up; evol: Evol-Instruct (WizardLM) evolves the seed instructions for --rounds "
        "rounds, answers each and applies the four elimination rules; pairs: --answers-per-prompt answers to each "
        "seed instruction, judged pairwise in both orders (MT-bench), written as chosen/rejected; chat: a user "
        "simulator and the assistant talk about each topic for up to --turns turns (Baize / UltraChat)")
    rounds: int = Field(1, ge=1, description="evol mode: evolution rounds (each kept evolution is evolved again "
                        "in the next round; a failed one leaves its parent to be evolved again)")
    turns: int = Field(3, ge=1, description="chat mode: turns (user message + answer) at most per chat; the user "
                       "simulator may end it sooner")
    answers_per_prompt: int = Field(2, ge=2, description="pairs mode: answers asked for each prompt, one per "
                                    "--pair-temperatures entry (cycled)", json_schema_extra={"metavar": "K"})
    pair_temperatures: list[float] = Field(default_factory=lambda: [0.7, 1.2], description="pairs mode: the "
                                           "sampling temperature of answer 1, 2, ... (cycled)",
                                           json_schema_extra={"nargs": "+", "metavar": "T"})
    answer_endpoints: list[str] = Field(default_factory=list, description="pairs mode: the endpoints of answer "
                                        "1, 2, ... (cycled), each URL=MODEL; the judge stays on --base-url/--model. "
                                        "none: every answer from --base-url/--model",
                                        json_schema_extra={"nargs": "+", "metavar": "URL=MODEL"})
    user_base_url: str | None = Field(None, description="chat mode: the user simulator's endpoint (the "
                                      "assistant stays on --base-url); none: --base-url",
                                      json_schema_extra={"metavar": "URL"})
    user_model: str | None = Field(None, description="chat mode: the user simulator's model; none: --model",
                                   json_schema_extra={"metavar": "MODEL"})
    judge: Literal["pairwise", "alpagasus", "deita-quality", "mt-bench"] = Field(
        "pairwise", description="pairs mode: pairwise: MT-bench's pairwise prompt asked in both orders, a "
        "disagreement or a tie makes no pair; alpagasus, deita-quality, mt-bench: `instructgen score`'s judge "
        "scores each answer, the highest is chosen and the lowest rejected, a tie or an unscored answer makes no "
        "pair (each recorded in the rejects file)")
    max_cost: float | None = Field(None, gt=0, description="stop once this many USD were spent in this run (needs "
                                   "--prices; cache hits are free); what was generated is kept and a rerun with a "
                                   "larger cap continues from the cache", json_schema_extra={"metavar": "USD"})
    max_tokens: int | None = Field(None, ge=1, description="stop once this many tokens (prompt + completion) were "
                                   "paid in this run, as `instructgen score --max-tokens`; what was generated is kept "
                                   "(--max-total-tokens is the same; --reply-tokens is the completion limit of one "
                                   "request)", json_schema_extra={"metavar": "N", "flag": ("--max-tokens",
                                                                                          "--max-total-tokens")})
    grow: bool = Field(False, description="pipeline only: each run adds one generation round to a pool kept in "
                       "OUT/.cache, seeded by the rounds before it (alpaca, self-instruct: every kept record joins the "
                       "seeds and the diversity filter; evol: each root's latest kept evolution is evolved again); "
                       "-n counts one round's records", json_schema_extra={"cli": False})
    grow_max_rounds: int | None = Field(None, ge=1, description="pipeline, grow: stop adding rounds after this "
                                        "many (later runs reuse the pool); none: no cap",
                                        json_schema_extra={"cli": False})
    grow_max_records: int | None = Field(None, ge=1, description="pipeline, grow: stop adding rounds once the pool "
                                         "holds this many records (the last round asks only for what fits; "
                                         "self-instruct: -n counts instructions, each with its instances); none: "
                                         "no cap",
                                         json_schema_extra={"cli": False})
    lang: Literal["en", "zh"] = Field("en", description="prompt language and filters")
    temperature: float = Field(1.0, ge=0, le=2, description="sampling temperature")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling")
    reply_tokens: int = Field(3072, ge=1, description="completion tokens per request (the `max_tokens` sent to "
                              "the endpoint; score's --reply-tokens)")
    similarity_threshold: float = Field(0.7, ge=0, le=1, description="keep a new instruction only if its ROUGE-L "
                                        "against every kept one is at most this", json_schema_extra={"metavar": "F"})
    seed: int = Field(0, description="fixes the sampling of examples and the per-request seeds")
    tasks_per_request: int = Field(20, ge=1, description="alpaca mode: tasks asked for in one request")
    examples_per_request: int = Field(3, ge=1, description="alpaca mode: seed tasks shown in one request")
    response_format: Literal["auto", "json", "text"] = Field(
        "auto", description="auto: ask for JSON, fall back to numbered text if the endpoint answers 400")
    max_requests: int | None = Field(None, ge=1, description="stop after this many (bootstrap) requests; "
                                     "none: 10 + 4 x what -n needs; evol, pairs, chat: requests of every kind, "
                                     "none: no cap (a rerun with a larger cap continues from the cache)",
                                     json_schema_extra={"metavar": "K"})
    cache_dir: Path | None = Field(None, description="request cache folder; none: OUT.cache beside "
                                   "the output",
                                   json_schema_extra={"metavar": "DIR"})
    format: str = Field("alpaca", description="output format (any writable one, see `instructgen formats`)",
                        json_schema_extra={"metavar": "FORMAT"})
    layout: Literal["strict", "preference"] | None = Field(
        None, description="--format openai only: OpenAI's own layouts instead of LLaMA-Factory's: strict (only "
        "messages and tools), preference (its DPO layout: input, preferred_output, non_preferred_output; for "
        "--mode pairs)")
    interrupt_wait: float = Field(60.0, ge=0, description="on the first Ctrl-C, seconds to wait for the requests "
                                  "in flight so their answers are cached (a second Ctrl-C aborts at once)",
                                  json_schema_extra={"metavar": "S"})

    @model_validator(mode="before")
    @classmethod
    def _old_budget_name(cls, data: Any) -> Any:
        """`max_total_tokens` (the budget's first name) still works, in a TOML section as in keyword arguments."""
        if isinstance(data, dict) and "max_total_tokens" in data:
            data = dict(data)
            old = data.pop("max_total_tokens")
            if data.get("max_tokens") not in (None, old):
                raise ValueError(f"max_tokens ({data['max_tokens']}) and max_total_tokens ({old}) are the same "
                                 "budget: give one")
            data["max_tokens"] = old
        return data

    @model_validator(mode="after")
    def _layout_is_openais(self) -> "GenerateConfig":
        if self.layout and self.format != "openai":
            raise ValueError(f"layout {self.layout!r} is one of OpenAI's layouts: it needs format openai, not "
                             f"{self.format!r}")
        if self.layout == "preference" and self.mode != "pairs":
            raise ValueError("layout 'preference' holds preference pairs: use it with mode pairs")
        if self.grow and self.mode in ("pairs", "chat"):
            raise ValueError(f"grow adds rounds seeded by the records kept so far: it works with modes alpaca, "
                             f"self-instruct and evol, not {self.mode!r} (whose records are not seed tasks)")
        return self

    @field_validator("answer_endpoints", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """`--answer-endpoints A=m1,B=m2` as well as `--answer-endpoints A=m1 B=m2` (or a TOML list)."""
        value = [value] if isinstance(value, str) else value
        if isinstance(value, list):
            return [part.strip() for entry in value for part in str(entry).split(",") if part.strip()]
        return value

    @field_validator("answer_endpoints")
    @classmethod
    def _url_equals_model(cls, value: list[str]) -> list[str]:
        for entry in value:
            url, _, model = entry.rpartition("=")
            if not url.strip() or not model.strip() or "://" not in url:
                raise ValueError(f"answer endpoint {redact_url(entry)!r} is not URL=MODEL (e.g. "
                                 "http://127.0.0.1:8000/v1=qwen2.5-7b-instruct)")
        return value

    def answer_endpoint_list(self) -> list[tuple[str, str]]:
        """--answer-endpoints as (url, model) pairs."""
        return [(url.strip(), model.strip()) for url, _, model in (e.rpartition("=") for e in self.answer_endpoints)]

    @property
    def user_endpoint(self) -> tuple[str | None, str] | None:
        """Chat mode: the user simulator's (url, model) when it is not the assistant's endpoint."""
        if self.user_base_url is None and self.user_model is None:
            return None
        return (self.user_base_url or self.base_url, self.user_model or self.model)

    def redacted_dump(self, **kw: Any) -> dict[str, Any]:
        data = super().redacted_dump(**kw)
        if data.get("user_base_url"):
            data["user_base_url"] = redact_url(data["user_base_url"])
        if data.get("answer_endpoints"):
            data["answer_endpoints"] = [redact_url(e) for e in data["answer_endpoints"]]
        return data

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            if name == "user_base_url":
                value = redact_url(value)
            elif name == "answer_endpoints":
                value = [redact_url(e) for e in value]
            yield name, value

    @field_validator("seed_tasks", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return [value] if isinstance(value, (str, Path)) else value

    @field_validator("format")
    @classmethod
    def _writable(cls, value: str) -> str:
        from ..formats import names

        if value not in names(writable_only=True):
            raise ValueError(f"unknown output format {value!r}; choose one of: {', '.join(names(writable_only=True))}")
        return value
