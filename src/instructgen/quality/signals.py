"""Scores without a model: the filter's measures and flags as numbers, so selection works offline too.

    signals(conv, config) -> dict[str, float]

Thin on purpose: it calls the filter's own public pieces (curate.rules.turns_of, RULES, text_length,
curate.repetition.loop) and adds nothing of its own judgement. Keys (all numbers):
    instruction_length, output_length    words, or CJK characters for CJK text (rules.text_length), summed
                                         over the turns
    turns                                exchanges in the record
    repetition                           the largest share of one turn's output inside a back-to-back repeat (0-1)
    flag_<rule>                          1 when the filter's rule fails on some turn, else 0, for every rule the
                                         config runs (refusal, needs_media, garbled, repetition, language, ...)
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..record import Conversation

_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]|[^\W_\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]+")  # a CJK character is a token

if TYPE_CHECKING:
    from ..curate.filter import FilterConfig


def signals(conv: Conversation, config: "FilterConfig") -> dict[str, float]:
    from dataclasses import replace

    from ..curate import rules
    from ..curate.repetition import loop

    if conv.pairwise:  # judged as the filter judges it: the prompt and the chosen answer
        conv = replace(conv, messages=[*conv.messages, conv.chosen], chosen=None, rejected=None)
    turns = rules.turns_of(conv)
    out: dict[str, float] = {
        "instruction_length": float(sum(rules.text_length(t.instruction)[0] for t in turns)),
        "output_length": float(sum(rules.text_length(t.output)[0] for t in turns)),
        "turns": float(len(turns)),
        "repetition": 0.0,
    }
    for t in turns:
        tokens = _WORD.findall(t.output.casefold())
        if tokens:
            copies, period, span = loop(tokens)
            out["repetition"] = max(out["repetition"], round(min(1.0, span / len(tokens)) if copies > 1 else 0.0, 4))
    for name in config.rules:
        rule = rules.RULES[name]
        out[f"flag_{name}"] = float(any(rule(t, config) for t in turns))
    return out
