"""The longest back-to-back repeat in a token sequence (used by quality.signals as a number).

    loop(tokens) -> (copies, period, span)   the longest back-to-back repeat: copies, tokens per copy, tokens

The filter's `repetition` rule no longer uses it: a back-to-back rule misses loops of one token or one line
broken by numbering ("Sincerely, " x342, a numbered list whose items 21-46 are one title); the rule now
measures shares of repeated n-grams and lines (curate/junk.py).
"""

from __future__ import annotations

GRAM = 3
RECALL = 4


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
