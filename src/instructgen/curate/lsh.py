"""LSH banding by sorting, candidate verification, and keep-first greedy clustering.

    band_params(threshold, num_perm, fp_weight=0.3, fn_weight=0.7) -> (bands, rows)
        datasketch's optimiser, vectorised (the split minimising the weighted false positive and
        false negative areas; tests check it picks what datasketch.lsh._optimal_param picks).
        False negatives weigh more because every candidate is verified afterwards: a false
        positive candidate costs a comparison, a false negative costs a missed duplicate.
    candidate_pairs(sigs: uint[n, P] or uint[n, parts, P], bands, rows, cap=64, index=None) -> (i: int64[m], j: int64[m]), i < j
        Records sharing a band bucket; with several parts a band is the same rows of every part, so a
        pair collides only where all parts agree. Per band, rows are sorted by band hash (no hash tables);
        each member of a bucket is paired with the first `cap` members before it, which bounds
        the work on huge template buckets while keeping the earliest (kept) records reachable.
    estimated_jaccard(sigs, i, j, threshold=0) -> float32[m]   share of equal MinHash values
        (0 for pairs that provably cannot reach the threshold).
    verify_parts(sigs: uint[n, parts, P], i, j, threshold=0, split=None, split_threshold=0) -> float32[m, parts]
        the same per part; with `split`, columns [0, split) give the similarity and columns [split, P) are a
        gate that must reach split_threshold (dedup: the whole text, then its focus's content words). A pair stops being
        verified at the first part or half that cannot reach the threshold (its later parts read 0).
    greedy(n, i, j, sim, protected=0, only_protected_parents=False) -> (dup_of: int64[n], sim: float32[n])
        Records in index order; a record is a duplicate of the most similar *kept* earlier record
        it has a verified pair with. A removed record never makes another one a duplicate, so
        template-sharing records do not chain into giant clusters. The first `protected` records
        (a reference set) are never removed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Iterator

import numpy as np

from .text import mix64

PAIR_CHUNK = 1 << 18
OPT_GRID = 2001
COARSE_KEEP = 16


@lru_cache(maxsize=64)
def band_params(threshold: float, num_perm: int, fp_weight: float = 0.3, fn_weight: float = 0.7) -> tuple[int, int]:
    """datasketch.lsh._optimal_param in numpy (same choice; without importing scipy, which takes 0.7 s)."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    pairs = np.array([(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)], dtype=float)
    # a coarse grid ranks every split, the fine one decides among the best few (0.03 s instead of 0.4 s)
    coarse = _weighted_error(pairs, threshold, fp_weight, fn_weight, OPT_GRID // 20)
    best = np.argsort(coarse, kind="stable")[:COARSE_KEEP]
    fine = _weighted_error(pairs[best], threshold, fp_weight, fn_weight, OPT_GRID)
    b, r = pairs[best[int(np.argmin(fine))]]
    return int(b), int(r)


def _weighted_error(pairs: np.ndarray, threshold: float, fp_weight: float, fn_weight: float, grid: int) -> np.ndarray:
    b, r = pairs[:, :1], pairs[:, 1:]
    lo = np.linspace(0.0, threshold, grid)
    hi = np.linspace(threshold, 1.0, grid)
    false_pos = np.trapezoid(1 - (1 - lo ** r) ** b, lo, axis=1)  # candidate although below the threshold
    false_neg = np.trapezoid((1 - hi ** r) ** b, hi, axis=1)  # missed although above it
    return false_pos * fp_weight + false_neg * fn_weight


def band_hashes(sigs: np.ndarray, band: int, rows: int, index: np.ndarray | None = None) -> np.ndarray:
    """uint64 hash of one band of each signature (of the rows `index`, when given)."""
    parts = sigs.reshape(len(sigs), -1, sigs.shape[-1])
    block = parts[:, :, band * rows:(band + 1) * rows]
    if index is not None:
        block = block[index]  # one gather of the band's columns (rows * parts values a record)
    return hash_columns([block[:, p, c] for p in range(block.shape[1]) for c in range(rows)], band, len(block))


def hash_columns(columns: list[np.ndarray], band: int, n: int) -> np.ndarray:
    """uint64 hash of the band `band` made of these columns (unsigned, one value per record each): the values
    packed into 64-bit words (four 16-bit values a word), each word mixed in (a column at a time, widened as it
    goes: the whole band widened at once would hold 8 bytes per value of it)."""
    h = np.full(n, np.uint64(band + 1), dtype=np.uint64)
    if not columns:
        return h
    bits = columns[0].dtype.itemsize * 8
    per_word = max(64 // bits, 1)
    for start in range(0, len(columns), per_word):
        word = columns[start].astype(np.uint64)
        for k, col in enumerate(columns[start + 1:start + per_word], start=1):
            word |= col.astype(np.uint64) << np.uint64(bits * k)
        h = mix64(h ^ word)
    return h


def bucket_bits(n: int) -> int:
    """Low bits of a band hash given over to a record's position when a band's rows are sorted (the high
    64 - bucket_bits(n) bits tell buckets apart: a chance collision only adds a verified candidate)."""
    return max(int(n - 1).bit_length(), 1)


def candidate_pairs(sigs: np.ndarray, bands: int, rows: int, cap: int = 64, index: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i < j) of positions; with `index`, of the signatures `sigs[index]` (no copy of them is made)."""
    n = len(sigs) if index is None else len(index)
    found = [band_pairs(sigs, band, rows, cap, index) for band in range(bands)]
    if not found:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    codes = distinct_sorted(np.concatenate(found))
    return codes // n, codes % n


def band_pairs(sigs: np.ndarray, band: int, rows: int, cap: int, index: np.ndarray | None = None) -> np.ndarray:
    """The candidate pairs of one band as codes i * n + j (i < j positions)."""
    chunks = list(band_pair_chunks(sigs, band, rows, cap, index))
    return np.concatenate(chunks) if chunks else np.empty(0, np.int64)


def band_pair_chunks(sigs: np.ndarray, band: int, rows: int, cap: int, index: np.ndarray | None = None,
                     max_pairs: int | None = None) -> Iterator[np.ndarray]:
    """`band_pairs` in pieces of at most `max_pairs` pairs (one piece when None), each sorted: on
    template-heavy data a band holds tens of candidates per record, so the whole band at once would cost
    memory in step with that, not with the records."""
    n = len(sigs) if index is None else len(index)
    # each row's position in the low bits of its band hash: one plain sort of integers (7x a stable argsort)
    # orders the rows by bucket, then by position inside a bucket
    low = np.uint64((1 << bucket_bits(n)) - 1)
    keys = band_hashes(sigs, band, rows, index)
    keys &= ~low
    keys |= np.arange(n, dtype=np.uint64)
    keys.sort()
    pos = np.int32 if n < 2**31 else np.int64  # positions: half the memory of a band in flight (two with threads)
    order = (keys & low).astype(pos)
    keys &= ~low
    new = np.empty(n, dtype=bool)
    new[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=new[1:])
    del keys
    start_of = np.flatnonzero(new).astype(pos)[np.cumsum(new, dtype=pos) - 1]
    del new
    reps = np.minimum(np.arange(n, dtype=pos) - start_of, cap)  # a member pairs with up to `cap` members before it
    members = np.flatnonzero(reps).astype(pos)
    reps = reps[members]
    ends = np.cumsum(reps, dtype=np.int64)
    a = 0
    while a < len(members):
        done = int(ends[a - 1]) if a else 0
        b = len(members) if max_pairs is None else int(np.searchsorted(ends, done + max_pairs, side="right"))
        b = max(b, a + 1)  # one member's pairs (at most `cap`) always fit
        piece, first = reps[a:b], ends[a:b] - reps[a:b]
        later = np.repeat(members[a:b], piece)
        earlier = np.repeat(start_of[members[a:b]], piece) + np.arange(len(later)) - np.repeat(first - done, piece)
        codes = order[earlier].astype(np.int64) * n + order[later]
        codes.sort()
        yield codes
        a = b


def distinct_sorted(codes: np.ndarray) -> np.ndarray:
    codes.sort()  # sort + neighbour test: np.unique's hash path is 60x slower on a million pairs
    return codes[np.r_[True, codes[1:] != codes[:-1]]] if len(codes) else codes


def verified_pairs(sigs: np.ndarray, bands: int, rows: int, cap: int, index: np.ndarray,
                   verify, threads: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(i, j, similarity, candidates checked) of the candidate pairs `verify(i, j)` gives a similarity
    >= 0 to: the pairs of verifying `candidate_pairs` at once, but each band's candidates are verified as
    they come and only the verified ones are kept. Memory then holds the duplicates, not every candidate
    (tens per record on template-heavy data); a pair found in several bands is verified again (cheaper
    than remembering every candidate). With `threads` > 1, bands are worked on by that many threads at
    once: the work is numpy's gathers, sorts and compares, which let go of the GIL (`verify` must be
    thread-safe); the result does not depend on it."""
    n = len(index)

    def one_band(band: int) -> tuple[np.ndarray, int]:
        kept, checked = [], 0
        for codes in band_pair_chunks(sigs, band, rows, cap, index, max_pairs=PAIR_CHUNK * 4):
            checked += len(codes)  # a band's pairs are distinct: each is two rows of one bucket
            s = verify(codes // n, codes % n)
            kept.append(codes[s >= 0])
        return (np.concatenate(kept) if kept else np.empty(0, np.int64)), checked

    pool = ThreadPoolExecutor(min(threads, bands)) if threads > 1 and bands > 1 else None
    try:
        codes, checked = np.empty(0, np.int64), 0
        for band_codes, band_checked in (pool.map if pool else map)(one_band, range(bands)):
            # merged band by band: a true duplicate is found again in most bands, so each band's
            # copies kept to the end would grow the memory with the bands
            codes = distinct_sorted(np.concatenate((codes, band_codes)))
            checked += band_checked
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    i, j = codes // n, codes % n
    return i, j, verify(i, j).astype(np.float32), checked


def estimated_jaccard(sigs: np.ndarray, i: np.ndarray, j: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Share of equal signature values; pairs that cannot reach `threshold` may come back as 0.

    The first half of the columns is compared first: a pair whose matches there plus every column
    of the second half still falls short of the threshold is settled without reading the rest
    (an exact bound, not an estimate), which halves the memory traffic on template-heavy data.
    """
    num_perm = sigs.shape[1]
    half = num_perm // 2
    need = threshold * num_perm
    out = np.zeros(len(i), dtype=np.float32)
    head, tail = sigs[:, :half], sigs[:, half:]  # sliced before the gather: rows[a] is numpy's fast path
    for s in range(0, len(i), PAIR_CHUNK):
        a, b = i[s:s + PAIR_CHUNK], j[s:s + PAIR_CHUNK]
        first = equal_counts(head[a], head[b])
        alive = np.flatnonzero(first >= need - (num_perm - half))
        rest = equal_counts(tail[a[alive]], tail[b[alive]])
        out[s + alive] = (first[alive].astype(np.int64) + rest) / num_perm
    return out


def equal_counts(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Equal values in each row of two [m, k] arrays. The booleans are read eight at a time as one word's
    bit count (a row's sum over a short axis is numpy's slow path: 2.5x)."""
    equal = x == y
    if equal.shape[1] % 8 or not equal.flags.c_contiguous or not equal.shape[1]:
        return equal.sum(axis=1)
    words = equal.view(np.uint64)
    counts = np.bitwise_count(words[:, 0]).astype(np.uint8 if equal.shape[1] < 256 else np.uint16, copy=False)
    for k in range(1, words.shape[1]):
        counts += np.bitwise_count(words[:, k])
    return counts


def verify_parts(sigs: np.ndarray, i: np.ndarray, j: np.ndarray, threshold: float = 0.0, split: int | None = None,
                 split_threshold: float = 0.0) -> np.ndarray:
    num_perm = sigs.shape[2]
    out = np.zeros((len(i), sigs.shape[1]), dtype=np.float32)
    alive = np.arange(len(i))
    for p in range(sigs.shape[1]):
        s = estimated_jaccard(sigs[:, p, :split or num_perm], i[alive], j[alive], threshold)
        out[alive, p] = s
        alive = alive[s >= threshold]
        if split:  # the gate: below it, the pair reads as its gate's estimate (under the threshold too)
            g = estimated_jaccard(sigs[:, p, split:], i[alive], j[alive], split_threshold)
            low = g < split_threshold
            out[alive[low], p] = np.minimum(g[low], out[alive[low], p])
            alive = alive[~low]
    return out


def weakest(part_sims: np.ndarray) -> np.ndarray:
    """Each row's smallest part similarity (a column at a time: min over a short axis is numpy's slow path)."""
    return np.minimum.reduce(list(part_sims.T)) if part_sims.shape[1] > 1 else part_sims[:, 0].copy()


def greedy(
    n: int, i: np.ndarray, j: np.ndarray, sim: np.ndarray, protected: int = 0, only_protected_parents: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    dup_of = np.full(n, -1, dtype=np.int64)
    best = np.zeros(n, dtype=np.float32)
    use = j >= protected
    if only_protected_parents:
        use &= i < protected
    if not use.all():  # (a copy of every pair otherwise)
        i, j, sim = i[use], j[use], sim[use]
    order = np.lexsort((i, -sim, j))  # by j, then most similar first, then earliest
    kept = bytearray(b"\x01") * n
    parent = dup_of.tolist()
    for start in range(0, len(order), PAIR_CHUNK):  # as Python numbers a piece at a time (10M pairs: 1 GB at once)
        piece = order[start:start + PAIR_CHUNK]
        for a, b, s in zip(i[piece].tolist(), j[piece].tolist(), sim[piece].tolist()):
            if parent[b] == -1 and kept[a]:
                parent[b] = a
                kept[b] = 0
                best[b] = s
    return np.asarray(parent, dtype=np.int64), best
