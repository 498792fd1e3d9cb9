"""Evol-Instruct, preference pairs and the ledger of failures, end to end against the LLM test double.

The double plants, among its evolutions and verdicts, one bad kind for each elimination rule (a copied
scaffolding phrase, an unchanged instruction, an instruction answered by a short apology, one answered by stop
words only) and each judge failure (position bias, tie, no verdict), and records which: every planted failure
must be eliminated with its own rule and nothing else eliminated.
"""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import pytest

from conftest import REPO
from instructgen.generate import elimination as rules
from instructgen.generate.config import GenerateConfig
from instructgen.generate.pairs import DISAGREE, TIE, UNREADABLE_VERDICT
from instructgen.generate.run import generate
from instructgen.generate.similarity import rouge_l
from instructgen.prompts import evol_instruct, mt_bench
from instructgen.runlog import RunLog
from llm_double import LLMDouble

SEEDS = {"en": REPO / "data/seeds/seed_tasks_en.jsonl", "zh": REPO / "data/seeds/seed_tasks_zh.jsonl"}
RULE_OF = {"copy": rules.COPIES_PROMPT, "same": rules.NO_GAIN, "sorry": rules.SORRY, "stop": rules.ONLY_STOP_WORDS}


def _run(double: LLMDouble, tmp_path: Path, name: str = "out.jsonl", retry_failed: bool = False, **kw):
    settings = dict(seed_tasks=[SEEDS[kw.get("lang", "en")]], num_instructions=1000, base_url=double.base_url,
                    model="double", concurrency=8, retry_backoff=0.01, cache_dir=tmp_path / "cache", mode="evol")
    config = GenerateConfig(**{**settings, **kw})
    out = tmp_path / name
    log = RunLog("generate", tmp_path / f"{name}.rejects.jsonl")
    result = generate(config, out, log, failures_path=tmp_path / f"{name}.failures.jsonl", retry_failed=retry_failed)
    return result, _lines(out), _lines(tmp_path / f"{name}.rejects.jsonl")


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


# -- Evol-Instruct --------------------------------------------------------------------------------

@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_planted_failure_is_eliminated_with_its_rule_and_nothing_else(tmp_path, lang):
    with LLMDouble(faults={"429": 0.05, "500": 0.05}, planted_rate=0.07) as double:
        result, rows, rejects = _run(double, tmp_path, lang=lang, rounds=3)
        planted = dict(double.planted)
    assert all(lg.balanced for lg in result.logs) and result.failures == 0 and result.complete
    assert result.usage["retries"] > 0  # the faults were there, and retried
    eliminated = [r for r in rejects if r["reason"].startswith("eliminated: ")]
    for entry in eliminated:
        kind = planted[(entry["raw"]["parent"].strip(), entry["raw"]["evolved"].strip())]
        assert RULE_OF.get(kind) == entry["rule"] == entry["reason"].removeprefix("eliminated: "), entry
    planted_bad = {pair for pair, kind in planted.items() if kind != "good"}
    assert planted_bad == {(e["raw"]["parent"].strip(), e["raw"]["evolved"].strip()) for e in eliminated}
    assert {e["rule"] for e in eliminated} == set(rules.RULES)  # all four rules were exercised
    for row in rows:
        assert planted[(row["meta"]["evol"]["parent"].strip(), row["instruction"].strip())] == "good"
    assert result.stats()["failure_reasons"]["evol"][f"eliminated: {rules.NO_GAIN}"] == \
        sum(e["rule"] == rules.NO_GAIN for e in eliminated)


def test_lineage_is_kept_and_the_diversity_filter_spans_lineages(tmp_path):
    with LLMDouble() as double:
        result, rows, rejects = _run(double, tmp_path, rounds=3, similarity_threshold=0.6)
    by_id = {r["meta"]["evol"]["id"]: r for r in rows}
    rounds = {r["meta"]["evol"]["round"] for r in rows}
    assert rounds == {1, 2, 3}
    for row in rows:
        evol = row["meta"]["evol"]
        assert evol["mutation"] in evol_instruct.MUTATIONS and evol["root"].startswith("seed ")
        if evol["parent_id"].startswith("r"):  # evolved from an evolution: that one was kept, earlier
            parent = by_id[evol["parent_id"]]
            assert parent["instruction"] == evol["parent"] and parent["meta"]["evol"]["round"] < evol["round"]
            assert parent["meta"]["evol"]["root"] == evol["root"]
    assert any(r["reason"].startswith("ROUGE-L") for r in rejects)  # it did filter
    for a, b in combinations(rows, 2):
        if a["meta"]["evol"]["root"] != b["meta"]["evol"]["root"]:  # other lineages: diverse, by brute force
            assert rouge_l(a["instruction"], b["instruction"]) <= 0.6


