"""The diversity filter: exact (same decisions as brute-force ROUGE-L) and CJK-aware."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer
from rouge_score import tokenize as rouge_tokenize

from conftest import shared_path
from instructgen.generate.similarity import RougeLIndex, fmeasure, lcs_length, rouge_l, tokenize


def _instructions(path) -> list[str]:
    return [json.loads(line)["instruction"] for line in path.open(encoding="utf-8") if line.strip()]


def _variants(texts: list[str], rng: random.Random, cjk: bool) -> list[str]:
    """Each text, plus near copies (tokens dropped, swapped, joined with another): many are > 0.7 similar."""
    out = []
    for text in texts:
        units = list(text) if cjk else text.split()
        out.append(text)
        for _ in range(1):
            kept = [u for u in units if rng.random() < 0.85]
            if len(kept) > 2 and rng.random() < 0.5:
                i = rng.randrange(len(kept) - 1)
                kept[i], kept[i + 1] = kept[i + 1], kept[i]
            if rng.random() < 0.3:
                kept += (list(rng.choice(texts)) if cjk else rng.choice(texts).split())[:5]
            out.append(("" if cjk else " ").join(kept))
    rng.shuffle(out)
    return out


def _index_decisions(candidates: list[str], threshold: float) -> list[bool]:
    index = RougeLIndex(threshold)
    return [index.add_if_novel(c) is None for c in candidates]


def _rouge_score_decisions(candidates: list[str], threshold: float) -> list[bool]:
    """Alpaca's filter: score the new instruction against every kept one with rouge_score."""
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    kept_tokens: list[list[str]] = []
    decisions = []
    for c in candidates:
        tokens = scorer._tokenizer.tokenize(c)
        best = max((rouge_scorer._score_lcs(tokens, k).fmeasure for k in kept_tokens), default=0.0)
        decisions.append(best <= threshold)
        if best <= threshold:
            kept_tokens.append(tokens)
    return decisions


def _dp_lcs(a, b) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def _brute_force_decisions(candidates: list[str], threshold: float) -> list[bool]:
    """Our tokenizer, a textbook dynamic-programming LCS, every kept entry."""
    kept: list[list[str]] = []
    decisions = []
    for c in candidates:
        ta = tokenize(c)
        best = max((fmeasure(_dp_lcs(ta, tb), len(ta), len(tb)) for tb in kept), default=0.0)
        decisions.append(best <= threshold)
        if best <= threshold:
            kept.append(ta)
    return decisions


def test_identical_chinese_strings_score_one_and_rouge_score_misses_them():
    text = "请以下面词语为主题写一首诗"
    assert rouge_l(text, text) == 1.0
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    assert scorer.score(text, text)["rougeL"].fmeasure == 0.0  # the weakness this filter fixes
    assert tokenize("用Python写一个函数") == ["用", "python", "写", "一", "个", "函", "数"]
    assert 0 < rouge_l("给出下面词语的同义词", "给出下面词语的反义词") < 1


def test_tokenizer_matches_rouge_score_on_english_seeds(shared):
    for text in _instructions(shared("seeds", "self_instruct_seed_tasks.jsonl")):
        assert tokenize(text) == rouge_tokenize.tokenize(text, None)


@pytest.mark.parametrize("threshold", [0.7, 0.4])
def test_index_equals_rouge_score_brute_force_on_self_instruct_seeds(threshold):
    texts = _instructions(shared_path("seeds", "self_instruct_seed_tasks.jsonl"))
    candidates = _variants(texts, random.Random(threshold), cjk=False)
    expected = _rouge_score_decisions(candidates, threshold)
    assert 0 < expected.count(False) < len(candidates)  # the test data exercises both outcomes
    assert _index_decisions(candidates, threshold) == expected


@pytest.mark.parametrize("threshold", [0.7, 0.4])
def test_index_equals_brute_force_lcs_on_belle_chinese_seeds(threshold):
    texts = _instructions(shared_path("seeds", "belle_zh_seed_tasks.jsonl"))
    candidates = _variants(texts, random.Random(7), cjk=True)
    expected = _brute_force_decisions(candidates, threshold)
    assert 0 < expected.count(False) < len(candidates)
    assert _index_decisions(candidates, threshold) == expected


def test_index_equals_brute_force_on_mixed_language_pool():
    zh = _instructions(shared_path("seeds", "belle_zh_seed_tasks.jsonl"))[:60]
    en = _instructions(shared_path("seeds", "self_instruct_seed_tasks.jsonl"))[:60]
    rng = random.Random(3)
    mixed = [f"{a} {b.split()[0]}" for a, b in zip(zh, en)]
    candidates = _variants(zh, rng, cjk=True) + _variants(en, rng, cjk=False) + mixed + mixed
    rng.shuffle(candidates)
    assert _index_decisions(candidates, 0.7) == _brute_force_decisions(candidates, 0.7)


def test_match_names_the_similar_entry():
    index = RougeLIndex(0.7)
    index.add("Write a poem about the sea at night.")
    match = index.most_similar_above("Write a poem about the sea at midnight.")
    assert match is not None and match.index == 0 and match.score > 0.7
    assert index.most_similar_above("List three prime numbers larger than fifty.") is None
    assert index.most_similar_above("") is None  # no tokens: scores 0 against everything, as rouge_score


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 5), max_size=40), st.lists(st.integers(0, 5), max_size=40))
def test_bit_parallel_lcs_equals_dynamic_programming(a, b):
    assert lcs_length(a, b) == _dp_lcs(a, b)


_WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "猫", "狗"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.sampled_from(_WORDS), min_size=0, max_size=12), max_size=40),
       st.sampled_from([0.0, 0.3, 0.5, 0.7, 0.9, 1.0]))
def test_index_equals_brute_force_on_repetitive_texts(texts, threshold):
    """Repeated tokens, tiny vocabularies, thresholds at the extremes: where bounds are easiest to get wrong."""
    candidates = [" ".join(t) for t in texts]
    assert _index_decisions(candidates, threshold) == _brute_force_decisions(candidates, threshold)


def test_index_stays_exact_across_rebuilds():
    rng = random.Random(11)
    candidates = [" ".join(rng.choices(_WORDS, k=rng.randint(1, 14))) for _ in range(600)]
    index = RougeLIndex(0.9)
    decisions = [index.add_if_novel(c) is None for c in candidates]
    assert len(index) > 130  # crossed at least one rebuild (the first is at 64 entries)
    assert decisions == _brute_force_decisions(candidates, 0.9)
