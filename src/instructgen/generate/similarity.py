"""The diversity filter: exact ROUGE-L against every kept instruction, in sublinear time.

Self-Instruct and Alpaca keep a new instruction only if its ROUGE-L F1 against
every instruction kept so far is <= a threshold (0.7), and they compute that
score against the whole pool for every candidate. `RougeLIndex` makes the
same decisions while computing an exact LCS only for pool entries that could
exceed the threshold:

- F1 = 2*lcs / (la + lb) and lcs <= overlap(a, b) (multiset intersection), so
  F1 > t needs overlap > t*la/(2-t). Prefix filtering: under any fixed total
  order of tokens, a pool entry with that much overlap shares one of the
  candidate's first `la - floor(t*la/(2-t))` elements in that order. The order
  puts rare tokens first (document frequency); it is fixed between rebuilds,
  and the index re-indexes itself each time the pool doubles (amortised O(1)
  per entry). Postings hold every element of every entry with its position in
  the entry's order; a candidate probes with its prefix only;
- in numpy, over all entries found: a length bound, a positional bound (the
  first shared element starts the overlap) and a count bound (elements found +
  what can still follow the last one found) prune most of them; an exact
  multiset overlap prunes more, and the LCS is a bit-parallel LCS on Python ints.

Scores are computed with `rouge_score`'s own float formula so that ties at the
threshold are decided the same way. Tokenisation: lower-cased ASCII words
(exactly `rouge_score`'s tokenizer on English text), each CJK character a
token (so identical Chinese strings score 1.0), other alphabetic runs as words.
"""

from __future__ import annotations

import re
from array import array
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

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
        self._postings: dict[tuple[int, int], array] = {}
        self._lengths = array("q")  # tokens per entry
        self.lcs_computed = 0  # exact LCS computations, for benchmarks

    def __len__(self) -> int:
        return len(self.texts)

    def _ids(self, tokens: list[str], grow: bool) -> list[int]:
        vocab = self._vocab
        if grow:
            return [vocab.setdefault(t, len(vocab)) for t in tokens]
        return [vocab.get(t, -1 - i) for i, t in enumerate(tokens)]  # unknown tokens never match

    def _ordered(self, ids: list[int]) -> list[tuple[int, int]]:
        """The elements (token, occurrence) in the fixed order, rarest first."""
        rank = self._rank
        return sorted(_elements(ids), key=lambda e: (rank.get(e[0], 0), e[0], e[1]))

    def _prefix_size(self, n: int) -> int:
        return n - int(self._t * n / (2 - self._t))

    def _index(self, idx: int) -> None:
        postings = self._postings
        for pos, element in enumerate(self._ordered(self._tokens[idx])):
            # a position capped at 0xFFFF only loosens the positional bound: never wrong, at worst slower
            posting = postings.get(element)
            if posting is None:
                posting = postings[element] = array("q")
            posting.append(idx << 16 | min(pos, 0xFFFF))

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
        self._lengths.append(len(ids))
        self._elements.append(frozenset(_elements(ids)))
        self._df.update(set(ids))
        self._index(idx)
        if len(self.texts) >= self._rebuild_at:
            self._rebuild()
        return idx

    def most_similar_above(self, text: str, exclude: Collection[int] = ()) -> Match | None:
        """An entry whose ROUGE-L F1 with `text` is > threshold (the highest among those checked), or None;
        entries numbered in `exclude` (an evolved instruction's own ancestors) are not compared."""
        ids = self._ids(tokenize(text), grow=False)
        la = len(ids)
        if la == 0:
            return None
        size_a = self._prefix_size(la)
        hits = [(i, self._postings.get(e)) for i, e in enumerate(self._ordered(ids)[:size_a])]
        hits = [(i, p) for i, p in hits if p]
        if not hits:
            return None
        # every entry sharing a prefix element, in numpy (no Python loop over the postings)
        codes = np.concatenate([np.frombuffer(p, dtype=np.int64) for _, p in hits])
        probe_pos = np.repeat(np.array([i for i, _ in hits], dtype=np.int64), [len(p) for _, p in hits])
        entries = codes >> 16
        entry, first, shared = np.unique(entries, return_index=True, return_counts=True)
        last = len(entries) - 1 - np.unique(entries[::-1], return_index=True)[1]
        lb = np.frombuffer(self._lengths, dtype=np.int64)[entry]
        bound = self._t * (la + lb)  # F1 > t  <=>  2 * lcs > bound, and lcs <= overlap
        # the first shared element (in the order) starts the overlap; the elements found are in both
        # prefixes, and any other shared element lies in the suffix of `a` and after the last one found in `b`
        keep = ((2 * np.minimum(la, lb) > bound)
                & (2 * np.minimum(la - probe_pos[first], lb - (codes[first] & 0xFFFF)) > bound)
                & (2 * (shared + np.minimum(la - size_a, lb - (codes[last] & 0xFFFF) - 1)) > bound))
        elements_a = frozenset(_elements(ids))
        masks: dict = {}
        for i, tok in enumerate(ids):
            masks[tok] = masks.get(tok, 0) | (1 << i)
        best: Match | None = None
        for j, n_b, bound_j in zip(entry[keep].tolist(), lb[keep].tolist(), bound[keep].tolist()):
            if j in exclude or 2 * len(elements_a & self._elements[j]) <= bound_j:
                continue
            self.lcs_computed += 1
            score = fmeasure(_lcs_with_masks(masks, la, self._tokens[j]), la, n_b)
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

