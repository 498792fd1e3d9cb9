"""The direct path: a plain row of one format written as another without building a Conversation.

`direct(source, target, opts)` composes the source format's `read_plain` (row -> (system, pairs,
meta), only for rows with nothing but a plain conversation) with the target's `write_plain` (the row
its `dump` would write, None when that would lose something). With `jsonl=True` the converter
returns the row's JSONL line (bytes), as orjson writes it.

The pairs the benchmarks time most (alpaca -> sharegpt, alpaca -> moss) are also written out fused,
with what depends only on the options computed once; alpaca -> moss splices the JSONL line from
pre-serialised pieces (the meta instruction and the empty plugin fields are the same in every row).
tests/test_direct.py checks every pair, fused or composed, dict or JSONL, against parse + dump on
generated rows: the same bytes, the same notes, and None wherever the canonical path would count a
loss or a reject.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable

import orjson

from . import moss, sharegpt
from .base import DumpOptions

# convert(row, origin, notes) -> the target row (a dict, or its JSONL line in jsonl mode), or None (the
# row takes the canonical path). A converter may say `needs_origin = False` (it never reads `origin`,
# "" will do) and `row_note = "..."` (every row it returns adds this note: the caller counts it).
Direct = Callable[[dict, str, Counter], "dict | bytes | None"]
_dumps, _NEWLINE = orjson.dumps, orjson.OPT_APPEND_NEWLINE


def direct(source: str, target: str, opts: DumpOptions, jsonl: bool = False) -> Direct | None:
    """The direct converter for a pair, or None when the pair or the options have none."""
    from . import get

    s, t = get(source), get(target)
    if s.read_plain is None or t.write_plain is None or opts.columns or opts.explode_turns or opts.turns \
            or opts.tags or opts.layout:
        return None
    fused = FUSED.get((source, target))
    if fused is not None:
        return fused(opts, jsonl)
    read, write = s.read_plain, t.write_plain

    def convert(row: dict, origin: str, notes: Counter) -> dict | bytes | None:
        plain = read(row)
        out = None if plain is None else write(plain, origin, opts, notes, jsonl)
        return out if out is None or not jsonl else _dumps(out, option=_NEWLINE)

    return convert


def alpaca_to_sharegpt(opts: DumpOptions, jsonl: bool) -> Direct:
    keep_meta = opts.keep_meta
    made_id = sharegpt.made_id

    def convert(row: dict, origin: str, notes: Counter) -> dict | bytes | None:
        if len(row) != 3:  # alpaca.read_plain's test, inline: this runs a million times
            return None
        try:
            instruction, inp, output = row["instruction"], row["input"], row["output"]
        except KeyError:
            return None
        if type(instruction) is not str or type(inp) is not str or type(output) is not str:
            return None
        user = instruction + "\n" + inp if inp else instruction
        out = {"id": made_id((("user", user), ("assistant", output))),
               "conversations": [{"from": "human", "value": user}, {"from": "gpt", "value": output}]}
        if inp:
            if keep_meta:
                out["meta"] = {"split": {"instruction": instruction, "input": inp}}
        return _dumps(out, option=_NEWLINE) if jsonl else out

    convert.needs_origin = False
    convert.row_note = sharegpt.MADE_ID_NOTE  # every row: alpaca has no id
    return convert


def alpaca_to_moss(opts: DumpOptions, jsonl: bool) -> Direct:
    keep_meta = opts.keep_meta
    text, _, note = moss.added_meta_instruction(opts.meta_instruction, opts.meta_instruction_source)
    # the line around the three variable strings (id, Human body, MOSS body), as orjson writes the row
    head = b'{"conversation_id":'
    middle = (b',"meta_instruction":' + _dumps(text) + b',"num_turns":1,"chat":{"turn_1":{"Human":"'
              + _dumps("<|Human|>: ")[1:-1])
    plugins = _dumps({f: v for f, v in moss.PLAIN.items()})[1:-1]
    between = _dumps("<eoh>\n")[1:-1] + b'",' + plugins + b',"MOSS":"' + _dumps("<|MOSS|>: ")[1:-1]
    end = _dumps("<eom>\n")[1:-1] + b'"}}'

    def convert(row: dict, origin: str, notes: Counter) -> dict | bytes | None:
        if len(row) != 3:  # alpaca.read_plain's test, inline: this runs a million times
            return None
        try:
            instruction, inp, output = row["instruction"], row["input"], row["output"]
        except KeyError:
            return None
        if type(instruction) is not str or type(inp) is not str or type(output) is not str:
            return None
        user = instruction + "\n" + inp if inp else instruction
        conv_id = origin.replace("\\", "/").rsplit("/", 1)[-1]
        split = {"split": {"instruction": instruction, "input": inp}} if inp and keep_meta else None
        if not jsonl:
            turn = moss.PLAIN_TURN.copy()
            turn["Human"] = "<|Human|>: " + user + "<eoh>\n"
            turn["MOSS"] = "<|MOSS|>: " + output + "<eom>\n"
            out = {"conversation_id": conv_id, "meta_instruction": text, "num_turns": 1, "chat": {"turn_1": turn}}
            if split:
                out["meta"] = split
            return out
        # a JSON string's body is its dumps without the quotes: the pieces join into the row's line
        parts = [head, _dumps(conv_id), middle, _dumps(user)[1:-1], between, _dumps(output)[1:-1], end]
        parts.append(b',"meta":' + _dumps(split) + b"}\n" if split else b"}\n")
        return b"".join(parts)

    convert.row_note = note  # an alpaca row has no system prompt: every row gets the meta instruction
    return convert


# (source, target) -> factory(opts, jsonl) of a converter that fuses read_plain and write_plain
FUSED = {("alpaca", "sharegpt"): alpaca_to_sharegpt, ("alpaca", "moss"): alpaca_to_moss}
