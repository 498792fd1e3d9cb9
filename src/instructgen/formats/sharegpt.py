"""ShareGPT (FastChat / LLaMA-Factory): {id?, conversations: [{from, value}], system?, tools?}.

Roles: human, gpt, system (first only), and LLaMA-Factory's function_call
(value: JSON {"name", "arguments"}, or a list of them for parallel calls) and
observation (the tool result). BELLE writes `assistant` for `gpt` and some
files `user` for `human`: both are read and written back as found. `tools` is
a JSON string in LLaMA-Factory (a list is read too). Assistant text directly
followed by a function_call is read as one assistant message with a tool call
(the OpenAI shape) and written back as the two turns.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import BadRecord
from ..record import Conversation, Message, ToolCall
from .base import DumpOptions, Lost, finish_row, require_list, require_str, split_known
from .tools import (arguments_of, arguments_value, check_weights, read_tools, renamed_results, restore_ids,
                     tools_out, with_stashed_ids)

NAME = "sharegpt"
DESCRIPTION = "ShareGPT/FastChat/LLaMA-Factory: conversations of {from, value}, system, function_call/observation, tools"
EXAMPLE = {
    "id": "example-1",
    "conversations": [
        {"from": "human", "value": "Name a primary colour."},
        {"from": "gpt", "value": "Red."},
    ],
}
FIELDS = frozenset({"id", "conversations", "system", "tools"})
NATIVE_META = frozenset({"id"})
ROLE_OF = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system",
           "function_call": "assistant", "observation": "tool"}
DEFAULT_FROM = {"user": "human", "assistant": "gpt", "system": "system", "tool": "observation"}
TURN_FIELDS = frozenset({"from", "value"})


def detect(row: dict) -> bool:
    turns = row.get("conversations")
    return isinstance(turns, list) and bool(turns) and all(isinstance(t, dict) and "from" in t for t in turns)


def parse(row: dict) -> Conversation:
    turns = require_list(row, "conversations")
    if not turns:
        raise BadRecord("field 'conversations' is empty")
    meta, extra = split_known(row, FIELDS)
    if "id" in row:
        meta["id"] = row["id"]
    conv = Conversation([], meta=meta, extra=extra, source_format=NAME)
    system = require_str(row, "system", optional=True) if "system" in row else None
    if system:
        conv.messages.append(Message("system", system))
    elif system == "" or ("system" in row and row["system"] is None):
        conv.hints["system_raw"] = row["system"]
    for i, t in enumerate(turns):
        _turn(conv, t, i)
    if "tools" in row:
        _tools(conv, row["tools"])
    restore_ids(conv)
    return conv.check()


def _turn(conv: Conversation, t: Any, i: int) -> None:
    where = f"conversations[{i}]"
    if not isinstance(t, dict):
        raise BadRecord(f"{where} must be an object with 'from' and 'value', got {type(t).__name__}")
    frm = t.get("from")
    if frm not in ROLE_OF:
        raise BadRecord(f"{where}.from must be one of {', '.join(ROLE_OF)}; got {frm!r}")
    value = t.get("value")
    if not isinstance(value, str):
        raise BadRecord(f"{where}.value must be a string, got {type(value).__name__ if 'value' in t else 'nothing'}")
    private: dict[str, Any] = {}
    extra = {k: v for k, v in t.items() if k not in TURN_FIELDS}
    if extra:
        private["extra"] = extra
    if frm == "system":
        if conv.messages:
            raise BadRecord(f"{where}: a 'system' turn may only come first (and not beside a 'system' field)")
        conv.hints["system_in_conversations"] = True
    if frm == "function_call":
        calls = parse_calls(value, f"{where}.value")
        if call_value(calls) != value:
            private["raw"] = value
        prev = conv.messages[-1] if conv.messages else None
        if (prev is not None and prev.role == "assistant" and prev.content and not prev.tool_calls
                and not prev.meta and not extra and prev.weight is None):
            prev.tool_calls = calls  # text then call: one assistant message, as OpenAI has it
            if private:
                prev.meta[NAME] = private
            return
        msg = Message("assistant", "", tool_calls=calls)
    else:
        msg = Message(ROLE_OF[frm], value)
        if frm != DEFAULT_FROM[msg.role]:
            private["from"] = frm
    if private:
        msg.meta[NAME] = private
    conv.messages.append(msg)


def parse_calls(value: str, where: str) -> list[ToolCall]:
    """The calls of a function_call value: JSON {"name", "arguments"} or a list of them."""
    try:
        data = json.loads(value)
    except ValueError:
        raise BadRecord(f"{where}: a function_call value must be JSON {{\"name\": ..., \"arguments\": ...}}") from None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise BadRecord(f"{where}: a function_call value names no function")
    calls = []
    for item in items:
        if not (isinstance(item, dict) and isinstance(item.get("name"), str)):
            raise BadRecord(f"{where}: each function call must be an object with a string 'name'")
        calls.append(ToolCall(item["name"], arguments_of(item.get("arguments", {}))))
    return calls


def call_value(calls: list[ToolCall]) -> str:
    items = [{"name": c.name, "arguments": arguments_value(c.arguments)} for c in calls]
    return json.dumps(items[0] if len(items) == 1 else items, ensure_ascii=False)


def _tools(conv: Conversation, value: Any) -> None:
    if isinstance(value, str):
        if not value.strip():
            conv.hints["tools_raw"], conv.hints["tools_canonical"] = value, None
            return
        try:
            parsed = json.loads(value)
        except ValueError:
            raise BadRecord("field 'tools' must be a JSON string of a list of functions; it is not valid JSON") from None
        if isinstance(parsed, dict):
            parsed = [parsed]
        conv.tools = read_tools(parsed, "tools", conv, _tools_string, raw=value)
    elif value is not None:
        conv.tools = read_tools(value, "tools", conv, _tools_string)
    else:
        conv.hints["tools_raw"], conv.hints["tools_canonical"] = None, None


def _tools_string(tools: list) -> str:
    return json.dumps(tools, ensure_ascii=False)


def dump(conv: Conversation, opts: DumpOptions, lost: Lost) -> list[dict]:
    own = conv.source_format == NAME
    conv = with_stashed_ids(conv)
    check_weights(conv, lost)
    if renamed_results(conv.messages):
        lost("tool result names dropped")
    row: dict[str, Any] = {}
    if "id" in conv.meta:
        row["id"] = conv.meta["id"]
    turns: list[dict] = []
    system = conv.system
    if system is not None:
        if own and conv.hints.get("system_in_conversations"):
            turns.append({"from": "system", "value": system})
        else:
            row["system"] = system
    elif own and "system_raw" in conv.hints:
        row["system"] = conv.hints["system_raw"]
    for m in conv.turns:
        private = m.meta.get(NAME, {}) if own else {}
        if m.tool_calls:
            if m.content:
                turns.append({"from": private.get("from", DEFAULT_FROM["assistant"]), "value": m.content})
            raw = private.get("raw")
            value = raw if raw is not None and _same_calls(raw, m.tool_calls) else call_value(m.tool_calls)
            turns.append({"from": "function_call", "value": value})
        else:
            turns.append({"from": private.get("from", DEFAULT_FROM[m.role]), "value": m.content})
        for k, v in private.get("extra", {}).items():
            turns[-1].setdefault(k, v)
    row["conversations"] = turns
    if conv.tools or (own and (conv.tools is not None or "tools_raw" in conv.hints)):
        row["tools"] = tools_out(conv, NAME, _tools_string)
    return [finish_row(row, conv, opts, NATIVE_META)]


def _same_calls(raw: str, calls: list[ToolCall]) -> bool:
    try:
        again = parse_calls(raw, "")
    except BadRecord:
        return False
    return [(c.name, c.arguments) for c in again] == [(c.name, c.arguments) for c in calls]
