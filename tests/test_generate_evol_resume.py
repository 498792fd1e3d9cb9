"""kill -9 at random points of an Evol-Instruct (and a pairs) run, then resume: 0 rows lost, 0 duplicated,
0 requests paid twice.

"Paid twice" is exact here: the double records every request body it receives; after each kill the cache
(the answers the client had received and stored) is read, and no request sent after the restart may be one of
them. A request in flight at the kill was paid for but its answer never reached the client: sending it again
is not a repayment of anything the client holds.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest

from conftest import REPO
from instructgen.generate.cache import request_key
from llm_double import LLMDouble

SEEDS = REPO / "data" / "seeds" / "seed_tasks_en.jsonl"


class RecordingDouble(LLMDouble):
    """The double, remembering the instructgen cache key of every request it receives, in order."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.received: list[str] = []
        self._received_lock = threading.Lock()

    def answer(self, body, headers=None):
        params = {k: v for k, v in body.items() if k not in ("model", "messages")}
        with self._received_lock:
            self.received.append(request_key(body["model"], body["messages"], params))
        return super().answer(body, headers)


def _cli(base_url: str, out: Path, mode: str) -> list[str]:
    extra = ["--rounds", "2"] if mode == "evol" else []
    return [sys.executable, "-m", "instructgen.cli", "generate", "--mode", mode, "--seed-tasks", str(SEEDS),
            "-n", "30", "-o", str(out), "--base-url", base_url, "--model", "double", "--concurrency", "4",
            "--retry-backoff", "0.01", "--progress", "never", *extra]


def _cached_keys(db: Path) -> set[str]:
    if not db.exists():
        return set()
    try:
        with sqlite3.connect(db) as conn:
            return {k for (k,) in conn.execute("SELECT key FROM responses WHERE key NOT LIKE '%:%'")}
    except sqlite3.OperationalError:
        return set()


def _rows(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.mark.parametrize("mode", ["evol", "pairs"])
def test_kill_9_at_random_points_then_resume_loses_duplicates_and_repays_nothing(tmp_path, mode):
    rng = random.Random(21)
    out = tmp_path / "gen.jsonl"
    db = tmp_path / "gen.cache" / "requests.sqlite"
    faults = {"429": 0.05, "500": 0.05}
    with RecordingDouble(latency=0.03, faults=faults) as double:
        kills, held, before = 0, set(), 0
        for _ in range(4):
            proc = subprocess.Popen(_cli(double.base_url, out, mode), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, cwd=tmp_path)
            grow = rng.randint(3, 15)  # a random point: after this many more answers are stored
            deadline = time.monotonic() + 60
            while len(_cached_keys(db)) < len(held) + grow and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(rng.uniform(0.0, 0.02))
            if proc.poll() is not None:
                break
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            kills += 1
            assert not out.exists()  # written atomically: nothing half-written
            double.wait_idle()
            repaid = held & set(double.received[before:])  # sent by this process, though cached when it started
            assert not repaid, f"{len(repaid)} requests whose answers were cached were sent again"
            held, before = _cached_keys(db), len(double.received)
        resumed = subprocess.run(_cli(double.base_url, out, mode), capture_output=True, text=True, cwd=tmp_path,
                                 timeout=180)
        assert resumed.returncode == 0, resumed.stderr
        assert not held & set(double.received[before:])
        assert kills >= 2
    got = _rows(out)
    with LLMDouble(faults=faults) as fresh:
        reference = tmp_path / "ref"
        reference.mkdir()
        ran = subprocess.run(_cli(fresh.base_url, reference / "gen.jsonl", mode), capture_output=True, text=True,
                             cwd=reference, timeout=180)
        assert ran.returncode == 0, ran.stderr
    want = _rows(reference / "gen.jsonl")
    assert got == want  # 0 lost, 0 changed, in the same order
    key = "instruction" if mode == "evol" else "chosen"
    assert len({r[key] for r in got}) == len(got)  # 0 duplicated
