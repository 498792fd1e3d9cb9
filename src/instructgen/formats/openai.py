"""OpenAI chat fine-tuning: {messages: [{role, content, ...}], tools?}.

The canonical record models tool calls the OpenAI way (an assistant message
with `tool_calls`, answered by `tool` messages), so the helpers the other
tool-calling formats share (sharegpt, chatglm3) live here too: tool lists,
call arguments, call ids, and weights.

Call ids: formats without ids (sharegpt, chatglm3) get none; when writing
OpenAI, a call without an id is numbered `call_0`, `call_1`, ... and each tool
result answers the oldest unanswered call. Ids that differ from that default
travel to id-less formats in the meta channel (`tool_call_ids`), so
openai -> sharegpt -> openai keeps them.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import BadRecord
from ..record import ROLES, Conversation, Message, ToolCall
from .base import DumpOptions, Lost, finish_row, require_list, split_known

NAME = "openai"
DESCRIPTION = "OpenAI chat fine-tuning: messages (system/user/assistant/tool), tool_calls, tools, weight 0/1"
EXAMPLE = {
    "messages": [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
    ]
}
FIELDS = frozenset({"messages", "tools"})
NATIVE_META: frozenset[str] = frozenset()
MESSAGE_FIELDS = frozenset({"role", "content", "tool_calls", "tool_call_id", "weight", "name"})
TOOL_IDS_KEY = "tool_call_ids"


def detect(row: dict) -> bool:
    msgs = row.get("messages")
    return isinstance(msgs, list) and bool(msgs) and all(isinstance(m, dict) and "role" in m for m in msgs)


def parse(row: dict) -> Conversation:
    raw = require_list(row, "messages")
    if not raw:
        raise BadRecord("field 'messages' is empty")
    messages = [_message(m, i) for i, m in enumerate(raw)]
    meta, extra = split_known(row, FIELDS)
    conv = Conversation(messages, meta=meta, extra=extra, source_format=NAME)
    if "tools" in row:
        conv.tools = read_tools(row["tools"], "tools", conv, wrap_tools)
    return conv.check()


def _message(m: Any, i: int) -> Message:
    where = f"messages[{i}]"
    if not isinstance(m, dict):
        raise BadRecord(f"{where} must be an object, got {type(m).__name__}")
    role = m.get("role")
    if role not in ROLES:
        raise BadRecord(f"{where}.role must be one of system, user, assistant, tool; got {role!r}")
    if role == "system" and i:
        raise BadRecord(f"{where}: a system message may only be the first message")
    private: dict[str, Any] = {}
    if "content" not in m:
        if not (role == "assistant" and m.get("tool_calls")):
            raise BadRecord(f"{where}: missing field 'content'")
        content, private["no_content"] = "", True
    else:
        content = _text(m["content"], f"{where}.content")
        if not isinstance(m["content"], str) or (m["content"] == "" and m.get("tool_calls")):
            private["content"] = m["content"]
    msg = Message(role, content)
    if "tool_calls" in m:
        if role != "assistant":
            raise BadRecord(f"{where}.tool_calls is only allowed on assistant messages")
        calls = m["tool_calls"]
        if not isinstance(calls, list):
            raise BadRecord(f"{where}.tool_calls must be a list, got {type(calls).__name__}")
        msg.tool_calls = [_call(c, f"{where}.tool_calls[{j}]") for j, c in enumerate(calls)]
        if not calls:
            private["empty_tool_calls"] = True
    if "weight" in m:
        if role != "assistant":
            raise BadRecord(f"{where}.weight is only allowed on assistant messages")
        if m["weight"] not in (0, 1) or isinstance(m["weight"], bool):
            raise BadRecord(f"{where}.weight must be 0 or 1, got {m['weight']!r}")
        msg.weight = int(m["weight"])
    if role == "tool":
        tid = m.get("tool_call_id")
        if not isinstance(tid, str):
            raise BadRecord(f"{where}.tool_call_id must be a string naming the call it answers, got {tid!r}")
        msg.tool_call_id = tid
    elif "tool_call_id" in m:
        raise BadRecord(f"{where}.tool_call_id is only allowed on tool messages")
    if "name" in m:
        if not isinstance(m["name"], str):
            raise BadRecord(f"{where}.name must be a string, got {type(m['name']).__name__}")
        if role == "tool":
            msg.name = m["name"]
        else:  # a participant name: nothing the canonical record models
            private.setdefault("extra", {})["name"] = m["name"]
    extra = {k: v for k, v in m.items() if k not in MESSAGE_FIELDS}
    if extra:
        private.setdefault("extra", {}).update(extra)
    if private:
        msg.meta[NAME] = private
    return msg


def _text(value: Any, where: str) -> str:
    """A message content: a string, null, or a list of text parts."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list):
        texts = []
        for j, part in enumerate(value):
            if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                raise BadRecord(f"{where}[{j}]: only text parts ({{'type': 'text', 'text': ...}}) are supported")
            texts.append(part["text"])
        return "".join(texts)
    raise BadRecord(f"{where} must be a string, null or a list of text parts, got {type(value).__name__}")


