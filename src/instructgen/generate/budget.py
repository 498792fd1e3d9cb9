"""The run's spending caps: --max-tokens (alias --max-total-tokens) and --max-cost (with --prices), over the tokens paid in this run.

Cache hits are free, so a rerun with a larger cap replays what the first run paid for and goes on. Reaching a cap
stops the client like Ctrl-C does, without the interruption: nothing new is sent, requests in flight finish into
the cache, and what was generated is written.
"""

from __future__ import annotations

from typing import Any

from ..errors import InstructgenError
from .client import ChatClient

BUDGET = "budget"  # stop reasons start with it: "budget: --max-cost 0.5 reached"


def check_prices(config: Any, prices: dict[str, Any] | None, models: list[str]) -> None:
    """--max-cost needs a price for every model the run asks."""
    if not config.max_cost:
        return
    missing = [m for m in models if not (prices and (prices.get(m) or prices.get("*")))]
    if missing:
        raise InstructgenError(f"--max-cost needs the price of {', '.join(map(repr, missing))}: give --prices FILE "
                               f'with {{"{missing[0]}": {{"prompt": USD_PER_1M, "completion": USD_PER_1M}}}}')


def spend_check(client: ChatClient, config: Any, prices: dict[str, Any] | None) -> None:
    """Stop the run once a cap is reached (called after every answer)."""
    usage = client.usage
    if config.max_tokens and usage.prompt_tokens + usage.completion_tokens >= config.max_tokens:
        client.stop(f"{BUDGET}: --max-tokens {config.max_tokens} reached (tokens paid in this run; the limit of "
                    "one reply is --reply-tokens)")
    cost = usage.cost(prices, config.model) if config.max_cost else None
    if cost is not None and cost >= config.max_cost:
        client.stop(f"{BUDGET}: --max-cost {config.max_cost:g} reached (${cost:.4f} spent)")


def is_budget_stop(reason: str | None) -> bool:
    return bool(reason) and reason.startswith(BUDGET)
