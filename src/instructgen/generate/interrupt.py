"""Ctrl-C during generation: the first one stops sending and waits (bounded) for the requests in flight, so
their answers land in the cache and a rerun pays for nothing twice; the second one aborts at once.

Only in the main thread of the process (where signals arrive); elsewhere (a Prefect worker thread) the
default handling stays.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from typing import Callable

from .client import INTERRUPTED, ChatClient


class Interrupted(Exception):
    """The run was stopped by Ctrl-C; answers received are in the cache, the output was not written."""


class CtrlC:
    def __init__(self, client: ChatClient, wait: float, say: Callable[[str], None]):
        self.client = client
        self.wait = wait
        self.say = say
        self.pressed = 0
        self.task: asyncio.Task | None = None  # what a second Ctrl-C (or the end of the wait) cancels
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def __enter__(self) -> "CtrlC":
        if threading.current_thread() is threading.main_thread():
            self._loop = asyncio.get_running_loop()
            try:
                self._loop.add_signal_handler(signal.SIGINT, self._on_sigint)
            except (NotImplementedError, RuntimeError):  # no signal support in this loop (Windows)
                self._loop = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._loop is not None:
            self._loop.remove_signal_handler(signal.SIGINT)

    def _on_sigint(self) -> None:
        self.pressed += 1
        if self.pressed == 1:
            self.client.stop(INTERRUPTED)
            n = self.client.usage.in_flight
            self.say(f"interrupted: sending no new request; waiting up to {self.wait:g} s for the {n} request"
                     f"{'s' if n != 1 else ''} in flight so their answers are cached (Ctrl-C again to abort)")
            self._timer = self._loop.call_later(self.wait, self._give_up)
        else:
            self.say("aborted: answers still in flight are lost")
            self._cancel()

    def _give_up(self) -> None:
        self.say(f"gave up waiting after {self.wait:g} s: answers still in flight are lost")
        self._cancel()

    def _cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
