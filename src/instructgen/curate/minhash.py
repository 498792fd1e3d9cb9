"""Shingle hashes and MinHash signatures in numpy, over whole batches.

    shingle_hashes(ids: uint64[T], lens: int64[n], n: int) -> (hashes: uint64[S], counts: int64[n])
        Rolling n-gram hashes straight from token ids (no shingle strings). A record with fewer
        than n tokens yields one shingle (all its tokens); an empty record yields one constant
        shingle (or its entry of `empty_ids`). So every record has at least one shingle and none is dropped for being short.
    ngram_range_hashes(ids, lens, lo, hi) -> (hashes, counts)
        The union of lo..hi-grams per record (1..2: every word and every pair of neighbours, so order
        counts while one edited token changes only three shingles). The lo-grams follow the rule
        above; a record shorter than a larger n gets no n-gram of that size (its lo-grams cover it).
    minhash(hashes, counts, num_perm, seed) -> uint32[n, num_perm]
        Permutations h -> a*h + b mod 2^32 (odd a) of each shingle hash's high 32 bits, min per record:
        32-bit lanes halve the time of the former 64-bit multiply-shift, with the same estimates (the
        hashes are uniform already; benchmarks/dedup.py). Classic k-permutation MinHash (not
        one-permutation/Rho, which collapses on records with fewer shingles than slots).

Both are pure functions of their inputs: a record's signature does not depend on the batch
it was computed in, which is what lets a pipeline shard the work and merge the results.
"""

from __future__ import annotations

import numpy as np

from .text import mix64

EMPTY_TOKEN = np.uint64(0x9E3779B97F4A7C15)
CHUNK_SHINGLES = 1 << 16  # keeps the working set in cache; larger chunks are slower
_MAX_N = 16
# odd 64-bit multipliers, one per position in the n-gram
_POS_MULT = mix64(np.arange(1, _MAX_N + 1, dtype=np.uint64)) | np.uint64(1)


