"""Rules judge each turn: a dialogue is cut before its first junk turn, or dropped; a signal only flags; and what
the rules got wrong on real records (../shared/data, judged in benchmarks/judgements/filter.jsonl) stays right."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import shared_path
from instructgen import formats
from instructgen.cli import main
from instructgen.curate.filter import FilterConfig, cut, filter_records, judge_record
from instructgen.curate.language import candidates, natural_text
from instructgen.curate.repetition import loop
from instructgen.formats.base import DumpOptions
from instructgen.record import Conversation, Message, ToolCall, from_pairs
from instructgen.runlog import RunLog

CFG = FilterConfig()
GOOD = "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen inside the leaves of plants."
NON_ANSWER = "I'm sorry, but as an AI language model, I cannot access real-time data. Please check a weather website."
LOOP = "Sincerely, " * 40  # junk: a loop of one token


def dialogue(*answers: str, system: str | None = None) -> Conversation:
    prompts = ["Explain photosynthesis.", "And tomorrow's weather in Paris?", "Thanks! One more thing about plants?"]
    return from_pairs(list(zip(prompts, answers)), system=system, origin="t:1")


def run(records, config=CFG):
    log = RunLog("filter")
    log.took_in(len(records))
    out = list(filter_records(records, config, log))
    log.emitted(len(out))
    return out, log


# -- cutting and dropping ---------------------------------------------------------------------------

def test_a_later_junk_turn_cuts_the_dialogue_before_it_and_the_removed_turns_go_to_the_rejects():
    conv = dialogue(GOOD, LOOP, GOOD, system="Be brief.")
    verdict = judge_record(conv, CFG)
    assert (verdict.rule, verdict.keep, verdict.turn) == ("repetition", 1, 1)
    log = RunLog("filter", keep_entries=True)
    log.took_in(1)
    (out,) = list(filter_records([conv], CFG, log))
    log.emitted(1)
    assert [m.role for m in out.messages] == ["system", "user", "assistant"]
    assert out.messages[2].content == GOOD and len(conv.messages) == 7  # the input record is not changed
    assert log.info["filter_truncated"] == {"repetition": 1} and log.info["filter_rules"]["repetition"] == 0
    assert log.losses == {"cut before a junk turn (repetition)": 1}
    assert log.balanced and log.dropped["filtered"] == 0
    (entry,) = log.entries
    assert entry["kind"] == "cut" and entry["reason"] == "repetition" and entry["turns_removed"] == "2-3 of 3"
    assert [m["content"] for m in entry["raw"]["messages"] if m["role"] == "assistant"] == [GOOD, LOOP, GOOD]


def test_a_junk_first_turn_drops_the_dialogue():
    out, log = run([dialogue(LOOP, GOOD)])
    assert out == [] and log.info["filter_rules"]["repetition"] == 1 and log.balanced


def test_truncate_off_drops_instead_of_cutting():
    out, log = run([dialogue(GOOD, LOOP)], FilterConfig(truncate=False))
    assert out == [] and log.dropped["filtered"] == 1 and not log.info["filter_truncated"]


def test_the_summary_and_stats_show_cut_records():
    import io

    _, log = run([dialogue(GOOD, LOOP)])
    buf = io.StringIO()
    log.print_summary(buf)
    assert "cut before a junk turn (repetition): 1 record" in buf.getvalue()
    assert log.to_dict()["filter_truncated"] == {"repetition": 1}


def test_a_signal_flags_the_record_and_never_removes_a_turn():
    conv = dialogue(GOOD, NON_ANSWER, GOOD)
    (out,), log = run([conv])
    assert len(out.messages) == 6 and log.info["filter_flags"]["refusal"] == 1
    assert [(f["rule"], f["turn"]) for f in out.meta["flags"]] == [("refusal", 2)]
    (cut_record,), log = run([dialogue(GOOD, NON_ANSWER, GOOD)], FilterConfig(drop=("refusal",)))
    assert len(cut_record.messages) == 2 and "flags" not in cut_record.meta
    assert log.info["filter_truncated"] == {"refusal": 1} and "refusal" not in log.info["filter_flags"]


def test_flags_of_an_earlier_run_are_replaced():
    conv = dialogue(GOOD)
    conv.meta["flags"] = [{"rule": "refusal", "turn": 1, "reason": "old"}]
    (out,), _ = run([conv])
    assert "flags" not in out.meta


def test_a_kto_answer_labelled_false_is_not_judged_but_its_prompt_is():
    bad = Conversation([Message("user", "Explain photosynthesis."), Message("assistant", LOOP)], label=False).check()
    good_label = Conversation([Message("user", "Explain photosynthesis."), Message("assistant", LOOP)], label=True).check()
    garbled_prompt = Conversation([Message("user", "Explain \ufffd\ufffd photosynthesis."), Message("assistant", LOOP)],
                                  label=False).check()
    assert judge_record(bad, CFG).rule is None
    assert judge_record(good_label, CFG).rule == "repetition"
    assert judge_record(garbled_prompt, CFG).rule == "garbled"


def test_a_dpo_rejected_answer_is_not_judged():
    pair = Conversation([Message("user", "Explain photosynthesis.")], chosen=Message("assistant", GOOD),
                        rejected=Message("assistant", LOOP)).check()
    assert judge_record(pair, CFG).rule is None


def test_a_short_opening_turn_is_a_turn_not_a_defect():
    conv = from_pairs([("Hi", "Hello! How can I help?"), ("Explain photosynthesis.", GOOD)])
    assert judge_record(conv, CFG).rule is None and not judge_record(conv, CFG).flags
    verdict = judge_record(from_pairs([("Hi", "Hello! How can I help?")]), CFG)
    assert verdict.rule is None and [f["rule"] for f in verdict.flags] == ["length"]  # flagged, kept


def test_tool_calls_are_answers_and_cuts_keep_call_and_result_together():
    call = Message("assistant", "", tool_calls=[ToolCall("get_weather", '{"city": "Paris"}', "c1")])
    conv = Conversation([
        Message("user", "What's the weather in Paris today?"), call,
        Message("tool", '{"temp": 21}', tool_call_id="c1", name="get_weather"),
        Message("assistant", "It is 21 degrees and sunny in Paris today."),
        Message("user", "Can you order me an umbrella?"),
        Message("assistant", "\ufffd\ufffd"),
    ], tools=[{"name": "get_weather"}])
    verdict = judge_record(conv, CFG)
    assert (verdict.rule, verdict.keep) == ("garbled", 1)
    assert [m.role for m in cut(conv, 1).messages] == ["user", "assistant", "tool", "assistant"]


def test_results_are_the_same_from_several_threads():
    records = [dialogue(GOOD, NON_ANSWER), dialogue(NON_ANSWER), dialogue(GOOD, LOOP), dialogue(GOOD, GOOD)] * 40
    expected = [judge_record(c, FilterConfig(lang=("en",))) for c in records]
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda _: [judge_record(c, FilterConfig(lang=("en",))) for c in records], range(4)))
    assert all(r == expected for r in runs)


_text = st.sampled_from([GOOD, NON_ANSWER, "", "N/A", "好的，下面是答案：光合作用产生氧气。", "Hi", "\ufffd", LOOP,
                         "I love you so much and I love you so much and I love you so much and I love you so much"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_text, _text), min_size=1, max_size=4), st.booleans())
def test_every_record_goes_out_whole_or_cut_at_a_turn_or_is_dropped(pairs, truncate):
    conv = from_pairs(pairs, origin="p:1")
    out, log = run([conv], FilterConfig(truncate=truncate))
    assert log.balanced
    if out:
        kept = out[0].messages
        assert kept == conv.messages[:len(kept)] and kept[-1].role == "assistant"
        assert len(kept) == len(conv.messages) or truncate


# -- building blocks --------------------------------------------------------------------------------

def test_loop_finds_back_to_back_repeats_only():
    assert loop("a b c a b c a b c".split())[:2] == (3, 3)
    assert loop("the sea is wide and the sea is deep and the sea is wide and the sea is deep and".split())[1] == 10
    assert loop("on the first bounce it reaches 48 feet on the second bounce it reaches 24 feet".split())[0] == 1


def test_natural_text_leaves_out_code_equations_and_data():
    text = ("Let H = Hezekiah's age\n2H + 7 = 15\nrnbqkbnr/pp1ppppp/8/2p5/4P3 b KQkq - 1 2\n```python\nprint(1)\n```\n"
            "    return total\nwhile l1 or l2 or carry：\nHezekiah is four years old today.")
    assert natural_text(text) == "Hezekiah is four years old today."


def test_candidates_are_the_requested_languages_and_their_confusable_ones():
    assert candidates(("zh",)) == ("zh", "ja", "ko")
    assert candidates(("en", "zh"))[:2] == ("en", "zh") and "fr" in candidates(("en",))


# -- the CLI ------------------------------------------------------------------------------------------

def test_cli_filter_cuts_and_counts(tmp_path, capsys):
    src = tmp_path / "chat.jsonl"
    rows = [{"conversations": [{"from": "human", "value": "Explain photosynthesis."}, {"from": "gpt", "value": GOOD},
                               {"from": "human", "value": "And tomorrow's weather in Paris?"},
                               {"from": "gpt", "value": NON_ANSWER},
                               {"from": "human", "value": "Say it again?"}, {"from": "gpt", "value": LOOP}]}]
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    out = tmp_path / "clean.jsonl"
    assert main(["filter", str(src), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(kept) == 1 and len(kept[0]["conversations"]) == 4  # the refusal is flagged, the loop cut
    assert [f["rule"] for f in kept[0]["meta"]["flags"]] == ["refusal"]
    assert "cut before a junk turn (repetition): 1 record" in err
    (cut_entry,) = [json.loads(line) for line in (tmp_path / "clean.rejects.jsonl").read_text().splitlines()]
    assert cut_entry["kind"] == "cut" and cut_entry["turns_removed"] == "3-3 of 3"
    assert cut_entry["raw"]["conversations"] == rows[0]["conversations"]  # the whole record as read
    stats = json.loads((tmp_path / "clean.stats.json").read_text())["stages"][0]
    assert stats["filter_truncated"] == {"repetition": 1} and stats["out"] == 1 and stats["filtered"] == 0
    assert stats["filter_flags"]["refusal"] == 1
    assert main(["filter", str(src), "-o", str(tmp_path / "whole.jsonl"), "--no-truncate"]) == 0
    assert (tmp_path / "whole.jsonl").read_text() == ""


# -- real records that the old rules got wrong ----------------------------------------------------------

def _record(parts: tuple[str, ...], fmt: str, n: int) -> Conversation:
    path = shared_path(*parts)
    text = path.read_text(encoding="utf-8")
    try:
        rows = json.loads(text)
    except json.JSONDecodeError:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    rows = rows if isinstance(rows, list) else [rows]
    conv = formats.get(fmt).parse(rows[n - 1])
    conv.origin = f"{path.name}#{n}"
    return conv


GSM8K = ("real", "gsm8k_train_alpaca.json")
ALPACA_ZH = ("formats", "llamafactory_alpaca_zh_demo.json")
GLAIVE = ("formats", "llamafactory_glaive_toolcall_en_demo.json")
MOSS = ("formats", "moss_003_sample.jsonl")


@pytest.mark.parametrize("n", [1260, 1904, 2454, 450, 1919, 6722])  # algebra as "nl", "uploaded videos", steps
def test_gsm8k_records_the_old_rules_dropped_are_kept(n):
    assert judge_record(_record(GSM8K, "alpaca", n), FilterConfig(lang=("en",))).rule is None


@pytest.mark.parametrize("n", [784, 55, 128, 837, 791])  # XML to JSON (read as "af"), code, names, English tasks
def test_chinese_tasks_with_code_or_english_material_are_kept_under_lang_zh(n):
    assert judge_record(_record(ALPACA_ZH, "alpaca", n), FilterConfig(lang=("zh",))).rule is None


def test_a_chinese_task_answered_in_english_prose_is_flagged_under_lang_zh_and_dropped_when_asked():
    conv = _record(ALPACA_ZH, "alpaca", 57)
    assert [f["rule"] for f in judge_record(conv, FilterConfig(lang=("zh",))).flags] == ["language"]
    assert judge_record(conv, FilterConfig(lang=("zh",), drop=("language",))).rule == "language"


def test_a_scoped_decline_of_an_action_is_kept():
    assert judge_record(_record(GLAIVE, "sharegpt", 30), CFG).rule is None  # "I can't order a pizza, but ..."


def test_a_moss_non_answer_in_a_later_turn_is_flagged_or_cut_when_asked_and_writes_back_to_moss():
    conv = _record(MOSS, "moss", 10)  # turn 2: no contact details, only "check the lab's official website"
    assert [(f["rule"], f["turn"]) for f in judge_record(conv, CFG).flags] == [("refusal", 2), ("refusal", 3)]
    verdict = judge_record(conv, FilterConfig(drop=("refusal",)))
    assert (verdict.rule, verdict.keep) == ("refusal", 1)
    rows = formats.get("moss").dump(cut(conv, verdict.keep), DumpOptions(), lambda what: None)
    assert rows[0]["num_turns"] == 1 and len(rows[0]["chat"]) == 1


def test_safety_refusals_are_kept_unless_asked_for():
    conv = _record(MOSS, "moss", 39)  # refusals to "how do I damage someone's windpipe?" and the like
    assert judge_record(conv, CFG).rule is None and not judge_record(conv, CFG).flags
    assert {f["rule"] for f in judge_record(conv, FilterConfig(rules="default,safety_refusal")).flags} == {"safety_refusal"}
    assert judge_record(conv, FilterConfig(rules="default,safety_refusal", drop=("safety_refusal",))).rule == "safety_refusal"


def test_the_judgements_file_names_existing_rules_and_verdicts():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "judgements" / "filter.jsonl"
    from instructgen.curate.rules import RULES

    for line in path.read_text(encoding="utf-8").splitlines():
        j = json.loads(line)
        assert j["verdict"] in {"tp", "fp", "ok", "fn"} and j["why"], line
        assert j["rule"].removeprefix("truncated:") in RULES or j["rule"] == "-", line
