"""ShareGPT (FastChat / LLaMA-Factory): {id?, conversations: [{from, value}], system?, tools?}.

Roles: human, gpt, system (first only), and LLaMA-Factory's function_call
(value: JSON {"name", "arguments"}, or a list of them for parallel calls) and
observation (the tool result). BELLE writes `assistant` for `gpt` and some
files `user` for `human`: both are read, and written in one vocabulary whatever
the source (human/gpt, or user/assistant with `tags="user-assistant"`): readers
such as LLaMA-Factory and FastChat take one pair of tags per file. `tools` is
a JSON string in LLaMA-Factory (a list is read too). Assistant text directly
followed by a function_call is read as one assistant message with a tool call
(the OpenAI shape) and written back as the two turns.

LLaMA-Factory reads turns in strict alternation (human/observation, then
gpt/function_call), so a record from another format is written the way it reads
it: an assistant message's text beside its tool calls (a MOSS inner thought)
goes to meta["tool_call_texts"] and the function_call turn stands alone, and
the results of parallel calls share one observation turn, joined as
LLaMA-Factory's own OpenAI converter joins them (meta["tool_results_merged"]
says so, and reading splits them again).

Every row carries a string `id` (FastChat's data scripts index it): the record's own id, an int
one as its text (meta["id_int"] says so, and reading gives the int back), or, for a record without
one, `ig-` and 16 hex digits of a digest of its turns; reading drops an id that is exactly that
digest, so it adds nothing to a record that goes on to another format.

Preference data in LLaMA-Factory's sharegpt layouts: `chosen` and `rejected`
turn objects answering the conversation, which ends with the human turn
(`ranking: true`), or a boolean `label` on a conversation that ends with the
answer it judges (`kto_tag`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

from ..errors import BadRecord
from ..record import Conversation, Message, ToolCall
from .base import (DumpOptions, Lost, Plain, finish_row, preference_fields, require_list, require_str,
                   split_known)
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
PREFERENCE = True
ALTERNATES = True  # as LLaMA-Factory reads it
WHOLE = True  # the conversation is written as it is (tool turns included)
ROLE_OF = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system",
           "function_call": "assistant", "observation": "tool"}
DEFAULT_FROM = {"user": "human", "assistant": "gpt", "system": "system", "tool": "observation"}
TAGS = {"human-gpt": DEFAULT_FROM, "user-assistant": {**DEFAULT_FROM, "user": "user", "assistant": "assistant"}}
TURN_FIELDS = frozenset({"from", "value"})
TEXTS_KEY, MERGED_KEY = "tool_call_texts", "tool_results_merged"
RESULT_SEP = "\n</tool_response>\n<tool_response>\n"  # how LLaMA-Factory's OpenAI converter joins parallel results
MADE_ID_PREFIX, ID_INT_KEY = "ig-", "id_int"
MADE_ID_NOTE = "id made from the turns (FastChat needs a string id)"
ID_TEXT_NOTE = "id written as a string (FastChat needs one)"


def made_id(turns) -> str:
    """The id of a record without one: a digest of its (role, content) turns."""
    text = "\x00".join(f"{role}\x01{content}" for role, content in turns)
    return MADE_ID_PREFIX + hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _conv_turns(conv: Conversation):
    return ((m.role, m.content) for m in conv.messages)


def _plain_turns(system: str | None, pairs):
    if system is not None:
        yield "system", system
    for q, a in pairs:
        yield "user", q
        yield "assistant", a


def id_out(meta: dict, turns) -> tuple[str, str | None]:
    """(the string id a row gets, the note it is worth or None), from meta["id"] or the turns."""
    note = id_note(meta)
    if note == MADE_ID_NOTE:
        return made_id(turns), note
    value = meta["id"]
    if isinstance(value, str):
        return value, None
    return (str(value) if isinstance(value, int) and not isinstance(value, bool) else json.dumps(value)), note


def id_note(meta: dict) -> str | None:
    """The note a row's id is worth (id_out's second half, without making the id)."""
    if "id" not in meta or meta["id"] is None:
        return MADE_ID_NOTE
    return None if isinstance(meta["id"], str) else ID_TEXT_NOTE


def _is_made(value: Any, turns) -> bool:
    return isinstance(value, str) and value.startswith(MADE_ID_PREFIX) and value == made_id(turns)


def detect(row: dict) -> bool:
    turns = row.get("conversations")
    return isinstance(turns, list) and bool(turns) and all(isinstance(t, dict) and "from" in t for t in turns)


def parse(row: dict) -> Conversation:
    turns = require_list(row, "conversations")
    if not turns:
        raise BadRecord("field 'conversations' is empty")
    pair, label, known = preference_fields(row, FIELDS, answer=_answer)
    meta, extra = split_known(row, known)
    if "id" in row:
        meta["id"] = row["id"]
    if meta.pop(ID_INT_KEY, None) is True and isinstance(row.get("id"), str) and row["id"].lstrip("-").isdigit():
        meta["id"] = int(row["id"])
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
    _restore_merged(conv)
    _restore_texts(conv)
    restore_ids(conv)
    if pair is not None:
        conv.chosen, conv.rejected = pair
    conv.label = label
    if _is_made(conv.meta.get("id"), _conv_turns(conv)):
        del conv.meta["id"]
    return conv.check()


def _answer(t: Any, where: str) -> Message:
    """A `chosen`/`rejected` turn object: {"from": "gpt", "value": ...} (or a function_call)."""
    holder = Conversation([])
    _turn(holder, t, 0, where)
    if len(holder.messages) != 1 or holder.messages[0].role != "assistant":
        raise BadRecord(f"{where} must be an answer turn (from gpt or function_call)")
    return holder.messages[0]


def _turn(conv: Conversation, t: Any, i: int, where: str | None = None) -> None:
    where = where or f"conversations[{i}]"
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
            prev.meta[NAME] = {**private, "text_turn": True}
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
    tag = TAGS[opts.tags or "human-gpt"]
    conv = with_stashed_ids(conv)
    check_weights(conv, lost)
    if renamed_results(conv.messages):
        lost("tool result names dropped")
    row: dict[str, Any] = {"id": id_out(conv.meta, _conv_turns(conv))[0]}
    stash = {}
    if isinstance(conv.meta.get("id"), int) and not isinstance(conv.meta["id"], bool):
        stash[ID_INT_KEY] = True
        if not opts.keep_meta:
            lost("int id written as a string")
    turns: list[dict] = []
    system = conv.system
    if system is not None:
        if own and conv.hints.get("system_in_conversations"):
            turns.append({"from": "system", "value": system})
        else:
            row["system"] = system
    elif own and "system_raw" in conv.hints:
        row["system"] = conv.hints["system_raw"]
    texts: list[str] = []  # text beside each call message not written as its own turn
    merge = not own or conv.hints.get(MERGED_KEY)
    merged = False
    msgs, i = conv.turns, 0
    while i < len(msgs):
        m = msgs[i]
        private = m.meta.get(NAME, {}) if own else {}
        i += 1
        if not m.tool_calls:
            turns.append({"from": tag[m.role], "value": m.content})
        else:
            if m.content and private.get("text_turn"):
                turns.append({"from": tag["assistant"], "value": m.content})
                texts.append("")
            else:
                texts.append(m.content)
            raw = private.get("raw")
            value = raw if raw is not None and _same_calls(raw, m.tool_calls) else call_value(m.tool_calls)
            turns.append({"from": "function_call", "value": value})
            results = _results_after(msgs, i)
            if merge and len(results) > 1 and not any(RESULT_SEP in r.content for r in results):
                turns.append({"from": DEFAULT_FROM["tool"], "value": RESULT_SEP.join(r.content for r in results)})
                merged, i = True, i + len(results)
                continue
        for k, v in private.get("extra", {}).items():
            turns[-1].setdefault(k, v)
    row["conversations"] = turns
    if conv.tools or (own and (conv.tools is not None or "tools_raw" in conv.hints)):
        row["tools"] = tools_out(conv, NAME, _tools_string)
    if conv.chosen is not None:
        row["chosen"] = _answer_out(conv.chosen, own, lost, tag)
        row["rejected"] = _answer_out(conv.rejected, own, lost, tag)
    if conv.label is not None:
        row["label"] = conv.label
    if any(texts):
        stash[TEXTS_KEY] = texts
        if not opts.keep_meta:
            lost("assistant text beside tool calls dropped")
    if merged:
        stash[MERGED_KEY] = True
    return [finish_row(row, replace(conv, meta={**conv.meta, **stash}) if stash else conv, opts, NATIVE_META, NAME)]


def notes(conv: Conversation, opts: DumpOptions) -> list[str]:
    own = conv.source_format == NAME
    out = []
    note = id_note(conv.meta)
    if note:
        out.append(note)
    if opts.keep_meta and any(m.tool_calls and m.content and not (own and m.meta.get(NAME, {}).get("text_turn"))
                              for m in conv.messages):
        out.append("assistant text beside tool calls carried in meta (LLaMA-Factory reads a function_call turn alone)")
    tag = TAGS[opts.tags or "human-gpt"]
    if own and any(m.meta.get(NAME, {}).get("from", tag[m.role]) != tag[m.role]
                   for m in (*conv.messages, conv.chosen, conv.rejected) if m is not None):
        out.append(f"role tags written as {tag['user']}/{tag['assistant']} (one vocabulary per file)")
    return out


def tags_used(row: dict) -> set[str]:
    """The user and assistant tags (human, user, gpt, assistant) a row's turns use."""
    turns = row.get("conversations")
    turns = [*(turns if isinstance(turns, list) else []), row.get("chosen"), row.get("rejected")]
    return {t["from"] for t in turns if isinstance(t, dict) and t.get("from") in ("human", "user", "gpt", "assistant")}