def shingle_hashes(
    ids: np.ndarray, lens: np.ndarray, n: int, empty_ids: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """`empty_ids`: the one token to use for each empty record (default: a constant)."""
    if not 1 <= n <= _MAX_N:
        raise ValueError(f"shingle size must be 1..{_MAX_N}, got {n}")
    ids = np.asarray(ids, dtype=np.uint64)
    lens = np.asarray(lens, dtype=np.int64)
    if n == 1 and not (lens == 0).any():  # token ids are uniform 64-bit hashes already
        return ids, lens
    empty = lens == 0
    if empty.any():  # give empty records one constant token so they still get a shingle
        starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
        fill = EMPTY_TOKEN if empty_ids is None else np.asarray(empty_ids, dtype=np.uint64)
        ids = np.insert(ids, starts[empty], fill)
        lens = np.where(empty, 1, lens)
    if n == 1:
        return ids, lens
    if (lens >= n).all():  # every record has n-grams: slide over the whole batch, drop those crossing a record end
        return _sliding_shingles(ids, lens, n)
    ends = np.cumsum(lens)
    starts = ends - lens
    total = int(ends[-1]) if len(ends) else 0
    pos = np.arange(total, dtype=np.int64)
    end_of = np.repeat(ends, lens)
    keep = (pos + n <= end_of) | ((pos == np.repeat(starts, lens)) & (np.repeat(lens, lens) < n))
    pos = pos[keep]
    end_of = end_of[keep]
    padded = np.concatenate((ids, np.zeros(n, dtype=np.uint64)))
    h = padded[pos] * _POS_MULT[0]
    for j in range(1, n):
        h += np.where(pos + j < end_of, padded[pos + j], np.uint64(0)) * _POS_MULT[j]
    counts = np.maximum(lens - n + 1, 1)
    return mix64(h), counts


def _sliding_shingles(ids: np.ndarray, lens: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """shingle_hashes of records that all have at least n tokens, without per-token index arithmetic."""
    total = len(ids)
    h = ids[:total - n + 1] * _POS_MULT[0]
    for j in range(1, n):
        h += ids[j:total - n + 1 + j] * _POS_MULT[j]
    valid = np.ones(total - n + 1, dtype=bool)
    ends = np.cumsum(lens)
    for j in range(1, n):  # an n-gram starting in a record's last n-1 tokens crosses into the next record
        cut = ends[:-1] - j
        valid[cut[cut >= 0]] = False
    return mix64(h[valid]), lens - n + 1


def ngram_range_hashes(
    ids: np.ndarray, lens: np.ndarray, lo: int, hi: int, empty_ids: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    hashes, counts = shingle_hashes(ids, lens, lo, empty_ids)
    if hi == lo:
        return hashes, counts
    lens = np.asarray(lens, dtype=np.int64)
    n_rec = len(lens)
    groups = [(hashes, counts)]
    for n in range(lo + 1, hi + 1):
        long = lens >= n
        if not long.any():
            break
        keep = np.repeat(long, lens)
        h, c = shingle_hashes(np.asarray(ids, dtype=np.uint64)[keep], lens[long], n)
        full = np.zeros(n_rec, dtype=np.int64)
        full[long] = c
        groups.append((h, full))
    totals = np.sum([c for _, c in groups], axis=0)
    # each record's shingles contiguous, in record order: every group's hashes placed straight at their
    # record's offset (no sort; the order inside a record does not matter to a minimum)
    out = np.empty(int(totals.sum()), dtype=np.uint64)
    base = np.cumsum(totals) - totals
    for h, c in groups:
        owner = np.repeat(np.arange(n_rec), c)
        local = np.arange(len(h)) - np.repeat(np.cumsum(c) - c, c)
        out[base[owner] + local] = h
        base = base + c
    return out, totals


def permutations32(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """32-bit a (odd) and b of the permutations h -> a*h + b mod 2^32 (each a bijection of 32-bit values)."""
    a, b = permutations(num_perm, seed)
    shift = np.uint64(32)
    return (a >> shift).astype(np.uint32) | np.uint32(1), (b >> shift).astype(np.uint32)


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    top = np.iinfo(np.uint64).max
    a = rng.integers(0, top, num_perm, dtype=np.uint64, endpoint=True) | np.uint64(1)
    b = rng.integers(0, top, num_perm, dtype=np.uint64, endpoint=True)
    return a, b


def minhash(hashes: np.ndarray, counts: np.ndarray, num_perm: int = 128, seed: int = 1, contiguous: bool = True
            ) -> np.ndarray:
    """`contiguous=False`: a transposed view, for a caller that copies it into its own array anyway."""
    counts = np.asarray(counts, dtype=np.int64)
    if (counts < 1).any():
        raise ValueError("every record needs at least one shingle")
    n_rec = len(counts)
    a, b = permutations32(num_perm, seed)
    # the high 32 bits of each (uniform 64-bit) shingle hash: 32-bit lanes are twice as many per SIMD step
    high = (np.asarray(hashes, dtype=np.uint64) >> np.uint64(32)).astype(np.uint32)
    out = np.empty((num_perm, n_rec), dtype=np.uint32)  # permutation-major: each row written contiguously
    offsets = np.concatenate(([0], np.cumsum(counts)))
    rec = 0
    while rec < n_rec:
        # records [rec, stop) whose shingles fit one chunk (always at least one record)
        stop = int(np.searchsorted(offsets, offsets[rec] + CHUNK_SHINGLES, side="right")) - 1
        stop = min(max(stop, rec + 1), n_rec)
        lo, hi = offsets[rec], offsets[stop]
        chunk = high[lo:hi]
        idx = offsets[rec:stop] - lo
        v = np.empty_like(chunk)
        for k in range(num_perm):
            np.multiply(chunk, a[k], out=v)
            v += b[k]
            out[k, rec:stop] = np.minimum.reduceat(v, idx)
        rec = stop
    return np.ascontiguousarray(out.T) if contiguous else out.T
