"""Hypothesis round trips: each format over its lossless domain, and the lossless chains between formats.

Every hop goes through JSON text (orjson), as a file would. Tool-call arguments are compared
as JSON values: formats that store them as objects (sharegpt, chatglm3) re-encode them.
"""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instructgen import formats
from instructgen.formats.base import DumpOptions, join_instruction
from instructgen.record import Conversation, Message, ToolCall

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=24)
nonempty = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=24)
words = st.sampled_from(["你好", "Hello", "第二轮", "tools?", "多云", "x = 1", "", " ", "\n", "Human: hi"])
content = st.one_of(text, words)
pair = st.tuples(content, content)
json_scalar = st.one_of(st.integers(-10**6, 10**6), text, st.booleans(), st.none())
arguments = st.dictionaries(st.text(min_size=1, max_size=8), json_scalar, max_size=3).map(
    lambda d: json.dumps(d, ensure_ascii=False))
tool_def = st.builds(lambda n, d: {"name": n, "description": d, "parameters": {"type": "object", "properties": {}}},
                     st.from_regex(r"[a-z_]{1,12}", fullmatch=True), text)
record_meta = st.fixed_dictionaries({}, optional={"id": st.one_of(text, st.integers(0, 10**9)), "category": text,
                                                  "source": text})


def through(conv: Conversation, fmt: str, **opts) -> Conversation:
    """Dump in `fmt`, go through JSON text, parse back; the hop must not report any loss."""
    losses: set[str] = set()
    spec = formats.get(fmt)
    rows = spec.dump(conv, DumpOptions(**opts), losses.add)
    assert losses == set(), f"{fmt}: {losses}"
    assert len(rows) == 1
    row = orjson.loads(orjson.dumps(rows[0]))
    assert fmt in formats.fits(row)
    return spec.parse(row).check()


def view(conv: Conversation, ids: bool = True) -> list:
    return [
        (m.role, m.content, [(c.name, json.loads(c.arguments)) + ((c.id,) if ids else ()) for c in m.tool_calls],
         m.tool_call_id if ids else None, m.weight)
        for m in conv.messages
    ]


def same(a: Conversation, b: Conversation, ids: bool = True) -> None:
    assert view(b, ids) == view(a, ids)
    assert b.meta == a.meta
    assert (b.tools or None) == (a.tools or None)


def plain(pairs, system=None, meta=None) -> Conversation:
    msgs = [Message("system", system)] if system else []
    for q, a in pairs:
        msgs += [Message("user", q), Message("assistant", a)]
    return Conversation(msgs, meta=dict(meta or {}))


@st.composite
def single_turn(draw, with_meta=True):
    """alpaca/dolly domain: one pair whose user message is instruction (+ input), the split kept in meta."""
    instruction, inp, output = draw(content), draw(content), draw(content)
    meta = dict(draw(record_meta)) if with_meta else {}
    if inp:
        meta["split"] = {"instruction": instruction, "input": inp}
    return Conversation([Message("user", join_instruction(instruction, inp)), Message("assistant", output)], meta=meta)


@st.composite
def chain_conv(draw, system=True):
    pairs = draw(st.lists(pair, min_size=1, max_size=4))
    sys = draw(st.one_of(st.none(), nonempty)) if system else None
    return plain(pairs, sys, draw(record_meta))


@st.composite
def tool_conv(draw, weights=False, ids=False):
    """Alternating turns, some answered through one tool call and its result; optional system and tools."""
    msgs = []
    sys = draw(st.one_of(st.none(), nonempty))
    if sys:
        msgs.append(Message("system", sys))
    n_calls = 0
    weight = st.sampled_from([None, 0, 1]) if weights else st.just(None)
    for _ in range(draw(st.integers(1, 3))):
        msgs.append(Message("user", draw(content)))
        if draw(st.booleans()):
            cid = f"id-{draw(st.integers(0, 999))}-{n_calls}" if ids else None
            msgs.append(Message("assistant", draw(content), tool_calls=[ToolCall(draw(st.sampled_from(["f", "天气", "g_2"])),
                                                                                  draw(arguments), cid)],
                                weight=draw(weight)))
            msgs.append(Message("tool", draw(content), tool_call_id=cid))
            n_calls += 1
        msgs.append(Message("assistant", draw(content), weight=draw(weight)))
    tools = draw(st.one_of(st.none(), st.lists(tool_def, min_size=1, max_size=2)))
    return Conversation(msgs, tools=tools, meta=draw(record_meta))


