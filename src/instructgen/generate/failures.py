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


def read_ledger(path: str | os.PathLike) -> tuple[set[str], set[str], set[str]]:
    """What a rejects file's ledger rows name: (keys of requests that failed for good, keys of replies that could
    not be read, the rows they belong to, e.g. "evolution 2.7"). A missing file or a line that is not such a row is an error naming it: --retry-failed must not
    guess."""
    from ..errors import InstructgenError
    from .loops import LEDGER_FAILED, LEDGER_UNREADABLE

    if not os.path.isfile(path):
        raise InstructgenError(f"--retry-failed: no rejects file at {path} (the ledger of the run to retry); run "
                               "the command without --retry-failed first, or name the ledger with --rejects")
    failed: set[str] = set()
    unreadable: set[str] = set()
    rows: set[str] = set()
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, 1):
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise InstructgenError(f"--retry-failed: {path}:{n}: not a JSON line; is this a rejects file "
                                       "written by instructgen generate?") from None
            ledger = entry.get("ledger") if isinstance(entry, dict) else None
            key = entry.get("key") if isinstance(entry, dict) else None
            if ledger in (LEDGER_FAILED, LEDGER_UNREADABLE) and isinstance(key, str) and key:
                (failed if ledger == LEDGER_FAILED else unreadable).add(key)
                if isinstance(entry.get("row"), str):
                    rows.add(entry["row"])
    return failed, unreadable, rows
