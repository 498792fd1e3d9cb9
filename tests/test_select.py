"""`instructgen select`: the walk (best first, thresholds, quotas, budget), Deita's diversity rule through the
incremental LSH index equal to comparing with every selected record, and the command end to end."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instructgen.cli import main as cli_main
from instructgen.quality.select import (NEAR, SELECTED, SelectConfig, Walk, band_rows, needed_matches, signatures)

WORDS = [f"w{i}" for i in range(400)] + list("春夏秋冬山水风雨花鸟")


def near_families(n: int, seed: int = 0) -> list[str]:
    """Texts in families: a base of 25-50 words and variants with 0-2 words changed (near duplicates)."""
    rng = random.Random(seed)
    texts: list[str] = []
    while len(texts) < n:
        base = [rng.choice(WORDS) for _ in range(rng.randint(25, 50))]
        for _ in range(rng.randint(1, 6)):
            variant = list(base)
            for _ in range(rng.randint(0, 2)):
                variant[rng.randrange(len(variant))] = rng.choice(WORDS)
            texts.append(" ".join(variant))
    rng.shuffle(texts)
    return texts[:n]


@settings(max_examples=200, deadline=None)
@given(st.floats(0.05, 0.95), st.sampled_from([32, 64, 128, 256]))
def test_property_a_near_pair_always_shares_a_band(similarity, num_perm):
    rows = band_rows(similarity, num_perm)
    mismatches = num_perm - needed_matches(similarity, num_perm)
    assert num_perm // rows > mismatches  # pigeonhole: some band has no mismatch


@pytest.mark.parametrize("settings_", [
    dict(top_k=300, similarity=0.7), dict(top_k=200, similarity=0.5, per="g"), dict(min=0.3, similarity=0.8),
    dict(budget_tokens=20000, similarity=0.6),
])
def test_the_lsh_walk_equals_the_brute_force_reference(settings_):
    n = 3000
    texts = near_families(n, seed=len(settings_))
    rng = np.random.default_rng(7)
    scores = np.round(rng.random(n), 2)  # rounded: many ties, broken by input order
    groups = rng.integers(0, 3, n) if settings_.get("per") else np.zeros(n, dtype=np.int64)
    tokens = np.array([len(t) // 4 for t in texts])
    config = SelectConfig(by="x", diverse=True, **settings_)
    sigs = signatures(texts, config.num_perm, config.seed)
    fast = Walk(scores, groups, tokens, config, sketch=lambda idx: sigs[idx]).run()
    slow = Walk(scores, groups, tokens, config, sketch=lambda idx: sigs[idx], brute_force=True).run()
    assert (fast.fate == SELECTED).sum() > 20 and (fast.fate == NEAR).sum() > 20
    assert np.array_equal(fast.fate, slow.fate)
    assert np.array_equal(fast.near_of, slow.near_of) and np.array_equal(fast.near_sim, slow.near_sim)
    assert fast.sketched < n or settings_.get("min") is not None  # only what the walk reached was sketched
    chosen = np.flatnonzero(fast.fate == SELECTED)  # no two selected records are near each other
    same = (sigs[chosen][:, None, :] == sigs[chosen][None, :, :]).sum(-1)
    np.fill_diagonal(same, 0)
    assert same.max() < needed_matches(config.similarity, config.num_perm)


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def _scored(n: int = 60) -> list[dict]:
    texts = near_families(n, seed=3)
    rows = []
    for i, text in enumerate(texts):
        zh = i % 4 == 0
        instruction = f"请用简单的话解释第{i}个关于城市园艺的问题" if zh else \
            f"Explain how to grow tomatoes on a small city balcony, case number {i}."
        rows.append({"instruction": instruction, "input": "", "output": "Answer " + text,
                     "meta": {"scores": {"c": float(i % 5 + 1), "q": float((i * 3) % 6 + 1),
                                         "flag_refusal": float(i % 10 == 9)}}})
    return rows


def test_select_end_to_end_reasons_balance_order_and_determinism(tmp_path, capsys):
    inp = tmp_path / "scored.jsonl"
    rows = _scored()
    _write(inp, rows)
    argv = ["select", str(inp), "-o", str(tmp_path / "best.jsonl"), "--by", "c*q", "--top-k", "15", "--diverse",
            "--similarity", "0.6", "--drop-flags", "refusal"]
    assert cli_main(argv) == 0
    err = capsys.readouterr().err
    best, rejects = _lines(tmp_path / "best.jsonl"), _lines(tmp_path / "best.rejects.jsonl")
    assert len(best) == 15 and len(best) + len(rejects) == len(rows)
    assert f"select: in {len(rows)} = out 15 + filtered {len(rows) - 15}" in err
    reasons = {r["reason"] for r in rejects}
    assert {"flag refusal", "not in the top 15", "near selected record"} <= reasons
    by_instruction = {r["instruction"]: i for i, r in enumerate(rows)}
    picked = [by_instruction[r["instruction"]] for r in best]
    assert picked == sorted(picked)  # the input's order
    products = [rows[i]["meta"]["scores"]["c"] * rows[i]["meta"]["scores"]["q"] for i in picked]
    for r in rejects:  # nothing not taken for rank outscores everything taken
        if r["reason"] == "not in the top 15":
            assert r["score"] <= min(products)
        if r["reason"] == "near selected record":
            line = int(r["near"].rsplit(":", 1)[1])
            assert rows[line - 1]["instruction"] in {b["instruction"] for b in best}
    for r in rejects:  # entries written one by one and those spliced in bulk look alike and carry the row read
        row = rows[int(r["origin"].rsplit(":", 1)[1]) - 1]
        assert r["raw"] == row and r["stage"] == "select" and r["kind"] == "filtered"
        if r["reason"] == "not in the top 15":
            assert list(r) == ["stage", "kind", "reason", "origin", "score", "raw"]
    assert sum(r["reason"] == "not in the top 15" for r in rejects) > 3
    first = (tmp_path / "best.jsonl").read_bytes()
    assert cli_main(argv) == 0
    assert (tmp_path / "best.jsonl").read_bytes() == first


def test_min_per_language_quotas_and_missing_scores(tmp_path, capsys):
    inp = tmp_path / "scored.jsonl"
    rows = _scored(40)
    rows[5]["meta"]["scores"].pop("c")
    _write(inp, rows)
    assert cli_main(["select", str(inp), "-o", str(tmp_path / "best.jsonl"), "--by", "c", "--min", "2",
                     "--top-k", "3", "--per", "language"]) == 0
    best, rejects = _lines(tmp_path / "best.jsonl"), _lines(tmp_path / "best.rejects.jsonl")
    zh = [r for r in best if r["instruction"].startswith("请")]
    assert len(zh) == 3 and len(best) == 6  # 3 Chinese and 3 English
    assert all(r["meta"]["scores"]["c"] >= 2 for r in best)
    reasons = {r["reason"] for r in rejects}
    assert {"no score c", "below threshold", "quota"} <= reasons and len(best) + len(rejects) == 40
    stats = json.loads((tmp_path / "best.stats.json").read_text())["select"]
    assert stats["per_group"]["zh"]["selected"] == 3 and stats["per_group"]["en"]["selected"] == 3
    assert sum(stats["histogram"]["all"]) == 39 and sum(stats["histogram"]["selected"]) == 6


def test_select_without_a_rule_is_an_error(tmp_path, capsys):
    inp = tmp_path / "scored.jsonl"
    _write(inp, _scored(5))
    assert cli_main(["select", str(inp), "-o", str(tmp_path / "best.jsonl")]) == 1
    assert "--top-k" in capsys.readouterr().err


def test_bad_rows_and_records_without_scores_are_accounted(tmp_path, capsys):
    inp = tmp_path / "mixed.jsonl"
    inp.write_text('{"instruction": "Add 2 and 3", "output": "5", "meta": {"scores": {"a": 3}}}\n'
                   'not json\n'
                   '{"instruction": "Say hi", "output": "Hi"}\n'
                   '[1, 2]\n'
                   '{"foo": 1, "meta": {"scores": {"a": 5}}}\n', encoding="utf-8")
    assert cli_main(["select", str(inp), "--from", "alpaca", "-o", str(tmp_path / "best.jsonl"), "--by", "a",
                     "--top-k", "1"]) == 0  # the invalid row scores best: it must not take the one place
    err = capsys.readouterr().err
    assert "select: in 5 = out 1 + rejected 3 + filtered 1" in err, err
    rejects = {r["origin"].rsplit(":", 1)[1]: r for r in _lines(tmp_path / "best.rejects.jsonl")}
    assert rejects["3"]["reason"] == "no score a" and rejects["2"]["kind"] == "rejected"
    assert rejects["5"]["reason"].startswith("not a valid alpaca record")
    assert [r["instruction"] for r in _lines(tmp_path / "best.jsonl")] == ["Add 2 and 3"]


def test_per_source_quota_and_token_budget(tmp_path, capsys):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    rows = _scored(30)
    _write(a, rows[:15])
    _write(b, rows[15:])
    out = tmp_path / "best.jsonl"
    assert cli_main(["select", str(a), str(b), "-o", str(out), "--by", "q", "--top-k", "4", "--per", "source"]) == 0
    best = _lines(out)
    firsts = {r["instruction"] for r in rows[:15]}
    assert len(best) == 8 and sum(r["instruction"] in firsts for r in best) == 4
    capsys.readouterr()
    assert cli_main(["select", str(a), "-o", str(out), "--by", "q", "--budget-tokens", "200"]) == 0
    best, rejects = _lines(out), _lines(tmp_path / "best.rejects.jsonl")
    assert best and len(best) + len(rejects) == 15
    assert {r["reason"] for r in rejects} == {"over the token budget"}
    from instructgen.quality.select import estimated_tokens, row_texts
    spent = sum(estimated_tokens("\n".join(row_texts(r, []))) for r in best)
    assert spent <= 200 and all(spent + estimated_tokens("\n".join(row_texts(r["raw"], []))) > 200 for r in rejects)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from("abc"), st.one_of(st.integers(-5, 5), st.floats(allow_infinity=False),
                                                         st.booleans(), st.text(max_size=2), st.none())),
       st.lists(st.sampled_from("abc"), min_size=1, max_size=3))
def test_property_the_rank_value_is_the_product_of_numbers_or_names_the_missing_one(scores, names):
    import math

    from instructgen.quality.select import score_of

    got = score_of(scores, names)
    bad = [n for n in names if not (isinstance(scores.get(n), (int, float)) and not isinstance(scores.get(n), bool)
                                    and not math.isnan(scores.get(n)))]
    if bad:
        assert got == bad[0]
    else:
        assert got == pytest.approx(math.prod(scores[n] for n in names), nan_ok=True)