def mixed_tags(tags: set[str]) -> str | None:
    """What is mixed when `tags` hold two vocabularies (human and user, or gpt and assistant), else None."""
    both = [pair for pair in (("human", "user"), ("gpt", "assistant")) if set(pair) <= tags]
    return " and ".join(f"{a!r} with {b!r}" for a, b in both) or None


def _results_after(msgs: list[Message], i: int) -> list[Message]:
    """The plain tool results that follow a call message at msgs[i:]."""
    out = []
    while i < len(msgs) and msgs[i].role == "tool" and not msgs[i].meta.get(NAME):
        out.append(msgs[i])
        i += 1
    return out


def _restore_merged(conv: Conversation) -> None:
    """Split the observation that holds the results of parallel calls (written so by `dump`)."""
    if conv.meta.get(MERGED_KEY) is not True:
        return
    out: list[Message] = []
    for m in conv.messages:
        prev = out[-1] if out else None
        parts = m.content.split(RESULT_SEP)
        if (m.role == "tool" and prev is not None and len(prev.tool_calls) == len(parts) > 1
                and not m.meta and prev.role == "assistant"):
            out += [Message("tool", part) for part in parts]
        else:
            out.append(m)
    conv.messages = out
    del conv.meta[MERGED_KEY]
    conv.hints[MERGED_KEY] = True


