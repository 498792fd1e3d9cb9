"""repetition: a degenerate loop in a turn's output, the way a model stuck in a loop writes.

    repetition(turn, cfg) -> str | None
    loop(tokens) -> (copies, period, span)   the longest back-to-back repeat: copies, tokens per copy, tokens

A loop is a stretch of tokens repeated back to back, exactly: "I love you so much and I love you so much
and I love you so much ...", "我爱你中国我爱你中国我爱你中国…", the same line again and again. It fires at
MIN_COPIES copies covering MIN_SPAN tokens, or two copies of a long stretch making most of the turn (an
answer pasted twice). Gopher-style shares of duplicate n-grams are not used: on real data they fire on
structure — parallel solution steps ("On the first bounce, it will reach 48 feet. On the second bounce, it
will reach 24 feet."), lists, tables, a song's chorus, a tool call restating the answer — 1,016 drops on
the real sets, none of them a loop (benchmarks/judgements/filter.jsonl). Parallel lines differ in a number
or a word, which breaks the run; code blocks and table rows are left out; a prompt that asks for
repeats ("repeat", "10 times", "重复") turns the rule off.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .filter import FilterConfig
    from .rules import Turn

MIN_COPIES = 3
MIN_SPAN = 15  # tokens (a CJK character is a token)
DOUBLE_MIN_PERIOD = 20  # two copies count when each is this long ...
DOUBLE_MIN_SHARE = 0.6  # ... and together they are this share of the output
GRAM = 3
RECALL = 4

_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W_\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_FENCE = re.compile(r"```.*?(?:```|$)", re.S)
_TABLE_ROW = re.compile(r"(?m)^\s*\|.*$|^\s*[-=+|: ]{3,}$")
_ASKS_FOR_REPEATS = re.compile(r"(?i)\brepeat|\b(?:\d+|two|three|four|five|six|seven|eight|nine|ten|twenty|fifty|hundred) times\b|\b(?:twice|thrice|again and again|over and over)\b|重复|遍|(?<![一二三四五六七八九十\d])次")


def loop(tokens: list[str]) -> tuple[int, int, int]:
    """(copies, period, span) of the longest back-to-back repeat in `tokens` ((1, 0, 0) when there is none).

    Each GRAM-gram remembers where it was seen (its last RECALL places); a run of consecutive positions
    whose gram was seen the same distance p back is a stretch repeated with period p. Several places per
    gram keep a unit that repeats inside itself ("the sea is wide and the sea is deep and ...") whole."""
    seen: dict[tuple[str, ...], list[int]] = {}
    runs: dict[int, tuple[int, int]] = {}  # period -> (position it was last extended at, run length)
    best_copies, best_period, best_span = 1, 0, 0
    for k, gram in enumerate(zip(*(tokens[i:] for i in range(GRAM)))):
        places = seen.get(gram)
        if places is None:
            seen[gram] = [k]
            continue
        for j in places[-RECALL:]:
            period = k - j
            last, run = runs.get(period, (-2, 0))
            run = run + 1 if last == k - 1 else 1
            runs[period] = (k, run)
            span = run + period + GRAM - 1
            if run >= period - GRAM + 1 and (span, span // period) > (best_span, best_copies):  # two copies or more
                best_copies, best_period, best_span = span // period, period, span
        places.append(k)
    return best_copies, best_period, best_span


def _natural(text: str) -> str:
    if "```" in text:
        text = _FENCE.sub(" ", text)
    if "|" in text or "---" in text:
        text = _TABLE_ROW.sub(" ", text)
    return text


def repetition(t: Turn, cfg: FilterConfig) -> str | None:
    tokens = _TOKEN.findall(_natural(t.output).casefold())
    if len(tokens) < MIN_SPAN:
        return None
    copies, period, span = loop(tokens)
    looping = (copies >= MIN_COPIES and span >= MIN_SPAN) or (
        copies >= 2 and period >= DOUBLE_MIN_PERIOD and span >= DOUBLE_MIN_SHARE * len(tokens))
    if not looping or _ASKS_FOR_REPEATS.search(t.prompt):
        return None
    return f"repetitive output ({copies} copies of a {period}-token stretch, back to back)"
