"""What a generate run produced, and when it fell short, why, in words a user can act on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..runlog import RunLog
from .budget import is_budget_stop
from .client import FAILING
from .loops import DONE, MAX_REQUESTS, REQUEST_BUDGET


@dataclass
class GenerateResult:
    out_path: str
    asked: int  # num_instructions
    records_written: int
    instructions_kept: int
    requests: int  # logical requests answered (cache hits included)
    requests_limit: int  # the (bootstrap) request budget of the run
    stop_reason: str  # done | max-requests | request-budget | failing | "budget: ..." (--max-tokens, --max-cost)
    usage: dict[str, Any]
    cost_usd: float | None
    failures: int  # requests that failed for good
    unparsable: int  # answers nothing could be parsed from
    lost_instructions: int  # kept instructions without records: their instances request failed
    failures_path: str | None
    endpoint: str
    failing_after: int  # max_failures_in_a_row
    logs: list[RunLog] = field(default_factory=list)
    mode: str = "alpaca"
    skipped: int = 0  # rows not sent: the run stopped, or --retry-failed sends only the ledger's rows

    @property
    def complete(self) -> bool:
        return self.stop_reason == DONE and self.lost_instructions == 0

    @property
    def failed(self) -> bool:
        """Fewer records than asked, and not only because the user's --max-requests said so."""
        return not self.complete and ((self.stop_reason != MAX_REQUESTS and not is_budget_stop(self.stop_reason))
                                      or self.failures > 0)

    def shortfall(self) -> str | None:
        """Why the run produced less than asked (None when it did not)."""
        if self.complete:
            return None
        parts = [f"kept {self.instructions_kept} of {self.asked} instructions"]
        if self.stop_reason == FAILING:
            parts[0] += f": stopped after {self.failing_after} requests in a row failed for good"
        elif self.stop_reason == MAX_REQUESTS:
            parts[0] += f": --max-requests {self.requests_limit} reached"
        elif is_budget_stop(self.stop_reason):
            parts[0] += f": {self.stop_reason.split(': ', 1)[1]} (rerun with a larger cap to continue from the cache)"
        elif self.stop_reason == REQUEST_BUDGET:
            parts[0] += (f": the request budget ran out ({self.requests_limit} requests by default for -n "
                         f"{self.asked}; set --max-requests to allow more)")
        if self.lost_instructions and self.mode == "self-instruct":
            parts.append(f"{self.lost_instructions} kept instructions got no instances because their request failed")
        elif self.lost_instructions:
            parts.append(f"{self.lost_instructions} {self.mode} rows were lost because a request failed for good "
                         "(in the rejects file; --retry-failed sends only those again)")
        if self.failures:
            parts.append(f"{self.failures} requests failed for good: {describe_causes(self.usage['causes'], self.endpoint)}")
        if self.unparsable:
            parts.append(f"{self.unparsable} answers could not be parsed")
        if self.failures_path and (self.failures or self.unparsable):
            parts.append(f"raw answers and errors are in {self.failures_path}")
        return "; ".join(parts)

    def stats(self) -> dict[str, Any]:
        return {"usage": {**self.usage, "cost_usd": self.cost_usd}, "requests": self.requests,
                "requests_limit": self.requests_limit, "stop_reason": self.stop_reason, "failures": self.failures,
                "unparsable_answers": self.unparsable, "failures_file": self.failures_path,
                "instructions_asked": self.asked, "instructions_kept": self.instructions_kept,
                "instructions_without_records": self.lost_instructions, "records_written": self.records_written,
                "mode": self.mode, "rows_not_sent": self.skipped, "failure_reasons": self.failure_reasons()}

    def failure_reasons(self) -> dict[str, dict[str, int]]:
        """{mode: {reason: rows}}: every failed request, unreadable reply and elimination of this run."""
        reasons: dict[str, int] = {}
        for log in self.logs:
            for (kind, reason), n in log.reasons.items():
                if kind != "duplicates" and not reason.startswith(("beyond ", "ROUGE-L")):
                    reasons[reason] = reasons.get(reason, 0) + n
        return {self.mode: dict(sorted(reasons.items(), key=lambda kv: -kv[1]))}


def describe_causes(causes: dict[str, int], endpoint: str) -> str:
    """'5 could not reach http://...; 2 got a 200 answer that is not a chat completion (an HTML page)'."""
    words = []
    for kind, n in sorted(causes.items(), key=lambda kv: -kv[1]):
        if kind == "connection":
            words.append(f"{n} could not reach the endpoint {endpoint}")
        elif kind == "timeout":
            words.append(f"{n} got no complete answer within --timeout")
        elif kind == "protocol":
            words.append(f"{n} got an answer that broke off")
        elif kind.startswith("bad answer: "):
            words.append(f"{n} got a 200 answer that is not a chat completion ({kind.removeprefix('bad answer: ')})")
        elif kind == "429":
            words.append(f"{n} stayed rate-limited (HTTP 429)")
        else:
            words.append(f"{n} got HTTP {kind}")
    return ", ".join(words)
