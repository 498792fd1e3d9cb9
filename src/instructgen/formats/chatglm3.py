"""ChatGLM3 fine-tuning: {conversations: [{role, content, ...}], tools?}.

Roles: system (at most once, first), user, assistant, tool, observation.
`tool` is not a ChatGLM3 chat role: it is the assistant calling a tool, with
`name`, `parameters` and usually the result inline as `observation` (which
need not be a string); ChatGLM3's preprocessing turns it into an assistant
call plus an observation. A separate `observation` message is read too. Any
message may carry `loss` (bool), read as Message.weight. Assistant text
directly followed by a tool message is read as one assistant message with a
tool call, and written back as the two messages.

ChatGLM3 has one call per tool message: an assistant message with several
(parallel) calls is written as consecutive tool messages, and their number per
message travels in meta["tool_calls_per_message"] so reading joins them again.

`parameters` is written as a JSON object, whatever its values: ChatGLM3's own
fine-tuning code (finetune_chatmodel_demo/preprocess_utils.py) calls
`parameters.items()` and writes each value as a Python literal into the call it
trains on, so a string breaks it and turning values into text changes the call.
A call whose arguments are not a JSON object is refused (a chatglm3 source is
written back as it was read). Arrow-based JSON loaders (`datasets` < 5) cannot
load a file whose parameter values change type between rows; the Parquet output
holds such columns as JSON text. `tools` is left out of a row that has none (never
written as null): ChatGLM3's code adds the tools prompt when the key is there.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from ..errors import BadRecord, CannotRepresent
from ..record import Conversation, Message, ToolCall
from .base import DumpOptions, Lost, as_sft, finish_row, require_list, split_known
from .tools import (arguments_of, arguments_value, read_tools, renamed_results, restore_ids, tools_out,
                     with_stashed_ids)

NAME = "chatglm3"
DESCRIPTION = "ChatGLM3 fine-tuning: conversations of {role, content}, tool calls with name/parameters/observation"
EXAMPLE = {
    "conversations": [
        {"role": "system", "content": "你是一个乐于助人的助手。"},
        {"role": "user", "content": "1 加 1 等于几？"},
        {"role": "assistant", "content": "等于 2。"},
    ]
}
FIELDS = frozenset({"conversations", "tools"})
NATIVE_META: frozenset[str] = frozenset()
WHOLE = True  # the conversation is written as it is (tool turns included)
KEEP_ABSENT = frozenset({"tools"})  # ChatGLM3 tests the key, not its value: a row without tools has no key
ROLES = ("system", "user", "assistant", "tool", "observation")
GROUPS_KEY = "tool_calls_per_message"
KNOWN = {
    "system": {"role", "content", "loss"}, "user": {"role", "content", "loss"},
    "assistant": {"role", "content", "loss"}, "observation": {"role", "content", "loss"},
    "tool": {"role", "name", "parameters", "observation", "loss"},
}


def detect(row: dict) -> bool:
    turns = row.get("conversations")
    return isinstance(turns, list) and bool(turns) and all(isinstance(t, dict) and "role" in t for t in turns)


def parse(row: dict) -> Conversation:
    turns = require_list(row, "conversations")
    if not turns:
        raise BadRecord("field 'conversations' is empty")
    meta, extra = split_known(row, FIELDS)
    conv = Conversation([], meta=meta, extra=extra, source_format=NAME)
    for i, t in enumerate(turns):
        _turn(conv, t, i)
    if row.get("tools") is not None:  # null: a row given the key only so every row has the same keys
        conv.tools = read_tools(row["tools"], "tools", conv, list)
    _regroup_calls(conv)
    restore_ids(conv)
    return conv.check()


def _regroup_calls(conv: Conversation) -> None:
    """Join the tool messages of one (parallel) call message again, per meta["tool_calls_per_message"]."""
    groups = conv.meta.get(GROUPS_KEY)
    if not (isinstance(groups, list) and all(isinstance(n, int) and n > 0 for n in groups)):
        return
    out: list[Message] = []
    msgs, i, k = conv.messages, 0, 0
    while i < len(msgs):
        m = msgs[i]
        i += 1
        if not m.tool_calls:
            out.append(m)
            continue
        if k >= len(groups):
            return
        call, results = Message("assistant", m.content, tool_calls=list(m.tool_calls), weight=m.weight, meta=m.meta), []
        while len(call.tool_calls) < groups[k] and i < len(msgs):
            nxt = msgs[i]
            if nxt.role == "tool":
                results.append(nxt)
            elif nxt.role == "assistant" and nxt.tool_calls and not nxt.content and nxt.weight == m.weight:
                call.tool_calls += nxt.tool_calls
            else:
                return
            i += 1
        while i < len(msgs) and msgs[i].role == "tool" and len(results) < groups[k]:
            results.append(msgs[i])
            i += 1
        if len(call.tool_calls) != groups[k]:
            return
        out += [call, *results]
        k += 1
    if k == len(groups):
        conv.messages = out
        del conv.meta[GROUPS_KEY]


def _turn(conv: Conversation, t: Any, i: int) -> None:
    where = f"conversations[{i}]"
    if not isinstance(t, dict):
        raise BadRecord(f"{where} must be an object with 'role' and 'content', got {type(t).__name__}")
    role = t.get("role")
    if role not in ROLES:
        raise BadRecord(f"{where}.role must be one of {', '.join(ROLES)}; got {role!r}")
    if role == "system" and i:
        raise BadRecord(f"{where}: a system message may only come first (and only once)")
    private: dict[str, Any] = {}
    extra = {k: v for k, v in t.items() if k not in KNOWN[role]}
    if extra:
        private["extra"] = extra
    weight = _weight(t, where, private)
    if role != "tool":
        content = t.get("content")
        if not isinstance(content, str):
            raise BadRecord(f"{where}.content must be a string, got {type(content).__name__ if 'content' in t else 'nothing'}")
        msg = Message("tool" if role == "observation" else role, content, weight=weight)
        if private:
            msg.meta[NAME] = private
        conv.messages.append(msg)
        return
    if not isinstance(t.get("name"), str):
        raise BadRecord(f"{where}.name must be the string name of the tool called")
    if "parameters" not in t:
        raise BadRecord(f"{where}: missing field 'parameters' (the arguments of the call)")
    if isinstance(t["parameters"], str):
        private["parameters_string"] = True
    call = ToolCall(t["name"], arguments_of(t["parameters"]))
    prev = conv.messages[-1] if conv.messages else None
    if (prev is not None and prev.role == "assistant" and prev.content and not prev.tool_calls
            and not prev.meta and prev.weight == weight):
        prev.tool_calls = [call]  # thought then call: one assistant message, as OpenAI has it
        if private:
            prev.meta[NAME] = private
    else:
        msg = Message("assistant", "", tool_calls=[call], weight=weight)
        if private:
            msg.meta[NAME] = private
        conv.messages.append(msg)
    if "observation" in t:
        obs = t["observation"]
        result = Message("tool", obs if isinstance(obs, str) else json.dumps(obs, ensure_ascii=False))
        if not isinstance(obs, str):
            result.meta[NAME] = {"observation_json": True}
        conv.messages.append(result)
    else:
        conv.hints["separate_observations"] = True


def _weight(t: dict, where: str, private: dict) -> int | None:
    if "loss" not in t or t["loss"] is None:
        return None
    loss = t["loss"]
    if isinstance(loss, bool):
        return int(loss)
    if loss in (0, 1) and isinstance(loss, int):
        private["loss_int"] = True
        return loss
    raise BadRecord(f"{where}.loss must be true or false, got {loss!r}")


def dump(conv: Conversation, opts: DumpOptions, lost: Lost) -> list[dict]:
    own = conv.source_format == NAME
    conv = with_stashed_ids(as_sft(conv, opts, lost))
    if renamed_results(conv.messages):
        lost("tool result names dropped")
    inline = not (own and conv.hints.get("separate_observations"))
    out: list[dict] = []
    msgs = conv.messages
    i = 0
    while i < len(msgs):
        m = msgs[i]
        private = m.meta.get(NAME, {}) if own else {}
        if not m.tool_calls:
            role = "observation" if m.role == "tool" else m.role
            out.append(_with(private, {"role": role, "content": m.content}, m.weight))
            i += 1
            continue
        if m.content:
            out.append(_with({}, {"role": "assistant", "content": m.content}, m.weight))
        # results that follow the calls go inline, oldest call first
        results = []
        j = i + 1
        while (inline and j < len(msgs) and msgs[j].role == "tool" and len(results) < len(m.tool_calls)
               and msgs[j].weight is None and "extra" not in msgs[j].meta.get(NAME, {})):
            results.append(msgs[j])
            j += 1
        for k, c in enumerate(m.tool_calls):
            params = c.arguments if private.get("parameters_string") else arguments_value(c.arguments)
            if not own and not isinstance(params, dict):
                raise CannotRepresent(f"the arguments of call {c.name!r} are not a JSON object ({c.arguments[:40]!r}); "
                                      "ChatGLM3 reads a call's parameters as keyword arguments")
            d = {"role": "tool", "name": c.name, "parameters": params}
            if k < len(results):
                r = results[k]
                obs_json = own and r.meta.get(NAME, {}).get("observation_json")
                d["observation"] = arguments_value(r.content) if obs_json else r.content
            out.append(_with(private if k == 0 else {}, d, m.weight))
        i = j
    row: dict[str, Any] = {"conversations": out}
    if conv.tools or (own and (conv.tools is not None or "tools_raw" in conv.hints)):
        row["tools"] = tools_out(conv, NAME, list)
    groups = [len(m.tool_calls) for m in conv.messages if m.tool_calls]
    if any(n > 1 for n in groups):
        conv = replace(conv, meta={**conv.meta, GROUPS_KEY: groups})
        if not opts.keep_meta:
            lost("parallel tool calls written as consecutive calls")
    return [finish_row(row, conv, opts, NATIVE_META, NAME)]


def _with(private: dict, d: dict, weight: int | None) -> dict:
    if weight is not None:
        d["loss"] = weight if private.get("loss_int") else bool(weight)
    for k, v in private.get("extra", {}).items():
        d.setdefault(k, v)
    return d
