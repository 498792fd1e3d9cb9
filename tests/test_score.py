"""`instructgen score`: the score parser (table and properties) and the command end to end against the judge
test double (real HTTP through generate's client: faults, retries, cache, budget, kill -9 and resume)."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instructgen.cli import main as cli_main
from instructgen.quality.agreement import agreement
from instructgen.quality.judges import BUILT_IN, get_judge, record_fields
from instructgen.quality.parse import parse_score
from judge_double import SHAPES, JudgeDouble

SECRET = "sk-test-NEVER-PRINT-THIS-1234567890"


# -- the parser ------------------------------------------------------------------------------------

@pytest.mark.parametrize("reply, low, high, value", [
    ("4", 0, 5, 4.0),
    ("4.5", 0, 5, 4.5),
    ("Score: 4/5", 0, 5, 4.0),
    ("Rating: [[8]]", 1, 10, 8.0),
    ('{"score": 3}', 0, 5, 3.0),
    ("评分：4分", 0, 5, 4.0),
    ("I would rate it 3 out of 5", 0, 5, 3.0),
    ("4\nThe answer is right, but 1/2 of the steps are unexplained.", 0, 5, 4.0),
    ("The answer has 3 parts. Final rating: [[7.5]]", 1, 10, 7.5),
    ('```json\n{"rating": "5", "why": "ok"}\n```', 0, 5, 5.0),
    ("评分：４分", 0, 5, 4.0),  # full-width digit
    ("我给这个回答打四分。", 0, 5, 4.0),
    ("Step 1/2 is fine. Score: 3", 0, 5, 3.0),  # the label wins over an earlier fraction
])
def test_every_shape_of_the_issue_parses(reply, low, high, value):
    parsed = parse_score(reply, low, high)
    assert parsed is not None and parsed.value == value and not parsed.normalised


@pytest.mark.parametrize("reply, low, high, value, note", [
    ("Score: 8/10", 0, 5, 4.0, "8/10 read as 4 of 5"),
    ("Score: 4/5", 1, 10, 8.0, "4/5 read as 8 of 10"),
    ("8", 0, 5, 4.0, "read on a 0-10 scale"),
    ("85", 1, 10, 8.5, "read on a 0-100 scale"),
    ("0", 1, 10, 1.0, "raised to 1"),
])
def test_another_scale_is_mapped_and_said(reply, low, high, value, note):
    parsed = parse_score(reply, low, high)
    assert parsed.value == value and parsed.normalised and note in parsed.note


@pytest.mark.parametrize("reply", ["", "No idea.", "The answer is fine but could be more detailed.",
                                   "这个回答基本正确，但不够详细。", "Score: N/A"])
def test_a_reply_without_a_score_is_none(reply):
    assert parse_score(reply, 0, 5) is None


@settings(max_examples=300, deadline=None)
@given(scale=st.sampled_from(sorted({(v[0], v[1]) for v in BUILT_IN.values()})),
       q=st.integers(0, 20), seed=st.integers(0, 10_000), shape=st.sampled_from(SHAPES))
def test_property_every_shape_the_double_writes_reads_back(scale, q, seed, shape):
    low, high = scale
    value = round((low + q / 20 * (high - low)) * 2) / 2
    double = JudgeDouble.__new__(JudgeDouble)
    double.shapes = (shape,)
    reply = double.shaped(value, low, high, random.Random(seed))
    parsed = parse_score(reply, low, high)
    assert parsed is not None and parsed.value == pytest.approx(value), reply


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Nd", "No", "Nl")), max_size=300))
def test_property_text_without_digits_holds_no_score_and_never_raises(text):
    parsed = parse_score(text, 0, 5)
    assert parsed is None or text.count("分") or any(c in text for c in "零一二两三四五六七八九十")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.floats(0, 5))
def test_property_a_parsed_score_is_always_on_the_scale(text, _):
    parsed = parse_score(text, 1, 5)
    assert parsed is None or 1 <= parsed.value <= 5


# -- judges ----------------------------------------------------------------------------------------

def test_builtin_judges_fill_the_record_and_say_their_source():
    from instructgen.record import Conversation, Message

    conv = Conversation([Message("user", "写一首关于春天的诗"), Message("assistant", "春眠不觉晓，处处闻啼鸟。")])
    for name in BUILT_IN:
        judge = get_judge(name)
        text = "\n".join(m["content"] for m in judge.messages(conv))
        assert "写一首关于春天的诗" in text and "{" + "instruction}" not in text
        if name != "deita-complexity":
            assert "春眠不觉晓" in text
        assert judge.source
    fields = record_fields(conv)
    assert fields["instruction"] == "写一首关于春天的诗" and fields["response"] == "春眠不觉晓，处处闻啼鸟。"


# -- the command end to end ------------------------------------------------------------------------

def _records(path: Path, n: int, zh_every: int = 3) -> list[float]:
    """n alpaca records whose answers carry QUALITY=q (the double's score); returns the q's."""
    qs, rows = [], []
    for i in range(n):
        q = (i * 7 % 11) / 10
        qs.append(q)
        instruction = f"解释第{i}个关于城市园艺的话题" if i % zh_every == 0 else f"Explain topic {i} about urban gardening"
        rows.append({"instruction": instruction, "input": "", "output": f"Answer {i}, in detail. QUALITY={q}"})
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return qs


def _expected(q: float, judge: str) -> float:
    low, high, _ = BUILT_IN[judge]
    return round((low + q * (high - low)) * 2) / 2


def _score(double, inp: Path, out: Path, *extra: str) -> list[str]:
    return ["score", str(inp), "-o", str(out), "--base-url", double.base_url, "--retry-backoff", "0",
            "--concurrency", "8", *extra]


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def test_score_end_to_end_with_faults_parses_every_shape_and_resumes_from_cache(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    qs = _records(inp, 60)
    with JudgeDouble(noscore=0.2, faults={"429": 0.1, "500": 0.1, "html": 0.05}) as double:
        assert cli_main(_score(double, inp, out, "--judges", "alpagasus,mt-bench")) == 0
        first = capsys.readouterr().err
        sent = double.total_hits
        # rerun: everything comes from the cache, nothing is paid twice
        assert cli_main(_score(double, inp, out, "--judges", "alpagasus,mt-bench")) == 0
        assert double.total_hits == sent
    assert SECRET not in first
    rows = _lines(out)
    assert len(rows) == 60 and not _lines(tmp_path / "out.rejects.jsonl")
    for row, q in zip(rows, qs):
        assert row["meta"]["scores"] == {"alpagasus": _expected(q, "alpagasus"), "mt-bench": _expected(q, "mt-bench")}
    stats = json.loads((tmp_path / "out.stats.json").read_text())
    score = stats["score"]
    assert score["judges"]["alpagasus"]["scored"] == 60 and score["judges"]["alpagasus"]["retried_stricter"] > 0
    assert sum(score["judges"]["mt-bench"]["shapes"].values()) == 60
    for judge in ("alpagasus", "mt-bench"):  # another scale is mapped and said, per record and in the stats
        noted = [r for r in rows if r["meta"]["score_notes"][judge]]
        assert len(noted) == score["judges"][judge]["normalised"] > 0
    pair = score["agreement"]["alpagasus vs mt-bench"]
    a = [r["meta"]["scores"]["alpagasus"] for r in rows]
    m = [r["meta"]["scores"]["mt-bench"] for r in rows]
    assert pair == agreement(a, m, (0, 5), (1, 10)) and pair["records"] == 60 and pair["spearman"] > 0.9
    assert "score: in 60 = out 60" in first


def test_a_reply_without_a_score_is_asked_again_then_recorded_unscored(tmp_path, capsys):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _records(inp, 12)
    with JudgeDouble(noscore=1.0, never=True) as double:
        assert cli_main(_score(double, inp, out, "--judge", "alpagasus")) == 0
        assert double.total_hits == 24  # each record: the judge prompt, then the stricter retry
    err = capsys.readouterr().err
    assert "score: in 12 = out 0 + rejected 12" in err
    rejects = _lines(tmp_path / "out.rejects.jsonl")
    assert len(rejects) == 12 and {r["kind"] for r in rejects} == {"unscored"}
    assert all(len(r["replies"]) == 2 and r["judge"] == "alpagasus" and r["raw"]["instruction"] for r in rejects)


def test_budget_stops_cleanly_keeps_what_was_scored_and_a_rerun_pays_only_the_rest(tmp_path, capsys):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    qs = _records(inp, 40)
    with JudgeDouble() as double:
        assert cli_main(_score(double, inp, out, "--judge", "mt-bench", "--max-tokens", "2000",
                               "--concurrency", "2")) == 0
        err = capsys.readouterr().err
        kept, rejected = _lines(out), _lines(tmp_path / "out.rejects.jsonl")
        assert 0 < len(kept) < 40 and len(kept) + len(rejected) == 40
        assert all("--max-tokens 2000 reached" in r["reason"] for r in rejected)
        assert "rerun the same command with a larger budget" in err
        paid = double.total_hits
        assert cli_main(_score(double, inp, out, "--judge", "mt-bench")) == 0
        assert double.total_hits - paid == 40 - len(kept)  # scored ones come from the cache
    assert [r["meta"]["scores"]["mt-bench"] for r in _lines(out)] == [_expected(q, "mt-bench") for q in qs]


def test_max_cost_needs_prices(tmp_path, capsys):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _records(inp, 3)
    with JudgeDouble() as double:
        assert cli_main(_score(double, inp, out, "--max-cost", "1")) == 1
    assert "--max-cost needs the price" in capsys.readouterr().err and not out.exists()


def test_own_prompt_chinese_records_and_signals_offline(tmp_path):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    rows = [{"instruction": "写一首诗", "input": "", "output": "春眠不觉晓，处处闻啼鸟。QUALITY=0.5"},
            {"instruction": "Tell me a joke", "input": "", "output": "As an AI language model, I cannot do that."},
            {"instruction": "Describe the attached photo", "input": "", "output": "It shows a cat. QUALITY=1"}]
    inp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    prompt = tmp_path / "helpful.txt"
    prompt.write_text("Rate how helpful this answer is on a scale of 1 to 7.\nQ: {instruction}\nA: {response}\n")
    with JudgeDouble() as double:
        assert cli_main(_score(double, inp, out, "--judge", "signals", "--judge-prompt", str(prompt),
                               "--judge-scale", "1-7")) == 0
    got = [r["meta"]["scores"] for r in _lines(out)]
    assert got[0]["helpful"] == 4.0 and got[2]["helpful"] == 7.0
    assert got[1]["flag_refusal"] == 1.0 and got[0]["flag_refusal"] == 0.0
    assert got[2]["flag_needs_media"] == 1.0 and got[0]["output_length"] > 5


def test_signals_need_no_endpoint(tmp_path):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _records(inp, 5)
    assert cli_main(["score", str(inp), "-o", str(out), "--judge", "signals"]) == 0
    assert all("flag_repetition" in r["meta"]["scores"] for r in _lines(out))
    assert not (tmp_path / "out.cache").exists()


def _count_cached(db: Path) -> int:
    try:
        with sqlite3.connect(db) as con:
            return con.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_kill_9_then_rerun_pays_for_nothing_twice(tmp_path):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _records(inp, 60)
    cache_db = tmp_path / "out.cache" / "requests.sqlite"
    with JudgeDouble(latency=0.05) as double:
        argv = [sys.executable, "-m", "instructgen.cli", *_score(double, inp, out, "--judge", "alpagasus",
                                                                  "--concurrency", "4")]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
        deadline = time.monotonic() + 60
        while _count_cached(cache_db) < 10 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        assert not out.exists()  # written atomically: nothing half-written
        double.wait_idle()
        cached, received_before = _count_cached(cache_db), set(double.hits)
        assert 10 <= cached < 60
        rerun = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        repaid = [k for k, n in double.served.items() if n > 1]
        assert len(repaid) <= 4 and all(k in received_before for k in repaid)  # only those in flight at the kill
    assert len(_lines(out)) == 60


def test_the_api_key_appears_in_no_file_even_when_a_proxy_echoes_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _records(inp, 6)
    with JudgeDouble(faults={"echo_auth": 1.0}, transient_times=99) as double:
        code = cli_main(_score(double, inp, out, "--judge", "alpagasus", "--max-attempts", "2"))
    err = capsys.readouterr().err
    assert code == 1 and "failed for good" in err and SECRET not in err
    failures = (tmp_path / "out.failures.jsonl").read_text()
    assert "Authorization" in failures  # the echoed page is kept, the key in it is not
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    rejects = _lines(tmp_path / "out.rejects.jsonl")
    assert len(rejects) == 6 and all(r["reason"].startswith("not scored: request failed") for r in rejects)


def test_signals_are_the_filters_measures_as_numbers():
    from instructgen.curate.filter import FilterConfig, judge_record
    from instructgen.quality.signals import signals
    from instructgen.record import Conversation, Message

    loop = Conversation([Message("user", "Write a love letter"), Message("assistant", "I love you so much. " * 30)])
    salad = Conversation([Message("user", "Describe the weather today"),
                          Message("assistant", "xqzt vlorp gnarf blick zzyx wompt frazzle quibt snorf plinx")])
    fine = Conversation([Message("user", "Name three primary colours"),
                         Message("assistant", "Red, yellow and blue are the three primary colours.")])
    config = FilterConfig()
    got = {name: signals(conv, config) for name, conv in (("loop", loop), ("salad", salad), ("fine", fine))}
    assert got["loop"]["repetition"] > 0.6 > got["fine"]["repetition"]
    assert got["salad"]["salad"] > 0.5 > got["fine"]["salad"]
    for name, conv in (("loop", loop), ("salad", salad), ("fine", fine)):  # a flag is the filter's own verdict
        verdict = judge_record(conv, config)
        flagged = {f"flag_{verdict.rule}"} if verdict.rule else set()
        flagged |= {f"flag_{f['rule']}" for f in verdict.flags}
        assert {k for k, v in got[name].items() if k.startswith("flag_") and v} >= flagged
    assert got["fine"]["output_length"] == 9 and got["fine"]["turns"] == 1


def test_max_cost_stops_cleanly_at_the_price_given(tmp_path, capsys):
    inp, out, prices = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "prices.json"
    _records(inp, 30)
    prices.write_text('{"*": {"prompt": 100.0, "completion": 100.0}}')  # USD per 1M tokens: ~0.01 a request
    with JudgeDouble() as double:
        assert cli_main(_score(double, inp, out, "--judge", "alpagasus", "--max-cost", "0.05", "--prices",
                               str(prices), "--concurrency", "1")) == 0
    kept, rejected = _lines(out), _lines(tmp_path / "out.rejects.jsonl")
    assert 0 < len(kept) < 30 and len(kept) + len(rejected) == 30
    assert all("--max-cost 0.05 reached" in r["reason"] for r in rejected)
    stats = json.loads((tmp_path / "out.stats.json").read_text())["score"]
    assert stats["cost_usd"] >= 0.05 and stats["stop_reason"].startswith("budget")


def test_parquet_output_keeps_scores_as_a_typed_column(tmp_path):
    import pyarrow.parquet as pq

    inp, out = tmp_path / "in.jsonl", tmp_path / "out.parquet"
    qs = _records(inp, 10)
    with JudgeDouble() as double:
        assert cli_main(_score(double, inp, out, "--judges", "alpagasus,deita-quality")) == 0
    table = pq.read_table(out)
    scores = table.schema.field("meta").type.field("scores").type
    assert {scores.field(n).type for n in ("alpagasus", "deita-quality")} == {__import__("pyarrow").float64()}
    assert table.schema.field("meta").type.field("score_notes").type.field("alpagasus").type == "string"
    got = [row["meta"]["scores"]["alpagasus"] for row in table.to_pylist()]
    assert got == [_expected(q, "alpagasus") for q in qs]


def test_ctrl_c_keeps_what_was_scored_and_the_rerun_pays_only_the_rest(tmp_path):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _records(inp, 80)
    cache_db = tmp_path / "out.cache" / "requests.sqlite"
    with JudgeDouble(latency=0.05) as double:
        argv = [sys.executable, "-m", "instructgen.cli", *_score(double, inp, out, "--judge", "alpagasus",
                                                                  "--concurrency", "2")]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        deadline = time.monotonic() + 60
        while _count_cached(cache_db) < 5 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=120)[1]
        assert proc.returncode == 1 and "stopped (Ctrl-C)" in err and "rerun the same command" in err
        kept, rejected = _lines(out), _lines(tmp_path / "out.rejects.jsonl")
        assert kept and rejected and len(kept) + len(rejected) == 80
        assert {r["reason"] for r in rejected} == {"not scored: the run stopped (Ctrl-C)"}
        double.wait_idle()
        before = double.total_hits
        rerun = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        assert double.total_hits - before <= 80 - len(kept)  # the scored ones come from the cache
    assert len(_lines(out)) == 80


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10), st.integers(1, 6)), min_size=2, max_size=60))
def test_property_spearman_equals_scipys_with_ties(pairs):
    import math

    from scipy.stats import spearmanr  # the reference (test extra); instructgen computes it with polars

    from instructgen.quality.agreement import spearman

    xs, ys = [float(x) for x, _ in pairs], [float(y) for _, y in pairs]
    if len(set(xs)) < 2 or len(set(ys)) < 2:
        return
    expected = spearmanr(xs, ys).statistic
    assert math.isclose(spearman(xs, ys), expected, rel_tol=1e-9, abs_tol=1e-12)


def test_score_refuses_a_cache_other_users_can_write_before_sending_anything(tmp_path, capsys):
    """A shared folder where someone else left OUT.cache/: its 'cached' judge replies would become scores."""
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _records(inp, 5)
    planted = tmp_path / "out.cache" / "requests.sqlite"
    planted.parent.mkdir()
    db = sqlite3.connect(planted)
    db.execute("CREATE TABLE responses (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
    db.commit()
    db.close()
    os.chmod(planted, 0o666)
    with JudgeDouble() as double:
        assert cli_main(_score(double, inp, out, "--judge", "alpagasus")) != 0
        assert not double.hits  # refused before any request
    err = capsys.readouterr().err
    assert "can be written by other users" in err and str(planted) in err and not out.exists()
