"""The canonical record: its invariants and its JSON view."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from instructgen.errors import BadRecord
from instructgen.record import Conversation, Message, ToolCall, from_pairs


def test_to_dict_is_the_dataclass_view():
    c = Conversation([Message("system", "s"), Message("user", "u", meta={"k": 1}),
                      Message("assistant", "", tool_calls=[ToolCall("f", "{}", "c1")], weight=0),
                      Message("tool", "r", tool_call_id="c1", name="f"), Message("assistant", "done")],
                     tools=[{"name": "f"}], meta={"id": 3}, extra={"x": [1]}, origin="a:1", source_format="openai",
                     hints={"h": True})
    assert c.to_dict() == asdict(c)


@pytest.mark.parametrize("messages, reason", [
    ([], "no messages"),
    ([Message("system", "s")], "only a system message"),
    ([Message("user", "u"), Message("system", "s")], "may only come first"),
    ([Message("narrator", "x")], "unknown role"),
    ([Message("user", None)], "content must be a string"),
])
def test_check_refuses_broken_conversations(messages, reason):
    with pytest.raises(BadRecord, match=reason):
        Conversation(messages).check()


def test_pairs_and_views():
    c = from_pairs([("q1", "a1"), ("q2", "a2")], system="be brief")
    assert c.system == "be brief" and [m.role for m in c.turns] == ["user", "assistant"] * 2
    assert c.pairs() == [("q1", "a1"), ("q2", "a2")] and c.is_plain_alternation() and not c.has_tools()
    c.messages.append(Message("user", "dangling"))
    assert not c.is_plain_alternation()


def test_from_dict_gives_the_record_back_through_json():
    """Spool files hold records as orjson lines of `to_dict()`: every sample's records come back equal,
    with their keys in the same order."""
    import orjson
    from conftest import SAMPLES

    from instructgen.convert import ReadOptions, read_records
    from instructgen.runlog import RunLog

    inputs = [*SAMPLES.iterdir(), *(SAMPLES.parent.parent / "tests" / "golden" / "inputs").iterdir()]
    records = [c for p in sorted(inputs) if p.suffix in (".json", ".jsonl")
               for c in read_records([str(p)], RunLog("read"), ReadOptions(announce=lambda _m: None))]
    assert len(records) > 40 and any(c.tools for c in records) and any(c.pairwise for c in records)
    for conv in records:
        line = orjson.dumps(conv.to_dict())
        back = Conversation.from_dict(orjson.loads(line))
        assert back == conv and orjson.dumps(back.to_dict()) == line
