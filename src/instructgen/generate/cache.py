"""An on-disk cache of chat completions, so an interrupted run resumes without paying twice.

SQLite in WAL mode: every answer is committed as soon as it arrives, and a
committed transaction survives the process being killed (kill -9, Ctrl-C) at
any point. Keys are the SHA-256 of the canonical JSON of (model, messages,
parameters); the API key and the endpoint's address are never part of the
key or of the stored value.

A cached answer is replayed as the model's, so a cache someone else could have
written is refused (as ssh refuses a key file others can write): the database
and its -wal/-shm files must be plain files, not links, owned by this user and
not writable by group or others.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import threading
from pathlib import Path
from typing import Any

import orjson

from ..errors import InstructgenError


def request_key(model: str, messages: list[dict], params: dict[str, Any]) -> str:
    doc = {"model": model, "messages": messages, "params": params}
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


class RequestCache:
    FILE = "requests.sqlite"  # inside the cache folder (with SQLite's -wal and -shm files beside it)

    def __init__(self, directory: str | os.PathLike):
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.path = str(Path(directory) / self.FILE)
        for name in (self.path, f"{self.path}-wal", f"{self.path}-shm"):
            refuse_untrusted(name)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode loses nothing when the process dies; only an OS crash may drop the last commits
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value BLOB NOT NULL)")

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return orjson.loads(row[0]) if row else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)", (key, orjson.dumps(value)))

    def keys(self) -> set[str]:
        with self._lock:
            return {k for (k,) in self._db.execute("SELECT key FROM responses")}

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def refuse_untrusted(path: str) -> None:
    """Refuse a cache file that this user's runs may not have written (nothing there is fine)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    problem = "is a symbolic link" if stat.S_ISLNK(st.st_mode) else \
        "is not a plain file" if not stat.S_ISREG(st.st_mode) else \
        f"belongs to another user (uid {st.st_uid})" if st.st_uid != os.geteuid() else \
        "can be written by other users" if st.st_mode & 0o022 else None
    if problem:
        raise InstructgenError(f"{path} {problem}: its cached answers would be replayed as the model's. Remove "
                               "it if you trust neither it nor who could write it (the requests are then made "
                               "again), or, if you wrote it, make it yours and private (chmod go-w)")
