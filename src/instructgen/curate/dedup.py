"""The dedup stage: exact duplicates, then MinHash/LSH near-duplicates, optionally against a reference.

Plain functions (no Prefect) for the CLI and the pipeline:

    dedup_text(conv: Conversation, fields: str = "all") -> str
    sketch(texts: Sequence[str], config: DedupConfig) -> Sketches
        per-record exact keys, MinHash signatures and lengths; a pure function of each text,
        so shards can be sketched anywhere and concatenated: `Sketches.concat(shards)`.
    sketch_parallel(texts, config) -> Sketches       the same, over shards in worker processes
    signatures(texts: Sequence[str], config: DedupConfig | None = None) -> np.ndarray  # uint32[n, num_perm]
    cluster(shards: Sequence[Sketches], config: DedupConfig, n_reference: int = 0) -> Clusters
        decisions over the concatenated shards (the first n_reference rows are a reference set that
        is never removed); the same result whatever the sharding, because it only sees the rows.
    sketch_records(records, config) -> Sketches     the same, of records (their `fields` text)
    drop_duplicates(records, clusters, config, log, reference=()) -> (kept, clusters.jsonl rows)
        applies the decisions: removed records go to `log` as kind "duplicates" (their intake is
        counted by whoever read them), kept ones are returned in input order.
    dedup_records(records, config, log, against=None, clusters_path=None) -> kept
        the whole stage in one process (sketch, cluster, drop); the pipeline runs the same three
        steps with sketching spread over shards.

Shingling (`--shingle`): tokens are chosen per script: each Han/kana character is a token (Chinese
has no spaces; whitespace or \\W tokens would only find exact copies), every other run of letters
and digits is a word. `auto` uses them as unigrams for records of up to 64 tokens and as 3-grams
beyond: on short instruction text an n-gram shingle lets one edited token change n shingles, which
sinks the Jaccard of a 10 %-edited copy below 0.7 (benchmarks/dedup.py measures word:1-3 and
char:3-5 side by side); on long text, bags of words overlap by topic alone. The price on short
text: template siblings that differ in one or two slot words ("pros and cons of X for Y") look
alike; raise --threshold or use --shingle char:4 where that matters. `word:N` and `char:N` force
one scheme for every record. Each record is shingled on its own, so the choice never depends on
the batch.

Memory: the index keeps 4 * num_perm + 16 bytes per record (uint32 signature, uint64 exact key,
int64 length): 528 bytes a record at 128 permutations, 528 MB for a million records. Clustering
adds, transiently, a 16-bit copy of the signatures for verification (2 * num_perm bytes), an
8-byte hash and sort order per record for one band at a time, and the candidate pairs (16 bytes
each; about 5 per record on the template-heavy benchmark set).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import InstructgenError
from ..formats import source_row
from ..formats.base import split_instruction
from ..record import Conversation
from ..runlog import RunLog
from . import lsh
from .minhash import minhash, shingle_hashes
from .text import char_ids, normalize_batch, sequence_keys, token_ids

FIELDS = ("all", "instruction", "input", "output", "user", "system")
AUTO_LONG_TOKENS = 64
AUTO_LONG_N = 3
BATCH = 20_000
PARALLEL_MIN = 200_000
KEPT, EXACT, NEAR = 0, 1, 2


class DedupConfig(BaseModel):
    """The dedup stage's settings: the [dedup] section of a pipeline config and `instructgen dedup`'s flags."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(0.7, gt=0, lt=1, description="estimated Jaccard similarity that counts as a duplicate")
    num_perm: int = Field(128, ge=8, le=1024, description="MinHash permutations (4 bytes each per record)")
    shingle: str = Field("auto", description="auto: words / Han characters as tokens, unigrams up to 64 tokens "
                         "and 3-grams beyond; or word:N / char:N", json_schema_extra={"metavar": "auto|word:N|char:N"})
    fields: str = Field("all", description="what to compare, a comma list of: all (every non-system message), "
                        "instruction (first user message), input, output (assistant messages), user, system",
                        json_schema_extra={"metavar": "PARTS"})
    keep: Literal["first", "longest"] = Field("first", description="which record of a cluster stays")
    seed: int = Field(1, description="MinHash seed")
    exact: bool = Field(True, description="remove exact duplicates (same text up to NFKC, case, spacing, punctuation)")
    near: bool = Field(True, description="remove near duplicates (MinHash/LSH, verified)")
    against: list[Path] = Field(default_factory=list, description="reference files: records duplicating them are "
                                "dropped; the references are never changed", json_schema_extra={"nargs": "+",
                                                                                             "metavar": "REF"})
    against_only: bool = Field(False, description="with --against: only remove copies of the reference")
    bucket_cap: int = Field(64, ge=2, description="largest LSH bucket compared pairwise",
                            json_schema_extra={"cli": False})
    workers: int = Field(0, ge=0, description="processes for signatures (0: one per core for big inputs)")

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: str) -> str:
        try:
            parse_fields(value)
        except InstructgenError as e:
            raise ValueError(str(e)) from None
        return value

    @field_validator("shingle")
    @classmethod
    def _shingle(cls, value: str) -> str:
        try:
            shingle_plan(value)
        except InstructgenError as e:
            raise ValueError(str(e)) from None
        return value

    @model_validator(mode="after")
    def _something_to_do(self) -> "DedupConfig":
        if not (self.exact or self.near):
            raise ValueError("--no-exact and --no-near together leave nothing to do")
        return self


