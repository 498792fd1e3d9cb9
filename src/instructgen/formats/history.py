"""Alpaca with history (LLaMA-Factory, ChatGLM-Efficient-Tuning): {instruction, input?, output, system?, history?}.

Earlier turns are `history` pairs [[question, answer], ...]; the last turn is
instruction (+ input) and output. Lossless for alternating conversations with
at most one system prompt. A row is only claimed when it has `history` or
`system` (a plain alpaca row stays alpaca), so rows written here always carry
`history`, even when it is empty.
"""

from __future__ import annotations

from ..errors import BadRecord
from ..record import Conversation, Message
from .base import (DumpOptions, Lost, finish_row, flatten_to_pairs, parse_pairs, require_str, single_turn,
                   split_instruction, split_known)

NAME = "history"
DESCRIPTION = "Alpaca + history/system (LLaMA-Factory): instruction, input, output, system, history [[q, a], ...]"
EXAMPLE = {
    "instruction": "And in French?",
    "input": "",
    "output": "Bonjour.",
    "system": "You are a translator.",
    "history": [["Say hello in Spanish.", "Hola."]],
}
FIELDS = frozenset({"instruction", "input", "output", "system", "history"})
NATIVE_META = frozenset({"split"})


def detect(row: dict) -> bool:
    return (
        isinstance(row.get("instruction"), str)
        and isinstance(row.get("output"), str)
        and ("history" in row or "system" in row)
        and not any(k in row for k in ("context", "response", "conversations", "messages"))
    )


def parse(row: dict) -> Conversation:
    instruction = require_str(row, "instruction")
    inp = require_str(row, "input", optional=True)
    output = require_str(row, "output")
    system = require_str(row, "system", optional=True)
    history = row.get("history")
    if history is not None and not isinstance(history, list):
        raise BadRecord(f"field 'history' must be a list of [question, answer] pairs, got {type(history).__name__}")
    pairs = parse_pairs(history or [], "history")
    meta, extra = split_known(row, FIELDS)
    hints: dict = {}
    if "input" not in row:
        hints["no_input_field"] = True
    if "system" in row and not system:
        hints["system_raw"] = row["system"]
    if "history" not in row:
        hints["no_history"] = True
    elif history is None:
        hints["history_raw"] = None
    conv = single_turn(instruction, inp, output, meta=meta, extra=extra, hints=hints, source_format=NAME)
    earlier = [Message("system", system)] if system else []
    for q, a in pairs:
        earlier += [Message("user", q), Message("assistant", a)]
    conv.messages[:0] = earlier
    return conv.check()


def dump(conv: Conversation, opts: DumpOptions, lost: Lost) -> list[dict]:
    own = conv.source_format == NAME
    pairs = flatten_to_pairs(conv, lost)
    user, output = pairs[-1]
    instruction, inp = split_instruction(conv, user)
    row: dict = {"instruction": instruction, "input": inp, "output": output}
    if own and conv.hints.get("no_input_field") and not inp:
        del row["input"]
    if conv.system is not None:
        row["system"] = conv.system
    elif own and "system_raw" in conv.hints:
        row["system"] = conv.hints["system_raw"]
    if len(pairs) == 1 and own and conv.hints.get("no_history"):
        pass
    elif len(pairs) == 1 and own and "history_raw" in conv.hints:
        row["history"] = conv.hints["history_raw"]
    else:
        row["history"] = [[q, a] for q, a in pairs[:-1]]
    return [finish_row(row, conv, opts, NATIVE_META)]
