"""OpenAI chat fine-tuning: {messages: [{role, content, ...}], tools?}.

The canonical record models tool calls the OpenAI way (an assistant message
with `tool_calls`, answered by `tool` messages); what the tool-calling formats
share (tool lists, call arguments, call ids, weights) is in tools.py.

Call ids: formats without ids (sharegpt, chatglm3) get none; when writing
OpenAI, a call without an id is numbered `call_0`, `call_1`, ... and each tool
result answers the oldest unanswered call. Ids that differ from that default
travel to id-less formats in the meta channel (`tool_call_ids`), so
openai -> sharegpt -> openai keeps them. An assistant message that only calls
tools is written with `"content": null`, as the API returns it (readers such as
LLaMA-Factory's index `content` on every message).

Preference data in LLaMA-Factory's layouts for this shape (its `kto_en_demo`):
`chosen` and `rejected` assistant messages answering `messages`, which end with
the user turn (`ranking: true`), or a boolean `label` (`kto_tag`).

OpenAI's own layouts (`layout=`): "strict", only the keys its supervised
fine-tuning defines (`messages`, `tools`; meta, extra fields and preference
data left out, each counted as lost); "preference", its DPO rows
{"input": {"messages", "tools"?}, "preferred_output": [answer],
"non_preferred_output": [answer]}, which are read back as a pair.
"""

from __future__ import annotations

from typing import Any

from dataclasses import replace

from ..errors import BadRecord, CannotRepresent
from ..record import ROLES, Conversation, Message, ToolCall
from .base import (LABEL_KEY, REJECTED_KEY, DumpOptions, Lost, Plain, as_sft, finish_row, preference_fields,
                   require_list, split_known)
from .tools import assign_ids, check_weights, read_tools, tools_out, wrap_tools

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
PREFERENCE = True
ALTERNATES = True  # as LLaMA-Factory reads it
WHOLE = True  # the conversation is written as it is (tool turns included)
ANSWERS_CALLS = True  # the Chat API refuses tool_calls not followed by a result for each
MESSAGE_FIELDS = frozenset({"role", "content", "tool_calls", "tool_call_id", "weight", "name"})


LAYOUTS = ("strict", "preference")
PREFERENCE_FIELDS = frozenset({"input", "preferred_output", "non_preferred_output"})


def detect(row: dict) -> bool:
    if isinstance(row.get("input"), dict) and "preferred_output" in row:
        row = row["input"]
    msgs = row.get("messages")
    return isinstance(msgs, list) and bool(msgs) and all(isinstance(m, dict) and "role" in m for m in msgs)


def parse(row: dict) -> Conversation:
    if "preferred_output" in row or "non_preferred_output" in row:
        return _parse_preference(row)
    raw = require_list(row, "messages")
    if not raw:
        raise BadRecord("field 'messages' is empty")
    messages = [_message(m, i) for i, m in enumerate(raw)]
    pair, label, known = preference_fields(row, FIELDS, answer=_answer)
    meta, extra = split_known(row, known)
    conv = Conversation(messages, meta=meta, extra=extra, source_format=NAME, label=label)
    if pair is not None:
        conv.chosen, conv.rejected = pair
    if row.get("tools") is not None:  # null: a row given the key only so every row has the same keys
        conv.tools = read_tools(row["tools"], "tools", conv, wrap_tools)
    return conv.check()


def _parse_preference(row: dict) -> Conversation:
    """OpenAI's preference (DPO) row: the prompt in `input`, one preferred and one non-preferred answer."""
    inp = row.get("input")
    if not isinstance(inp, dict):
        raise BadRecord("field 'input' must be an object with 'messages'")
    answers = []
    for key in ("preferred_output", "non_preferred_output"):
        value = require_list(row, key)
        if len(value) != 1:
            raise BadRecord(f"field {key!r} must hold exactly one assistant message, got {len(value)}")
        answers.append(_answer(value[0], f"{key}[0]"))
    conv = parse({k: v for k, v in inp.items()})
    conv.chosen, conv.rejected = answers
    conv.extra.update({k: v for k, v in row.items() if k not in PREFERENCE_FIELDS})
    conv.hints["layout"] = "preference"
    return conv.check()


def _answer(m: Any, where: str) -> Message:
    """A `chosen`/`rejected` message: {"role": "assistant", "content": ...} (tool calls allowed)."""
    msg = _message(m, 1, where)
    if msg.role != "assistant":
        raise BadRecord(f"{where} must be an assistant message, got role {msg.role!r}")
    return msg


