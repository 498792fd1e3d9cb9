"""Preference data (pairwise chosen/rejected, KTO label), MOSS plugin turns and --turns: golden files and properties.

Golden files: tests/golden/inputs/<name>.jsonl (small rows written for these tests) converted to every
format are tests/golden/<name>/to_<format>.jsonl, with the losses and notes counted on the way in
tests/golden/<name>/counts.json. After an intended change, regenerate them with

    UPDATE_GOLDEN=1 python -m pytest tests/test_preference.py -k golden

and review the diff before committing.
"""

from __future__ import annotations

import json
import os

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import REPO
from instructgen import formats, schemas
from instructgen.convert import NOTES, ReadOptions, read_records, write_records
from instructgen.errors import CannotRepresent
from instructgen.formats.base import DumpOptions
from instructgen.formats.meaning import meaning_problems
from instructgen.io import RowWriter, read_rows
from instructgen.record import Conversation, Message
from instructgen.runlog import RunLog

GOLDEN = REPO / "tests" / "golden"
INPUTS = GOLDEN / "inputs"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
WRITABLE = formats.names(writable_only=True)
PREFERENCE = [n for n in WRITABLE if formats.get(n).preference]
OTHERS = [n for n in WRITABLE if not formats.get(n).preference and n != "belle"]  # belle: text form, see below
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def convert_rows(path, to: str, opts: DumpOptions | None = None, tmp=None) -> tuple[list, RunLog]:
    log = RunLog("convert", keep_entries=True)
    out = tmp / f"out.{to}.jsonl"
    with RowWriter(out) as w:
        write_records(read_records([str(path)], log, ReadOptions(announce=lambda _: None)), w, to, log,
                      opts or DumpOptions())
    return [r.data for r in read_rows(out)], log


# -- golden files ----------------------------------------------------------------------------------

@pytest.mark.parametrize("to", WRITABLE)
@pytest.mark.parametrize("name", ["preference_sharegpt", "preference_alpaca", "preference_openai", "moss_plugins"])
def test_golden_conversions(name, to, tmp_path):
    rows, log = convert_rows(INPUTS / f"{name}.jsonl", to, tmp=tmp_path)
    counted = {"lost": dict(sorted(log.losses.items())), "rejected": [e["reason"] for e in log.entries],
               "notes": dict(sorted(log.info.get(NOTES, {}).items()))}
    folder = GOLDEN / name
    golden, counts = folder / f"to_{to}.jsonl", folder / "counts.json"
    if UPDATE:
        folder.mkdir(exist_ok=True)
        golden.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        known = json.loads(counts.read_text(encoding="utf-8")) if counts.exists() else {}
        known[to] = counted
        counts.write_text(json.dumps(dict(sorted(known.items())), ensure_ascii=False, indent=1) + "\n",
                          encoding="utf-8")
    assert golden.exists(), f"missing {golden}; run UPDATE_GOLDEN=1 pytest tests/test_preference.py -k golden"
    assert rows == [json.loads(line) for line in golden.read_text(encoding="utf-8").splitlines()]
    assert counted == json.loads(counts.read_text(encoding="utf-8"))[to]
    for row in rows:
        assert list(schemas.errors(to, row)) == []
        assert meaning_problems(formats.get(to).parse(orjson.loads(orjson.dumps(row))).check(),
                                formats.get(to).alternates) == []


def test_golden_preference_rows_pair_the_answers_with_their_prompt():
    """The case the issue names: a multi-turn pair in a single-turn format keeps the prompt it answers."""
    rows = [json.loads(line) for line in (GOLDEN / "preference_sharegpt" / "to_alpaca.jsonl").open(encoding="utf-8")]
    assert rows[2] == {"instruction": "作者是谁？", "input": "", "chosen": "刘慈欣。", "rejected": "鲁迅。"}
    assert rows[3] == {"instruction": "2 + 2?", "input": "", "output": "5.", "label": False}


# -- properties ------------------------------------------------------------------------------------

text = st.one_of(st.text(st.characters(exclude_categories=("Cs",)), max_size=16),
                 st.sampled_from(["", "你好", "Human: hi", "\n", "<eoh>", "Assistant:"]))