def parse_fields(spec: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in spec.split(",") if p.strip())
    bad = [p for p in parts if p not in FIELDS]
    if bad or not parts:
        raise InstructgenError(f"--fields: unknown part {', '.join(bad) or '(none)'}; use a comma list of {', '.join(FIELDS)}")
    return parts


def shingle_plan(spec: str) -> tuple[str, int]:
    """('word', 0) for auto (n chosen per record by length), else the kind and size asked for."""
    if spec == "auto":
        return ("word", 0)
    kind, _, n = spec.partition(":")
    if kind not in ("word", "char") or not n.isdigit() or not 1 <= int(n) <= 16:
        raise InstructgenError(f"--shingle must be auto, word:N or char:N with N in 1..16, got {spec!r}")
    return (kind, int(n))


def dedup_text(conv: Conversation, fields: str | Sequence[str] = "all") -> str:
    parts = parse_fields(fields) if isinstance(fields, str) else tuple(fields)
    turns = conv.turns
    out: list[str] = []
    for part in parts:
        if part == "all":
            out += [m.content for m in turns]
        elif part == "instruction":
            out += [next((m.content for m in turns if m.role == "user"), "")]
        elif part == "input":
            first_user = next((m.content for m in turns if m.role == "user"), "")
            out += [split_instruction(conv, first_user)[1]]
        elif part == "output":
            out += [m.content for m in turns if m.role == "assistant"]
        elif part == "user":
            out += [m.content for m in turns if m.role == "user"]
        elif part == "system":
            out += [conv.system or ""]
    return "\n".join(out)


@dataclass(slots=True)
class Sketches:
    keys: np.ndarray  # uint64[n] exact-duplicate key (hash of the normalised text)
    sigs: np.ndarray  # uint32[n, num_perm]
    lengths: np.ndarray  # int64[n] characters of the text (for --keep longest)

    def __len__(self) -> int:
        return len(self.keys)

    @staticmethod
    def concat(shards: Sequence["Sketches"]) -> "Sketches":
        if not shards:
            return Sketches(np.empty(0, np.uint64), np.empty((0, 0), np.uint32), np.empty(0, np.int64))
        if len(shards) == 1:
            return shards[0]
        return Sketches(np.concatenate([s.keys for s in shards]), np.concatenate([s.sigs for s in shards]),
                        np.concatenate([s.lengths for s in shards]))


@dataclass(slots=True)
class Clusters:
    dup_of: np.ndarray  # int64[n]: -1 kept, else the index of the kept record it duplicates
    similarity: np.ndarray  # float32[n]: estimated Jaccard to that record (1.0 for exact copies)
    stage: np.ndarray  # int8[n]: KEPT, EXACT or NEAR
    info: dict = field(default_factory=dict)


def _fallback_keys(texts: Sequence[str]) -> np.ndarray:
    """Keys for texts without a single letter or digit: their stripped, case-folded text."""
    out = np.empty(len(texts), dtype=np.uint64)
    for k, raw in enumerate(texts):
        out[k] = int.from_bytes(hashlib.blake2b(("\x01" + raw.strip().casefold()).encode(), digest_size=8).digest(), "little")
    return out