def _message(m: Any, i: int, where: str | None = None) -> Message:
    where = where or f"messages[{i}]"
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
        content = ""  # written back as null: readers (LLaMA-Factory, the fine-tuning checks) index `content`
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
    if opts.layout == "preference" and not conv.pairwise:
        raise CannotRepresent("OpenAI's preference layout needs a pair of answers (chosen and rejected); "
                              "this record has " + ("a KTO label" if conv.label is not None else "none"))
    if opts.layout == "strict" and conv.preference:
        conv = as_sft(conv, replace(opts, keep_meta=False), lost)
    own = conv.source_format == NAME
    call_ids, result_ids = assign_ids(conv.messages)
    check_weights(conv, lost, carried=("assistant",))
    out: list[dict] = []
    for i, m in enumerate(conv.messages):
        if m.role == "tool" and i not in result_ids:
            lost("tool results without a call dropped")
            continue
        out.append(_message_out(m, own, [call_ids[(i, j)] for j in range(len(m.tool_calls))], result_ids.get(i)))
    row: dict[str, Any] = {"messages": out}
    if conv.tools or (own and conv.tools is not None):
        row["tools"] = tools_out(conv, NAME, wrap_tools)
    if conv.chosen is not None:
        n = len(call_ids)
        for key, answer in (("chosen", conv.chosen), ("rejected", conv.rejected)):
            ids = [c.id if c.id is not None else f"call_{n + j}" for j, c in enumerate(answer.tool_calls)]
            row[key] = _message_out(answer, own, ids, None)
    if conv.label is not None:
        row["label"] = conv.label
    if opts.layout in LAYOUTS:
        return [_openai_only(row, conv, opts.layout, lost)]
    return [finish_row(row, conv, opts, NATIVE_META, NAME)]


def _openai_only(row: dict[str, Any], conv: Conversation, layout: str, lost: Lost) -> dict[str, Any]:
    """The row in one of OpenAI's own layouts: nothing it does not define, each thing left out counted."""
    for key in conv.meta:
        if key not in (REJECTED_KEY, LABEL_KEY):  # as_sft counted those
            lost(f"meta {key!r} dropped (OpenAI's {layout} layout)")
    for key in conv.extra:
        lost(f"field {key!r} dropped (OpenAI's {layout} layout)")
    for m in row["messages"] + [row[k] for k in ("chosen", "rejected") if k in row]:
        for key in set(m) - STRICT_MESSAGE_FIELDS[m["role"]]:
            del m[key]
            lost(f"message field {key!r} dropped (OpenAI's {layout} layout)")
    if layout == "strict":
        return row
    inp: dict[str, Any] = {"messages": row["messages"]}
    if "tools" in row:
        inp["tools"] = row["tools"]
    return {"input": inp, "preferred_output": [row["chosen"]], "non_preferred_output": [row["rejected"]]}


# the message fields OpenAI's fine-tuning format defines, per role
STRICT_MESSAGE_FIELDS = {
    "system": frozenset({"role", "content", "name"}), "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset({"role", "content", "name", "tool_calls", "weight"}),
    "tool": frozenset({"role", "content", "tool_call_id"}),
}


def _message_out(m: Message, own: bool, call_ids: list[str], result_id: str | None) -> dict[str, Any]:
    private = m.meta.get(NAME, {}) if own else {}
    d: dict[str, Any] = {"role": m.role}
    if "content" in private and _text_or_none(private["content"]) == m.content:
        d["content"] = private["content"]
    elif m.tool_calls and not m.content:
        d["content"] = None  # as the API returns a message that only calls tools
    else:
        d["content"] = m.content
    if m.tool_calls or private.get("empty_tool_calls"):
        d["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for cid, c in zip(call_ids, m.tool_calls)
        ]
    if m.role == "tool":
        d["tool_call_id"] = result_id
        if m.name is not None:
            d["name"] = m.name
    if m.role == "assistant" and m.weight is not None:
        d["weight"] = m.weight
    for k, v in private.get("extra", {}).items():
        d.setdefault(k, v)
    return d


def _text_or_none(value: Any) -> str | None:
    try:
        return _text(value, "")
    except BadRecord:
        return None


# -- the direct path (convert.py): plain records without building a Conversation -----------------------

PLAIN_MESSAGE = frozenset({"role", "content"})
PLAIN_ROW = frozenset({"messages"})


def read_plain(row: dict) -> Plain | None:
    """(system, pairs, meta) of a [system,] user/assistant alternation of {role, content} messages and
    nothing else, as `parse` reads it; None otherwise."""
    if row.keys() != PLAIN_ROW:
        return None
    msgs = row["messages"]
    if type(msgs) is not list or not msgs:
        return None
    system, start = None, 0
    first = msgs[0]
    if type(first) is dict and first.get("role") == "system":
        if first.keys() != PLAIN_MESSAGE or type(first["content"]) is not str or not first["content"]:
            return None
        system, start = first["content"], 1
    if (len(msgs) - start) % 2 or len(msgs) == start:
        return None
    pairs = []
    for i in range(start, len(msgs), 2):
        u, a = msgs[i], msgs[i + 1]
        if type(u) is not dict or type(a) is not dict or u.keys() != PLAIN_MESSAGE or a.keys() != PLAIN_MESSAGE:
            return None
        uc, ac = u["content"], a["content"]
        if u["role"] != "user" or a["role"] != "assistant" or type(uc) is not str or type(ac) is not str:
            return None
        pairs.append((uc, ac))
    return system, pairs, {}


def write_plain(plain: Plain, origin: str, opts: DumpOptions, notes, jsonl: bool = False) -> dict | None:
    """The row `dump` writes for a plain conversation (nothing is lost in OpenAI's format)."""
    system, pairs, meta = plain
    msgs = [{"role": "system", "content": system}] if system is not None else []
    for q, a in pairs:
        msgs.append({"role": "user", "content": q})
        msgs.append({"role": "assistant", "content": a})
    row: dict[str, Any] = {"messages": msgs}
    if opts.keep_meta and meta:
        row["meta"] = dict(meta)
    return row