@st.composite
def preference_records(draw) -> Conversation:
    messages = [Message("system", draw(st.text(min_size=1, max_size=10)))] if draw(st.booleans()) else []
    for q, a in draw(st.lists(st.tuples(text, text), max_size=2)):
        messages += [Message("user", q), Message("assistant", a)]
    messages.append(Message("user", draw(text)))
    if draw(st.booleans()):
        return Conversation(messages, chosen=Message("assistant", draw(text)),
                            rejected=Message("assistant", draw(text))).check()
    messages.append(Message("assistant", draw(text)))
    return Conversation(messages, label=draw(st.booleans())).check()


def through(conv: Conversation, fmt: str, opts: DumpOptions = DumpOptions()) -> tuple[list[Conversation], set]:
    losses: set[str] = set()
    rows = formats.get(fmt).dump(conv, opts, losses.add)
    return [formats.get(fmt).parse(orjson.loads(orjson.dumps(r))).check() for r in rows], losses


def view(conv: Conversation) -> tuple:
    msg = lambda m: None if m is None else (m.role, m.content)  # noqa: E731
    return [msg(m) for m in conv.messages], msg(conv.chosen), msg(conv.rejected), conv.label


@pytest.mark.parametrize("fmt", ["history", "sharegpt", "openai"])
@SETTINGS
@given(conv=preference_records())
def test_multi_turn_preference_formats_keep_the_record(fmt, conv):
    (back,), losses = through(conv, fmt)
    if fmt == "history" and any(m.content == "" and m.role == "system" for m in conv.messages):
        return
    assert losses == set()
    assert view(back) == view(conv)


@pytest.mark.parametrize("fmt", OTHERS)
@SETTINGS
@given(conv=preference_records())
def test_formats_without_preference_fields_carry_it_in_meta_and_give_it_back(fmt, conv):
    try:
        rows, losses = through(conv, fmt)
    except CannotRepresent:
        return  # e.g. an empty prompt a format cannot hold
    if any("history dropped" in x or "turn dropped" in x or "joined" in x or "system" in x for x in losses):
        return  # the format lost turns: what it gives back is another conversation
    (back,) = rows
    assert any(x.startswith(("preference pair written", "KTO label")) for x in losses)
    assert (back.chosen is None) == (conv.chosen is None) and back.label == conv.label
    if conv.chosen is not None:
        assert (back.chosen.content, back.rejected.content) == (conv.chosen.content, conv.rejected.content)
        assert back.messages[-1].content == conv.messages[-1].content  # the prompt they answer


@pytest.mark.parametrize("fmt", ["alpaca", "dolly"])
@SETTINGS
@given(conv=preference_records())
def test_single_turn_formats_take_the_prompt_the_preference_judges_or_refuse(fmt, conv):
    last_prompt = conv.messages[-1] if conv.pairwise else conv.messages[-2]
    rows = formats.get(fmt).dump(conv, DumpOptions(), lambda _: None)
    back = formats.get(fmt).parse(orjson.loads(orjson.dumps(rows[0]))).check()
    assert back.turns[0].content == last_prompt.content
    answer = conv.chosen.content if conv.pairwise else conv.messages[-1].content
    assert back.turns[-1].content == answer if not back.pairwise else back.chosen.content == answer
    earlier = sum(1 for m in conv.messages if m.role == "user") > 1
    if earlier:
        with pytest.raises(CannotRepresent, match="--turns first would pair it with another prompt"):
            formats.get(fmt).dump(conv, DumpOptions(turns="first"), lambda _: None)