# -- one property per format ---------------------------------------------------------------------

@SETTINGS
@given(single_turn())
def test_alpaca_round_trip(conv):
    same(conv, through(conv, "alpaca"))


@SETTINGS
@given(single_turn())
def test_dolly_round_trip(conv):
    same(conv, through(conv, "dolly"))


@SETTINGS
@given(st.lists(pair, max_size=3), single_turn(), st.one_of(st.none(), nonempty))
def test_history_round_trip(earlier, last, system):
    conv = plain(earlier, system, last.meta)
    conv.messages += last.messages
    same(conv, through(conv, "history"))


@SETTINGS
@given(st.lists(pair, min_size=1, max_size=4), record_meta, st.booleans())
def test_chatglm_round_trip(pairs, meta, explode):
    conv = plain(pairs, None, meta)
    if not explode:
        same(conv, through(conv, "chatglm"))
        return
    rows = formats.get("chatglm").dump(conv, DumpOptions(explode_turns=True), lambda what: pytest.fail(what))
    assert len(rows) == len(pairs)
    for k, row in enumerate(rows):  # each row holds the dialogue up to its turn
        assert formats.get("chatglm").parse(orjson.loads(orjson.dumps(row))).pairs() == pairs[: k + 1]


@SETTINGS
@given(tool_conv(weights=True))
def test_chatglm3_round_trip(conv):
    same(conv, through(conv, "chatglm3"))


@SETTINGS
@given(tool_conv())
def test_sharegpt_round_trip(conv):
    same(conv, through(conv, "sharegpt"))


@SETTINGS
@given(tool_conv(ids=True), st.booleans())
def test_openai_round_trip(conv, weights):
    if weights:
        for m in conv.messages:
            if m.role == "assistant":
                m.weight = len(m.content) % 2
    same(conv, through(conv, "openai"))


@SETTINGS
@given(chain_conv())
def test_firefly_round_trip(conv):
    same(conv, through(conv, "firefly"))


belle_text = content.filter(lambda t: "Human:" not in t and "Assistant:" not in t)


@SETTINGS
@given(st.lists(st.tuples(belle_text, belle_text), min_size=1, max_size=4), record_meta)
def test_belle_round_trip(pairs, meta):
    conv = plain(pairs, None, meta)
    same(conv, through(conv, "belle"))


# -- chains between formats ------------------------------------------------------------------------

CHAIN = ["history", "sharegpt", "openai", "chatglm3", "firefly"]
TOOL_CHAIN = ["sharegpt", "chatglm3", "openai"]


@SETTINGS
@given(chain_conv(), st.lists(st.sampled_from(CHAIN), min_size=2, max_size=6))
def test_plain_conversations_cross_the_lossless_chain(conv, hops):
    current = conv
    for fmt in hops:
        current = through(current, fmt)
    same(conv, current)


@SETTINGS
@given(chain_conv(system=False), st.lists(st.sampled_from(CHAIN + ["chatglm"]), min_size=2, max_size=6))
def test_chatglm_joins_the_chain_without_a_system_prompt(conv, hops):
    current = conv
    for fmt in hops:
        current = through(current, fmt)
    same(conv, current)


@SETTINGS
@given(tool_conv(), st.lists(st.sampled_from(TOOL_CHAIN), min_size=2, max_size=6))
def test_tool_calls_cross_sharegpt_chatglm3_openai(conv, hops):
    current = conv
    for fmt in hops:
        current = through(current, fmt)
    same(conv, current, ids=False)


@SETTINGS
@given(tool_conv(ids=True), st.lists(st.sampled_from(TOOL_CHAIN), min_size=1, max_size=4))
def test_call_ids_survive_the_tool_chain_back_to_openai(conv, hops):
    current = conv
    for fmt in hops + ["openai"]:
        current = through(current, fmt)
    same(conv, current)


@SETTINGS
@given(single_turn(), st.sampled_from(CHAIN + ["chatglm", "dolly"]))
def test_alpaca_through_x_keeps_instruction_and_input_apart(conv, via):
    alpaca = formats.get("alpaca")
    start = alpaca.parse(alpaca.dump(conv, DumpOptions(), lambda w: pytest.fail(w))[0])
    back = through(through(start, via), "alpaca")
    assert alpaca.dump(back, DumpOptions(), lambda w: pytest.fail(w)) == alpaca.dump(start, DumpOptions(), print)
