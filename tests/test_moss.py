"""MOSS-003 read/write and MOSS-002 read: real sample, plugin sample, cross-format round trips, bad rows."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import REPO, SAMPLES, shared_path
from instructgen import formats, schemas
from instructgen.convert import ReadOptions, read_records, write_records
from instructgen.errors import BadRecord
from instructgen.formats import moss, moss_plugins
from instructgen.formats.base import DumpOptions
from instructgen.io import RowWriter, read_rows
from instructgen.record import Conversation, Message, ToolCall
from instructgen.runlog import RunLog

PLUGIN_SAMPLE = SAMPLES / "moss.jsonl"
REPO_GOLDEN = REPO / "tests" / "golden"


# -- helpers -------------------------------------------------------------------------------------

def dump_one(conv: Conversation, opts: DumpOptions | None = None) -> tuple[dict, set[str]]:
    losses: set[str] = set()
    rows = moss.dump(conv, opts or DumpOptions(), losses.add)
    assert len(rows) == 1
    return rows[0], losses


def round_trip(row: dict) -> dict:
    out, losses = dump_one(moss.parse(row).check())
    assert losses == set()
    return out


def via_meta_only(row: dict) -> dict:
    """What a format with tool calls and a metadata channel keeps: messages, tool calls, tools and
    conv.meta, nothing format-private."""
    conv = moss.parse(row).check()
    carried = orjson.loads(orjson.dumps(conv.meta))
    copy = Conversation([Message(m.role, m.content, tool_calls=[ToolCall(c.name, c.arguments) for c in m.tool_calls])
                         for m in conv.messages], meta=carried, tools=orjson.loads(orjson.dumps(conv.tools)))
    out, losses = dump_one(copy)
    assert losses == set()
    return out


def turn(human: str, answer: str, **plugins: str) -> dict:
    t = {"Human": f"<|Human|>: {human}<eoh>\n", **moss.PLAIN, "MOSS": f"<|MOSS|>: {answer}<eom>\n"}
    t.update({k.replace("_", " "): v for k, v in plugins.items()})
    return t


def row003(*turns: dict, **fields) -> dict:
    chat = {f"turn_{i}": t for i, t in enumerate(turns, 1)}
    return {"conversation_id": "7", "meta_instruction": "Be kind.\n", "num_turns": len(chat), "chat": chat, **fields}


def schema_errors(row: dict) -> list:
    return list(schemas.errors("moss", row))


def need_registry() -> None:
    try:
        formats.registry()
    except ModuleNotFoundError as e:
        pytest.skip(f"format registry incomplete ({e}); the other format modules are still being written")


def need_format(name: str) -> None:
    if importlib.util.find_spec(f"instructgen.formats.{name}") is None:
        pytest.skip(f"format module {name!r} does not exist yet (another helper writes it)")
    need_registry()


def convert_file(src: Path, dst: Path, to_format: str, from_format: str | None = None) -> RunLog:
    log = RunLog("convert", dst.with_suffix(".rejects.jsonl"))
    records = read_records([str(src)], log, ReadOptions(from_format=from_format, announce=lambda _: None))
    with RowWriter(dst) as writer:
        write_records(records, writer, to_format, log)
    log.close()
    assert log.balanced
    return log


def rows_of(path: Path) -> list[dict]:
    return [r.data for r in read_rows(path)]


# -- the real MOSS-003 sample --------------------------------------------------------------------

def real_rows() -> list[dict]:
    return rows_of(shared_path("formats", "moss_003_sample.jsonl"))


def test_real_sample_round_trips_record_by_record():
    rows = real_rows()
    assert len(rows) == 100
    for row in rows:
        assert round_trip(row) == row


def test_real_sample_file_round_trip_and_schema(tmp_path):
    need_registry()
    src = shared_path("formats", "moss_003_sample.jsonl")
    log = convert_file(src, tmp_path / "out.jsonl", "moss", from_format=None)
    assert (log.n_in, log.n_out, dict(log.losses)) == (100, 100, {})
    out = rows_of(tmp_path / "out.jsonl")
    assert out == rows_of(src)
    for row in out:
        assert schema_errors(row) == []


def test_real_sample_is_claimed_by_moss_alone():
    need_registry()
    for row in real_rows()[:20]:
        assert formats.fits(row) == ["moss"]


def test_real_meta_instruction_becomes_the_system_message_verbatim():
    row = real_rows()[0]
    conv = moss.parse(row)
    assert conv.system == row["meta_instruction"]
    first = row["chat"]["turn_1"]
    assert conv.turns[0] == Message("user", first["Human"][len("<|Human|>: "):-len("<eoh>\n")])
    assert conv.turns[1].content == first["MOSS"][len("<|MOSS|>: "):-len("<eom>\n")]
    assert conv.meta == {"id": row["conversation_id"], "category": row["category"]}


@pytest.mark.parametrize("via", ["sharegpt", "openai"])
def test_real_sample_survives_a_trip_through_another_format(tmp_path, via):
    need_format(via)
    src = shared_path("formats", "moss_003_sample.jsonl")
    convert_file(src, tmp_path / f"mid.{via}.jsonl", via, from_format="moss")
    log = convert_file(tmp_path / f"mid.{via}.jsonl", tmp_path / "back.jsonl", "moss", from_format=via)
    assert dict(log.losses) == {}
    assert rows_of(tmp_path / "back.jsonl") == rows_of(src)


# -- our plugin sample ---------------------------------------------------------------------------

def test_samples_file_round_trips_byte_exact(tmp_path):
    need_registry()
    out = tmp_path / "moss.jsonl"
    log = convert_file(PLUGIN_SAMPLE, out, "moss", from_format="moss")
    assert log.n_out == 3
    assert out.read_bytes() == PLUGIN_SAMPLE.read_bytes()


def test_plugin_turns_are_tool_calls_with_the_plugin_as_the_tool():
    rows = rows_of(PLUGIN_SAMPLE)
    plugin_row = next(r for r in rows if r["chat"]["turn_1"]["Commands"] != moss.PLAIN["Commands"])
    conv = moss.parse(plugin_row)
    user, call, result, answer = conv.messages[1:5]
    assert (user.role, user.content) == ("user", "How tall is Mount Kilimanjaro?")
    assert call.role == "assistant" and call.content.startswith("The user asks for a fact")  # the inner thought
    assert [(c.name, json.loads(c.arguments)) for c in call.tool_calls] == [("Search", {"query": "Mount Kilimanjaro height"})]
    assert result.role == "tool" and result.content.startswith('<|1|>: "Kilimanjaro') and "<eor>" not in result.content
    assert answer.role == "assistant" and "<eom>" not in answer.content
    # the tools are the plugins the meta instruction enables
    assert [t["name"] for t in conv.tools] == ["Search", "Calculate"]
    assert conv.tools[0]["parameters"]["required"] == ["query"]
    assert conv.has_tools() and "moss_plugins" not in conv.meta  # the usual layout needs nothing kept
    assert "moss_plugins" not in moss.parse(rows[0]).meta and moss.parse(rows[0]).tools is None


def test_samples_survive_the_meta_channel_and_validate():
    rows = rows_of(PLUGIN_SAMPLE)
    assert {type(r["conversation_id"]) for r in rows} == {int, str}
    assert any("\u4e00" <= ch <= "\u9fff" for ch in json.dumps(rows[0], ensure_ascii=False))
    for row in rows:
        assert schema_errors(row) == []
        assert via_meta_only(row) == row


def test_plugin_fields_no_message_holds_are_counted_as_lost_without_the_meta_channel(tmp_path):
    need_format("openai")
    thought_only = turn("q", "a", Inner_Thoughts="<|Inner Thoughts|>: I know this one.<eot>\n")
    reordered = turn("q2", "a2", Commands='<|Commands|>: Calculate("1+1")\nCalculate("2+2")<eoc>\n',
                     Tool_Responses='<|Results|>:\nCalculate("1+1") => 2\nCalculate("2+2") => 4\n<eor>\n')
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(row003(thought_only, reordered)) + "\n", encoding="utf-8")
    log = RunLog("convert")
    records = read_records([str(src)], log, ReadOptions(from_format="moss", announce=lambda _: None))
    with RowWriter(tmp_path / "out.jsonl") as writer:
        write_records(records, writer, "openai", log, DumpOptions(keep_meta=False))
    # the thought without a command is in no message; the second turn's calls are, only their layout is gone
    assert log.losses == {"MOSS inner thoughts/commands/results dropped": 1, "MOSS plugin text layout dropped": 1}
    assert "moss_plugins" not in (tmp_path / "out.jsonl").read_text(encoding="utf-8")
    with RowWriter(tmp_path / "moss.jsonl") as writer:  # MOSS itself keeps them without the channel
        log = RunLog("convert")
        write_records(read_records([str(src)], log, ReadOptions(from_format="moss", announce=lambda _: None)),
                      writer, "moss", log, DumpOptions(keep_meta=False))
    assert log.losses == {} and rows_of(tmp_path / "moss.jsonl") == rows_of(src)


def test_a_plugin_layout_kept_in_meta_is_only_a_layout_loss_without_it():
    t = turn("q", "a", Commands='<|Commands|>: Calculate("1+1")\nCalculate("2+2")<eoc>\n',
             Tool_Responses='<|Results|>:\nCalculate("2+2") => 4\nCalculate("1+1") => 2\n<eor>\n')
    conv = moss.parse(row003(t))
    assert conv.meta["moss_plugins"] == [{"turn": 1, **{f: t[f] for f in ("Commands", "Tool Responses")}}]
    assert [m.content for m in conv.messages if m.role == "tool"] == ["2", "4"]  # in command order
    assert moss_plugins.plugin_meta_losses(conv) == ["MOSS plugin text layout dropped"]
    conv.meta.pop("moss_plugins")
    out, losses = dump_one(conv)  # without the kept layout: the usual one, saying the same
    assert losses == set()
    assert out["chat"]["turn_1"]["Commands"] == '<|Commands|>: Calculate("1+1"), Calculate("2+2")<eoc>\n'
    assert out["chat"]["turn_1"]["Tool Responses"] == '<|Results|>:\nCalculate("1+1") => 2\nCalculate("2+2") => 4\n<eor>\n'
    assert [m.content for m in moss.parse(out).messages if m.role == "tool"] == ["2", "4"]


@pytest.mark.parametrize("via", ["sharegpt", "openai", "chatglm3"])
def test_plugin_sample_survives_a_trip_through_another_format(tmp_path, via):
    need_format(via)
    convert_file(PLUGIN_SAMPLE, tmp_path / "mid.jsonl", via, from_format="moss")
    mid = (tmp_path / "mid.jsonl").read_text(encoding="utf-8")
    marker = {"sharegpt": '"from":"function_call"', "openai": '"tool_calls"', "chatglm3": '"role":"tool"'}[via]
    assert marker in mid and "moss_plugins" not in mid  # tool calls, nothing kept aside
    convert_file(tmp_path / "mid.jsonl", tmp_path / "back.jsonl", "moss", from_format=via)
    assert (tmp_path / "back.jsonl").read_bytes() == PLUGIN_SAMPLE.read_bytes()


# -- layouts and odd-but-valid rows ---------------------------------------------------------------

def test_unusual_tag_layouts_round_trip_and_travel_in_meta():
    t = turn("hi", "yo")
    t["Human"] = "<|Human|>:hi<eoh>"  # no space, no newline
    t["MOSS"] = "<|MOSS|>:\nline one\nline two\n<eom>\n"  # the plugin line layout
    t["Tool Responses"] = "<|Results|>: None<eor>"  # plain None but no newline: a plugin value to keep verbatim
    row = row003(t, turn("再见", "再见！"), category="x")
    conv = moss.parse(row)
    assert conv.turns[0].content == "hi"
    assert conv.turns[1].content == "line one\nline two"
    assert conv.meta["moss_layout"] == {"turn_1.Human": ["", "", ""], "turn_1.MOSS": ["\n", "\n", "\n"]}
    assert round_trip(row) == row
    assert via_meta_only(row) == row


def test_int_id_extra_fields_turn_extras_and_carried_meta_round_trip():
    t = turn("q", "a")
    t["score"] = 3
    row = {**row003(t), "conversation_id": 42, "source": "unit", "meta": {"split": {"instruction": "q", "input": ""}}}
    conv = moss.parse(row)
    assert conv.meta["id"] == 42 and conv.meta["split"] == {"instruction": "q", "input": ""}
    assert conv.extra == {"source": "unit"}
    assert round_trip(row) == row
    assert type(round_trip(row)["conversation_id"]) is int


def test_turns_are_ordered_numerically():
    turns = [turn(f"q{i}", f"a{i}") for i in range(1, 12)]
    row = row003(*turns)
    row["chat"] = dict(sorted(row["chat"].items()))  # lexical: turn_1, turn_10, turn_11, turn_2, ...
    conv = moss.parse(row)
    assert [m.content for m in conv.turns if m.role == "user"] == [f"q{i}" for i in range(1, 12)]
    assert list(round_trip(row)["chat"]) == [f"turn_{i}" for i in range(1, 12)]


def test_empty_meta_instruction_round_trips():
    row = {**row003(turn("q", "a")), "meta_instruction": ""}
    assert moss.parse(row).system is None
    assert round_trip(row) == row
    assert via_meta_only(row) == row


# -- bad rows ------------------------------------------------------------------------------------

def _bad(mutate) -> dict:
    row = row003(turn("q1", "a1"), turn("q2", "a2"))
    mutate(row)
    return row


BAD_ROWS = {
    "num_turns mismatch": (lambda r: r.update(num_turns=3), "num_turns is 3 but chat has 2 turns"),
    "missing close tag": (lambda r: r["chat"]["turn_2"].update(MOSS="<|MOSS|>: a2\n"), "chat.turn_2.MOSS: missing <eom> tag"),
    "wrong opening tag": (lambda r: r["chat"]["turn_1"].update(Human="<|User|>: q<eoh>\n"), "chat.turn_1.Human: must start with <|Human|>:"),
    "plugin missing tag": (lambda r: r["chat"]["turn_1"].update(Commands="<|Commands|>: Search(\"x\")"), "chat.turn_1.Commands: missing <eoc> tag"),
    "text after tag": (lambda r: r["chat"]["turn_1"].update(MOSS="<|MOSS|>: a<eom>\nmore"), "chat.turn_1.MOSS: text after the <eom> tag"),
    "value not a string": (lambda r: r["chat"]["turn_2"].update(Human=5), "chat.turn_2.Human: must be a string, got a number"),
    "missing turn field": (lambda r: r["chat"]["turn_1"].pop("Inner Thoughts"), "chat.turn_1: missing field 'Inner Thoughts'"),
    "turn not an object": (lambda r: r["chat"].update(turn_2=["q", "a"]), "chat.turn_2 must be an object, got an array"),
    "chat not an object": (lambda r: r.update(chat=[1]), "field 'chat' must be an object of turns, got an array"),
    "id wrong type": (lambda r: r.update(conversation_id=[1]), "conversation_id must be an integer or a string, got an array"),
    "id boolean": (lambda r: r.update(conversation_id=True), "conversation_id must be an integer or a string, got a boolean"),
    "num_turns string": (lambda r: r.update(num_turns="2"), "num_turns must be an integer, got a string"),
    "num_turns missing": (lambda r: r.pop("num_turns"), "missing field 'num_turns'"),
    "meta_instruction missing": (lambda r: r.pop("meta_instruction"), "missing field 'meta_instruction'"),
    "meta_instruction not text": (lambda r: r.update(meta_instruction=1), "field 'meta_instruction' must be a string, got int"),
    "turn gap": (lambda r: r["chat"].update(turn_3=r["chat"].pop("turn_2")), "chat: turn_2 is missing (found turn_3)"),
    "odd key": (lambda r: r["chat"].update(turn_01=r["chat"].pop("turn_1")), "chat: unexpected key 'turn_01'"),
    "empty chat": (lambda r: r.update(chat={}, num_turns=0), "chat has no turns"),
    "category not text": (lambda r: r.update(category=3), "category must be a string, got a number"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_bad_rows_name_the_turn_and_field(case):
    mutate, reason = BAD_ROWS[case]
    with pytest.raises(BadRecord) as e:
        moss.parse(_bad(mutate))
    assert e.value.reason.startswith(reason), e.value.reason


def test_bad_rows_in_a_file_go_to_rejects_and_good_ones_convert(tmp_path):
    need_registry()
    good = row003(turn("q", "a"))
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in [
        good, _bad(BAD_ROWS["num_turns mismatch"][0]), _bad(BAD_ROWS["missing close tag"][0]), good,
    ]))
    log = convert_file(src, tmp_path / "out.jsonl", "moss")
    assert (log.n_in, log.n_out, log.dropped["rejected"]) == (4, 2, 2)
    rejects = rows_of(tmp_path / "out.rejects.jsonl")
    assert [r["origin"] for r in rejects] == [f"{src}:2", f"{src}:3"]
    assert rejects[0]["reason"] == "not a valid moss record: num_turns is 3 but chat has 2 turns"
    assert rejects[1]["reason"] == "not a valid moss record: chat.turn_2.MOSS: missing <eom> tag"
    assert json.loads(rejects[1]["raw"])["chat"]["turn_2"]["MOSS"] == "<|MOSS|>: a2\n"


# -- MOSS-002 ------------------------------------------------------------------------------------

MOSS002 = {
    "id": 5,
    "prefix": "An assistant and a human talk.",
    "num_turns": 2,
    "plain_text": "[Human]: What is 2+2?<eoh> [MOSS]: 4.<eoa> [Human]: 再乘以三呢？<eoh> [MOSS]: 等于 12。\n就这样。<eoa>",
}


def test_moss002_is_read_with_prefix_as_system():
    assert moss.detect(MOSS002)
    conv = moss.parse(MOSS002).check()
    assert conv.system == MOSS002["prefix"]
    assert conv.pairs() == [("What is 2+2?", "4."), ("再乘以三呢？", "等于 12。\n就这样。")]
    assert conv.meta == {"id": 5}
    assert schema_errors(MOSS002) == []
    out, losses = dump_one(conv)  # written as MOSS-003
    assert losses == set() and schema_errors(out) == []
    assert (out["conversation_id"], out["meta_instruction"], out["num_turns"]) == (5, MOSS002["prefix"], 2)
    assert out["chat"]["turn_2"]["MOSS"] == "<|MOSS|>: 等于 12。\n就这样。<eom>\n"


@pytest.mark.parametrize("mutate, reason", [
    (lambda r: r.update(num_turns=3), "num_turns is 3 but plain_text has 2 turns"),
    (lambda r: r.update(plain_text="[Human]: hi<eoh> [MOSS]: hello"), "plain_text turn 1: expected"),
    (lambda r: r.update(plain_text=r["plain_text"] + " [Human]: more"), "plain_text turn 3: a [Human] turn without <eoh>"),
    (lambda r: r.update(plain_text=["x"]), "field 'plain_text' must be a string"),
    (lambda r: r.update(prefix=None, plain_text=""), "plain_text has no '[Human]"),
])
def test_bad_moss002_rows(mutate, reason):
    row = dict(MOSS002)
    mutate(row)
    with pytest.raises(BadRecord) as e:
        moss.parse(row)
    assert e.value.reason.startswith(reason), e.value.reason


# -- detection -----------------------------------------------------------------------------------

OTHER_FORMATS = [
    {"instruction": "a", "input": "", "output": "b"},
    {"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]},
    {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
    {"prompt": "a", "response": "b", "history": []},
    {"conversation": [{"human": "a", "assistant": "b"}]},
    {"instruction": "a", "context": "", "response": "b", "category": "open_qa"},
    {"chat": "not a moss chat"},
]


@pytest.mark.parametrize("row", OTHER_FORMATS)
def test_detect_leaves_other_formats_alone(row):
    assert not moss.detect(row)


def test_detect_claims_moss_rows_even_when_malformed():
    assert moss.detect(moss.EXAMPLE) and moss.detect(MOSS002)
    assert moss.detect(_bad(BAD_ROWS["num_turns mismatch"][0]))  # so the reject names the real problem


# -- writing records of other formats -------------------------------------------------------------

def test_from_another_format_uses_the_default_or_given_meta_instruction():
    conv = Conversation([Message("user", "Hi"), Message("assistant", "Hello")], meta={"category": "greeting"},
                        origin="data/in/chat.jsonl:12")
    out, losses = dump_one(conv)
    assert losses == set() and schema_errors(out) == []
    assert out["meta_instruction"] == moss.default_meta_instruction()
    assert "MOSS" not in out["meta_instruction"] and out["meta_instruction"].endswith("\n")
    assert (out["conversation_id"], out["num_turns"], out["category"]) == ("chat.jsonl:12", 1, "greeting")
    assert out["chat"]["turn_1"] == turn("Hi", "Hello")
    given_mi, _ = dump_one(conv, DumpOptions(meta_instruction="Custom.\n"))
    assert given_mi["meta_instruction"] == "Custom.\n"
    with_system = Conversation([Message("system", "Sys"), *conv.messages])
    assert dump_one(with_system, DumpOptions(meta_instruction="Custom.\n"))[0]["meta_instruction"] == "Sys"


def test_ids_come_from_meta_else_a_digest_of_the_text():
    a = Conversation([Message("user", "Hi"), Message("assistant", "Hello")])
    b = Conversation([Message("user", "Hi"), Message("assistant", "Hello!")])
    ida, idb = dump_one(a)[0]["conversation_id"], dump_one(b)[0]["conversation_id"]
    assert isinstance(ida, str) and ida != idb and ida == dump_one(a)[0]["conversation_id"]
    a.meta["id"] = 9
    assert dump_one(a)[0]["conversation_id"] == 9


def test_tools_are_dropped_and_counted():
    conv = Conversation(
        [Message("user", "Weather in Paris?"),
         Message("assistant", "", tool_calls=[ToolCall("weather", '{"city": "Paris"}', "c1")]),
         Message("tool", '{"temp": 21}', tool_call_id="c1", name="weather"),
         Message("assistant", "It is 21 °C.", weight=1)],
        tools=[{"name": "weather"}],
    )
    out, losses = dump_one(conv)
    assert losses == {"tools dropped", "message weights dropped"}
    assert out["num_turns"] == 1
    assert out["chat"]["turn_1"]["MOSS"] == "<|MOSS|>: It is 21 °C.<eom>\n"
    assert schema_errors(out) == []


def test_plugins_for_turns_that_are_gone_are_counted():
    thought = "<|Inner Thoughts|>: Easy.<eot>\n"
    row = row003(turn("q1", "a1", Inner_Thoughts=thought), turn("q2", "a2", Inner_Thoughts=thought))
    conv = moss.parse(row)
    conv.messages = conv.messages[:3]  # keep system + turn 1
    out, losses = dump_one(conv)
    assert losses == {"MOSS plugin fields dropped (their turn is gone)"}
    assert out["chat"]["turn_1"] == row["chat"]["turn_1"]
    conv.meta["moss_plugins"] = [{"turn": 1, "Commands": "no tags"}]
    out, losses = dump_one(conv)
    assert losses == {"MOSS plugin fields dropped (malformed meta.moss_plugins)"}
    assert out["chat"]["turn_1"]["Commands"] == moss.PLAIN["Commands"]


def test_kept_plugin_layout_of_tool_calls_that_are_gone_is_dropped_and_counted():
    t = turn("q", "a", Commands='<|Commands|>: Calculate("1+1")\nCalculate("2+2")<eoc>\n',
             Tool_Responses='<|Results|>:\nCalculate("1+1") => 2\nCalculate("2+2") => 4\n<eor>\n')
    conv = moss.parse(row003(t))
    conv.messages = [m for m in conv.messages if m.role != "tool" and not m.tool_calls]  # e.g. through alpaca
    conv.tools = None
    out, losses = dump_one(conv)
    assert losses == {"MOSS plugin fields dropped (their tool calls are gone)"}
    assert {f: out["chat"]["turn_1"][f] for f in moss.PLUGIN_FIELDS} == moss.PLAIN


def test_tool_calls_of_moss_plugins_from_another_format_become_commands():
    conv = Conversation(
        [Message("user", "2+2?"),
         Message("assistant", "", tool_calls=[ToolCall("Calculate", '{"expression": "2+2"}', "c1")]),
         Message("tool", "4", tool_call_id="c1"), Message("assistant", "4.")])
    out, losses = dump_one(conv)
    assert losses == set()
    t = out["chat"]["turn_1"]
    assert (t["Inner Thoughts"], t["Commands"], t["Tool Responses"]) == (
        moss.PLAIN["Inner Thoughts"], '<|Commands|>: Calculate("2+2")<eoc>\n', '<|Results|>:\nCalculate("2+2") => 4\n<eor>\n')


# -- property ------------------------------------------------------------------------------------

texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["", " ", "\n", "None", "<eom>", "a<eoh>b", "<|MOSS|>: x", "多行\n文本\n", "<|1|>"])
LAYOUTS = [moss.DEFAULT_LAYOUT, ("", "", ""), ("\n", "\n", "\n"), (" ", "", ""), ("\n", "", "\r\n")]


@st.composite
def tagged(draw, field: str) -> str:
    return moss.render(field, draw(texts), draw(st.sampled_from(LAYOUTS)))


@st.composite
def moss_rows(draw) -> dict:
    chat = {}
    for n in range(1, draw(st.integers(1, 4)) + 1):
        t = {"Human": draw(tagged("Human"))}
        for f in moss.PLUGIN_FIELDS:
            t[f] = draw(st.just(moss.PLAIN[f]) | tagged(f))
        t["MOSS"] = draw(tagged("MOSS"))
        chat[f"turn_{n}"] = t
    row = {
        "conversation_id": draw(st.integers(0, 10**9) | st.text(max_size=8)),
        "meta_instruction": draw(texts),
        "num_turns": len(chat),
        "chat": chat,
    }
    category = draw(st.none() | st.sampled_from(["helpful", "harmless_zh", ""]))
    if category is not None:
        row["category"] = category
    return row


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(moss_rows())
def test_property_moss_round_trip(row):
    assert moss.detect(row)
    assert round_trip(row) == row
    assert via_meta_only(row) == row
    assert schema_errors(row) == []


# -- plugin turns as tool calls ------------------------------------------------------------------------

APIS = ["Search", "Calculate", "Solve", "Text2Image", "ImageEdit"]
arg_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters='"\n'), max_size=12)
result_text = st.one_of(st.text(st.characters(exclude_categories=("Cs",)), max_size=20),
                        st.sampled_from(["'42'", "No result.", "<|1|>: 'a'\n<|2|>: 'b'", "x = 1.0"]))


@st.composite
def plugin_turns(draw) -> dict:
    calls = draw(st.lists(st.tuples(st.sampled_from(APIS), arg_text), min_size=1, max_size=3))
    texts = [f'{name}("{arg}")' for name, arg in calls]
    commands = draw(st.sampled_from([", ", "\n", " \n"])).join(texts)
    thought = draw(st.sampled_from(["None", "I need a tool.", "需要计算。"]))
    shape = draw(st.sampled_from(["blocks", "reordered", "bare", "none"]))
    results = [draw(result_text) for _ in texts]
    if shape in ("blocks", "reordered"):
        blocks = [f"{t} =>{draw(st.sampled_from([' ', chr(10)]))}{r}" for t, r in zip(texts, results)]
        if shape == "reordered":
            blocks = draw(st.permutations(blocks))
        results_field = "<|Results|>:\n" + "\n".join(blocks) + "\n<eor>\n"
    elif shape == "bare":
        results_field = f"<|Results|>: {results[0]}<eor>\n"
    else:
        results_field = moss.PLAIN["Tool Responses"]
    return turn(draw(st.sampled_from(["2+2?", "搜索一下", "draw"])), draw(st.sampled_from(["4.", "好的。", "Done"])),
                Inner_Thoughts=f"<|Inner Thoughts|>: {thought}<eot>\n", Commands=f"<|Commands|>: {commands}<eoc>\n",
                Tool_Responses=results_field)


@st.composite
def plugin_rows(draw) -> dict:
    turns = [draw(st.one_of(plugin_turns(), st.just(turn("hi", "hello")))) for _ in range(draw(st.integers(1, 3)))]
    apis = draw(st.lists(st.sampled_from(APIS[:4]), unique=True))
    mi = "You are MOSS.\n" + "".join(f"- {moss_plugins.PLUGINS[a][0]}: enabled. API: {a}({moss_plugins.PLUGINS[a][1]})\n"
                                     for a in apis)
    return row003(*turns, meta_instruction=mi)


def via_format(row: dict, fmt: str) -> dict:
    conv = moss.parse(row).check()
    losses: set[str] = set()
    (mid,) = formats.get(fmt).dump(conv, DumpOptions(), losses.add)
    assert losses == set(), losses
    back = formats.get(fmt).parse(orjson.loads(orjson.dumps(mid))).check()
    out, losses = dump_one(back)
    assert losses == set(), losses
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plugin_rows())
def test_property_plugin_turns_are_tool_calls_and_come_back_byte_exact(row):
    conv = moss.parse(row).check()
    commands = [c for t in row["chat"].values()
                for c in moss_plugins.parse_commands(moss.split_tagged(t["Commands"], "Commands", "")[0]) or []]
    calls = [c for m in conv.messages for c in m.tool_calls]  # each command is a call of its API, one string argument
    assert [(c.name, list(json.loads(c.arguments).values())) for c in calls] == [(n, [a]) for n, a in commands]
    assert conv.has_tools() == any(t["Commands"] != moss.PLAIN["Commands"] for t in row["chat"].values())
    assert round_trip(row) == row
    assert via_meta_only(row) == row
    for fmt in ("openai", "sharegpt", "chatglm3"):
        assert via_format(row, fmt) == row


def test_golden_plugin_rows_come_back_byte_exact_through_every_tool_calling_format(tmp_path):
    src = REPO_GOLDEN / "inputs" / "moss_plugins.jsonl"
    for fmt in ("openai", "sharegpt", "chatglm3"):
        convert_file(src, tmp_path / f"mid.{fmt}.jsonl", fmt, from_format="moss")
        convert_file(tmp_path / f"mid.{fmt}.jsonl", tmp_path / f"back.{fmt}.jsonl", "moss", from_format=fmt)
        assert rows_of(tmp_path / f"back.{fmt}.jsonl") == rows_of(src)


def test_real_plugin_files_are_tool_calls_and_come_back(tmp_path):
    folder = shared_path("real", "moss_003_plugin_files")
    from instructgen.inputs import expand_inputs

    files = expand_inputs([str(folder)])
    originals = [json.loads(Path(f).read_text(encoding="utf-8")) for f in files]
    convs = [moss.parse(r).check() for r in originals]
    assert all(c.has_tools() for c in convs)  # every one of these dialogues uses a plugin
    names = {c.name for conv in convs for m in conv.messages for c in m.tool_calls}
    assert names == {"Search", "Calculate", "Solve", "Text2Image"}
    for fmt in ("openai", "sharegpt", "chatglm3"):
        assert [via_format(r, fmt) for r in originals] == originals