def test_a_pair_needs_both_answers_and_a_prompt_that_ends_with_the_user():
    from instructgen.errors import BadRecord

    with pytest.raises(BadRecord, match="rejected"):
        formats.get("sharegpt").parse({"conversations": [{"from": "human", "value": "q"}],
                                       "chosen": {"from": "gpt", "value": "a"}})
    with pytest.raises(BadRecord, match="must end with the user turn"):
        formats.get("openai").parse({"messages": [{"role": "user", "content": "q"},
                                                  {"role": "assistant", "content": "a"}],
                                     "chosen": {"role": "assistant", "content": "x"},
                                     "rejected": {"role": "assistant", "content": "y"}})
    with pytest.raises(BadRecord, match="KTO record must end with the assistant"):
        formats.get("sharegpt").parse({"conversations": [{"from": "human", "value": "q"}], "label": True})
    # a label that is not a boolean is not a KTO tag: an ordinary extra field
    conv = formats.get("alpaca").parse({"instruction": "q", "input": "", "output": "a", "label": "spam"})
    assert conv.label is None and conv.extra == {"label": "spam"}


# -- --turns ---------------------------------------------------------------------------------------

CHAT = Conversation([Message("system", "s"), Message("user", "q1"), Message("assistant", "a1"),
                     Message("user", "q2"), Message("assistant", "a2"), Message("user", "q3"),
                     Message("assistant", "a3")])


@pytest.mark.parametrize("turns, expected, loss", [
    (None, [("q1", "a1")], "history dropped (kept the first turn)"),
    ("first", [("q1", "a1")], "history dropped (kept the first turn)"),
    ("last", [("q3", "a3")], "history dropped (kept the last turn)"),
    ("explode", [("q1", "a1"), ("q2", "a2"), ("q3", "a3")],
     "turns written as separate rows (earlier turns dropped from each)"),
])
def test_turns_for_single_turn_formats(turns, expected, loss):
    for fmt, (q, a) in (("alpaca", ("instruction", "output")), ("dolly", ("instruction", "response"))):
        losses: set[str] = set()
        rows = formats.get(fmt).dump(CHAT, DumpOptions(turns=turns), losses.add)
        assert [(r[q], r[a]) for r in rows] == expected
        assert losses == {loss, "system prompt dropped"}


def test_turns_explode_in_formats_with_history_keeps_the_earlier_turns():
    losses: set[str] = set()
    rows = formats.get("history").dump(CHAT, DumpOptions(turns="explode"), losses.add)
    assert [(r["instruction"], r["history"]) for r in rows] == [
        ("q1", []), ("q2", [["q1", "a1"]]), ("q3", [["q1", "a1"], ["q2", "a2"]])]
    assert losses == set() and all(r["system"] == "s" for r in rows)
    rows = formats.get("chatglm").dump(CHAT, DumpOptions(turns="explode"), losses.add)
    assert [r["prompt"] for r in rows] == ["q1", "q2", "q3"]


def test_turns_are_counted_in_a_run_and_refused_for_formats_that_write_whole_conversations(tmp_path):
    from instructgen.cli import main

    src = tmp_path / "chat.jsonl"
    src.write_text(json.dumps(formats.get("sharegpt").dump(CHAT, DumpOptions(), lambda _: None)[0]) + "\n",
                   encoding="utf-8")
    assert main(["convert", str(src), "--to", "alpaca", "--turns", "explode", "-o", str(tmp_path / "o.jsonl")]) == 0
    assert len((tmp_path / "o.jsonl").read_text(encoding="utf-8").splitlines()) == 3
    assert main(["convert", str(src), "--to", "sharegpt", "--turns", "last", "-o", str(tmp_path / "p.jsonl")]) == 1
    assert not (tmp_path / "p.jsonl").exists()


def test_turns_first_refuses_a_pair_that_judges_a_later_turn_and_counts_it(tmp_path):
    log = RunLog("convert", keep_entries=True)
    records = read_records([str(INPUTS / "preference_sharegpt.jsonl")], log, ReadOptions(announce=lambda _: None))
    with RowWriter(tmp_path / "o.jsonl") as w:
        write_records(records, w, "alpaca", log, DumpOptions(turns="first"))
    assert log.n_in == 4 and log.n_out == 3 and log.dropped["rejected"] == 1
    (entry,) = log.entries
    assert entry["reason"].startswith("cannot write as alpaca: the preference judges turn 2, not the first")
    assert entry["raw"]["chosen"] == {"from": "gpt", "value": "刘慈欣。"}  # the row as it was read
