"""Preference records through curation: the filter judges the prompt with the chosen answer (never drops a
pair for having no answer in `messages`), and dedup counts both answers as part of the record."""

from __future__ import annotations

from conftest import shared_path

from instructgen.convert import ReadOptions, read_records
from instructgen.curate.dedup import DedupConfig, dedup_records
from instructgen.curate.filter import FilterConfig, filter_records
from instructgen.record import Conversation, Message
from instructgen.runlog import RunLog


def pair(prompt: str, chosen: str, rejected: str, origin: str) -> Conversation:
    return Conversation([Message("user", prompt)], chosen=Message("assistant", chosen),
                        rejected=Message("assistant", rejected), origin=origin).check()


def test_the_filter_judges_the_chosen_answer():
    good = pair("Name three primary colours.", "Red, yellow and blue.", "Green.", "a:1")
    refusing = pair("Describe your favourite memory.", "As an AI language model, I cannot do that.",
                    "I remember my first bicycle.", "a:2")
    looping = pair("Name a colour.", "Sincerely, " * 40, "Blue.", "a:3")
    bad_rejected = pair("Name a colour.", "Blue.", "Sincerely, " * 40, "a:4")  # the rejected answer is meant to be bad
    log = RunLog("filter")
    kept = list(filter_records([good, refusing, looping, bad_rejected], FilterConfig(), log))
    assert [c.origin for c in kept] == ["a:1", "a:2", "a:4"] and all(c.pairwise for c in kept)
    assert [f["rule"] for f in kept[1].meta["flags"]] == ["refusal"]  # a signal flags the pair
    assert [(k, r) for (k, r) in log.reasons] == [("filtered", "repetition")]
    kept = list(filter_records([good, refusing], FilterConfig(drop=("refusal",)), RunLog("filter")))
    assert [c.origin for c in kept] == ["a:1"]


def test_dedup_keeps_one_prompt_with_two_different_pairs():
    a = pair("Write a haiku about autumn leaves falling.", "Red leaves drift slowly / ...", "Leaves.", "a:1")
    b = pair("Write a haiku about autumn leaves falling.", "Crisp wind, amber rain / ...", "No.", "a:2")
    copy = pair("Write a haiku about autumn leaves falling.", "Red leaves drift slowly / ...", "Leaves.", "a:3")
    log = RunLog("dedup")
    kept = dedup_records([a, b, copy], DedupConfig(), log)
    assert [c.origin for c in kept] == ["a:1", "a:2"]


def test_real_dpo_pairs_are_not_dropped_for_an_empty_answer():
    path = shared_path("real", "llamafactory_dpo_en_demo.json")
    records = list(read_records([str(path)], RunLog("read"), ReadOptions(announce=lambda _m: None)))
    assert records and all(r.pairwise for r in records)
    log = RunLog("filter")
    kept = list(filter_records(records, FilterConfig(lang=("en",)), log))
    assert log.info["filter_rules"]["empty_output"] == 0
    assert len(kept) >= 0.95 * len(records)
