"""The two-tier filter on real sets (../shared/data/real): the records read and judged by hand on the old filter
(real/judged_by_reading.tsv) and the junk targets of issue 18. Skipped when the shared data is absent."""

from __future__ import annotations

import csv
import json
import re
from functools import lru_cache

import pytest

from conftest import shared_path
from instructgen.convert import ReadOptions, read_records
from instructgen.curate.filter import FilterConfig, filter_records, judge_record
from instructgen.formats.base import single_turn
from instructgen.runlog import RunLog

CFG = FilterConfig()


@lru_cache(maxsize=None)
def _by_origin(name: str) -> dict:
    path = shared_path("real", name)
    records = read_records([str(path)], RunLog("read"), ReadOptions(announce=lambda _m: None))
    return {r.origin.rsplit("/", 1)[-1]: r for r in records}


def _judged_false_positives() -> list[tuple[str, str, str]]:
    """(file, line, reason) of every filter decision judged wrong whose record can be named by file:line."""
    rows = csv.DictReader(shared_path("real", "judged_by_reading.tsv").open(encoding="utf-8"), delimiter="\t")
    out = []
    for row in rows:
        if row["stage"] != "filter" or row["verdict"] != "false_positive":
            continue
        m = re.fullmatch(r"real/([\w.-]+\.json):([\d,]+)", row["record_ref"])
        if m:  # JSON files (the reader's origin is the line the record opens on); the JSONL refs are tested below
            out += [(m.group(1), line, row["reason"]) for line in m.group(2).split(",")]
    return out


def test_no_record_judged_wrongly_dropped_is_dropped_or_cut_by_default():
    judged = _judged_false_positives()
    assert len(judged) >= 30
    for name, line, reason in judged:
        conv = _by_origin(name)[f"{name}:{line}"]
        verdict = judge_record(conv, CFG)
        placeholders = any("{{name}}" in m.content for m in conv.messages)  # identity's unfilled slots: junk now
        assert verdict.rule is None or (verdict.rule == "placeholder" and placeholders), (name, line, reason, verdict)


def test_multimodal_records_carry_their_images_and_are_not_flagged_for_media():
    records = list(_by_origin("llamafactory_mllm_demo.json").values())
    assert len(records) == 6
    for conv in records:
        assert not [f for f in judge_record(conv, FilterConfig(drop=("needs_media",))).flags]
        assert judge_record(conv, FilterConfig(drop=("needs_media",))).rule is None


def test_identity_placeholders_are_junk_and_its_greetings_are_not():
    records = _by_origin("llamafactory_identity.json")
    log = RunLog("filter")
    kept = list(filter_records(list(records.values()), CFG, log))
    assert log.info["filter_rules"]["placeholder"] == len(records) - len(kept) >= 85
    assert all("{{" not in m.content for c in kept for m in c.messages)


def test_kto_answers_labelled_false_are_never_dropped_for_their_answer():
    records = list(_by_origin("llamafactory_kto_en_demo.json").values())
    bad = [c for c in records if c.label is False]
    assert bad
    for conv in bad:
        verdict = judge_record(conv, CFG)
        assert verdict.rule in (None, "garbled"), verdict  # a garbled prompt is still junk


def _predictions(model: str) -> list[dict]:
    path = shared_path("real", "self_instruct", f"{model}_predictions.jsonl")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _dropped(rows: list[dict]) -> list[bool]:
    return [judge_record(single_turn(r["instruction"].strip(), r["input"], r["response"]), CFG).rule is not None
            for r in rows]


def test_vanilla_davinci_answers_are_junk_and_text_davinci_003_answers_are_not():
    davinci = _dropped(_predictions("davinci"))
    assert sum(davinci) >= 0.95 * len(davinci)
    text_003 = _dropped(_predictions("text-davinci-003"))
    assert sum(text_003) <= 0.01 * len(text_003)


def test_the_judged_wrong_drops_in_the_predictions_are_kept():
    # an IP regex whose groups repeat (text-davinci-001, davinci-self-instruct) and a French reading test answered
    # in French (text-davinci-003): judged_by_reading.tsv, refs by JSONL line
    for model in ("text-davinci-001", "davinci-self-instruct"):
        (row,) = [r for r in _predictions(model) if r["instruction"].startswith("Regex is a set of characters")
                  and "[0-9]{1,3}" in r["response"] and "{3}((25" not in r["response"]]
        assert not _dropped([row])[0]
    french = [r for r in _predictions("text-davinci-003") if "French" in r["instruction"] or "français" in r["input"]]
    assert french and not any(_dropped(french))


@pytest.mark.parametrize("name", ["gsm8k_train_alpaca.json", "lima.json"])
def test_clean_sets_lose_at_most_half_a_percent(name):
    records = list(_by_origin(name).values())
    log = RunLog("filter")
    kept = list(filter_records(records, CFG, log))
    assert len(records) - len(kept) <= 0.005 * len(records), log.reasons