def _restore_texts(conv: Conversation) -> None:
    """Give call messages back the text `dump` carried in meta["tool_call_texts"]."""
    texts = conv.meta.get(TEXTS_KEY)
    calls = [m for m in conv.messages if m.tool_calls]
    if not (isinstance(texts, list) and len(texts) == len(calls) and all(isinstance(t, str) for t in texts)):
        return
    for m, text in zip(calls, texts):
        if text and not m.content:
            m.content = text
    del conv.meta[TEXTS_KEY]

def _answer_out(m: Message, own: bool, lost: Lost, tag: dict[str, str]) -> dict:
    private = m.meta.get(NAME, {}) if own else {}
    if m.tool_calls:
        if m.content:
            lost("assistant text beside a tool call dropped")
        d = {"from": "function_call", "value": call_value(m.tool_calls)}
    else:
        d = {"from": tag["assistant"], "value": m.content}
    for k, v in private.get("extra", {}).items():
        d.setdefault(k, v)
    return d


def _same_calls(raw: str, calls: list[ToolCall]) -> bool:
    try:
        again = parse_calls(raw, "")
    except BadRecord:
        return False
    return [(c.name, c.arguments) for c in again] == [(c.name, c.arguments) for c in calls]


# -- the direct path (convert.py): plain records without building a Conversation -----------------------

PLAIN_FIELDS = frozenset({"conversations", "id", "system"})


def read_plain(row: dict) -> Plain | None:
    """(system, pairs, meta) of a human/gpt alternation with nothing else, as `parse` reads it; None otherwise."""
    if not (row.keys() <= PLAIN_FIELDS and "conversations" in row):
        return None
    turns = row["conversations"]
    if type(turns) is not list or not turns or len(turns) % 2:
        return None
    pairs = []
    it = iter(turns)
    for q, a in zip(it, it):
        if type(q) is not dict or type(a) is not dict or q.keys() != TURN_FIELDS or a.keys() != TURN_FIELDS:
            return None
        qv, av = q["value"], a["value"]
        if q["from"] != "human" or a["from"] != "gpt" or type(qv) is not str or type(av) is not str:
            return None
        pairs.append((qv, av))
    system = row.get("system")
    if "system" in row and (type(system) is not str or not system):
        return None
    if "id" not in row or _is_made(row["id"], _plain_turns(system, pairs)):
        return system, pairs, {}
    if type(row["id"]) is not str:
        return None  # an int id and its meta marker: the canonical path
    return system, pairs, {"id": row["id"]}


def write_plain(plain: Plain, origin: str, opts: DumpOptions, notes, jsonl: bool = False) -> dict | None:
    """The row `dump` writes for a plain conversation (nothing is lost in ShareGPT)."""
    system, pairs, meta = plain
    if len(pairs) == 1:
        turns = [{"from": "human", "value": pairs[0][0]}, {"from": "gpt", "value": pairs[0][1]}]
    else:
        turns = [t for q, a in pairs for t in ({"from": "human", "value": q}, {"from": "gpt", "value": a})]
    if "id" in meta and (type(meta["id"]) is not str):
        return None  # the canonical path writes it as text and marks it
    row_id, note = id_out(meta, _plain_turns(system, pairs))
    if note:
        notes[note] += 1
    if not meta and system is None:
        return {"id": row_id, "conversations": turns}
    row: dict[str, Any] = {"id": row_id}
    if system is not None:
        row["system"] = system
    row["conversations"] = turns
    if opts.keep_meta and meta:
        carried = {k: v for k, v in meta.items() if k not in NATIVE_META}
        if carried:
            row["meta"] = carried
    return row
