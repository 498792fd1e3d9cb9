"""Alpaca with history (LLaMA-Factory, ChatGLM-Efficient-Tuning): {instruction, input?, output, system?, history?}.

Earlier turns are `history` pairs [[question, answer], ...]; the last turn is
instruction (+ input) and output. Lossless for alternating conversations with
at most one system prompt. A row is only claimed when it has `history` or
`system` (a plain alpaca row stays alpaca), so rows written here always carry
`history`, even when it is empty.

Preference data in LLaMA-Factory's alpaca layouts: `chosen` and `rejected`
strings in place of `output` (`ranking: true`), or `output` with a boolean
`label` (KTO); the earlier turns stay in `history`. `--turns explode` writes
one row per turn with the turns before it as history.
"""

from __future__ import annotations

from ..errors import BadRecord
from ..record import Conversation, Message
from .alpaca import text_answers
from .base import (DumpOptions, Lost, finish_row, join_instruction, parse_pairs, preference_fields, require_str,
                   single_turn, split_instruction, split_known, turn_rows)

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
PREFERENCE = True
TURNS = ("explode",)


def detect(row: dict) -> bool:
    answered = isinstance(row.get("output"), str) or (
        isinstance(row.get("chosen"), str) and isinstance(row.get("rejected"), str))
    return (
        isinstance(row.get("instruction"), str)
        and answered
        and ("history" in row or "system" in row)
        and not any(k in row for k in ("context", "response", "conversations", "messages"))
    )


def parse(row: dict) -> Conversation:
    instruction = require_str(row, "instruction")
    inp = require_str(row, "input", optional=True)
    pair, label, known = preference_fields(row, FIELDS, text_answers=True)
    output = require_str(row, "output") if pair is None else None
    system = require_str(row, "system", optional=True)
    history = row.get("history")
    if history is not None and not isinstance(history, list):
        raise BadRecord(f"field 'history' must be a list of [question, answer] pairs, got {type(history).__name__}")
    pairs = parse_pairs(history or [], "history")
    meta, extra = split_known(row, known)
    hints: dict = {}
    if "input" not in row:
        hints["no_input_field"] = True
    if "system" in row and not system:
        hints["system_raw"] = row["system"]
    if "history" not in row:
        hints["no_history"] = True
    elif history is None:
        hints["history_raw"] = None
    if pair is None:
        conv = single_turn(instruction, inp, output, meta=meta, extra=extra, hints=hints, source_format=NAME)
        conv.label = label
    else:
        if inp:
            meta["split"] = {"instruction": instruction, "input": inp}
        conv = Conversation([Message("user", join_instruction(instruction, inp))], meta=meta, extra=extra,
                            hints=hints, source_format=NAME, chosen=pair[0], rejected=pair[1])
    earlier = [Message("system", system)] if system else []
    for q, a in pairs:
        earlier += [Message("user", q), Message("assistant", a)]
    conv.messages[:0] = earlier
    return conv.check()


def dump(conv: Conversation, opts: DumpOptions, lost: Lost) -> list[dict]:
    return [_row(conv, turn, opts, lost) for turn in turn_rows(conv, opts, lost, keeps_history=True)]


def _row(conv: Conversation, turn, opts: DumpOptions, lost: Lost) -> dict:
    own = conv.source_format == NAME
    instruction, inp = split_instruction(conv, turn.user)
    row: dict = {"instruction": instruction, "input": inp}
    if turn.answer is None:
        row["chosen"], row["rejected"] = text_answers(conv, lost)
    else:
        row["output"] = turn.answer
    if conv.label is not None:
        row["label"] = conv.label
    if own and conv.hints.get("no_input_field") and not inp:
        del row["input"]
    if conv.system is not None:
        row["system"] = conv.system
    elif own and "system_raw" in conv.hints:
        row["system"] = conv.hints["system_raw"]
    if not turn.history and own and conv.hints.get("no_history"):
        pass
    elif not turn.history and own and "history_raw" in conv.hints:
        row["history"] = conv.hints["history_raw"]
    else:
        row["history"] = [[q, a] for q, a in turn.history]
    return finish_row(row, conv, opts, NATIVE_META, NAME)
