"""Alpaca: {instruction, input, output}. Single turn; `input` may be empty."""

from __future__ import annotations

from ..record import Conversation
from .base import DumpOptions, Lost, drop_system, finish_row, first_pair, require_str, single_turn, split_instruction, split_known

NAME = "alpaca"
DESCRIPTION = "Stanford Alpaca: instruction, input, output (single turn)"
EXAMPLE = {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"}
FIELDS = frozenset({"instruction", "input", "output"})
NATIVE_META = frozenset({"split"})


def detect(row: dict) -> bool:
    return (
        isinstance(row.get("instruction"), str)
        and isinstance(row.get("output"), str)
        and "history" not in row
        and "system" not in row
        and "context" not in row
        and "response" not in row
    )


def parse(row: dict) -> Conversation:
    instruction = require_str(row, "instruction")
    inp = require_str(row, "input", optional=True)
    output = require_str(row, "output")
    meta, extra = split_known(row, FIELDS)
    hints = {} if "input" in row else {"no_input_field": True}
    return single_turn(instruction, inp, output, meta=meta, extra=extra, hints=hints, source_format=NAME)


def dump(conv: Conversation, opts: DumpOptions, lost: Lost) -> list[dict]:
    drop_system(conv, lost)
    user, output = first_pair(conv, lost)
    instruction, inp = split_instruction(conv, user)
    row = {"instruction": instruction, "input": inp, "output": output}
    if conv.source_format == NAME and conv.hints.get("no_input_field") and not inp:
        del row["input"]
    return [finish_row(row, conv, opts, NATIVE_META)]
