"""Several endpoints in one run (pairs' answers, chat's user simulator), pairs judged by `score`'s judges, and
the spending caps (--max-tokens alias --max-total-tokens, --max-cost) — against LLM test doubles on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from instructgen.errors import InstructgenError
from instructgen.generate.config import GenerateConfig
from instructgen.generate.pairs import TIE, UNSCORED
from instructgen.generate.run import generate
from instructgen.generate.seeds import load_seed_tasks
from instructgen.runlog import RunLog
from judge_double import JudgeDouble
from llm_double import EN, LLMDouble

SEEDS = REPO / "data/seeds/seed_tasks_en.jsonl"
SECRET = "sekrit-user-key-0123456789"


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def _run(tmp_path: Path, name: str = "out.jsonl", prices: dict | None = None, **kw):
    settings = dict(seed_tasks=[SEEDS], num_instructions=1000, model="double", concurrency=6, retry_backoff=0.01,
                    cache_dir=tmp_path / "cache", mode="pairs")
    config = GenerateConfig(**{**settings, **kw})
    log = RunLog("generate", tmp_path / f"{name}.rejects.jsonl")
    result = generate(config, tmp_path / name, log, failures_path=tmp_path / f"{name}.failures.jsonl", prices=prices)
    return result, _lines(tmp_path / name), _lines(tmp_path / f"{name}.rejects.jsonl")


# -- several endpoints ------------------------------------------------------------------------------

def test_pairs_answers_come_from_each_endpoint_and_the_cache_keeps_them_apart(tmp_path):
    with LLMDouble(planted_rate=0.0) as judge, LLMDouble(planted_rate=0.0) as a, LLMDouble(planted_rate=0.0) as b:
        # the same model name on both answer endpoints: only the endpoint tells their answers apart
        endpoints = [f"{a.base_url}=same-model", f"{b.base_url}=same-model"]
        result, rows, rejects = _run(tmp_path, base_url=judge.base_url, answer_endpoints=endpoints,
                                     num_instructions=12, pair_temperatures=[0.7])
        hits = (a.total_hits, b.total_hits, judge.total_hits)
        assert all(lg.balanced for lg in result.logs) and len(rows) == 12 and result.failures == 0
        # every answer request went to its endpoint, every judge request to --base-url
        assert a.total_hits == b.total_hits > 0 and judge.total_hits > 0
        assert not set(a.hits) & set(judge.hits) and not set(b.hits) & set(judge.hits)
        for row in rows:
            sources = row["meta"]["pairs"]["sources"]
            assert {s["endpoint"] for s in sources} <= {a.base_url, b.base_url}
            assert all(s["model"] == "same-model" and s["temperature"] == 0.7 for s in sources)
        again, rows2, _ = _run(tmp_path, name="again.jsonl", base_url=judge.base_url, answer_endpoints=endpoints,
                               num_instructions=12, pair_temperatures=[0.7])
        assert (a.total_hits, b.total_hits, judge.total_hits) == hits  # a rerun pays nothing on any endpoint
        assert again.usage["requests_sent"] == 0 and rows2 == rows
        # the same model name at another endpoint: its answers are asked there, not replayed from a's
        swapped, rows3, _ = _run(tmp_path, name="swapped.jsonl", base_url=judge.base_url,
                                 answer_endpoints=endpoints[::-1], num_instructions=12, pair_temperatures=[0.7])
        assert a.total_hits > hits[0] and b.total_hits > hits[1]
        assert set(a.hits) & set(b.hits)  # the same requests reached both endpoints


def test_chat_user_simulator_on_its_own_endpoint(tmp_path):
    topics = tmp_path / "topics.txt"
    topics.write_text("\n".join(EN["topic"][:8]) + "\n", encoding="utf-8")
    with LLMDouble(planted_rate=0.0) as assistant, LLMDouble(planted_rate=0.0) as user:
        result, rows, _ = _run(tmp_path, mode="chat", seed_tasks=[topics], turns=2, format="sharegpt",
                               base_url=assistant.base_url, user_base_url=user.base_url, user_model="simulator",
                               num_instructions=8)
        assert all(lg.balanced for lg in result.logs) and rows
        # the simulator's prompts reached only `user`, the conversation only `assistant`
        assert set(user.planted_chat) == set(EN["topic"][:8]) and not assistant.planted_chat
        assert user.total_hits >= len(rows) and assistant.total_hits >= len(rows)
        chat = rows[0]["meta"]["chat"]
        assert chat["user_model"] == "simulator" and chat["user_endpoint"] == user.base_url


def test_endpoint_credentials_are_never_shown(tmp_path):
    with LLMDouble(planted_rate=0.0) as judge, LLMDouble(planted_rate=0.0) as a:
        secret_url = a.base_url.replace("http://", f"http://user:{SECRET}@")
        out = tmp_path / "pairs.jsonl"
        r = subprocess.run([sys.executable, "-m", "instructgen.cli", "generate", "--mode", "pairs", "--seed-tasks",
                            str(SEEDS), "-n", "3", "-o", str(out), "--base-url", judge.base_url, "--model", "double",
                            "--answer-endpoints", f"{secret_url}=m1", f"{a.base_url}=m2", "--progress", "never"],
                           capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert r.returncode == 0, r.stderr
        assert a.total_hits > 0
        bad = subprocess.run([sys.executable, "-m", "instructgen.cli", "generate", "--mode", "pairs",
                              "--seed-tasks", str(SEEDS), "-o", str(tmp_path / "x.jsonl"), "--answer-endpoints",
                              f"http://u:{SECRET}@127.0.0.1:1/v1"], capture_output=True, text=True, cwd=tmp_path,
                             timeout=120)
    assert bad.returncode != 0 and "URL=MODEL" in bad.stderr
    written = [r.stdout, r.stderr, bad.stdout, bad.stderr] + [
        p.read_text(encoding="utf-8", errors="replace") for p in tmp_path.rglob("*") if p.is_file()
        and p.suffix in (".jsonl", ".json")]
    assert len(_lines(out)) == 3 and not any(SECRET in text for text in written)
    assert any("***@" in text for text in written)  # the endpoint is named, redacted


def test_a_dead_answer_endpoint_is_named_in_the_ledger_and_stops_the_run(tmp_path):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://user:{SECRET}@127.0.0.1:{sock.getsockname()[1]}/v1"
    with LLMDouble(planted_rate=0.0) as judge:
        result, rows, rejects = _run(tmp_path, base_url=judge.base_url, answer_endpoints=[f"{dead}=gone"],
                                     max_attempts=1, max_failures_in_a_row=3, concurrency=2)
        assert judge.total_hits == 0  # no answer, so nothing to judge
    assert result.failed and result.stop_reason == "failing" and not rows
    assert all(lg.balanced for lg in result.logs)
    failed = [e for e in rejects if e.get("ledger") == "request failed"]
    assert failed and all(e["endpoint"] == dead.replace(f"user:{SECRET}", "***") and e["model"] == "gone"
                          for e in failed)
    message = result.shortfall()
    assert "could not reach the endpoint (one of) " + judge.base_url in message and "***@127.0.0.1" in message
    texts = [message] + [p.read_text(encoding="utf-8") for p in tmp_path.glob("*.jsonl")]
    assert not any(SECRET in text for text in texts)


def test_answer_endpoints_are_url_equals_model_given_apart_or_comma_separated():
    both = GenerateConfig(answer_endpoints="http://127.0.0.1:8000/v1=m1, http://10.0.0.2:9/v1=org/m-2")
    apart = GenerateConfig(answer_endpoints=["http://127.0.0.1:8000/v1=m1", "http://10.0.0.2:9/v1=org/m-2"])
    assert both.answer_endpoint_list() == apart.answer_endpoint_list() == [
        ("http://127.0.0.1:8000/v1", "m1"), ("http://10.0.0.2:9/v1", "org/m-2")]
    with pytest.raises(ValueError, match="is not URL=MODEL") as error:
        GenerateConfig(answer_endpoints=[f"http://u:{SECRET}@host/v1="])
    assert SECRET not in str(error.value).split("input_value")[0]
    config = GenerateConfig(answer_endpoints=[f"http://u:{SECRET}@host/v1=m"], user_base_url=f"http://u:{SECRET}@h/v1")
    assert SECRET not in repr(config) and SECRET not in str(config.redacted_dump())


def test_a_remote_answer_endpoint_needs_the_key(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with LLMDouble(planted_rate=0.0) as judge:
        with pytest.raises(InstructgenError, match="OPENAI_API_KEY"):
            _run(tmp_path, base_url=judge.base_url, answer_endpoints=["https://api.example.com/v1=gpt-x"])


# -- pairs judged by a score judge ----------------------------------------------------------------------

@pytest.mark.parametrize("judge_name", ["alpagasus", "mt-bench"])
def test_pairs_by_a_score_judge_highest_over_lowest_ties_and_unscored_recorded(tmp_path, judge_name):
    with JudgeDouble(noscore=0.08) as judge, LLMDouble(planted_rate=0.0) as answers:
        result, rows, rejects = _run(tmp_path, base_url=judge.base_url, judge=judge_name, answers_per_prompt=2,
                                     answer_endpoints=[f"{answers.base_url}=double"])
    assert all(lg.balanced for lg in result.logs) and rows and result.failures == 0
    reasons = {e["reason"] for e in rejects}
    assert reasons == {TIE, UNSCORED}
    assert len(rows) + len(rejects) == len(load_seed_tasks([SEEDS]))  # each prompt: a pair, a tie or unscored
    for row in rows:
        best, worst = row["meta"]["pairs"]["scores"]
        assert best > worst and judge_name in row["meta"]["pairs"]["judge"]
        assert row["chosen"] != row["rejected"]
    for entry in rejects:
        if entry["reason"] == TIE:
            assert len(set(entry["scores"])) < len(entry["scores"]) and max(entry["scores"]) == min(entry["scores"])
        else:  # unscored: in the ledger with its request key, so --retry-failed asks again
            assert entry["ledger"] == "unreadable reply" and entry["key"]
            unscored = entry["raw"]["judgements"][entry["raw"]["unscored_answer"]]
            assert not any(ch.isdigit() for ch in unscored)  # the double's reply without a number


# -- spending caps -------------------------------------------------------------------------------------

def test_max_total_tokens_stops_cleanly_and_a_larger_cap_continues_from_the_cache(tmp_path):
    with LLMDouble(planted_rate=0.0) as double:
        capped, rows, rejects = _run(tmp_path, base_url=double.base_url, max_total_tokens=4000, concurrency=2)
        paid = capped.usage["prompt_tokens"] + capped.usage["completion_tokens"]
        assert capped.stop_reason.startswith("budget") and "--max-tokens 4000 reached" in capped.shortfall()
        assert not capped.failed and all(lg.balanced for lg in capped.logs)
        assert 0 < len(rows) < len(load_seed_tasks([SEEDS])) and paid >= 4000
        assert paid < 4000 + 2 * 3 * 1200  # stopped soon after: the requests in flight finish, nothing new starts
        sent = double.total_hits
        more, rows2, _ = _run(tmp_path, name="more.jsonl", base_url=double.base_url, max_total_tokens=12000,
                              concurrency=2)
        assert set(double.hits.values()) == {1} and double.total_hits > sent  # nothing paid twice
    assert rows2[:len(rows)] == rows and len(rows2) > len(rows)


def test_max_cost_needs_prices_and_stops_at_the_cap(tmp_path):
    with LLMDouble(planted_rate=0.0) as double:
        with pytest.raises(InstructgenError, match="--max-cost needs the price of 'double'"):
            _run(tmp_path, base_url=double.base_url, max_cost=0.01)
        prices = {"double": {"prompt": 1.0, "completion": 2.0}}  # USD per 1M tokens
        capped, rows, _ = _run(tmp_path, base_url=double.base_url, max_cost=0.01, prices=prices, concurrency=2)
    assert capped.stop_reason.startswith("budget: --max-cost 0.01") and rows
    assert 0.01 <= capped.cost_usd < 0.03 and all(lg.balanced for lg in capped.logs)


def test_cli_budget_stop_exits_zero_with_a_warning(tmp_path):
    with LLMDouble(planted_rate=0.0) as double:
        out = tmp_path / "gen.jsonl"
        r = subprocess.run([sys.executable, "-m", "instructgen.cli", "generate", "--seed-tasks", str(SEEDS),
                            "-n", "500", "-o", str(out), "--base-url", double.base_url, "--model", "double",
                            "--max-total-tokens", "3000", "--progress", "never"],
                           capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "--max-tokens 3000 reached" in r.stderr and _lines(out)
    stats = json.loads((tmp_path / "gen.stats.json").read_text())
    assert json.dumps(stats).count("budget: --max-tokens 3000 reached") >= 1


def test_max_tokens_is_the_run_budget_as_in_score_and_reply_tokens_the_limit_of_one_request(tmp_path):
    """generate --max-tokens is score's --max-tokens (tokens paid in the run); --max-total-tokens still works;
    the `max_tokens` sent with each request is --reply-tokens."""
    sent_limits = []
    with LLMDouble(planted_rate=0.0) as double:
        answer = double.answer
        double.answer = lambda body, headers: (sent_limits.append(body.get("max_tokens")), answer(body, headers))[1]
        runs = {}
        for flag in ("--max-tokens", "--max-total-tokens"):
            out = tmp_path / f"{flag.strip('-')}.jsonl"
            r = subprocess.run([sys.executable, "-m", "instructgen.cli", "generate", "--seed-tasks", str(SEEDS),
                                "-n", "500", "-o", str(out), "--base-url", double.base_url, "--model", "double",
                                flag, "3000", "--reply-tokens", "777", "--progress", "never",
                                "--cache-dir", str(tmp_path / f"cache{flag}")], capture_output=True, text=True,
                               cwd=tmp_path, timeout=120)
            assert r.returncode == 0, r.stderr
            assert "--max-tokens 3000 reached" in r.stderr and "--reply-tokens" in r.stderr
            runs[flag] = _lines(out)
    one, other = runs["--max-tokens"], runs["--max-total-tokens"]
    assert one and other and one[:len(other)] == other[:len(one)]  # the same run, stopped at the same budget
    assert sent_limits and set(sent_limits) == {777}
    assert GenerateConfig(max_total_tokens=50).max_tokens == 50 == GenerateConfig(max_tokens=50).max_tokens
    assert GenerateConfig().max_tokens is None and GenerateConfig().reply_tokens == 3072
    with pytest.raises(ValueError, match="the same budget"):
        GenerateConfig(max_tokens=10, max_total_tokens=20)
