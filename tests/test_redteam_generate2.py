"""Red team, round two (issue 17, "Secrets and messages"): a key written into --base-url, and a 429 that says
the account's quota is spent."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from conftest import REPO
from instructgen.generate.client import scrub
from instructgen.generate.config import GenerateConfig
from llm_double import LLMDouble

SEEDS = REPO / "data" / "seeds" / "seed_tasks_en.jsonl"
URL_KEY = "sk-in-the-url-NEVER-SHOW-4455667788"


def _cli(base_url: str, out: Path, *extra: str, n: int = 10) -> list[str]:
    return [sys.executable, "-m", "instructgen.cli", "generate", "--seed-tasks", str(SEEDS), "-n", str(n),
            "-o", str(out), "--base-url", base_url, "--model", "double", "--concurrency", "4",
            "--retry-backoff", "0.01", "--progress", "never", *extra]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=180, env=env)


def _with_key(url: str) -> str:
    return url.replace("http://", f"http://user:{URL_KEY}@")


def _nothing_holds_the_key(*texts: str, folder: Path) -> None:
    for text in texts:
        assert URL_KEY not in text
    for path in folder.rglob("*"):
        if path.is_file():
            assert URL_KEY.encode() not in path.read_bytes(), path


def test_a_key_in_the_base_url_is_never_printed_nor_written_when_the_endpoint_is_unreachable(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = _with_key(f"http://127.0.0.1:{port}/v1")
    r = _run(_cli(url, tmp_path / "out.jsonl", "--max-attempts", "1"), tmp_path)
    assert r.returncode == 1
    assert "could not reach the endpoint http://***@127.0.0.1" in r.stderr, r.stderr
    _nothing_holds_the_key(r.stdout, r.stderr, folder=tmp_path)


def test_a_key_in_the_base_url_is_scrubbed_from_failures_even_when_a_proxy_quotes_the_auth_header(tmp_path):
    # httpx sends the URL's user and password as Basic auth; a proxy page that quotes it must not carry it on
    with LLMDouble(faults={"echo_auth": 0.5, "500": 0.2}, transient_times=99) as double:
        r = _run(_cli(_with_key(double.base_url), tmp_path / "out.jsonl", "--max-attempts", "1",
                      "--max-failures-in-a-row", "50"), tmp_path)
    failures = (tmp_path / "out.failures.jsonl").read_text(encoding="utf-8")
    assert "Authorization: Basic ***" in failures  # the page was recorded, its credentials were not
    _nothing_holds_the_key(r.stdout, r.stderr, folder=tmp_path)


def test_the_config_shows_logs_and_dumps_the_base_url_redacted():
    config = GenerateConfig(seed_tasks=[SEEDS], base_url=f"https://user:{URL_KEY}@llm.example.com/v1")
    assert config.redacted_base_url == "https://***@llm.example.com/v1"
    assert URL_KEY not in repr(config) and URL_KEY not in str(config)
    dumped = config.redacted_dump()
    assert dumped["base_url"] == "https://***@llm.example.com/v1" and URL_KEY not in repr(dumped)
    assert config.base_url.endswith("@llm.example.com/v1") and URL_KEY in config.base_url  # still usable
    assert GenerateConfig(seed_tasks=[SEEDS]).redacted_dump()["base_url"] is None


def test_scrub_removes_url_credentials_of_any_url_and_basic_auth():
    text = f"GET https://me:{URL_KEY}@x.org/v1 failed; Authorization: Basic dXNlcjpwYXNz; http://plain.org/ ok"
    clean = scrub(text, None)
    assert URL_KEY not in clean and "dXNlcjpwYXNz" not in clean
    assert "https://***@x.org/v1" in clean and "http://plain.org/" in clean


def test_a_key_in_the_base_url_of_a_remote_endpoint_is_not_in_the_missing_key_error(tmp_path):
    r = _run(_cli(f"https://user:{URL_KEY}@llm.example.com/v1", tmp_path / "out.jsonl"), tmp_path)
    assert r.returncode == 1 and "no API key for https://***@llm.example.com/v1" in r.stderr, r.stderr
    _nothing_holds_the_key(r.stdout, r.stderr, folder=tmp_path)


def test_hub_scrub_redacts_url_credentials():
    from instructgen.hub.http import scrub as hub_scrub

    assert hub_scrub(f"push to https://me:{URL_KEY}@hub.example/api failed", None) == \
        "push to https://***@hub.example/api failed"


def test_a_429_insufficient_quota_stops_at_once_with_its_message(tmp_path):
    # Retry-After of a minute: the old behaviour waited and retried for minutes without a word
    with LLMDouble(faults={"quota": 1.0}, retry_after="60") as double:
        r = _run(_cli(double.base_url, tmp_path / "out.jsonl", "--response-format", "text"), tmp_path)
        hits = double.total_hits
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "insufficient_quota" in errors[0] and "exceeded your current quota" in errors[0]
    assert "Traceback" not in r.stderr
    assert hits <= 4  # no request was sent twice: at most the first concurrent batch reached the endpoint
