"""The diversity filter: exact ROUGE-L against every kept instruction, in sublinear time.

Self-Instruct and Alpaca keep a new instruction only if its ROUGE-L F1 against
every instruction kept so far is <= a threshold (0.7), and they compute that
score against the whole pool for every candidate. `RougeLIndex` makes the
same decisions while computing an exact LCS only for pool entries that could
exceed the threshold:

- F1 = 2*lcs / (la + lb) and lcs <= overlap(a, b) (multiset intersection), so
  F1 > t needs overlap > t*la/(2-t) and > t*lb/(2-t). Prefix filtering: under
  any fixed total order of tokens, two texts with that much overlap share an
  element of their prefixes (each text's first `l - floor(t*l/(2-t))` tokens in
  that order). Each entry is indexed under its prefix only, and a candidate
  probes with its prefix only. The order puts rare tokens first (document
  frequency); it is fixed between rebuilds, and the index re-indexes itself
  under a fresh order each time the pool doubles (amortised O(1) per entry);
- a length bound (2*min(la, lb)/(la + lb) > t) and the exact overlap bound
  prune the rest before the LCS, which is a bit-parallel LCS on Python ints.

Scores are computed with `rouge_score`'s own float formula so that ties at the
threshold are decided the same way. Tokenisation: lower-cased ASCII words
(exactly `rouge_score`'s tokenizer on English text), each CJK character a
token (so identical Chinese strings score 1.0), other alphabetic runs as words.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

_TOKEN = re.compile(
    r"[a-z0-9]+"
    r"|[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\U00020000-\U0002ffff]"
    r"|[^\W\d_a-z\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\U00020000-\U0002ffff]+"
)
_SLACK = 1e-9  # bounds are loosened by this much so float rounding never prunes a true match


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def fmeasure(lcs: int, len_target: int, len_prediction: int) -> float:
    """ROUGE-L F1 computed the way rouge_score computes it (same float operations)."""
    if len_target == 0 or len_prediction == 0:
        return 0.0
    precision = lcs / len_prediction
    recall = lcs / len_target
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def lcs_length(a: list, b: list) -> int:
    """Length of the longest common subsequence (bit-parallel, Crochemore et al. 2001)."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return 0
    masks: dict = {}
    for i, tok in enumerate(a):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    return _lcs_with_masks(masks, len(a), b)


def _lcs_with_masks(masks: dict, n: int, b) -> int:
    full = (1 << n) - 1
    v = full
    for tok in b:
        m = masks.get(tok)
        if m:
            u = v & m
            v = ((v + u) | (v - u)) & full
    return n - v.bit_count()


def rouge_l(a: str, b: str) -> float:
    """ROUGE-L F1 between two texts with the CJK-aware tokenizer (brute force, one pair)."""
    ta, tb = tokenize(a), tokenize(b)
    return fmeasure(lcs_length(ta, tb), len(ta), len(tb))


@dataclass(slots=True)
class Match:
    index: int  # position of the similar entry in the index
    text: str
    score: float


