"""A one-line live status on stderr (only when it is a terminal): in flight, kept/rejected by reason, tokens, rate."""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO


class ProgressLine:
    def __init__(self, describe: Callable[[], str], enabled: bool | None = None, out: TextIO = sys.stderr,
                 interval: float = 0.25):
        self.describe = describe
        self.out = out
        self.enabled = out.isatty() if enabled is None else enabled
        self.interval = interval
        self.started = time.monotonic()
        self._last = 0.0
        self._width = 0

    def elapsed(self) -> float:
        return max(1e-9, time.monotonic() - self.started)

    def update(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        line = self.describe()
        pad = max(0, self._width - len(line))
        self._width = len(line)
        self.out.write("\r" + line + " " * pad)
        self.out.flush()

    def close(self) -> None:
        if self.enabled and self._width:
            self.update(force=True)
            self.out.write("\n")
            self.out.flush()