def test_the_prompts_are_the_published_ones():
    prompt = evol_instruct.evolution_prompt("Name three colours.", "add_constraints", "en")
    assert prompt.startswith("I want you act as a Prompt Rewriter.")
    assert "Please add one more constraints/requirements into #The Given Prompt#'" in prompt
    assert prompt.endswith("#The Given Prompt#: \n Name three colours. \n#Rewritten Prompt#:\n")
    assert "be even more rare" in evol_instruct.evolution_prompt("x", "breadth", "en")
    assert "Just answer: Equal or Not Equal" in evol_instruct.equality_prompt("a", "b", "en")
    assert mt_bench.parse_verdict("... [[B]]") == "B" and mt_bench.parse_verdict("no verdict") is None


@pytest.mark.parametrize("answer, rule", [
    ("Sorry, I can't help with that.", rules.SORRY),
    ("抱歉，我无法回答。", rules.SORRY),
    ("It is what it is, and so on.", rules.ONLY_STOP_WORDS),
    ("的，了。", rules.ONLY_STOP_WORDS),
    ("Sorry for the wait: " + "a long and useful answer about glaciers " * 12, None),  # >= 80 words
    ("Paris is the capital of France.", None),
])
def test_answer_rules(answer, rule):
    assert rules.answer_problem(answer) == rule


def test_scaffolding_and_equality_parsing():
    assert rules.copies_prompt("#Rewritten Prompt#: list five birds", "en") == "#rewritten prompt#"
    assert rules.copies_prompt("Rewrite the given prompt with more detail", "en") == "given prompt"
    assert rules.copies_prompt("List five birds that migrate in winter.", "en") is None
    assert rules.parse_equality("Not Equal") is False and rules.parse_equality("Equal.") is True
    assert rules.parse_equality("I am not sure") is None


# -- the ledger and --retry-failed ----------------------------------------------------------------------

def test_failed_requests_are_in_the_ledger_and_retry_failed_sends_only_their_rows(tmp_path):
    with LLMDouble(faults={"500": 0.12}, transient_times=99, planted_rate=0.0) as broken:
        first, rows, rejects = _run(broken, tmp_path, rounds=2, max_attempts=1, max_failures_in_a_row=1000)
    ledger = [r for r in rejects if r.get("ledger") == "request failed"]
    assert ledger and first.lost_instructions == len({r["row"] for r in ledger}) and first.failed
    assert len(ledger) == first.failures  # every request that failed, one ledger row each
    assert all(r["reason"] == "request failed: 500" and r["kind"] == "rejected" and r["key"] and
               r["row"].startswith("evolution ") and "internal error" in r["raw"] for r in ledger)
    assert first.stats()["failure_reasons"]["evol"]["request failed: 500"] == len(ledger)
    with LLMDouble(planted_rate=0.0) as healthy:
        second, rows2, rejects2 = _run(healthy, tmp_path, rounds=2, retry_failed=True)
        assert set(healthy.hits.values()) == {1}  # nothing sent twice
        sent = healthy.total_hits
        again, rows3, _ = _run(healthy, tmp_path, rounds=2)  # a plain rerun: all from the cache, same output
        assert healthy.total_hits == sent and rows3 == rows2
    retried_rows = {r["row"] for r in ledger}
    assert 0 < sent <= 3 * len(retried_rows)  # evolve, answer and judge of the failed rows, nothing else
    assert not any(r.get("ledger") == "request failed" for r in rejects2)
    assert second.failures == 0 and second.usage["not_sent"] == 0
    assert rows2[:len(rows)] == rows  # the first run's records, unchanged: a recovered row changes no decision
    recovered = rows2[len(rows):]
    assert recovered and {f"evolution {r['meta']['evol']['id'][1:]}" for r in recovered} <= retried_rows
    assert len({r["instruction"] for r in rows2}) == len(rows2)  # nothing duplicated


def test_retry_failed_asks_an_unreadable_reply_again_with_a_new_seed(tmp_path):
    class MuteJudge(LLMDouble):
        def compose(self, body, rng):
            text = super().compose(body, rng)
            return "I would rather not say." if text in ("Equal", "Not Equal") and self.mute else text

    with MuteJudge(planted_rate=0.0) as double:
        double.mute = True
        first, rows, rejects = _run(double, tmp_path, rounds=1)
        unreadable = [r for r in rejects if r.get("ledger") == "unreadable reply"]
        assert unreadable and not rows and first.unparsable == len(unreadable)
        double.mute = False
        before = sum(double.hits.values())
        second, rows2, rejects2 = _run(double, tmp_path, rounds=1, retry_failed=True)
        sent = sum(double.hits.values()) - before
    assert sent == len(unreadable)  # only the judgements, asked again (a new seed: not the cached answer)
    assert len(rows2) == len(unreadable) and not any(r.get("ledger") for r in rejects2)


