"""The failures file: requests that failed for good and answers that could not be parsed, raw text kept.

Written beside its target and moved into place on close (like the rejects file), so a file from an earlier
run is replaced, never unlinked; every line is scrubbed of the API key and anything shaped like one.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import orjson

from ..io import finish_temp, temp_beside
from .client import scrub


class FailureSink:
    def __init__(self, path: str | os.PathLike, secret: str | Sequence[str] | None = None):
        self.path = str(path)
        self.count = 0
        self._secret = secret
        self._tmp: str | None = None
        self._fh = None

    def write(self, entry: dict[str, Any]) -> None:
        if self._fh is None:
            self._open()
        line = orjson.dumps(entry, default=str).decode()
        self._fh.write((scrub(line, self._secret) + "\n").encode())
        self.count += 1

    def _open(self) -> None:
        self._tmp = temp_beside(self.path)
        self._fh = open(self._tmp, "wb")

    def close(self) -> None:
        """Move the entries into place; with none, a file an earlier run left here is replaced by an empty one."""
        if self._fh is None and os.path.exists(self.path):
            self._open()
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            finish_temp(self._tmp, self.path)

    def __enter__(self) -> "FailureSink":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