def _select(ids: np.ndarray, lens: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return ids[np.repeat(mask, lens)], lens[mask]


def _sketch_batch(texts: Sequence[str], config: DedupConfig) -> Sketches:
    kind, n = shingle_plan(config.shingle)
    words, word_lens = token_ids(texts)
    keys = sequence_keys(words, word_lens)
    empty = word_lens == 0
    if empty.any():
        keys[empty] = _fallback_keys([texts[k] for k in np.flatnonzero(empty)])
    ids, lens = (words, word_lens) if kind == "word" else char_ids(normalize_batch(texts))
    sigs = np.empty((len(texts), config.num_perm), dtype=np.uint32)
    if n:
        groups = [(np.ones(len(texts), dtype=bool), n)]
    else:  # auto: unigrams for short text, AUTO_LONG_N-grams past AUTO_LONG_TOKENS tokens
        long = lens > AUTO_LONG_TOKENS
        groups = [(~long, 1), (long, AUTO_LONG_N)]
    for mask, size in groups:
        if not mask.any():
            continue
        sel_ids, sel_lens = _select(ids, lens, mask)
        # a record with no letters or digits shingles as its own exact key, not as "empty"
        hashes, counts = shingle_hashes(sel_ids, sel_lens, size, empty_ids=keys[mask][sel_lens == 0])
        sigs[mask] = minhash(hashes, counts, config.num_perm, config.seed)
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    return Sketches(keys, sigs, lengths)


def sketch(texts: Sequence[str], config: DedupConfig) -> Sketches:
    return Sketches.concat([_sketch_batch(texts[s:s + BATCH], config) for s in range(0, len(texts), BATCH)]) \
        if len(texts) else _sketch_batch([], config)


def sketch_parallel(texts: Sequence[str], config: DedupConfig) -> Sketches:
    """`sketch` over contiguous shards in worker processes; the same result as one process."""
    workers = config.workers or ((os.cpu_count() or 1) if len(texts) >= PARALLEL_MIN else 1)
    if workers <= 1 or len(texts) < 2 * BATCH:
        return sketch(texts, config)
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    step = -(-len(texts) // (workers * 4))  # a few shards per worker evens out the load
    shards = [list(texts[s:s + step]) for s in range(0, len(texts), step)]
    # spawn, not fork: polars' thread pool does not survive a fork
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        return Sketches.concat(list(pool.map(sketch, shards, [config] * len(shards))))


def signatures(texts: Sequence[str], config: DedupConfig | None = None) -> np.ndarray:
    return sketch(list(texts), config or DedupConfig()).sigs


def cluster(shards: Sequence[Sketches], config: DedupConfig, n_reference: int = 0) -> Clusters:
    sk = Sketches.concat(list(shards))
    n = len(sk)
    # priority: the reference first (always kept), then input rows in input order or longest first
    prio = np.arange(n)
    if config.keep == "longest" and n > n_reference:
        rest = np.arange(n_reference, n)
        prio = np.concatenate((np.arange(n_reference), rest[np.lexsort((rest, -sk.lengths[rest]))]))
    dup_of = np.full(n, -1, dtype=np.int64)
    sim = np.zeros(n, dtype=np.float32)
    stage = np.zeros(n, dtype=np.int8)
    if config.exact and n:
        keys = sk.keys[prio]
        order = np.argsort(keys, kind="stable")
        ks = keys[order]
        new = np.r_[True, ks[1:] != ks[:-1]]
        head = np.empty(n, dtype=np.int64)  # per priority position: position of the first row with its key
        head[order] = order[np.flatnonzero(new)[np.cumsum(new) - 1]]
        pos = np.arange(n)
        is_dup = (head != pos) & (pos >= n_reference)
        if n_reference and config.against_only:
            is_dup &= head < n_reference
        dup_of[prio[is_dup]] = prio[head[is_dup]]
        sim[prio[is_dup]] = 1.0
        stage[prio[is_dup]] = EXACT
    info: dict = {}
    if config.near and n:
        alive = prio[dup_of[prio] == -1]  # surviving rows, in priority order
        sigs = sk.sigs[alive]
        bands, rows = lsh.band_params(config.threshold, sigs.shape[1])
        i, j = lsh.candidate_pairs(sigs, bands, rows, config.bucket_cap)
        # verify on the low 16 bits of each value: half the memory traffic, and a chance match
        # (1 in 65536 a column) moves an estimate by less than 0.00002
        s = lsh.estimated_jaccard(sigs.astype(np.uint16), i, j, config.threshold)
        ok = s >= config.threshold
        n_ref_alive = int(np.count_nonzero(alive < n_reference)) if n_reference else 0
        parent, best = lsh.greedy(len(alive), i[ok], j[ok], s[ok], protected=n_ref_alive,
                                  only_protected_parents=config.against_only and n_reference > 0)
        removed = parent >= 0
        dup_of[alive[removed]] = alive[parent[removed]]
        sim[alive[removed]] = best[removed]
        stage[alive[removed]] = NEAR
        info = {"bands": bands, "rows": rows, "candidate_pairs": int(len(i)), "verified_pairs": int(ok.sum())}
    return Clusters(dup_of, sim, stage, info)


def sketch_records(records: Sequence[Conversation], config: DedupConfig) -> Sketches:
    """Exact keys and MinHash signatures of records: a pure function of each record (shards sketch anywhere)."""
    fields = parse_fields(config.fields)
    return sketch_parallel([dedup_text(c, fields) for c in records], config)


def drop_duplicates(
    records: Sequence[Conversation], clusters: Clusters, config: DedupConfig, log: RunLog,
    reference: Sequence[Conversation] = (),
) -> tuple[list[Conversation], list[dict[str, Any]]]:
    """Apply clustering decisions made over reference + records: (kept records in order, clusters.jsonl rows).
    Removed records go to `log` as kind "duplicates" (their intake was counted by whoever read them)."""
    fields = parse_fields(config.fields)
    everything = [*reference, *records]
    kept: list[Conversation] = []
    audit: list[dict[str, Any]] = []
    for k, conv in enumerate(records, start=len(reference)):
        parent = int(clusters.dup_of[k])
        if parent < 0:
            kept.append(conv)
            continue
        of_reference = parent < len(reference)
        how = "exact" if clusters.stage[k] == EXACT else "near"
        reason = f"{how} duplicate" + (" of reference" if of_reference else "")
        similarity = round(float(clusters.similarity[k]), 4)
        target = everything[parent].origin or f"record {parent}"
        log.drop(conv.origin, reason, source_row(conv), kind="duplicates", duplicate_of=target, similarity=similarity)
        audit.append({"origin": conv.origin, "duplicate_of": target, "similarity": similarity, "stage": how,
                      "reference": of_reference, "text": dedup_text(conv, fields)[:200],
                      "kept_text": dedup_text(everything[parent], fields)[:200]})
    log.info["dedup"] = {"threshold": config.threshold, "num_perm": config.num_perm, "shingle": config.shingle,
                         "fields": config.fields, "keep": config.keep, "reference_records": len(reference),
                         **clusters.info}
    return kept, audit


def cluster_sizes(clusters: Clusters, n_reference: int = 0) -> list[int]:
    """Records per cluster (a kept record plus everything removed as its duplicate), largest first."""
    dup_of = clusters.dup_of
    removed = np.flatnonzero(dup_of[n_reference:] >= 0) + n_reference
    if not len(removed):
        return []
    roots = dup_of[removed]
    while (chained := dup_of[roots] >= 0).any():  # an exact copy's head may itself be a near duplicate
        roots = np.where(chained, dup_of[roots], roots)
    _, counts = np.unique(roots, return_counts=True)
    return sorted((int(c) + 1 for c in counts), reverse=True)


def dedup_records(
    records: list[Conversation], config: DedupConfig, log: RunLog,
    against: list[Conversation] | None = None, clusters_path: str | None = None,
) -> list[Conversation]:
    """The whole stage in one process: sketch, cluster, drop; `clusters_path` gets the review file."""
    reference = list(against or [])
    clusters = cluster([sketch_records(reference, config), sketch_records(records, config)], config,
                       n_reference=len(reference))
    kept, audit = drop_duplicates(records, clusters, config, log, reference)
    if clusters_path:
        from ..io import write_rows

        write_rows(clusters_path, audit)
    return kept
