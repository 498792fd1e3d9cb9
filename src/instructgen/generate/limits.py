"""Client-side rate limits: a leaky bucket per limit (requests a minute, tokens a minute)."""

from __future__ import annotations

import asyncio
import time


class RateLimiter:
    """At most `per_minute` units a minute, bursts of up to a tenth of that."""

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
