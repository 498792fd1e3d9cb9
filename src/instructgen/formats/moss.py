"""MOSS: the MOSS-003 SFT format (read and write) and the older MOSS-002 form (read).

MOSS-003 row::

    {conversation_id: int | str, meta_instruction, num_turns, category?,
     chat: {turn_1: {Human, Inner Thoughts, Commands, Tool Responses, MOSS}, ...}}

Every chat value carries its own tags, e.g. `"<|Human|>: hi<eoh>\\n"`; without
plugins the three middle fields hold the literal `None`
(`"<|Inner Thoughts|>: None<eot>\\n"`). MOSS-002 row::

    {id, prefix, num_turns, plain_text: "[Human]: q<eoh> [MOSS]: a<eoa> [Human]: ..."}

Canonical mapping: meta_instruction (002: prefix) -> system message, verbatim;
each turn -> a user message (Human body) and an assistant message (MOSS body).

A plugin turn (inner thoughts, commands, results) becomes an assistant message
whose content is the inner thought and whose tool calls are the commands, then
one tool message per result (moss_plugins.py: the plugin API is the tool);
`tools` lists the plugins the meta instruction enables. So openai, sharegpt and
chatglm3 hold MOSS plugin data as tool calls, and MOSS writes tool calls of its
plugin APIs (one string argument) as commands. Other tool calls cannot be
written as MOSS commands: they are dropped and counted ("tools dropped").

What the canonical messages cannot hold travels in `conv.meta` (written back
by MOSS as its own fields, and by every other format in its "meta" channel,
so moss -> sharegpt/openai/... -> moss gives the same row):

- `id`: conversation_id, with its JSON type (int or str);
- `category`;
- `moss_plugins`: per turn, the raw plugin fields whose bytes the usual
  rendering of its tool calls would not give back (`{"turn": 2, "Tool
  Responses": raw}`), written back only while they still read as the same
  calls and results; and the raw fields of a turn whose Commands are `None` or
  not calls (an inner thought without a command), which no message holds;
- `moss_layout`: `{"turn_1.MOSS": [lead, tail, trail]}` for a Human/MOSS value
  whose whitespace around the tags is not the usual `"<|X|>: body<eoX>\\n"`;
- `moss_turn_extra`: fields of a turn object other than the five;
- `moss_empty_meta_instruction`: the row had `meta_instruction: ""`.

A record from another format gets the meta instruction of `--meta-instruction-file`,
else our neutral default (prompts/moss_meta_instruction.txt); `notes` counts both.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache, lru_cache
from importlib import resources
from typing import Any

import orjson

from ..errors import BadRecord
from ..record import Conversation, Message
from .base import DumpOptions, Lost, Plain, as_sft, finish_row, flatten_to_pairs, require_str, split_known
from .moss_plugins import (enabled_apis, plugin_fields, plugin_messages, plugin_turns, plugins_by_turn, tools_for,
                           turn_plugins)
from .moss_tags import DEFAULT_LAYOUT, PLAIN, PLUGIN_FIELDS, TAGS, TURN_FIELDS, render, split_tagged, type_name

NAME = "moss"
DESCRIPTION = "MOSS-003 SFT (chat turns with <|Human|>/<|MOSS|> tags and plugin fields); also reads MOSS-002 plain_text"
EXAMPLE = {
    "conversation_id": 1,
    "meta_instruction": "You are a helpful, honest and harmless AI assistant.\n",
    "num_turns": 1,
    "chat": {
        "turn_1": {
            "Human": "<|Human|>: What is the capital of France?<eoh>\n",
            "Inner Thoughts": "<|Inner Thoughts|>: None<eot>\n",
            "Commands": "<|Commands|>: None<eoc>\n",
            "Tool Responses": "<|Results|>: None<eor>\n",
            "MOSS": "<|MOSS|>: The capital of France is Paris.<eom>\n",
        }
    },
    "category": "helpful",
}

FIELDS_003 = frozenset({"conversation_id", "meta_instruction", "num_turns", "chat", "category"})
FIELDS_002 = frozenset({"id", "prefix", "num_turns", "plain_text"})
NATIVE_META = frozenset({"id", "category", "moss_plugins", "moss_layout", "moss_turn_extra",
                         "moss_empty_meta_instruction"})

TURN_KEY = re.compile(r"turn_([1-9][0-9]*)")
META_INSTRUCTION_FILE = "moss_meta_instruction.txt"


@cache
def default_meta_instruction() -> str:
    """Our own neutral meta instruction (instructgen/prompts/moss_meta_instruction.txt), used when
    a record has no system prompt and no --meta-instruction-file was given."""
    path = resources.files("instructgen").joinpath("prompts", META_INSTRUCTION_FILE)
    return path.read_text(encoding="utf-8")


# -- detection -------------------------------------------------------------------------------------

def detect(row: dict) -> bool:
    if isinstance(row.get("chat"), dict):
        return any(k in row for k in ("meta_instruction", "conversation_id", "num_turns"))
    text = row.get("plain_text")
    return isinstance(text, str) and ("prefix" in row or text.lstrip().startswith("[Human]:"))


# -- reading ---------------------------------------------------------------------------------------

def parse(row: dict) -> Conversation:
    if "chat" in row:
        return _parse_003(row)
    if "plain_text" in row:
        return _parse_002(row)
    raise BadRecord("missing field 'chat' (MOSS-003) or 'plain_text' (MOSS-002)")


def _parse_003(row: dict) -> Conversation:
    conv_id = row.get("conversation_id")
    if "conversation_id" not in row:
        raise BadRecord("missing field 'conversation_id'")
    if isinstance(conv_id, bool) or not isinstance(conv_id, (int, str)):
        raise BadRecord(f"conversation_id must be an integer or a string, got {type_name(conv_id)}")
    meta_instruction = require_str(row, "meta_instruction")
    chat = row["chat"]
    if not isinstance(chat, dict):
        raise BadRecord(f"field 'chat' must be an object of turns, got {type_name(chat)}")
    turns = _ordered_turns(chat)
    if "num_turns" not in row:
        raise BadRecord("missing field 'num_turns'")
    num_turns = row["num_turns"]
    if isinstance(num_turns, bool) or not isinstance(num_turns, int):
        raise BadRecord(f"num_turns must be an integer, got {type_name(num_turns)}")
    if num_turns != len(turns):
        raise BadRecord(f"num_turns is {num_turns} but chat has {len(turns)} turn{'s' if len(turns) != 1 else ''}")
    category = row.get("category")
    if category is not None and not isinstance(category, str):
        raise BadRecord(f"category must be a string, got {type_name(category)}")

    carried, extra = split_known(row, FIELDS_003)
    meta: dict[str, Any] = {**carried, "id": conv_id}
    if category is not None:
        meta["category"] = category
    messages = [Message("system", meta_instruction)] if meta_instruction else []
    if not meta_instruction:
        meta["moss_empty_meta_instruction"] = True
    apis = enabled_apis(meta_instruction)
    plugins, layouts, turn_extra, calls = [], {}, {}, []
    for n, key, turn in turns:
        if not isinstance(turn, dict):
            raise BadRecord(f"chat.{key} must be an object, got {type_name(turn)}")
        for field in TURN_FIELDS:
            if field not in turn:
                raise BadRecord(f"chat.{key}: missing field {field!r}")
        bodies = {}
        for field in TURN_FIELDS:
            bodies[field], layout = split_tagged(turn[field], field, f"chat.{key}.{field}")
            if field in ("Human", "MOSS") and layout != DEFAULT_LAYOUT:
                layouts[f"{key}.{field}"] = list(layout)
        messages.append(Message("user", bodies["Human"]))
        if any(turn[f] != PLAIN[f] for f in PLUGIN_FIELDS):
            plugin = plugin_messages(*(bodies[f] for f in PLUGIN_FIELDS), apis)
            usual = PLAIN if plugin is None else plugin_fields(plugin, apis)
            kept = {f: turn[f] for f in PLUGIN_FIELDS if turn[f] != usual[f]}
            if kept:
                plugins.append({"turn": n, **kept})
            if plugin is not None:
                messages += plugin
                calls += plugin[0].tool_calls
        others = {k: v for k, v in turn.items() if k not in TAGS}
        if others:
            turn_extra[key] = others
        messages.append(Message("assistant", bodies["MOSS"]))
    for name, value in (("moss_plugins", plugins), ("moss_layout", layouts), ("moss_turn_extra", turn_extra)):
        if value:
            meta[name] = value
    return Conversation(messages, meta=meta, extra=extra, source_format=NAME,
                        tools=tools_for(meta_instruction, calls) if calls else None)


def _ordered_turns(chat: dict) -> list[tuple[int, str, Any]]:
    """(number, key, turn) sorted by number; keys must be turn_1..turn_N without gaps."""
    if not chat:
        raise BadRecord("chat has no turns")
    numbered = []
    for key, turn in chat.items():
        m = TURN_KEY.fullmatch(key) if isinstance(key, str) else None
        if not m:
            raise BadRecord(f"chat: unexpected key {key!r}; turns are named turn_1, turn_2, ...")
        numbered.append((int(m.group(1)), key, turn))
    numbered.sort(key=lambda t: t[0])
    for expected, (n, key, _) in enumerate(numbered, 1):
        if n != expected:
            raise BadRecord(f"chat: turn_{expected} is missing (found {key}); turns must be turn_1..turn_N")
    return numbered


_002_TURN = re.compile(r"\s*\[Human\]: ?(.*?)<eoh>\s*\[MOSS\]: ?(.*?)<eoa>", re.S)


def _parse_002(row: dict) -> Conversation:
    text = require_str(row, "plain_text")
    prefix = require_str(row, "prefix", optional=True)
    pairs, pos = [], 0
    while pos < len(text) and text[pos:].strip():
        m = _002_TURN.match(text, pos)
        if not m:
            rest = text[pos:].lstrip()
            what = ("a [Human] turn without <eoh>" if rest.startswith("[Human]:") and "<eoh>" not in rest
                    else f"expected '[Human]: ...<eoh> [MOSS]: ...<eoa>' at {rest[:40]!r}")
            raise BadRecord(f"plain_text turn {len(pairs) + 1}: {what}")
        pairs.append((m.group(1), m.group(2)))
        pos = m.end()
    if not pairs:
        raise BadRecord("plain_text has no '[Human]: ...<eoh> [MOSS]: ...<eoa>' turn")
    num_turns = row.get("num_turns")
    if num_turns is not None:
        if isinstance(num_turns, bool) or not isinstance(num_turns, int):
            raise BadRecord(f"num_turns must be an integer, got {type_name(num_turns)}")
        if num_turns != len(pairs):
            raise BadRecord(f"num_turns is {num_turns} but plain_text has {len(pairs)} turns")
    carried, extra = split_known(row, FIELDS_002)
    meta = dict(carried)
    if "id" in row:
        meta["id"] = row["id"]
    messages = [Message("system", prefix)] if prefix else []
    for human, moss in pairs:
        messages += [Message("user", human), Message("assistant", moss)]
    return Conversation(messages, meta=meta, extra=extra, source_format=NAME)


# -- writing ---------------------------------------------------------------------------------------

def dump(conv: Conversation, opts: DumpOptions, lost: Lost) -> list[dict]:
    conv = as_sft(conv, opts, lost)
    meta_instruction = _meta_instruction(conv, opts)
    apis = enabled_apis(meta_instruction)
    turns = plugin_turns(conv, apis)
    if turns is None:  # tool calls MOSS cannot write as commands, or turns out of order
        turns = [(q, [], a) for q, a in flatten_to_pairs(conv, lost)]
    elif conv.tools:  # MOSS has no tool list: it is the plugins its meta instruction enables
        calls = [c for _, plugin, _ in turns if plugin for c in plugin[0].tool_calls]
        if conv.tools != tools_for(meta_instruction, calls):
            lost("tool definitions dropped")
    if any(m.weight is not None for m in conv.messages):
        lost("message weights dropped")
    if any(m.name and m.role != "tool" for m in conv.messages):
        lost("message names dropped")
    meta = conv.meta
    kept = plugins_by_turn(meta.get("moss_plugins"), len(turns), lost)
    layouts = meta.get("moss_layout") if isinstance(meta.get("moss_layout"), dict) else {}
    turn_extra = meta.get("moss_turn_extra") if isinstance(meta.get("moss_turn_extra"), dict) else {}
    chat = {}
    for n, (user, plugin, assistant) in enumerate(turns, 1):
        key = f"turn_{n}"
        turn = {"Human": render("Human", user, _layout(layouts.get(f"{key}.Human")))}
        turn.update(turn_plugins(plugin, kept.get(n), apis, lost))
        turn["MOSS"] = render("MOSS", assistant, _layout(layouts.get(f"{key}.MOSS")))
        extra = turn_extra.get(key)
        if isinstance(extra, dict):
            turn.update({k: v for k, v in extra.items() if k not in turn})
        chat[key] = turn
    row: dict[str, Any] = {
        "conversation_id": _conversation_id(conv),
        "meta_instruction": meta_instruction,
        "num_turns": len(chat),
        "chat": chat,
    }
    if isinstance(meta.get("category"), str):
        row["category"] = meta["category"]
    return [finish_row(row, conv, opts, NATIVE_META, NAME)]


def notes(conv: Conversation, opts: DumpOptions) -> list[str]:
    """The meta instruction MOSS adds to a record that has no system prompt, and where it came from."""
    if conv.system is not None or conv.meta.get("moss_empty_meta_instruction"):
        return []
    return [_added_note(opts)]


def _added_note(opts: DumpOptions) -> str:
    if opts.meta_instruction is not None:
        return f"meta instruction added (from {opts.meta_instruction_source or '--meta-instruction-file'})"
    return (f"meta instruction added (instructgen's default, prompts/{META_INSTRUCTION_FILE}; "
            "--meta-instruction-file sets another)")


def _meta_instruction(conv: Conversation, opts: DumpOptions) -> str:
    if conv.system is not None:
        return conv.system
    if conv.meta.get("moss_empty_meta_instruction"):
        return ""
    return opts.meta_instruction if opts.meta_instruction is not None else default_meta_instruction()


def _conversation_id(conv: Conversation) -> int | str:
    """meta["id"] with its type; else the place the record came from; else a digest of its text."""
    conv_id = conv.meta.get("id")
    if isinstance(conv_id, (int, str)) and not isinstance(conv_id, bool):
        return conv_id
    if conv_id is not None:
        return str(conv_id)
    if conv.origin:
        return conv.origin.replace("\\", "/").rsplit("/", 1)[-1]
    digest = hashlib.sha1("\x00".join(f"{m.role}\x01{m.content}" for m in conv.messages).encode("utf-8"))
    return digest.hexdigest()[:16]


def _layout(value: Any) -> tuple[str, str, str]:
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(x, str) and not x.strip() for x in value):
        return tuple(value)  # type: ignore[return-value]
    return DEFAULT_LAYOUT


# -- the direct path (convert.py): plain records without building a Conversation -----------------------

ROW_KEYS = frozenset({"moss_plugins", "moss_layout", "moss_turn_extra", "moss_empty_meta_instruction"})
PLAIN_TURN = {"Human": "", **PLAIN, "MOSS": ""}  # a turn without plugins, its two messages to fill in
TURN_FRAGMENTS = {"Human": "", **{f: orjson.Fragment(orjson.dumps(v)) for f, v in PLAIN.items()}, "MOSS": ""}


@lru_cache(maxsize=8)
def added_meta_instruction(meta_instruction: str | None, source: str | None) -> tuple[str, orjson.Fragment, str]:
    """(the meta instruction added to a record without a system prompt, it serialised, the note counting it)."""
    text = meta_instruction if meta_instruction is not None else default_meta_instruction()
    opts = DumpOptions(meta_instruction=meta_instruction, meta_instruction_source=source)
    return text, orjson.Fragment(orjson.dumps(text)), _added_note(opts)


def write_plain(plain: Plain, origin: str, opts: DumpOptions, notes, jsonl: bool = False) -> dict | None:
    """The row `dump` writes for a plain conversation (no tools, no plugin fields, usual layout)."""
    system, pairs, meta = plain
    if meta and not ROW_KEYS.isdisjoint(meta):
        return None
    if system is not None:
        meta_instruction = system
    else:
        meta_instruction, fragment, note = added_meta_instruction(opts.meta_instruction, opts.meta_instruction_source)
        notes[note] += 1
        if jsonl:  # the same long text in every row: serialised once
            meta_instruction = fragment
    template = TURN_FRAGMENTS if jsonl else PLAIN_TURN
    chat = {}
    for n, (q, a) in enumerate(pairs, 1):
        turn = template.copy()
        turn["Human"] = "<|Human|>: " + q + "<eoh>\n"
        turn["MOSS"] = "<|MOSS|>: " + a + "<eom>\n"
        chat[f"turn_{n}" if n > 1 else "turn_1"] = turn
    conv_id = meta.get("id") if meta else None
    if conv_id is None:
        conv_id = origin.replace("\\", "/").rsplit("/", 1)[-1]
    elif isinstance(conv_id, bool) or not isinstance(conv_id, (int, str)):
        conv_id = str(conv_id)
    row: dict[str, Any] = {"conversation_id": conv_id, "meta_instruction": meta_instruction,
                           "num_turns": len(chat), "chat": chat}
    if meta:
        if isinstance(meta.get("category"), str):
            row["category"] = meta["category"]
        if opts.keep_meta:
            carried = {k: v for k, v in meta.items() if k not in NATIVE_META}
            if carried:
                row["meta"] = carried
    return row
