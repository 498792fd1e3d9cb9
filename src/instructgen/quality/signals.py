"""Scores without a model: the filter's measures and flags as numbers, so selection works offline too.

    signals(conv, config) -> dict[str, float]

Thin on purpose: it calls the filter's own public pieces (curate.rules.turns_of, RULES, text_length and the
junk measures of curate.junk) and adds no judgement of its own. Keys (all numbers; a dialogue's worst turn):
    instruction_length, output_length    words, or CJK characters for CJK text (rules.text_length), summed
                                         over the turns
    turns                                exchanges in the record
    repetition                           share of the output's tokens repeating an n-gram already said (junk.loop_shares)
    repeated_lines                       share of the output's characters in lines said before
    salad                                share of the output's judged tokens that are not words (junk.salad_share;
                                         0 below the filter's minimum of judged tokens)
    flag_<rule>                          1 when the filter's rule fails on some turn, else 0, for every rule the
                                         config runs: junk (empty_output, garbled, repetition, salad, ...) and
                                         signals (refusal, needs_media, language, length, merged, ...)
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ..record import Conversation

if TYPE_CHECKING:
    from ..curate.filter import FilterConfig


def signals(conv: Conversation, config: "FilterConfig") -> dict[str, float]:
    from ..curate import junk, rules

    if conv.pairwise:  # judged as the filter judges it: the prompt and the chosen answer
        conv = replace(conv, messages=[*conv.messages, conv.chosen], chosen=None, rejected=None)
    turns = rules.turns_of(conv)
    out: dict[str, float] = {
        "instruction_length": float(sum(rules.text_length(t.instruction)[0] for t in turns)),
        "output_length": float(sum(rules.text_length(t.output)[0] for t in turns)),
        "turns": float(len(turns)),
        "repetition": 0.0,
        "repeated_lines": 0.0,
        "salad": 0.0,
    }
    for t in turns:
        ngrams, lines, _top, _tokens = junk.loop_shares(t.output)
        salad, counted = junk.salad_share(t.output)
        out["repetition"] = max(out["repetition"], round(ngrams, 4))
        out["repeated_lines"] = max(out["repeated_lines"], round(lines, 4))
        out["salad"] = max(out["salad"], round(salad, 4) if counted >= junk.SALAD_MIN_TOKENS else 0.0)
    for name in config.rules:
        rule = rules.RULES[name]
        out[f"flag_{name}"] = float(any(rule(t, config) for t in turns))
    return out
