"""`instructgen generate` end to end against the local LLM test double: modes, languages, faults, resume, CLI."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from itertools import combinations
from pathlib import Path

import orjson
import pytest

from conftest import REPO
from instructgen.cli import main as cli_main
from instructgen.errors import InstructgenError
from instructgen.generate.filters import instruction_problem
from instructgen.generate.config import GenerateConfig
from instructgen.generate.run import generate, resolve_api_key
from instructgen.generate.similarity import rouge_l
from instructgen.runlog import RunLog
from llm_double import LLMDouble

SEEDS = {"en": str(REPO / "data/seeds/seed_tasks_en.jsonl"), "zh": str(REPO / "data/seeds/seed_tasks_zh.jsonl")}
FAULTS = {"429": 0.1, "500": 0.1, "garbage": 0.05, "length": 0.1}
SECRET = "sk-test-NEVER-PRINT-THIS-0987654321"


def _config(double: LLMDouble, tmp_path: Path, **kw) -> GenerateConfig:
    base = dict(seed_tasks=[SEEDS[kw.pop("lang", "en")]], lang="en", num_instructions=40, base_url=double.base_url,
                model="double", concurrency=6, retry_backoff=0.01, cache_dir=str(tmp_path / "cache"))
    base.update(kw)
    if "lang" not in kw:
        base["lang"] = "zh" if base["seed_tasks"][0] == SEEDS["zh"] else "en"
    return GenerateConfig(**base)


def _run(double, tmp_path, name="out.jsonl", **kw):
    out = tmp_path / name
    log = RunLog("generate", tmp_path / (name + ".rejects.jsonl"))
    result = generate(_config(double, tmp_path, **kw), str(out), log)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    return result, rows


def _check_invariants(result, rows, lang, n):
    assert all(lg.balanced for lg in result.logs), [lg.equation() for lg in result.logs]
    instructions = list(dict.fromkeys(r["instruction"] for r in rows))
    assert result.instructions_kept == n
    for text in instructions:
        assert instruction_problem(text, lang) is None
    for a, b in combinations(instructions, 2):  # the kept set is diverse, by brute force
        assert rouge_l(a, b) <= 0.7


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_alpaca_mode_with_faults(tmp_path, lang):
    with LLMDouble(faults=FAULTS) as double:
        result, rows = _run(double, tmp_path, lang=lang, seed_tasks=[SEEDS[lang]], num_instructions=60)
    _check_invariants(result, rows, lang, 60)
    assert len(rows) == 60 and all(set(r) == {"instruction", "input", "output"} for r in rows)
    log = result.logs[-1]
    reasons = {r for _, r in log.reasons}
    assert any(r.startswith("ROUGE-L") for r in reasons)  # the double repeats an example now and then
    assert log.dropped["duplicates"] > 0 and log.dropped["filtered"] > 0
    assert result.usage["prompt_tokens"] > 0 and result.usage["completion_tokens"] > 0


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_self_instruct_mode(tmp_path, lang):
    with LLMDouble(faults=FAULTS) as double:
        result, rows = _run(double, tmp_path, mode="self-instruct", seed_tasks=[SEEDS[lang]], lang=lang,
                            num_instructions=30)
    _check_invariants(result, rows, lang, 30)
    stages = [lg.stage for lg in result.logs]
    assert stages == ["generate-instructions", "generate"]
    instances = result.logs[1]
    assert instances.n_out == len(rows) > 30  # several instances per instruction
    assert ("filtered", "input equals output") in instances.reasons  # Self-Instruct's clean-up ran
    for r in rows:
        assert r["input"] != r["output"] and r["output"]


def test_faults_are_counted_and_raw_text_of_unparsable_answers_is_kept(tmp_path):
    with LLMDouble(faults={"garbage": 0.3, "length": 0.3, "429": 0.2, "slow": 0.05}, slow_seconds=1.2) as double:
        result, rows = _run(double, tmp_path, num_instructions=80, timeout=0.4)
    assert all(lg.balanced for lg in result.logs)
    reasons = dict(((k, r), n) for (k, r), n in result.logs[-1].reasons.items())
    assert reasons[("filtered", "unparsable response")] >= 1
    assert reasons[("filtered", "truncated last item (finish_reason=length)")] >= 1
    assert result.usage["errors"].get("429", 0) >= 1 and result.usage["retries"] >= 1
    failures = [json.loads(line) for line in Path(result.failures_path).read_text().splitlines()]
    garbage = [f for f in failures if f["kind"] == "unparsable response"]
    assert garbage and "quick brown fox" in garbage[0]["raw"]


def test_failed_requests_are_recorded_after_the_attempt_cap(tmp_path):
    with LLMDouble(faults={"500": 0.5}, transient_times=99) as double:
        result, rows = _run(double, tmp_path, num_instructions=60, max_attempts=2)
    assert result.failures >= 1 and result.usage["failures"] == result.failures
    failures = [json.loads(line) for line in Path(result.failures_path).read_text().splitlines()]
    assert sum(f["kind"] == "request failed" for f in failures) == result.failures
    assert all("gave up after 2 attempts" in f["error"] for f in failures if f["kind"] == "request failed")
    assert len(rows) == 60


@pytest.mark.parametrize("mode", ["alpaca", "self-instruct"])
def test_400_on_response_format_falls_back_to_numbered_text(tmp_path, mode):
    with LLMDouble(reject_response_format=True) as double:
        result, rows = _run(double, tmp_path, mode=mode, num_instructions=25)
        assert double.statuses["400"] == 1  # one probe, then text for the whole run
        result2, rows2 = _run(double, tmp_path, name="again.jsonl", mode=mode, num_instructions=25)
        assert double.statuses["400"] == 1  # the cache remembers the endpoint's answer
    assert result.logs[-1].info["response_form"] == "text" and len(rows) >= 25
    assert rows2 == rows


def test_json_only_mode_explains_what_to_do_when_the_endpoint_refuses(tmp_path):
    with LLMDouble(reject_response_format=True) as double:
        with pytest.raises(InstructgenError, match="--response-format text"):
            _run(double, tmp_path, response_format="json")


def test_same_seed_same_output_and_different_seed_differs(tmp_path):
    with LLMDouble(faults=FAULTS) as double:
        _, a = _run(double, tmp_path / "a", concurrency=8, cache_dir=str(tmp_path / "a" / "c"))
        _, b = _run(double, tmp_path / "b", concurrency=2, cache_dir=str(tmp_path / "b" / "c"))
        _, c = _run(double, tmp_path / "c", seed=1, cache_dir=str(tmp_path / "c" / "c"))
    assert a == b and a != c


def test_api_key_rules(monkeypatch, tmp_path):
    monkeypatch.delenv("MY_KEY", raising=False)
    local = GenerateConfig(seed_tasks=[], base_url="http://127.0.0.1:8000/v1", api_key_env="MY_KEY")
    assert resolve_api_key(local) == "not-needed"
    remote = GenerateConfig(seed_tasks=[], base_url="https://api.example.com/v1", api_key_env="MY_KEY")
    with pytest.raises(InstructgenError, match="set the environment variable MY_KEY"):
        resolve_api_key(remote)
    monkeypatch.setenv("MY_KEY", SECRET)
    assert resolve_api_key(remote) == SECRET


def _cli(double, out, *extra, seed_file=SEEDS["en"], n=150):
    return [sys.executable, "-m", "instructgen.cli", "generate", "--seed-tasks", seed_file, "-n", str(n),
            "-o", str(out), "--base-url", double.base_url, "--model", "double", "--concurrency", "4",
            "--retry-backoff", "0.01", "--api-key-env", "IG_TEST_KEY", "--progress", "never", *extra]


def test_cli_end_to_end_with_prices_and_secret_never_written(tmp_path):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"double": {"prompt": 0.15, "completion": 0.6}}))
    out = tmp_path / "gen.jsonl"
    env = {**os.environ, "IG_TEST_KEY": SECRET}
    with LLMDouble(faults={"garbage": 0.2}) as double:
        proc = subprocess.run(_cli(double, out, "--prices", str(prices), "--lang", "zh", seed_file=SEEDS["zh"], n=30),
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "generate: in " in proc.stderr and "wrote 30 records" in proc.stderr and "cost ≈ $" in proc.stderr
    stats = json.loads((tmp_path / "gen.stats.json").read_text())
    assert stats["stages"][0]["balanced"] and stats["generate"]["usage"]["cost_usd"] > 0
    assert stats["generate"]["usage"]["prompt_tokens"] > 0
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f
    assert SECRET not in proc.stderr + proc.stdout


def test_cli_missing_key_for_remote_endpoint_is_one_line(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("IG_ABSENT_KEY", raising=False)
    code = cli_main(["generate", "--seed-tasks", SEEDS["en"], "-n", "5", "-o", str(tmp_path / "o.jsonl"),
                     "--base-url", "https://api.example.com/v1", "--api-key-env", "IG_ABSENT_KEY"])
    err = capsys.readouterr().err
    assert code == 1 and "set the environment variable IG_ABSENT_KEY" in err and "Traceback" not in err


def _count_cached(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT COUNT(*) FROM responses WHERE key NOT LIKE 'capability:%'").fetchone()[0]
    except sqlite3.OperationalError:  # the table is not created yet
        return 0


@pytest.mark.parametrize("sig, code", [(signal.SIGKILL, -signal.SIGKILL), (signal.SIGINT, 130)],
                         ids=["kill-9", "ctrl-c"])
def test_interrupt_and_resume(tmp_path, sig, code):
    """Interrupt the CLI mid-run; the rerun repays no cached request and ends exactly like an uninterrupted run."""
    out = tmp_path / "gen.jsonl"
    cache_db = tmp_path / "gen.cache" / "requests.sqlite"
    with LLMDouble(latency=0.05, faults={"garbage": 0.05, "length": 0.1}) as double:
        proc = subprocess.Popen(_cli(double, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
        deadline = time.monotonic() + 60
        while _count_cached(cache_db) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
        assert proc.returncode == code, proc.stderr.read()
        assert not out.exists()  # the output is written atomically: nothing half-written
        cached_before = _count_cached(cache_db)
        assert cached_before >= 3
        double.wait_idle()  # answers to the dead client are finished (and counted) before we look
        served_before = dict(double.served)
        received_before = set(double.hits)  # every request that reached the double before the kill

        resumed = subprocess.run(_cli(double, out), capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        repaid = [k for k, n in double.served.items() if n > 1]
        # only requests in flight at the kill (answer never stored) may be paid twice: at most --concurrency
        assert len(repaid) <= 4 and all(k in received_before for k in repaid)
        stats = json.loads((tmp_path / "gen.stats.json").read_text())["generate"]["usage"]
        assert stats["cache_hits"] >= cached_before
        assert cached_before < _count_cached(cache_db)  # it was killed midway: the rerun had work left
        assert stats["requests_sent"] == sum(double.served.values()) - sum(served_before.values())

    with LLMDouble(latency=0.0, faults={"garbage": 0.05, "length": 0.1}) as fresh:
        reference = tmp_path / "ref"
        reference.mkdir()
        ran = subprocess.run(_cli(fresh, reference / "gen.jsonl"), capture_output=True, text=True, cwd=reference,
                             timeout=120)
        assert ran.returncode == 0, ran.stderr
    got = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    want = [orjson.loads(line) for line in (reference / "gen.jsonl").read_bytes().splitlines()]
    assert len(got) == 150 and got == want  # no duplicate, no lost instruction
    assert len({r["instruction"] for r in got}) == 150


def test_run_request_batch_uses_the_cache_for_coarse_batches(tmp_path):
    from instructgen.generate.client import ChatRequest
    from instructgen.generate.run import run_request_batch

    requests = [ChatRequest([{"role": "user", "content": f"Task 1: Name a colour. ({i})"}], {"seed": i})
                for i in range(5)]
    with LLMDouble(faults={"429": 0.5}) as double:
        config = _config(double, tmp_path, retry_backoff=0.01)
        first = run_request_batch(config, requests)
        hits = double.total_hits
        again = run_request_batch(config, requests)
        assert double.total_hits == hits
    assert [r.text for r in first] == [r.text for r in again] and all(r.ok for r in first)
    assert all(r.cached for r in again) and [r.request.params["seed"] for r in again] == list(range(5))


def test_seed_tasks_in_another_format_and_a_bad_seed_row_is_an_error(tmp_path):
    from instructgen.errors import InstructgenError
    from instructgen.generate.run import load_seed_tasks

    good = tmp_path / "seeds.jsonl"
    good.write_text('{"instruction": "Name a colour.", "input": "", "output": "Blue"}\n'
                    '{"instruction": "Add the numbers.", "input": "2 3", "output": "5"}\n', encoding="utf-8")
    seeds = load_seed_tasks([str(good)])
    assert [s.instruction for s in seeds] == ["Name a colour.", "Add the numbers."]
    assert seeds[1].instances == [("2 3", "5")]

    bad = tmp_path / "bad.jsonl"
    bad.write_text(good.read_text() + '{"instruction": "x", "output": 7}\n', encoding="utf-8")
    with pytest.raises(InstructgenError, match=f"{bad}:3"):
        load_seed_tasks([str(bad)])
