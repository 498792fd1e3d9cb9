"""Alpaca: {instruction, input, output}. Single turn; `input` may be empty.

Preference data in LLaMA-Factory's alpaca layouts: a pair is
{instruction, input, chosen, rejected} (strings, `ranking: true`), a KTO record
{instruction, input, output, label} (a boolean `kto_tag`). A conversation of
several turns gives the row of the turn --turns picks (first by default; a
preference record always gives the turn its answers judge).
"""

from __future__ import annotations

from ..record import Conversation, Message
from .base import (TURN_MODES, DumpOptions, Lost, Plain, drop_system, finish_row, join_instruction, preference_fields,
                   require_str, single_turn, split_instruction, split_known, turn_rows)

NAME = "alpaca"
DESCRIPTION = "Stanford Alpaca: instruction, input, output (single turn); chosen/rejected or label for preference data"
EXAMPLE = {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"}
FIELDS = frozenset({"instruction", "input", "output"})
NATIVE_META = frozenset({"split"})
PREFERENCE = True
TURNS = TURN_MODES


def detect(row: dict) -> bool:
    answered = isinstance(row.get("output"), str) or (
        isinstance(row.get("chosen"), str) and isinstance(row.get("rejected"), str))
    return (
        isinstance(row.get("instruction"), str)
        and answered
        and "history" not in row
        and "system" not in row
        and "context" not in row
        and "response" not in row
    )


def parse(row: dict) -> Conversation:
    instruction = require_str(row, "instruction")
    inp = require_str(row, "input", optional=True)
    hints = {} if "input" in row else {"no_input_field": True}
    pair, label, known = preference_fields(row, FIELDS, text_answers=True)
    if pair is not None:
        meta, extra = split_known(row, known)
        if inp:
            meta["split"] = {"instruction": instruction, "input": inp}
        return Conversation([Message("user", join_instruction(instruction, inp))], meta=meta, extra=extra,
                            hints=hints, source_format=NAME, chosen=pair[0], rejected=pair[1])
    output = require_str(row, "output")
    meta, extra = split_known(row, known)
    conv = single_turn(instruction, inp, output, meta=meta, extra=extra, hints=hints, source_format=NAME)
    conv.label = label
    return conv


def dump(conv: Conversation, opts: DumpOptions, lost: Lost) -> list[dict]:
    drop_system(conv, lost)
    rows = []
    for turn in turn_rows(conv, opts, lost):
        instruction, inp = split_instruction(conv, turn.user)
        row = {"instruction": instruction, "input": inp}
        if turn.answer is None:
            row["chosen"], row["rejected"] = text_answers(conv, lost)
        else:
            row["output"] = turn.answer
        if conv.label is not None:
            row["label"] = conv.label
        if conv.source_format == NAME and conv.hints.get("no_input_field") and not inp:
            del row["input"]
        rows.append(finish_row(row, conv, opts, NATIVE_META, NAME))
    return rows


def text_answers(conv: Conversation, lost: Lost) -> tuple[str, str]:
    """The chosen and rejected texts of a pair, for layouts whose answers are plain strings."""
    if conv.chosen.tool_calls or conv.rejected.tool_calls:
        lost("tools dropped")
    return conv.chosen.content, conv.rejected.content


# -- the direct path (convert.py): plain records without building a Conversation -----------------------

def read_plain(row: dict) -> Plain | None:
    """(system, pairs, meta) of a row holding the three fields and nothing else, as `parse` reads it;
    None for any other row (it takes the canonical path)."""
    if len(row) != 3:
        return None
    try:
        instruction, inp, output = row["instruction"], row["input"], row["output"]
    except KeyError:
        return None
    if type(instruction) is not str or type(inp) is not str or type(output) is not str:
        return None
    if inp:
        return None, [(instruction + "\n" + inp, output)], {"split": {"instruction": instruction, "input": inp}}
    return None, [(instruction, output)], {}


def write_plain(plain: Plain, origin: str, opts: DumpOptions, notes, jsonl: bool = False) -> dict | None:
    """The row `dump` writes for a plain conversation that loses nothing here; None when it would lose
    something (a system prompt, later turns) or needs options: the canonical path counts it."""
    system, pairs, meta = plain
    if system or len(pairs) != 1 or opts.turns:
        return None
    user, output = pairs[0]
    instruction, inp = user, ""
    split = meta.get("split")
    if isinstance(split, dict):
        i, n = split.get("instruction"), split.get("input")
        if isinstance(i, str) and isinstance(n, str) and join_instruction(i, n) == user:
            instruction, inp = i, n
    row = {"instruction": instruction, "input": inp, "output": output}
    if opts.keep_meta and meta:
        carried = {k: v for k, v in meta.items() if k not in NATIVE_META}
        if carried:
            row["meta"] = carried
    return row
