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
    log = RunLog("filter")
    kept = list(filter_records([good, refusing], FilterConfig(), log))
    assert [c.origin for c in kept] == ["a:1"] and kept[0].pairwise
    assert [(k, r) for (k, r) in log.reasons] == [("filtered", "refusal")]


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