class RougeLIndex:
    """A growing pool of texts; `most_similar_above(text)` finds an entry scoring > threshold, exactly."""

    def __init__(self, threshold: float = 0.7):
        if not 0.0 <= threshold <= 1.0:
            raise ValueError("the similarity threshold must be between 0 and 1")
        self.threshold = threshold
        self._t = threshold - _SLACK
        self.texts: list[str] = []
        self._tokens: list[list[int]] = []
        self._elements: list[frozenset] = []  # each entry's multiset as a set of (token, occurrence)
        self._vocab: dict[str, int] = {}
        self._df: Counter = Counter()  # token id -> entries holding it
        self._rank: dict[int, int] = {}  # the fixed order: document frequency at the last rebuild
        self._rebuild_at = 64
        # (token id, occurrence number) -> entry id << 16 | position in the entry's prefix
        self._postings: dict[tuple[int, int], list[int]] = {}
        self.lcs_computed = 0  # exact LCS computations, for benchmarks

    def __len__(self) -> int:
        return len(self.texts)

    def _ids(self, tokens: list[str], grow: bool) -> list[int]:
        vocab = self._vocab
        if grow:
            return [vocab.setdefault(t, len(vocab)) for t in tokens]
        return [vocab.get(t, -1 - i) for i, t in enumerate(tokens)]  # unknown tokens never match

    def _prefix(self, ids: list[int]) -> list[tuple[int, int]]:
        """The first `l - floor(t*l/(2-t))` elements (token, occurrence) in the fixed order, rarest first."""
        n = len(ids)
        size = n - int(self._t * n / (2 - self._t))
        rank = self._rank
        return sorted(_elements(ids), key=lambda e: (rank.get(e[0], 0), e[0], e[1]))[:size]

    def _index(self, idx: int) -> None:
        postings = self._postings
        for pos, element in enumerate(self._prefix(self._tokens[idx])):
            # a position capped at 0xFFFF only loosens the positional bound: never wrong, at worst slower
            postings.setdefault(element, []).append(idx << 16 | min(pos, 0xFFFF))

    def _rebuild(self) -> None:
        self._rank = dict(self._df)
        self._postings = {}
        for idx in range(len(self.texts)):
            self._index(idx)
        self._rebuild_at = 2 * len(self.texts)

    def add(self, text: str) -> int:
        ids = self._ids(tokenize(text), grow=True)
        idx = len(self.texts)
        self.texts.append(text)
        self._tokens.append(ids)
        self._elements.append(frozenset(_elements(ids)))
        self._df.update(set(ids))
        self._index(idx)
        if len(self.texts) >= self._rebuild_at:
            self._rebuild()
        return idx

    def most_similar_above(self, text: str) -> Match | None:
        """An entry whose ROUGE-L F1 with `text` is > threshold (the highest among those checked), or None."""
        ids = self._ids(tokenize(text), grow=False)
        la = len(ids)
        if la == 0:
            return None
        t = self._t
        elements_a = frozenset(_elements(ids))
        masks: dict = {}
        for i, tok in enumerate(ids):
            masks[tok] = masks.get(tok, 0) | (1 << i)
        postings = self._postings
        all_tokens = self._tokens
        checked: set[int] = set()
        best: Match | None = None
        for i, element in enumerate(self._prefix(ids)):
            rest_a = la - i  # elements of `a` from this one on: the first shared element bounds the overlap
            for code in postings.get(element, ()):
                j = code >> 16
                if j in checked:
                    continue
                checked.add(j)
                tokens_b = all_tokens[j]
                lb = len(tokens_b)
                bound = t * (la + lb)
                if 2 * min(la, lb) <= bound or 2 * min(rest_a, lb - (code & 0xFFFF)) <= bound:
                    continue
                if 2 * len(elements_a & self._elements[j]) <= bound:
                    continue
                self.lcs_computed += 1
                score = fmeasure(_lcs_with_masks(masks, la, tokens_b), la, lb)
                if score > self.threshold and (best is None or score > best.score):
                    best = Match(j, self.texts[j], score)
        return best

    def add_if_novel(self, text: str) -> Match | None:
        """Add `text` unless it is too similar to an entry; returns the blocking match, or None when added."""
        match = self.most_similar_above(text)
        if match is None:
            self.add(text)
        return match


def _elements(ids: list[int]) -> list[tuple[int, int]]:
    """A multiset as a set: the k-th occurrence of a token is (token, k)."""
    seen: dict[int, int] = {}
    out = []
    for tok in ids:
        k = seen.get(tok, 0) + 1
        seen[tok] = k
        out.append((tok, k))
    return out


def brute_force_most_similar(pool: list[str], text: str, threshold: float) -> float:
    """The highest ROUGE-L F1 of `text` against every entry (the reference the index must agree with)."""
    tokens = tokenize(text)
    best = 0.0
    for other in pool:
        tb = tokenize(other)
        best = max(best, fmeasure(lcs_length(tokens, tb), len(tokens), len(tb)))
    return best