def test_retry_failed_without_a_ledger_says_what_to_do(tmp_path):
    from instructgen.errors import InstructgenError

    with LLMDouble() as double, pytest.raises(InstructgenError, match="no rejects file at .*without --retry-failed"):
        _run(double, tmp_path, retry_failed=True)


def test_alpaca_failed_requests_are_in_the_ledger_too(tmp_path):
    with LLMDouble(faults={"500": 0.3}, transient_times=99) as double:
        result, rows, rejects = _run(double, tmp_path, mode="alpaca", num_instructions=200, max_attempts=1,
                                     max_failures_in_a_row=100)
    ledger = [r for r in rejects if r.get("ledger") == "request failed"]
    assert len(ledger) == result.failures > 0 and all(r["mode"] == "alpaca" for r in ledger)
    assert all(lg.balanced for lg in result.logs)


# -- preference pairs -------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["alpaca", "openai"])
def test_pairs_both_orders_agree_or_no_pair_and_every_judge_failure_is_recorded(tmp_path, fmt):
    with LLMDouble(faults={"429": 0.05}, planted_rate=0.1) as double:
        result, rows, rejects = _run(double, tmp_path, mode="pairs", format=fmt, num_instructions=1000)
        judged = dict(double.planted_judge)
    assert all(lg.balanced for lg in result.logs) and rows
    why = {"biased": DISAGREE, "tie": TIE, "mute": UNREADABLE_VERDICT}
    for entry in rejects:
        pair = tuple(sorted((entry["raw"]["answer_a"], entry["raw"]["answer_b"]), key=lambda t: (len(t), t)))
        assert why[judged[pair]] == entry["reason"], entry
    assert {e["reason"] for e in rejects} == set(why.values())
    assert len(rejects) == sum(kind != "fair" for kind in judged.values())
    for row in rows:
        chosen = row["chosen"] if fmt == "alpaca" else row["chosen"]["content"]
        rejected = row["rejected"] if fmt == "alpaca" else row["rejected"]["content"]
        pair = tuple(sorted((chosen, rejected), key=lambda t: (len(t), t)))
        assert judged[pair] == "fair" and chosen == pair[1]  # the fair judge prefers the longer answer
        prompt = row["instruction"] if fmt == "alpaca" else row["messages"][-1]["content"]
        assert prompt and row["meta"]["pairs"]["verdicts"] in (["A", "B"], ["B", "A"])


def test_max_requests_caps_the_row_modes_and_a_rerun_with_more_continues_from_the_cache(tmp_path):
    with LLMDouble(planted_rate=0.0) as double:
        capped, rows, _ = _run(double, tmp_path, rounds=2, max_requests=30, concurrency=4)
        sent = double.total_hits
        assert capped.stop_reason == "max-requests" and not capped.failed and capped.skipped > 0
        assert sent == 30  # no faults: each request started is one HTTP request
        full, rows2, _ = _run(double, tmp_path, rounds=2, concurrency=4)
        assert set(double.hits.values()) == {1}  # nothing paid twice
    assert full.stop_reason == "done" and len(rows2) > len(rows)


def test_pairs_in_openais_preference_layout_and_a_larger_n_repays_nothing(tmp_path):
    with LLMDouble(planted_rate=0.0) as double:
        small, rows, _ = _run(double, tmp_path, mode="pairs", format="openai", layout="preference",
                              num_instructions=3, concurrency=4)
        first = double.total_hits
        assert first <= 4 * 4  # rows started no further ahead than the pairs still wanted
        larger, rows2, _ = _run(double, tmp_path, mode="pairs", format="openai", layout="preference",
                                num_instructions=10, concurrency=4)
        assert set(double.hits.values()) == {1}  # the first run's requests, in flight at its end, were cached
    assert len(rows) == 3 and len(rows2) == 10 and rows2[:3] == rows
    for row in rows2:
        assert set(row) == {"input", "preferred_output", "non_preferred_output"}
        assert row["input"]["messages"][-1]["role"] == "user"
        assert row["preferred_output"][0]["content"] != row["non_preferred_output"][0]["content"]


def test_openai_layouts_need_the_openai_format():
    with pytest.raises(ValueError, match="needs format openai"):
        GenerateConfig(seed_tasks=[SEEDS["en"]], mode="pairs", layout="preference")
    with pytest.raises(ValueError, match="use it with mode pairs"):
        GenerateConfig(seed_tasks=[SEEDS["en"]], format="openai", layout="preference")
