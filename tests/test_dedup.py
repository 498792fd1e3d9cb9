"""Dedup: exact + MinHash near duplicates, reference sets, determinism, short and CJK records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from instructgen.cli import main
from instructgen.curate import lsh
from instructgen.curate.dedup import (
    EXACT, NEAR, DedupConfig, Sketches, cluster, dedup_parts, dedup_records, dedup_text, parse_fields, signatures,
    sketch,
)
from instructgen.curate.minhash import minhash, shingle_hashes
from instructgen.curate.text import identifiers_batch, token_ids
from instructgen.errors import InstructgenError
from instructgen.record import Conversation, Message, from_pairs
from instructgen.runlog import RunLog

DATA = Path(__file__).parent / "data_curate"


def conv(instruction: str, output: str = "ok", origin: str = "") -> Conversation:
    return from_pairs([(instruction, output)], origin=origin)


def decide(texts: list[str], **kw) -> np.ndarray:
    cfg = DedupConfig(**kw)
    return cluster([sketch(texts, cfg)], cfg).dup_of


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# -- tokens and shingles ---------------------------------------------------------------------------

# characters NFKC leaves alone and characters it changes (full-width digits, letters, signs and quotes,
# circled and superscript digits, a ligature, compatibility ideographs, half-width katakana)
_NFKC_ALPHABET = ("ab xyZ019-+:/.'\"，。？！：；（）、《》「」“”‘’…\u3000中文给个第三十"
                  "０１９ＡＢｚ＋－＂＇：／①⑳²³½ﬁ豈ｶﾞ㎞ http://www. ")


@given(st.lists(st.text(alphabet=_NFKC_ALPHABET, max_size=40), min_size=1, max_size=8))
@settings(max_examples=300, deadline=None)
def test_identifiers_are_those_of_the_nfkc_text(texts):
    """identifiers_batch skips NFKC where it cannot change what is found: the result is that of the
    normalised texts."""
    import unicodedata

    assert identifiers_batch(texts) == identifiers_batch([unicodedata.normalize("NFKC", t) for t in texts])


def test_tokens_split_han_characters_and_latin_words():
    ids, lens = token_ids(["请解释 machine learning 的原理", "Hello, WORLD!", "", "!!!"])
    assert lens.tolist() == [8, 2, 0, 0]  # 请 解 释 machine learning 的 原 理
    again, _ = token_ids(["hello world"])
    assert ids[8:10].tolist() == again.tolist()  # case and punctuation do not change ids


def test_token_ids_do_not_depend_on_the_batch():
    a, _ = token_ids(["alpha beta", "gamma"])
    b, _ = token_ids(["gamma delta"])
    assert a[2] == b[0]


def test_nfkc_folds_full_width_text():
    a, _ = token_ids(["ＡＢＣ １２３"])
    b, _ = token_ids(["abc 123"])
    assert a.tolist() == b.tolist()


@pytest.mark.parametrize("n", [1, 3, 5])
def test_every_record_gets_at_least_one_shingle(n):
    lens = np.array([0, 1, 2, 4, 5, 9])
    ids = np.arange(1, lens.sum() + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    hashes, counts = shingle_hashes(ids, lens, n)
    assert counts.tolist() == [max(1, int(k) - n + 1) for k in lens]
    assert len(hashes) == counts.sum()
    sigs = minhash(hashes, counts, 16, 1)
    assert sigs.shape == (6, 16)


def test_short_record_shingle_covers_all_its_tokens():
    # two 3-token records that differ only in the last token must not share the 5-gram shingle
    ids = np.array([1, 2, 3, 1, 2, 4], dtype=np.uint64)
    hashes, counts = shingle_hashes(ids, np.array([3, 3]), 5)
    assert counts.tolist() == [1, 1] and hashes[0] != hashes[1]


# -- exact and near ----------------------------------------------------------------------------------

def test_exact_duplicates_up_to_case_punctuation_whitespace_and_width():
    texts = ["Write a poem about the sea.", "write a POEM   about the sea!!", "Ｗｒｉｔｅ a poem about the sea",
             "Write a poem about the moon, please, in French."]
    cfg = DedupConfig()
    c = cluster([sketch(texts, cfg)], cfg)
    assert c.dup_of.tolist() == [-1, 0, 0, -1]
    assert c.stage.tolist() == [0, EXACT, EXACT, 0]


def test_near_duplicates_found_in_english_and_chinese():
    texts = [
        "Explain how a refrigerator keeps food cold, using an example about summer picnics for children.",
        "Explain how a refrigerator keeps food cold, using one example about summer picnics for children.",
        "请用小学生能听懂的话解释冰箱的工作原理，并举一个关于夏天野餐的例子。",
        "请用小学生能听懂的话解释冰箱的工作原理，再举一个关于夏日野餐的例子。",
        "Compare the climate of deserts and rainforests in a table with three columns.",
    ]
    c = cluster([sketch(texts, DedupConfig())], DedupConfig())
    assert c.dup_of.tolist() == [-1, 0, -1, 2, -1]
    assert (c.stage[[1, 3]] == NEAR).all()
    assert (c.similarity[[1, 3]] >= 0.7).all()


def test_chinese_without_spaces_is_not_one_token():
    # whitespace tokenisation would make each of these a single token and miss the near copy
    texts = ["为一家新开的咖啡店写一句简短有力的广告语，突出手工烘焙和舒适的环境", "为一家新开的咖啡店写一句简短有力的广告语，突出手工烘焙和安静的环境"]
    assert decide(texts).tolist() == [-1, 0]


def test_long_records_are_not_merged_by_topic():
    import random

    rng = random.Random(0)
    vocab = [f"w{k}" for k in range(60)]  # a small vocabulary: unrelated texts share most words
    a = [rng.choice(vocab) for _ in range(120)]
    b = list(a)
    for k in (10, 50, 90):
        b[k] = "edited"
    c = [rng.choice(vocab) for _ in range(120)]
    texts = [" ".join(a), " ".join(b), " ".join(c)]
    assert decide(texts).tolist() == [-1, 0, -1]
    # as bags of words the unrelated text would look like a copy
    assert decide(texts, shingle="word:1").tolist() == [-1, 0, 0]


def test_short_records_are_never_dropped_for_being_short():
    texts = ["Hi", "你好", "OK?", "", "谢谢", "Yes", "no", "?", "!"]
    for shingle in ("auto", "word:5", "char:5"):
        assert decide(texts, shingle=shingle).tolist() == [-1] * len(texts), shingle


def test_identical_short_records_are_still_duplicates():
    assert decide(["Hi", "hi!", "你好", "你好。"], shingle="word:5").tolist() == [-1, 0, -1, 2]


def test_greedy_keeps_first_and_does_not_chain():
    # 0~1 and 1~2 verified, 0 and 2 not similar: 1 goes (duplicate of 0), 2 stays
    dup_of, sim = lsh.greedy(3, np.array([0, 1]), np.array([1, 2]), np.array([0.8, 0.8], dtype=np.float32))
    assert dup_of.tolist() == [-1, 0, -1]
    # a record joins the most similar kept record
    dup_of, _ = lsh.greedy(3, np.array([0, 1]), np.array([2, 2]), np.array([0.75, 0.9], dtype=np.float32))
    assert dup_of.tolist() == [-1, -1, 1]


def _greedy_plainly(n, i, j, sim, protected):
    """greedy's rule read plainly: each later record, in order, joins its most similar (then earliest) earlier
    record that is still kept; records below `protected` are never removed."""
    parent, best = [-1] * n, [0.0] * n
    for b in range(n):
        options = [(-s, a) for a, bb, s in zip(i, j, sim) if bb == b and b >= protected and parent[a] == -1]
        if options:
            s, a = min(options)
            parent[b], best[b] = a, -s
    return parent, best


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 12).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.tuples(st.integers(0, n - 2), st.integers(1, n - 1), st.sampled_from([0.7, 0.8, 0.9])),
                         max_size=30), st.integers(0, 2), st.integers(1, 4))))
def test_greedy_in_pieces_is_the_plain_rule(case):
    n, pairs, protected, piece = case
    pairs = [(a, b, s) for a, b, s in pairs if a < b]
    i, j, sim = (np.array([p[k] for p in pairs], dtype=dt) for k, dt in ((0, np.int64), (1, np.int64), (2, np.float32)))
    saved, lsh.PAIR_CHUNK = lsh.PAIR_CHUNK, piece  # pieces of a few pairs: every boundary is crossed
    try:
        dup_of, best = lsh.greedy(n, i, j, sim, protected=protected)
    finally:
        lsh.PAIR_CHUNK = saved
    parent, plain_best = _greedy_plainly(n, i.tolist(), j.tolist(), sim.tolist(), protected)
    assert dup_of.tolist() == parent
    assert np.allclose(best, plain_best)


@pytest.mark.parametrize("threshold,num_perm,weights", [(0.7, 128, (0.3, 0.7)), (0.5, 64, (0.5, 0.5)),
                                                       (0.85, 256, (0.3, 0.7)), (0.9, 32, (0.5, 0.5))])
def test_band_params_match_datasketch(threshold, num_perm, weights):
    from datasketch.lsh import _optimal_param

    assert lsh.band_params(threshold, num_perm, *weights) == _optimal_param(threshold, num_perm, *weights)


def test_keep_longest():
    texts = ["Write a haiku about rain on a tin roof at night",
             "Write a haiku about rain on a tin roof at night, please, with vivid imagery"]
    cfg = DedupConfig(keep="longest", threshold=0.5)
    c = cluster([sketch(texts, cfg)], cfg)
    assert c.dup_of.tolist() == [1, -1]
    # an empty record is the shortest, not the longest (lengths are unsigned: no wrap-around)
    c = cluster([sketch(["", "  "], cfg)], cfg)
    assert c.dup_of.tolist() == [1, -1]


def test_verification_bound_is_exact():
    rng = np.random.default_rng(0)
    sigs = rng.integers(0, 4, size=(300, 64)).astype(np.uint32)  # small alphabet: many partial matches
    i, j = np.triu_indices(300, 1)
    full = (sigs[i] == sigs[j]).mean(axis=1)
    for t in (0.3, 0.5, 0.7):
        got = lsh.estimated_jaccard(sigs, i, j, t)
        assert np.array_equal(got >= t, full >= t)
        assert np.allclose(got[full >= t], full[full >= t])


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([1, 3, 8, 16, 24, 48, 64, 200, 256, 512]), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_equal_counts_and_weakest_part_match_the_plain_numpy(columns, alphabet, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, alphabet, size=(50, columns)).astype(np.uint16)
    y = rng.integers(0, alphabet, size=(50, columns)).astype(np.uint16)
    assert lsh.equal_counts(x, y).tolist() == (x == y).sum(axis=1).tolist()  # word bit counts, or the plain sum
    parts = rng.random((50, 1 + seed % 3)).astype(np.float32)
    assert np.array_equal(lsh.weakest(parts), parts.min(axis=1))


@pytest.mark.parametrize("num_perm", [8, 96, 1024])
def test_verification_values_are_the_share_of_equal_columns(num_perm):
    rng = np.random.default_rng(num_perm)
    sigs = rng.integers(0, 3, size=(200, num_perm)).astype(np.uint16)
    i, j = np.triu_indices(200, 1)
    full = ((sigs[i] == sigs[j]).sum(axis=1) / num_perm).astype(np.float32)
    got = lsh.estimated_jaccard(sigs, i, j, 0.4)
    assert np.array_equal(got[full >= 0.4], full[full >= 0.4]) and not np.any(got[full < 0.4] >= 0.4)


def test_fields_select_conversation_parts():
    c = Conversation([Message("system", "be nice"), Message("user", "q1"), Message("assistant", "a1"),
                      Message("user", "q2"), Message("assistant", "a2")])
    assert dedup_text(c, "all") == "q1\na1\nq2\na2"
    assert dedup_text(c, "instruction") == "q1"
    assert dedup_text(c, "output") == "a1\na2"
    # messages are joined with a mark the focus (the final answer) is found by; shown as a newline
    assert dedup_parts(c, parse_fields("prompt,response")) == ("q1\n\x1eq2", "a1\n\x1ea2")
    assert dedup_parts(c, parse_fields("instruction+system, output")) == ("q1\n\x1ebe nice", "a1\n\x1ea2")
    with pytest.raises(InstructgenError, match="--fields"):
        dedup_text(c, "answer")
    with pytest.raises(InstructgenError, match="--fields"):
        parse_fields("prompt+answer")


def test_bad_settings_are_explained():
    with pytest.raises(ValidationError, match="threshold"):
        DedupConfig(threshold=1.5)
    with pytest.raises(ValidationError, match="shingle"):
        DedupConfig(shingle="bytes:3")
    with pytest.raises(ValidationError, match="shingle"):
        DedupConfig(shingle="char:1-2")
    with pytest.raises(ValidationError, match="fields"):
        DedupConfig(fields="prompt,,answer")
    with pytest.raises(ValidationError, match="nothing to do"):
        DedupConfig(exact=False, near=False)


# -- determinism and sharding ------------------------------------------------------------------------------

def test_same_result_whatever_the_sharding():
    rows = read_jsonl(DATA / "dups.jsonl")
    texts = [r["instruction"] for r in rows] * 3  # repeats make exact and near clusters
    cfg = DedupConfig()
    whole = sketch(texts, cfg)
    assert np.array_equal(whole.sigs, signatures(texts, cfg))
    reference = cluster([whole], cfg)
    for n_shards in (2, 5, len(texts)):
        bounds = np.linspace(0, len(texts), n_shards + 1).astype(int)
        shards = [sketch(texts[a:b], cfg) for a, b in zip(bounds, bounds[1:])]
        merged = Sketches.concat(shards)
        assert np.array_equal(merged.sigs, whole.sigs) and np.array_equal(merged.keys, whole.keys)
        result = cluster(shards, cfg)
        assert np.array_equal(result.dup_of, reference.dup_of)
        assert np.array_equal(result.similarity, reference.similarity)


def test_parallel_sketch_matches_one_process(monkeypatch):
    from instructgen.curate import dedup as mod

    texts = [f"task number {k} about topic {k % 97} for audience {k % 13}" for k in range(3000)]
    monkeypatch.setattr(mod, "BATCH", 500)
    cfg = DedupConfig(workers=2)
    assert np.array_equal(mod.sketch_parallel(texts, cfg).sigs, sketch(texts, cfg).sigs)


def test_dedup_twice_gives_the_same_output(tmp_path):
    outs = []
    for k in range(2):
        out = tmp_path / f"out{k}.jsonl"
        assert main(["dedup", str(DATA / "dups.jsonl"), "-o", str(out), "--fields", "instruction"]) == 0
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


# -- against a reference ---------------------------------------------------------------------------------

def test_against_reference(tmp_path):
    ref_copy = tmp_path / "reference.jsonl"
    shutil.copy(DATA / "reference.jsonl", ref_copy)
    before = ref_copy.read_bytes()
    ref = [conv(r["instruction"], r["output"], f"ref:{k}") for k, r in enumerate(read_jsonl(ref_copy))]
    records = [
        conv("Summarize the main causes of the French Revolution in one paragraph for a history class!", origin="in:1"),
        conv("用简单的语言向小学生解释光合作用是什么，并举一个日常生活中的例子。", origin="in:2"),
        conv("Write a limerick about a cat who learns to play the piano.", origin="in:3"),
        conv("Write a limerick about a cat who learns to play the piano!", origin="in:4"),
    ]
    log = RunLog("dedup")
    kept = dedup_records(records, DedupConfig(fields="instruction"), log, against=ref)
    assert [c.origin for c in kept] == ["in:3"]
    reasons = {r for (_, r) in log.reasons}
    assert reasons == {"exact duplicate of reference", "near duplicate of reference", "exact duplicate"}
    assert ref_copy.read_bytes() == before  # the reference file is not touched
    # the two near-identical Jupiter records of the reference are not deduplicated against each other
    assert len(ref) == 4 and all(e["duplicate_of"] != "ref:2" for es in log.examples.values() for e in es)


def test_against_only_leaves_the_input_alone():
    ref = [conv("Name the largest planet in our solar system and give two facts about it.", origin="ref:1")]
    records = [conv("Write a limerick about a cat who learns to play the piano.", origin="in:1"),
               conv("Write a limerick about a cat who learns to play the piano!", origin="in:2"),
               conv("Name the largest planet in our solar system and give two facts about it", origin="in:3")]
    kept = dedup_records(records, DedupConfig(fields="instruction", against_only=True), RunLog("dedup"), against=ref)
    assert [c.origin for c in kept] == ["in:1", "in:2"]


# -- the command -------------------------------------------------------------------------------------------

def test_cli_dedup_end_to_end(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text((DATA / "dups.jsonl").read_text(encoding="utf-8") + '{"instruction": "broken"\n', encoding="utf-8")
    out, clusters = tmp_path / "out.jsonl", tmp_path / "clusters.jsonl"
    assert main(["dedup", str(src), "-o", str(out), "--fields", "instruction", "--clusters", str(clusters)]) == 0
    err = capsys.readouterr().err
    kept = read_jsonl(out)
    removed = read_jsonl(clusters)
    rejects = read_jsonl(tmp_path / "out.rejects.jsonl")
    stats = json.loads((tmp_path / "out.stats.json").read_text())["stages"][0]
    assert set(kept[0]) == {"instruction", "input", "output"}  # written back as alpaca
    assert stats["in"] == 19 == stats["out"] + stats["duplicates"] + stats["rejected"] + stats["filtered"]
    assert stats["balanced"] and stats["rejected"] == 1 and stats["duplicates"] == len(removed) == 5
    assert {r["origin"].rsplit(":", 1)[1] for r in removed} == {"2", "3", "8", "9", "13"}
    assert all(r["similarity"] >= 0.7 and r["duplicate_of"].startswith(str(src)) for r in removed)
    assert sorted(r["kind"] for r in rejects) == ["duplicates"] * 5 + ["rejected"]
    assert all(r["stage"] == "dedup" and r["raw"] for r in rejects)
    assert "dedup: in 19 = out 13 + rejected 1 + duplicates 5" in err


def test_cli_dedup_against(tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    assert main(["dedup", str(DATA / "dups.jsonl"), "-o", str(out), "--fields", "instruction",
                 "--against", str(DATA / "reference.jsonl"), "--against-only"]) == 0
    kept = [r["instruction"] for r in read_jsonl(out)]
    assert len(kept) == 16
    assert not any("French Revolution" in k or "光合作用" in k for k in kept)
    err = capsys.readouterr().err
    assert "exact duplicate of reference" in err and "dedup: in 18 = out 16 + duplicates 2" in err


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 120), st.integers(1, 4), st.integers(1, 8), st.integers(0, 2**32 - 1))
def test_property_band_pairs_are_each_bucket_member_with_the_first_cap_before_it(n, distinct, cap, seed):
    """lsh.band_pairs against a plain reading of its rule: rows equal on a band's columns share a bucket, and
    each member is paired with the first `cap` members before it (positions of `index` when given)."""
    from instructgen.curate import lsh

    rng = np.random.default_rng(seed)
    sigs = rng.integers(0, distinct, size=(n, 8), dtype=np.uint16)
    index = rng.permutation(n)[: max(1, n // 2)] if seed % 2 else None
    rows = sigs if index is None else sigs[index]
    band = int(seed % 2)
    buckets: dict[tuple, list[int]] = {}
    for pos, row in enumerate(rows[:, band * 4:(band + 1) * 4].tolist()):
        buckets.setdefault(tuple(row), []).append(pos)
    m = len(rows)
    expected = sorted(a * m + b for members in buckets.values() for k, b in enumerate(members) for a in members[:min(k, cap)])
    assert sorted(lsh.band_pairs(sigs, band, 4, cap, index).tolist()) == expected


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 400), st.integers(1, 6), st.integers(1, 12), st.integers(1, 50), st.integers(0, 2**32 - 1))
def test_property_a_band_in_pieces_is_the_band_whole(n, distinct, cap, max_pairs, seed):
    """lsh.band_pair_chunks bounds the memory of a band's candidates (tens per record on template-heavy data):
    its pieces hold at most `max_pairs` pairs (or one member's) and together are band_pairs' pairs, each once;
    verified_pairs over them finds the same pairs and counts the same candidates."""
    from instructgen.curate import lsh

    rng = np.random.default_rng(seed)
    sigs = rng.integers(0, distinct, size=(n, 8), dtype=np.uint16)  # few distinct values: big buckets
    index = rng.permutation(n)[: max(1, n // 2)] if seed % 2 else np.arange(n)
    whole = lsh.band_pairs(sigs, 0, 4, cap, index)
    pieces = list(lsh.band_pair_chunks(sigs, 0, 4, cap, index, max_pairs=max_pairs))
    assert all(len(p) <= max(max_pairs, cap) for p in pieces)
    joined = np.concatenate(pieces) if pieces else np.empty(0, np.int64)
    assert len(joined) == len(whole) == len(np.unique(whole))
    assert np.array_equal(np.sort(joined), np.sort(whole))

    def verify(i, j):
        return np.where((i + j) % 3 == 0, 1.0, -1.0)  # any rule: the same pairs must come out

    saved = lsh.PAIR_CHUNK
    try:
        lsh.PAIR_CHUNK = max(1, max_pairs // 4)
        small = lsh.verified_pairs(sigs, 2, 4, cap, index, verify)
        lsh.PAIR_CHUNK = 1 << 18
        large = lsh.verified_pairs(sigs, 2, 4, cap, index, verify)
    finally:
        lsh.PAIR_CHUNK = saved
    assert all(np.array_equal(a, b) for a, b in zip(small, large))
    threaded = lsh.verified_pairs(sigs, 3, 2, cap, index, verify, threads=3)  # bands on threads: the same result
    assert all(np.array_equal(a, b) for a, b in zip(lsh.verified_pairs(sigs, 3, 2, cap, index, verify), threaded))
