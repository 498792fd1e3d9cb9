"""Databricks Dolly: {instruction, context, response, category}. Single turn.

`context` plays alpaca's `input` (and keeps the same instruction/input split
in meta, so dolly -> alpaca -> dolly gives the row back); `category` is
record metadata, written by other formats in the meta channel. A preference
record gives the row of the turn it judges, with its chosen answer as the
response (the rejected answer or KTO label travels in meta).
"""

from __future__ import annotations

from ..errors import BadRecord
from ..record import Conversation
from .base import (TURN_MODES, DumpOptions, Lost, as_sft, drop_system, finish_row, require_str, single_turn,
                   split_instruction, split_known, turn_rows)

NAME = "dolly"
DESCRIPTION = "Databricks Dolly 15k: instruction, context, response, category (single turn)"
EXAMPLE = {
    "instruction": "When did the first person walk on the Moon?",
    "context": "Apollo 11 landed on 20 July 1969; Neil Armstrong stepped out a few hours later.",
    "response": "On 20 July 1969.",
    "category": "closed_qa",
}
FIELDS = frozenset({"instruction", "context", "response", "category"})
NATIVE_META = frozenset({"split", "category"})
TURNS = TURN_MODES


def detect(row: dict) -> bool:
    return (
        isinstance(row.get("instruction"), str)
        and isinstance(row.get("response"), str)
        and "context" in row
        and not any(k in row for k in ("output", "prompt", "history"))
    )


def parse(row: dict) -> Conversation:
    instruction = require_str(row, "instruction")
    context = require_str(row, "context", optional=True)
    response = require_str(row, "response")
    meta, extra = split_known(row, FIELDS)
    hints: dict = {}
    if "context" not in row:
        hints["no_context"] = True
    elif row["context"] is None:
        hints["context_null"] = True
    if row.get("category") is not None:  # null: given the key only so every row has the same keys
        if not isinstance(row["category"], str):
            raise BadRecord(f"field 'category' must be a string, got {type(row['category']).__name__}")
        meta["category"] = row["category"]
    return single_turn(instruction, context, response, meta=meta, extra=extra, hints=hints,
                       source_format=NAME).check()


def dump(conv: Conversation, opts: DumpOptions, lost: Lost) -> list[dict]:
    drop_system(conv, lost)
    turns = turn_rows(conv, opts, lost)
    if conv.pairwise:
        turns[0].answer = conv.chosen.content
    conv = as_sft(conv, opts, lost)
    return [_row(conv, turn.user, turn.answer, opts) for turn in turns]


def _row(conv: Conversation, user: str, response: str, opts: DumpOptions) -> dict:
    instruction, context = split_instruction(conv, user)
    row: dict = {"instruction": instruction, "context": context, "response": response}
    if conv.source_format == NAME and not context:
        if conv.hints.get("no_context"):
            del row["context"]
        elif conv.hints.get("context_null"):
            row["context"] = None
    if "category" in conv.meta:
        row["category"] = conv.meta["category"]
    return finish_row(row, conv, opts, NATIVE_META, NAME)
