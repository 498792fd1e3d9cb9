"""Red team: `instructgen generate` against a broken endpoint (the LLM test double's fault modes).

Each test breaks the endpoint one way and asserts what survives: the records written, the failures
recorded with their raw text, what the request cache holds, the exit status and message, no traceback,
no secret anywhere.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest

from conftest import REPO
from instructgen.generate.config import GenerateConfig
from instructgen.generate.run import generate
from instructgen.runlog import RunLog
from llm_double import BROKEN_200, LLMDouble

SEEDS = REPO / "data" / "seeds" / "seed_tasks_en.jsonl"
SECRET = "sk-redteam-NEVER-WRITE-ME-5566778899"


def _generate(base_url: str, tmp_path: Path, name: str = "out.jsonl", **kw):
    settings = dict(seed_tasks=[SEEDS], num_instructions=40, base_url=base_url, model="double", concurrency=4,
                    retry_backoff=0.01, cache_dir=tmp_path / f"{name}.cache")
    config = GenerateConfig(**{**settings, **kw})
    out = tmp_path / name
    result = generate(config, out, RunLog("generate", tmp_path / f"{name}.rejects.jsonl"),
                      failures_path=tmp_path / f"{name}.failures.jsonl")
    return result, [orjson.loads(line) for line in out.read_bytes().splitlines()]


def _cli(base_url: str, out: Path, *extra: str, n: int = 40) -> list[str]:
    return [sys.executable, "-m", "instructgen.cli", "generate", "--seed-tasks", str(SEEDS), "-n", str(n),
            "-o", str(out), "--base-url", base_url, "--model", "double", "--concurrency", "4",
            "--retry-backoff", "0.01", "--api-key-env", "IG_REDTEAM_KEY", "--progress", "never", *extra]


def _run_cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=180, env={**os.environ, **env})


def _cached(cache_dir: Path) -> list[dict]:
    db = cache_dir / "requests.sqlite"
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT value FROM responses WHERE key NOT LIKE 'capability:%'").fetchall()
    return [orjson.loads(v) for (v,) in rows]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens there: connection refused


# -- broken 200 answers --------------------------------------------------------------------------

@pytest.mark.parametrize("fault", [f for f in BROKEN_200 if f not in ("trickle", "echo_auth")])
def test_a_broken_answer_is_retried_never_cached_and_the_output_is_as_from_a_healthy_server(tmp_path, fault):
    with LLMDouble() as healthy:
        _, clean = _generate(healthy.base_url, tmp_path, "clean.jsonl")
    with LLMDouble(faults={fault: 0.5}, transient_times=1) as double:
        result, rows = _generate(double.base_url, tmp_path)
        hits, faulted, served = dict(double.hits), dict(double.faulted), dict(double.served)
    assert rows == clean and result.complete and result.failures == 0
    retried = [k for k in faulted if k in served]  # (a request still being retried when the run ended is not)
    assert retried and all(hits[k] == 2 for k in retried)  # each broken answer was asked again, once
    assert len(retried) <= sum(result.usage["errors"].values()) <= len(faulted)
    cached = _cached(tmp_path / "out.jsonl.cache")
    # only usable answers are cached; an answer the server sent after the run had what it needed (up to the
    # concurrency of 4 still in flight, seen on a loaded machine) is not taken, nor cached
    assert len(served) - 4 <= len(cached) <= len(served) and all(c["text"].strip() for c in cached)


@pytest.mark.parametrize("fault, raw_mark, why", [
    ("html", "502 Bad Gateway", "an HTML page"),
    ("no_choices", '"choices": []', "no choices"),
    ("null_content", '"content": null', "null content"),
])
def test_answers_that_stay_broken_are_failures_and_a_rerun_against_a_healthy_server_completes(
        tmp_path, fault, raw_mark, why):
    out = tmp_path / "gen.jsonl"
    with LLMDouble(faults={fault: 1.0}, transient_times=99) as double:
        proc = _run_cli(_cli(double.base_url, out, "--max-attempts", "2"), tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"a 200 answer that is not a chat completion ({why})" in proc.stderr
    assert "--max-requests" not in proc.stderr.replace("set --max-requests", "")
    failures = _lines(tmp_path / "gen.failures.jsonl")
    assert failures and all(f["kind"] == "request failed" and raw_mark in f["raw"] for f in failures)
    assert _cached(tmp_path / "gen.cache") == []  # nothing broken was taken for an answer
    assert _lines(out) == []

    with LLMDouble() as healthy:  # the same command against a healthy server: everything is asked again
        again = _run_cli(_cli(healthy.base_url, out), tmp_path)
        sent = healthy.total_hits
    assert again.returncode == 0, again.stderr
    assert sent > 0 and len(_lines(out)) == 40
    assert _lines(tmp_path / "gen.failures.jsonl") == []  # the stale failures file was replaced


def test_a_body_trickling_one_byte_a_second_is_cut_at_the_timeout_and_retried(tmp_path):
    with LLMDouble(faults={"trickle": 1.0}, transient_times=1) as double:
        result, rows = _generate(double.base_url, tmp_path, num_instructions=20, timeout=0.5, concurrency=1)
        asked = len(double.hits)
    assert result.complete and len(rows) == 20 and result.failures == 0
    assert result.usage["errors"] == {"timeout": asked}  # every request trickled once, was cut, then answered


def test_an_empty_answer_cached_by_an_older_version_is_not_taken_for_a_success(tmp_path):
    with LLMDouble() as double:
        _, first = _generate(double.base_url, tmp_path, cache_dir=tmp_path / "cache")
        with sqlite3.connect(tmp_path / "cache" / "requests.sqlite") as db:  # what the old client stored
            db.execute("""UPDATE responses SET value = '{"text": ""}' WHERE key NOT LIKE 'capability:%'""")
        result, again = _generate(double.base_url, tmp_path, "again.jsonl", cache_dir=tmp_path / "cache")
    assert result.usage["cache_hits"] == 0 and result.usage["requests_sent"] > 0
    assert again == first and len(again) == 40


# -- Retry-After and the time one request may take ------------------------------------------------

def test_a_retry_after_of_a_day_is_cut_to_the_cap(tmp_path):
    with LLMDouble(faults={"429": 1.0}, retry_after="86400", transient_times=1) as double:
        result, rows = _generate(double.base_url, tmp_path, num_instructions=20, max_retry_after=0.2)
        asked = len(double.hits)
    assert result.complete and len(rows) == 20
    assert result.usage["errors"] == {"429": asked} and result.usage["retries"] == asked
    assert result.usage["longest_wait"] == pytest.approx(0.2)  # the server asked for 86400 s


def test_no_wait_passes_the_total_time_of_one_request(tmp_path):
    with LLMDouble(faults={"429": 1.0}, retry_after="30", transient_times=99) as double:
        result, rows = _generate(double.base_url, tmp_path, num_instructions=10, max_request_seconds=1,
                                 max_failures_in_a_row=3)
    assert rows == [] and result.failed and result.usage["waited_seconds"] == 0
    failures = _lines(tmp_path / "out.jsonl.failures.jsonl")
    assert len(failures) == result.failures >= 3
    assert all("the next wait would pass --max-request-seconds 1" in f["error"] for f in failures)
    assert "stayed rate-limited (HTTP 429)" in result.shortfall()


# -- exit status and message ----------------------------------------------------------------------

def test_an_unreachable_endpoint_exits_non_zero_and_says_so(tmp_path):
    url = _closed_port_url()
    proc = _run_cli(_cli(url, tmp_path / "gen.jsonl", "--max-attempts", "2", n=150), tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("instructgen generate: error: kept 0 of 150 instructions: stopped after 8 requests")
    assert f"could not reach the endpoint {url}" in last and "--max-requests" not in last
    stats = json.loads((tmp_path / "gen.stats.json").read_text())["generate"]
    assert stats["stop_reason"] == "failing" and stats["usage"]["causes"] == {"connection": 8}
    assert _lines(tmp_path / "gen.jsonl") == [] and len(_lines(tmp_path / "gen.failures.jsonl")) == 8


def test_max_requests_is_named_only_when_it_was_given(tmp_path):
    with LLMDouble() as double:
        given = _run_cli(_cli(double.base_url, tmp_path / "a.jsonl", "--max-requests", "1", n=100), tmp_path)
    assert given.returncode == 0, given.stderr
    assert "warning: kept 20 of 100 instructions: --max-requests 1 reached" in given.stderr

    with LLMDouble(faults={"garbage": 1.0}) as double:  # every answer arrives, none can be parsed
        budget = _run_cli(_cli(double.base_url, tmp_path / "b.jsonl", n=30), tmp_path)
    assert budget.returncode == 1 and "Traceback" not in budget.stderr
    assert "the request budget ran out (18 requests by default for -n 30; set --max-requests" in budget.stderr
    assert "18 answers could not be parsed" in budget.stderr and "--max-requests 18 reached" not in budget.stderr
    raw = [f["raw"] for f in _lines(tmp_path / "b.failures.jsonl") if f["kind"] == "unparsable response"]
    assert len(raw) == 18 and all("quick brown fox" in r for r in raw)


def test_self_instruct_instructions_left_without_instances_make_the_run_fail(tmp_path):
    with LLMDouble(faults={"500": 0.3}, transient_times=99) as double:
        result, rows = _generate(double.base_url, tmp_path, mode="self-instruct", num_instructions=16,
                                 max_attempts=1, max_failures_in_a_row=100)
    assert result.instructions_kept == 16 and result.lost_instructions > 0 and result.failed
    assert f"{result.lost_instructions} kept instructions got no instances" in result.shortfall()
    assert len({r["instruction"] for r in rows}) == 16 - result.lost_instructions


# -- Ctrl-C -------------------------------------------------------------------------------------

def _stderr_lines(proc: subprocess.Popen) -> queue.Queue:
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
    return lines


def _wait_for(lines: queue.Queue, start: str) -> str:
    while True:
        line = lines.get(timeout=60)
        if line.startswith(start):
            return line


def _rest(lines: queue.Queue) -> str:
    out = []
    while True:
        try:
            out.append(lines.get(timeout=2))
        except queue.Empty:
            return "".join(out)


def _wait_until(predicate, proc: subprocess.Popen) -> None:
    for _ in range(3000):  # at most about a minute
        if predicate() or proc.poll() is not None:
            return
        time.sleep(0.02)


def test_ctrl_c_waits_for_the_requests_in_flight_and_the_resume_pays_for_nothing_twice(tmp_path):
    out = tmp_path / "gen.jsonl"
    with LLMDouble(latency=1.0) as double:
        proc = subprocess.Popen(_cli(double.base_url, out, n=150), stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        lines = _stderr_lines(proc)
        _wait_until(lambda: len(double.served) >= 2 and double.active >= 2, proc)
        proc.send_signal(signal.SIGINT)
        said = _wait_for(lines, "interrupted: sending no new request; waiting up to 60 s for the ")
        assert proc.wait(timeout=60) == 130
        double.wait_idle()
        assert "in flight so their answers are cached" in said and not out.exists()
        served = dict(double.served)
        assert len(_cached(tmp_path / "gen.cache")) == len(served)  # every answer paid for is in the cache

        resumed = _run_cli(_cli(double.base_url, out, n=150), tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        assert [k for k, n in double.served.items() if n > 1] == []  # nothing paid twice
    assert len(_lines(out)) == 150


def test_a_second_ctrl_c_aborts_at_once(tmp_path):
    out = tmp_path / "gen.jsonl"
    with LLMDouble(latency=30.0) as double:
        proc = subprocess.Popen(_cli(double.base_url, out), stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        lines = _stderr_lines(proc)
        _wait_until(lambda: double.active >= 1, proc)
        proc.send_signal(signal.SIGINT)
        _wait_for(lines, "interrupted: ")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 130
        rest = _rest(lines)
    assert "aborted: answers still in flight are lost" in rest and "Traceback" not in rest
    assert not out.exists() and _cached(tmp_path / "gen.cache") == []


# -- outputs never replace inputs; secrets never written -------------------------------------------

def test_an_output_named_like_the_seeds_is_refused_before_anything_is_opened(tmp_path):
    seeds = tmp_path / "s.jsonl"
    seeds.write_bytes(SEEDS.read_bytes())
    with LLMDouble() as double:
        for extra in (["-o", str(seeds)], ["-o", str(tmp_path / "o.jsonl"), "--failures", str(seeds)],
                      ["-o", str(tmp_path / "o.jsonl"), "--rejects", str(tmp_path / "." / "s.jsonl")]):
            args = _cli(double.base_url, tmp_path / "unused.jsonl")
            args[args.index("--seed-tasks") + 1] = str(seeds)
            proc = _run_cli(args + extra, tmp_path)
            assert proc.returncode == 1 and "would destroy the input" in proc.stderr, proc.stderr
        assert double.total_hits == 0
    assert seeds.read_bytes() == SEEDS.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.jsonl"]  # no cache, no temp file, nothing


def test_a_default_output_name_taken_by_the_seeds_is_moved_aside(tmp_path):
    seeds = tmp_path / "gen.rejects.jsonl"  # what the default rejects file of -o gen.jsonl would be
    seeds.write_bytes(SEEDS.read_bytes())
    with LLMDouble() as double:
        args = _cli(double.base_url, tmp_path / "gen.jsonl", n=60)
        args[args.index("--seed-tasks") + 1] = str(seeds)
        proc = _run_cli(args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert seeds.read_bytes() == SEEDS.read_bytes()
    stats = json.loads((tmp_path / "gen.stats.json").read_text())["stages"][0]
    assert stats["rejects_file"] == str(tmp_path / "gen.rejects.1.jsonl")
    assert len(_lines(tmp_path / "gen.rejects.1.jsonl")) == stats["filtered"] + stats["duplicates"] > 0


def test_a_proxy_page_quoting_the_api_key_never_leaks_it(tmp_path):
    with LLMDouble(faults={"echo_auth": 1.0}, transient_times=99) as double:
        proc = _run_cli(_cli(double.base_url, tmp_path / "gen.jsonl", "--max-attempts", "1"), tmp_path,
                        IG_REDTEAM_KEY=SECRET)
    assert proc.returncode == 1 and SECRET not in proc.stderr + proc.stdout
    failures = _lines(tmp_path / "gen.failures.jsonl")
    assert failures and all("Authorization: Bearer ***" in f["raw"] for f in failures)
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f