def _call(c: Any, where: str) -> ToolCall:
    if not isinstance(c, dict):
        raise BadRecord(f"{where} must be an object, got {type(c).__name__}")
    fn = c.get("function")
    if not isinstance(fn, dict):
        raise BadRecord(f"{where}.function must be an object with name and arguments")
    if not isinstance(fn.get("name"), str):
        raise BadRecord(f"{where}.function.name must be a string")
    args = fn.get("arguments", "")
    if not isinstance(args, str):
        raise BadRecord(f"{where}.function.arguments must be a JSON string, got {type(args).__name__}")
    cid = c.get("id")
    if cid is not None and not isinstance(cid, str):
        raise BadRecord(f"{where}.id must be a string")
    if c.get("type", "function") != "function":
        raise BadRecord(f"{where}.type must be 'function', got {c.get('type')!r}")
    return ToolCall(fn["name"], args, cid)


def dump(conv: Conversation, opts: DumpOptions, lost: Lost) -> list[dict]:
    own = conv.source_format == NAME
    call_ids, result_ids = assign_ids(conv.messages)
    check_weights(conv, lost, carried=("assistant",))
    out: list[dict] = []
    for i, m in enumerate(conv.messages):
        private = m.meta.get(NAME, {}) if own else {}
        if m.role == "tool" and i not in result_ids:
            lost("tool results without a call dropped")
            continue
        d: dict[str, Any] = {"role": m.role}
        if "content" in private and _text_or_none(private["content"]) == m.content:
            d["content"] = private["content"]
        elif not (m.tool_calls and not m.content and (not own or private.get("no_content"))):
            d["content"] = m.content
        if m.tool_calls or private.get("empty_tool_calls"):
            d["tool_calls"] = [
                {"id": call_ids[(i, j)], "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for j, c in enumerate(m.tool_calls)
            ]
        if m.role == "tool":
            d["tool_call_id"] = result_ids[i]
            if m.name is not None:
                d["name"] = m.name
        if m.role == "assistant" and m.weight is not None:
            d["weight"] = m.weight
        for k, v in private.get("extra", {}).items():
            d.setdefault(k, v)
        out.append(d)
    row: dict[str, Any] = {"messages": out}
    if conv.tools or (own and conv.tools is not None):
        row["tools"] = tools_out(conv, NAME, wrap_tools)
    return [finish_row(row, conv, opts, NATIVE_META)]


def _text_or_none(value: Any) -> str | None:
    try:
        return _text(value, "")
    except BadRecord:
        return None


# -- helpers shared by the tool-calling formats -----------------------------------------------------

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
    """Ids for every call ((message, call) -> id) and every answered tool result (message -> id)."""
    call_ids: dict[tuple[int, int], str] = {}
    result_ids: dict[int, str] = {}
    pending: list[str] = []
    n = 0
    for i, m in enumerate(messages):
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
    from dataclasses import replace

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
