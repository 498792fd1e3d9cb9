"""Tool definitions, tool-call ids and message weights: what openai, sharegpt and chatglm3 share.

Canonical tools are function dicts {name, description, parameters}; call
arguments are JSON strings. Call ids that are not the default `call_0, call_1, ...`
travel through id-less formats in meta["tool_call_ids"].
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from ..errors import BadRecord
from ..record import Conversation, Message, ToolCall
from .base import Lost

TOOL_IDS_KEY = "tool_call_ids"


def read_tools(value: Any, where: str, conv: Conversation, shape, raw: Any = None) -> list:
    """Canonical tools from a `tools` list: function dicts {name, description, parameters}.

    OpenAI's {"type": "function", "function": {...}} wrappers are unwrapped. When the
    format's own `shape` would not give the value back, the raw value is kept as a hint.
    """
    if not isinstance(value, list):
        raise BadRecord(f"field {where!r} must be a list, got {type(value).__name__}")
    tools = [unwrap_tool(t) for t in value]
    raw = value if raw is None else raw
    if shape(tools) != raw:
        conv.hints["tools_raw"] = raw
        conv.hints["tools_canonical"] = list(tools)
    return tools


def unwrap_tool(t: Any) -> Any:
    if isinstance(t, dict) and set(t) == {"type", "function"} and t["type"] == "function" and isinstance(t["function"], dict):
        return t["function"]
    return t


def wrap_tools(tools: list) -> list:
    return [t if isinstance(t, dict) and "type" in t else {"type": "function", "function": t} for t in tools]


def tools_out(conv: Conversation, fmt: str, shape) -> Any:
    """The tools as format `fmt` writes them; the raw value read from that format when it still matches."""
    if conv.source_format == fmt and "tools_raw" in conv.hints:
        if conv.hints.get("tools_canonical") == conv.tools:
            return conv.hints["tools_raw"]
    return shape(conv.tools or [])


def arguments_of(value: Any) -> str:
    """Canonical call arguments (a JSON string) from a format that stores them as a JSON value."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def arguments_value(arguments: str) -> Any:
    """The JSON value of canonical call arguments; the string itself when it is not JSON."""
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def assign_ids(messages: list[Message]) -> tuple[dict[tuple[int, int], str], dict[int, str]]:
    """Ids for every call ((message, call) -> id) and every answered tool result (message -> id).

    A result answers a call of the call message it follows (as the OpenAI API requires): calls
    an earlier message left unanswered are not answered later."""
    call_ids: dict[tuple[int, int], str] = {}
    result_ids: dict[int, str] = {}
    pending: list[str] = []
    n = 0
    for i, m in enumerate(messages):
        if m.role in ("user", "assistant", "system"):
            pending = []
        for j, c in enumerate(m.tool_calls):
            call_ids[(i, j)] = c.id if c.id is not None else f"call_{n}"
            pending.append(call_ids[(i, j)])
            n += 1
        if m.role == "tool":
            if m.tool_call_id is not None:
                result_ids[i] = m.tool_call_id
                if m.tool_call_id in pending:
                    pending.remove(m.tool_call_id)
            elif pending:
                result_ids[i] = pending.pop(0)
    return call_ids, result_ids


def stash_ids(conv: Conversation) -> dict | None:
    """The call ids of a record when they differ from the default numbering, for the meta channel."""
    calls = [c.id for m in conv.messages for c in m.tool_calls]
    results = [m.tool_call_id for m in conv.messages if m.role == "tool"]
    if not any(calls) and not any(results):
        return None
    bare = [Message(m.role, "", tool_calls=[ToolCall(c.name, "") for c in m.tool_calls]) for m in conv.messages]
    d_calls, d_results = assign_ids(bare)
    default_calls = [d_calls[k] for k in sorted(d_calls)]
    default_results = [d_results.get(i) for i, m in enumerate(conv.messages) if m.role == "tool"]
    if calls == default_calls and results == default_results:
        return None
    return {"calls": calls, "results": results}


def restore_ids(conv: Conversation) -> None:
    """Give calls and results back the ids an id-less format carried in the meta channel."""
    stash = conv.meta.get(TOOL_IDS_KEY)
    if not isinstance(stash, dict):
        return
    calls = [c for m in conv.messages for c in m.tool_calls]
    results = [m for m in conv.messages if m.role == "tool"]
    if len(stash.get("calls") or []) != len(calls) or len(stash.get("results") or []) != len(results):
        return  # the record changed shape since: the ids no longer say anything; keep them as meta
    for c, cid in zip(calls, stash["calls"]):
        c.id = cid
    for m, rid in zip(results, stash["results"]):
        m.tool_call_id = rid
    del conv.meta[TOOL_IDS_KEY]


def with_stashed_ids(conv: Conversation) -> Conversation:
    """`conv` with its non-default call ids added to meta (a shallow copy; the record is not changed)."""
    stash = stash_ids(conv)
    if stash is None:
        return conv
    return replace(conv, meta={**conv.meta, TOOL_IDS_KEY: stash})


DEFAULT_WEIGHT = {"assistant": 1, "system": 0, "user": 0, "tool": 0}


def check_weights(conv: Conversation, lost: Lost, carried: tuple[str, ...] = ()) -> None:
    """Count a loss when a message has a non-default weight on a role the target cannot weigh."""
    if any(m.weight is not None and m.role not in carried and m.weight != DEFAULT_WEIGHT[m.role] for m in conv.messages):
        lost("message weights dropped")


def renamed_results(messages: list[Message]) -> bool:
    """True when a tool result names a tool other than the call it answers (a name an id-less format loses)."""
    if not any(m.role == "tool" and m.name is not None for m in messages):
        return False
    call_ids, result_ids = assign_ids(messages)
    names = {cid: messages[i].tool_calls[j].name for (i, j), cid in call_ids.items()}
    return any(m.name is not None and names.get(result_ids.get(i)) != m.name
               for i, m in enumerate(messages) if m.role == "tool")
