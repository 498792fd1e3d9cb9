"""Firefly: {conversation: [{human, assistant}], system?, category?, conversation_id?, ...}.

Lossless for alternating conversations with at most one system prompt.
`conversation_id` is the record id (meta "id") and `category` its category;
other fields (Firefly's `dataset`) are carried as extra fields.
"""

from __future__ import annotations

from typing import Any

from ..errors import BadRecord
from ..record import Conversation, Message
from .base import DumpOptions, Lost, as_sft, finish_row, flatten_to_pairs, require_list, require_str, split_known

NAME = "firefly"
DESCRIPTION = "Firefly: conversation [{human, assistant}], system, category, conversation_id"
EXAMPLE = {
    "conversation_id": 1,
    "category": "Brainstorming",
    "conversation": [{"human": "给我三个周末活动的建议。", "assistant": "徒步、看展、和朋友做饭。"}],
}
FIELDS = frozenset({"conversation", "system", "category", "conversation_id"})
NATIVE_META = frozenset({"id", "category"})
TURN_FIELDS = frozenset({"human", "assistant"})


def detect(row: dict) -> bool:
    turns = row.get("conversation")
    return isinstance(turns, list) and bool(turns) and all(isinstance(t, dict) and "human" in t for t in turns)


def parse(row: dict) -> Conversation:
    turns = require_list(row, "conversation")
    if not turns:
        raise BadRecord("field 'conversation' is empty")
    meta, extra = split_known(row, FIELDS)
    hints: dict[str, Any] = {}
    system = require_str(row, "system", optional=True)
    if "system" in row and not system:
        hints["system_raw"] = row["system"]
    messages = [Message("system", system)] if system else []
    turn_extra = {}
    for i, t in enumerate(turns):
        if not isinstance(t, dict):
            raise BadRecord(f"conversation[{i}] must be an object with 'human' and 'assistant', got {type(t).__name__}")
        for key in ("human", "assistant"):
            if not isinstance(t.get(key), str):
                raise BadRecord(f"conversation[{i}].{key} must be a string, got "
                                f"{type(t[key]).__name__ if key in t else 'nothing'}")
        messages += [Message("user", t["human"]), Message("assistant", t["assistant"])]
        if set(t) - TURN_FIELDS:
            turn_extra[i] = {k: v for k, v in t.items() if k not in TURN_FIELDS}
    if turn_extra:
        hints["turn_extra"] = turn_extra
    if "conversation_id" in row:
        meta["id"] = row["conversation_id"]
    if "category" in row:
        meta["category"] = row["category"]
    return Conversation(messages, meta=meta, extra=extra, hints=hints, source_format=NAME).check()


def dump(conv: Conversation, opts: DumpOptions, lost: Lost) -> list[dict]:
    own = conv.source_format == NAME
    conv = as_sft(conv, opts, lost)
    pairs = flatten_to_pairs(conv, lost)
    row: dict[str, Any] = {}
    if "id" in conv.meta:
        row["conversation_id"] = conv.meta["id"]
    if "category" in conv.meta:
        row["category"] = conv.meta["category"]
    turns = [{"human": q, "assistant": a} for q, a in pairs]
    if own:
        for i, more in conv.hints.get("turn_extra", {}).items():
            if i < len(turns):
                turns[i].update(more)
    row["conversation"] = turns
    if conv.system is not None:
        row["system"] = conv.system
    elif own and "system_raw" in conv.hints:
        row["system"] = conv.hints["system_raw"]
    return [finish_row(row, conv, opts, NATIVE_META, NAME)]
