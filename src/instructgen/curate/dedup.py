"""The dedup stage: exact duplicates, then MinHash/LSH near-duplicates, optionally against a reference.

Plain functions (no Prefect) for the CLI and the pipeline (these and the streamed dedup of files, in
bounded memory, make one public toolkit: dedup_toolkit, which the CLI, the Dask runner and the pipeline
import from):

    dedup_parts(conv, parts) -> tuple[str, ...]      the texts compared, one per part of `--fields`
    dedup_text(conv, fields="prompt,response") -> str  the same parts joined (for display)
    sketch(texts: Sequence[str | Sequence[str]], config) -> Sketches
        per-record exact keys, MinHash signatures (one per part) and lengths; a pure function of each
        record, so shards can be sketched anywhere and concatenated: `Sketches.concat(shards)`. A plain
        string is one part.
    sketch_records(records, config) -> Sketches     the same, of records (their `--fields` parts)
    sketch_parallel(texts, config) -> Sketches       `sketch` over shards in worker processes
    cluster(shards: Sequence[Sketches], config, n_reference=0) -> Clusters
        decisions over the concatenated shards (the first n_reference rows are a reference set that
        is never removed); the same result whatever the sharding, because it only sees the rows.
    drop_duplicates(records, clusters, config, log, reference=()) -> (kept, clusters.jsonl rows)
        applies the decisions: removed records go to `log` as kind "duplicates" (their intake is
        counted by whoever read them), kept ones are returned in input order.
    review_row(removed, kept, config, *, stage, similarity, part_similarity=None, reference=False,
               kept_origin=None) -> dict     one clusters.jsonl row (whole texts, a word diff)
    dedup_records(records, config, log, against=None, clusters_path=None) -> kept
        the whole stage in one process (sketch, cluster, drop).

What is compared (`--fields`, default `prompt,response`): each comma-separated part is compared on
its own, and two records are near duplicates only when EVERY part reaches the threshold. The prompt
(tool definitions, user messages, tool results) and the response (assistant messages with their tool
calls) are thus each near-identical: records that share a long tool description, reading passage or
template but ask or answer something else are not merged. `+` joins several parts into one
(`instruction+input`); `--fields instruction` compares prompts only. The exact key covers every
part, tool names and arguments included, and the identifiers below.

What near duplicates must share besides (`--identifiers`, `--tool-calls`, both on): the numbers of the
record with their sign, its URLs and quoted literals (text.identifiers: "square root of 256" is not
"of 625", "x - 1" not "x + 1", wikipedia('Battle of Hastings') not wikipedia('Battle of Gettysburg')),
the tool calls written in its text (`Calculator(2*3)`, `python('[2, 3]')`: code, formulas, flags and URLs as
written, case and spacing aside; a query in words by its content words in order, dedup_text.tool_argument)
and its structured tool calls, names and canonical JSON arguments. These are what a task is about;
MinHash cannot weigh them, since one changed token moves a Jaccard estimate little. Number words are
numbers (dedup_text: "three" = "3", "三个" = "3个", "twenty-one" = "21"), in tokens and identifiers alike.

The focus of each part (dedup_text.focus): a response's last message (the final answer of a dialogue), a
prompt without its long passages (a paragraph of >= 40 tokens holding >= 40 % of the message: a reading
passage, a document, a tool description). A quarter of each part's columns hash the focus's content words
(not among the most frequent words of English or Chinese, read up to a letter swap), and near duplicates
must reach FOCUS_BAR (0.8) x threshold there as well: a shared history or passage no longer makes two
different answers or questions one record. A focus of at most five content words must have the same ones
(hashed into the anchors): "They eat grass" is not "They eat hay", while a typo, an article or "please"
changes no content word. Words are shingled up to a letter swap too, so a typo changes no shingle.

Shingles (`--shingle auto` = `word:1-2`): tokens are chosen per script (each Han/kana character is a
token, every other run of letters and digits is a word, numbers included) and a record's shingles are
its tokens plus every pair of neighbouring tokens. Word order therefore counts ("Kendra made more
than Mari" is not "Mari made more than Kendra"), while one edited token changes only three shingles,
so a 10 %-edited copy of a short instruction stays near 0.75 (benchmarks/dedup.py). The same scheme
at every length: no boundary where a copy and its original are shingled differently. `word:N`,
`word:A-B` and `char:N` force another scheme.

LSH: a band is the same rows of every part, so a pair collides only where all parts agree, with
probability (product of the parts' similarities) ** rows; bands and rows are optimised for
threshold ** parts, weighing a missed pair 4 times a needless candidate (all are verified).

Memory: the index keeps 2 * num_perm * parts + 16 bytes per record (uint16 MinHash values, uint64
exact key, uint32 length, uint32 hash of identifiers, tool calls and short foci): 528 bytes a record at 128
permutations and two parts, 528 MB for a million records. The focus takes a quarter of each part's columns
rather than more of them (the same 528 bytes as before issue 18; saved signatures of the older layout are
not reused: signature_store.SIGNATURE_VERSION).
Values are kept to their low 16 bits: a chance match of two different minima (1 in 65536 a column)
moves an estimate by < 0.00002 and a band of several columns practically never collides by chance.
Clustering adds, transiently, an 8-byte hash and sort order per record for one band at a time and
the candidate pairs (16 bytes each; on the template-heavy synthetic set 3 a record at 100k records,
8 at 400k: they grow with the size of template buckets, up to bucket_cap per band).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import partial
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
from .dedup_text import MESSAGE_BREAK, display, focused, identifiers_batch, numbers_as_digits, tokens
from .minhash import minhash, ngram_range_hashes, shingle_hashes
from .text import char_ids, compact_diff, mix64, normalize_batch, sequence_keys

PARTS = ("prompt", "response", "all", "instruction", "input", "output", "user", "system")
BATCH = 20_000
PARALLEL_MIN = 200_000
PART_SEED_STEP = 1_000_003  # each part gets its own permutations, so parts collide independently
FOCUS_SEED = 7_919  # and each part's focus columns their own again
# a quarter of the columns for the focus: its content words either match (1.0, exact at any width) or differ by
# a word of three to five (<= 0.67); the whole text keeps most columns, as its estimate decides near the threshold
FOCUS_SHARE = 4
# the focus's content words must reach this share of the threshold: a different final answer or question reads
# 0.2-0.5 there; copies edited in a word or two, 0.7-1 (a bar at the threshold itself lost 10 %-edited copies)
FOCUS_BAR = 0.8
SHORT_CONTENT = 5  # a focus of this many content words or fewer must have the same ones (see _short_keys)
# a compared part holding one of these has its last message (the final answer) as its focus; others are prompts
ANSWER_PARTS = ("response", "output", "all")
# LSH banding weighs a missed pair 4 times a needless candidate: every candidate is verified anyway
# (~0.1 us), and datasketch's default (0.3, 0.7) misses 4 in 10 pairs right at the threshold; heavier
# weights (0.1, 0.9) find a little more but hold 2.3x the candidate pairs in memory (benchmarks/dedup.py)
BAND_WEIGHTS = (0.2, 0.8)
KEPT, EXACT, NEAR = 0, 1, 2


class DedupConfig(BaseModel):
    """The dedup stage's settings: the [dedup] section of a pipeline config and `instructgen dedup`'s flags."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(0.7, gt=0, lt=1, description="estimated Jaccard similarity that counts as a duplicate; "
                             "every compared part must reach it")
    num_perm: int = Field(128, ge=8, le=1024, description="MinHash permutations (2 bytes each per record and part)")
    shingle: str = Field("auto", description="auto (= word:1-2: words / Han characters and neighbouring pairs, so "
                         "word order counts), word:N, word:A-B (A- to B-grams) or char:N",
                         json_schema_extra={"metavar": "auto|word:N|word:A-B|char:N"})
    fields: str = Field("prompt,response", description="what to compare: a comma list of parts, each compared on "
                        "its own (a near duplicate needs every part near-identical); join parts into one with +. "
                        "Parts: prompt (tool definitions, user messages, tool results), response (assistant "
                        "messages and tool calls), all (every non-system message), instruction (first user "
                        "message), input, output, user, system", json_schema_extra={"metavar": "PARTS"})
    keep: Literal["first", "longest"] = Field("first", description="which record of a cluster stays")
    seed: int = Field(1, description="MinHash seed")
    identifiers: bool = Field(True, description="near duplicates must contain the same numbers (with their sign), "
                              "URLs and quoted literals: records that differ in one are different tasks")
    tool_calls: bool = Field(True, description="near duplicates must make the same tool calls (names and arguments)")
    exact: bool = Field(True, description="remove exact duplicates (same parts up to NFKC, case, spacing, "
                        "punctuation; tool names and arguments included; the same identifiers)")
    near: bool = Field(True, description="remove near duplicates (MinHash/LSH, verified)")
    against: list[Path] = Field(default_factory=list, description="reference files: records duplicating them are "
                                "dropped; the references are never changed", json_schema_extra={"nargs": "+",
                                                                                             "metavar": "REF"})
    against_only: bool = Field(False, description="with --against: only remove copies of the reference")
    bucket_cap: int = Field(64, ge=2, description="largest LSH bucket compared pairwise",
                            json_schema_extra={"cli": False})
    workers: int = Field(0, ge=0, description="processes for signatures, threads for the decisions' LSH bands (0: one "
                                            "per core; signatures of small inputs in this process)")

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
    """The compared parts of a --fields value: 'prompt,response' -> ('prompt', 'response');
    'instruction+input,output' -> ('instruction+input', 'output')."""
    parts = tuple("+".join(n.strip() for n in p.split("+")) for p in spec.split(",") if p.strip())
    bad = [n for p in parts for n in p.split("+") if n not in PARTS]
    if bad or not parts:
        raise InstructgenError(f"--fields: unknown part {', '.join(repr(b) for b in bad) or '(none)'}; use a comma "
                               f"list (+ joins parts into one) of {', '.join(PARTS)}")
    return parts


def shingle_plan(spec: str) -> tuple[str, int, int]:
    """(kind, smallest n, largest n): auto is ('word', 1, 2)."""
    if spec == "auto":
        return ("word", 1, 2)
    kind, _, n = spec.partition(":")
    lo, _, hi = n.partition("-")
    hi = hi or lo
    if kind in ("word", "char") and lo.isdigit() and hi.isdigit() and 1 <= int(lo) <= int(hi) <= 16 \
            and (kind == "word" or lo == hi):
        return (kind, int(lo), int(hi))
    raise InstructgenError(f"--shingle must be auto, word:N, word:A-B or char:N with 1 <= A <= B <= 16, got {spec!r}")


def _tool_call_text(m) -> list[str]:
    return [f"{t.name} {t.arguments}" for t in m.tool_calls]


def _canonical_arguments(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    except ValueError:
        return arguments.strip()


def tool_calls_text(conv: Conversation) -> str:
    """Every tool call of the record, in order, with its arguments in canonical JSON ('' without calls)."""
    return "\n".join(f"{t.name}({_canonical_arguments(t.arguments)})" for m in conv.messages for t in m.tool_calls)


def _part_texts(conv: Conversation, name: str, with_tools: bool = True) -> list[str]:
    # a preference pair's answers are part of the record: one prompt with two different pairs is two records
    turns = [*conv.turns, *(m for m in (conv.chosen, conv.rejected) if m is not None)]
    first_user = next((m.content for m in turns if m.role == "user"), "")
    if name == "prompt":
        tools = [json.dumps(conv.tools, ensure_ascii=False, sort_keys=True)] if conv.tools and with_tools else []
        return tools + [m.content for m in turns if m.role in ("user", "tool")]
    if name in ("response", "output"):
        return [t for m in turns if m.role == "assistant" for t in ([m.content] if m.content else []) + _tool_call_text(m)]
    if name == "all":
        return [t for m in turns for t in [m.content, *_tool_call_text(m)]]
    if name == "instruction":
        return [first_user]
    if name == "input":
        return [split_instruction(conv, first_user)[1]]
    if name == "user":
        return [m.content for m in turns if m.role == "user"]
    return [conv.system or ""]  # system


def dedup_parts(conv: Conversation, parts: Sequence[str], tools: bool = True) -> tuple[str, ...]:
    """One text per compared part (see parse_fields); `tools=False` leaves out the tool definitions."""
    return tuple(MESSAGE_BREAK.join(t for name in part.split("+") for t in _part_texts(conv, name, tools))
                 for part in parts)


def dedup_text(conv: Conversation, fields: str | Sequence[str] = "prompt,response") -> str:
    return display("\n".join(dedup_parts(conv, parse_fields(fields) if isinstance(fields, str) else tuple(fields))))


@dataclass(slots=True)
class Sketches:
    keys: np.ndarray  # uint64[n] exact-duplicate key (hash of every part's normalised text)
    sigs: np.ndarray  # uint16[n, parts, num_perm] low 16 bits of each part's MinHash values
    lengths: np.ndarray  # uint32[n] characters of the texts (for --keep longest)
    anchors: np.ndarray  # uint32[n] hash of what near duplicates must share (anchor_texts; the content words of
    # a short focus, _short_keys), 0 for nothing

    def __len__(self) -> int:
        return len(self.keys)

    @staticmethod
    def concat(shards: Sequence["Sketches"]) -> "Sketches":
        shards = [s for s in shards if len(s)] or list(shards[:1])
        if not shards:
            return Sketches(np.empty(0, np.uint64), np.empty((0, 0, 0), np.uint16), np.empty(0, np.uint32),
                            np.empty(0, np.uint32))
        if len(shards) == 1:
            return shards[0]
        return Sketches(*(np.concatenate([getattr(s, f) for s in shards]) for f in ("keys", "sigs", "lengths", "anchors")))


@dataclass(slots=True)
class Clusters:
    dup_of: np.ndarray  # int64[n]: -1 kept, else the index of the kept record it duplicates
    similarity: np.ndarray  # float32[n]: estimated Jaccard to that record, the least over parts (1.0 for exact)
    stage: np.ndarray  # int8[n]: KEPT, EXACT or NEAR
    info: dict = field(default_factory=dict)
    part_similarity: np.ndarray | None = None  # float32[n, parts]: each part's estimate


def _fallback_keys(texts: Sequence[str]) -> np.ndarray:
    """Keys for texts without a single letter or digit: their stripped, case-folded text."""
    out = np.empty(len(texts), dtype=np.uint64)
    for k, raw in enumerate(texts):
        out[k] = int.from_bytes(hashlib.blake2b(("\x01" + raw.strip().casefold()).encode(), digest_size=8).digest(), "little")
    return out


def _sketch_part(texts: list[str], config: DedupConfig, part: int, answer: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(exact keys uint64[n], MinHash values uint16[n, num_perm], short keys uint64[n]) of one part: the first three quarters
    of the columns hash the whole text's shingles, the last quarter its focus's content words (dedup_text.focus:
    the final answer of an answer part, a prompt without its long passages)."""
    kind, lo, hi = shingle_plan(config.shingle)
    n = len(texts)
    changed = focused(texts, passages=not answer)
    differ = [k for k, _ in changed]
    tok = tokens(list(texts) + [f for _, f in changed])
    word_lens = tok.lens[:n]
    words = tok.ids[:int(word_lens.sum())]
    keys = sequence_keys(words, word_lens)
    empty = word_lens == 0
    if empty.any():
        keys[empty] = _fallback_keys([texts[k] for k in np.flatnonzero(empty)])
    # shingles of words read up to a letter swap and without "please": a typo or asking nicely changes no
    # shingle (the exact key reads the words as written)
    ids, lens = _plain_words(tok, n) if kind == "word" else char_ids(normalize_batch(texts))
    whole = whole_columns(config.num_perm)
    seed = config.seed + PART_SEED_STEP * part
    sigs = np.empty((n, config.num_perm), dtype=np.uint16)
    # a record with no letters or digits shingles as its own exact key, not as "empty"
    hashes, counts = ngram_range_hashes(ids, lens, lo, hi, empty_ids=keys[lens == 0])
    sigs[:, :whole] = minhash(hashes, counts, whole, seed, contiguous=False)
    rows = np.arange(n)
    rows[differ] = np.arange(n, n + len(differ))
    words, counts = _content_words(tok, rows)
    content, counts = shingle_hashes(words, counts, 1, empty_ids=keys[_content_words_empty(tok, rows)])
    sigs[:, whole:] = minhash(content, counts, config.num_perm - whole, seed + FOCUS_SEED, contiguous=False)
    return keys, sigs, _short_keys(content, counts)


def _short_keys(content: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """uint64[n]: for a focus of at most SHORT_CONTENT content words, a hash of them (in any order); else 0.
    Such records must have the same: one content word of a few is the whole task (grass or hay), and an
    estimate over a few words is too coarse to tell 0.6 from 0.7."""
    starts = np.cumsum(counts) - counts
    total = np.add.reduceat(mix64(content), starts) if len(counts) else np.zeros(0, np.uint64)
    return np.where(counts <= SHORT_CONTENT, total | np.uint64(1), np.uint64(0))


def _plain_words(tok, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(word ids up to a letter swap, count per record) of the first n token rows, POLITENESS left out."""
    lens = tok.lens[:n]
    total = int(lens.sum())
    keep = ~tok.polite[:total]
    if keep.all():
        return tok.skeleton[:total], lens
    owner = np.repeat(np.arange(n), lens)
    return tok.skeleton[:total][keep], np.bincount(owner[keep], minlength=n).astype(np.int64)


def whole_columns(of: "int | Sketches") -> int:
    """Columns of a part's signature for its whole text; the rest (a quarter) are its focus's content words."""
    num_perm = of if isinstance(of, int) else of.sigs.shape[2]
    return num_perm - num_perm // FOCUS_SHARE


def _content_words_empty(tok, rows: np.ndarray) -> np.ndarray:
    return tok.lens[rows] == 0


def _content_words(tok, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(content-word ids, count per record) of the token rows `rows`; a record without content words keeps
    its words but "please" (a record of "thank you" is still compared on them), or all of them."""
    starts = np.cumsum(tok.lens) - tok.lens
    lens = tok.lens[rows]
    total = int(lens.sum())
    at = np.repeat(starts[rows] - (np.cumsum(lens) - lens), lens) + np.arange(total)
    owner = np.repeat(np.arange(len(rows)), lens)
    mask = tok.content[at]
    for fallback in (~tok.polite[at], np.ones(total, dtype=bool)):
        some = np.bincount(owner[mask], minlength=len(rows)) > 0
        mask |= ~some[owner] & fallback
    return tok.skeleton[at[mask]], np.bincount(owner[mask], minlength=len(rows)).astype(np.int64)


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


PLAIN_PARTS = {"prompt", "response", "all", "user", "system", "output"}


def plain_parts(plain, parts: Sequence[str]) -> tuple[str, ...] | None:
    """dedup_parts of a plain record (a format's `read_plain`: system, (user, assistant) pairs, meta), the
    same texts its Conversation gives, without building one; None for parts a plain record cannot tell
    (instruction and input need the format's split)."""
    system, pairs, _meta = plain
    texts = []
    for part in parts:
        chunk = []
        for name in part.split("+"):
            if name not in PLAIN_PARTS:
                return None
            if name == "prompt" or name == "user":
                chunk += [u for u, _ in pairs]
            elif name == "response" or name == "output":
                chunk += [a for _, a in pairs if a]
            elif name == "all":
                chunk += [t for pair in pairs for t in pair]
            else:
                chunk.append(system or "")
        texts.append(MESSAGE_BREAK.join(chunk))
    return tuple(texts)


def anchor_texts(records: Sequence[Conversation], config: DedupConfig,
                 parts_texts: Sequence[Sequence[str]] | None = None) -> list[str]:
    """What near duplicates must share, as text per record: the identifiers of its compared messages
    (tool definitions left out: their wording is schema, not task) and its tool calls. `parts_texts`:
    the records' dedup_parts, when already made (reused for records without tool definitions)."""
    parts = parse_fields(config.fields)
    texts = ["\n".join(dedup_parts(c, parts, tools=False) if c.tools or parts_texts is None else parts_texts[k])
             for k, c in enumerate(records)] if config.identifiers else None
    calls = [tool_calls_text(c) if config.tool_calls else "" for c in records]
    return join_anchors(config, texts, calls)


def join_anchors(config: DedupConfig, identifier_texts: Sequence[str] | None, calls: Sequence[str]) -> list[str]:
    """Anchor texts from the texts identifiers are found in and the tool calls, per record."""
    found = identifiers_batch(list(identifier_texts)) if config.identifiers else [""] * len(calls)
    return [f + ("\x00" + c if c else "") for f, c in zip(found, calls)]


def _anchor_keys(anchors: Sequence[str]) -> np.ndarray:
    """uint32[n] hashes of the anchor texts; 0 for an empty one."""
    import xxhash

    digest = xxhash.xxh3_64_intdigest  # (a stable hash, 5x blake2b's speed on short texts)
    return np.fromiter((digest(a.encode()) & 0xFFFFFFFF if a else 0 for a in anchors), dtype=np.uint32, count=len(anchors))


def _sketch_batch(rows: Sequence[str | Sequence[str]], config: DedupConfig, anchors: Sequence[str] | None = None
                  ) -> Sketches:
    import polars as pl

    n = len(rows)
    if set(map(type, rows)) <= {str}:  # plain strings: one part
        raw_columns: list[Sequence[str]] = [rows]
    else:
        raw = [(r,) if isinstance(r, str) else tuple(r) for r in rows]
        if len(set(map(len, raw))) > 1:
            raise ValueError("every record needs the same number of parts")
        raw_columns = [list(c) for c in zip(*raw)]
    n_parts = len(raw_columns) if n else 1
    # number words as digits once, for tokens and identifiers alike
    columns = [numbers_as_digits(list(c)) for c in raw_columns]
    keys = np.zeros(n, dtype=np.uint64)
    sigs = np.empty((n, n_parts, config.num_perm), dtype=np.uint16)
    names = parse_fields(config.fields)
    answers = [len(names) == n_parts and any(n in ANSWER_PARTS for n in names[p].split("+")) for p in range(n_parts)]
    short = np.zeros(n, dtype=np.uint64)
    for p in range(n_parts if n else 0):
        part_keys, sigs[:, p], part_short = _sketch_part(columns[p], config, p, answers[p])
        keys = mix64(keys) ^ part_keys if p else part_keys  # ordered: (a, b) and (b, a) differ
        short = mix64(short ^ part_short)
    lengths = np.zeros(n, dtype=np.uint32)
    for c in raw_columns:
        lengths += pl.Series(c, dtype=pl.String).str.len_chars().to_numpy().astype(np.uint32)
    if anchors is None:  # plain texts: their own identifiers
        joined = columns[0] if len(columns) == 1 else \
            pl.select(pl.concat_str([pl.Series(c, dtype=pl.String) for c in columns], separator="\n")).to_series().to_list()
        anchors = identifiers_batch(joined, digits=True) if config.identifiers and n else [""] * n
    # near duplicates share the anchors and, part by part, the content words of a short focus
    anchor_keys = _anchor_keys(anchors)
    if n_parts and n:
        mixed = (mix64(anchor_keys.astype(np.uint64) ^ short) & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        anchor_keys = np.where(mixed == 0, np.uint32(1), mixed)
    # exact copies share them too: the token key alone cannot tell "x - 1" from "x + 1"
    has = anchor_keys != 0
    keys[has] = mix64(keys[has] ^ anchor_keys[has].astype(np.uint64))
    return Sketches(keys, sigs, lengths, anchor_keys)


def sketch(texts: Sequence[str | Sequence[str]], config: DedupConfig, anchors: Sequence[str] | None = None
           ) -> Sketches:
    """Sketches of records given as their parts' texts (a str is one part); `anchors`: each record's
    anchor_texts entry (default: the identifiers of the texts)."""
    if not len(texts):
        return _sketch_batch([], config)
    return Sketches.concat([_sketch_batch(texts[s:s + BATCH], config, anchors[s:s + BATCH] if anchors else None)
                            for s in range(0, len(texts), BATCH)])


def sketch_parallel(texts: Sequence[str | Sequence[str]], config: DedupConfig, anchors: Sequence[str] | None = None
                    ) -> Sketches:
    """`sketch` over contiguous shards in worker processes; the same result as one process."""
    workers = config.workers or ((os.cpu_count() or 1) if len(texts) >= PARALLEL_MIN else 1)
    if workers <= 1 or len(texts) < 2 * BATCH:
        return sketch(texts, config, anchors)
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    step = -(-len(texts) // (workers * 4))  # a few shards per worker evens out the load
    starts = range(0, len(texts), step)
    shards = [list(texts[s:s + step]) for s in starts]
    anchor_shards = [list(anchors[s:s + step]) if anchors else None for s in starts]
    # spawn, not fork: polars' thread pool does not survive a fork
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        return Sketches.concat(list(pool.map(sketch, shards, [config] * len(shards), anchor_shards)))


def signatures(texts: Sequence[str | Sequence[str]], config: DedupConfig | None = None) -> np.ndarray:
    """uint16[n, parts, num_perm]."""
    return sketch(list(texts), config or DedupConfig()).sigs


def _priority(sk: Sketches, config: DedupConfig, n_reference: int) -> np.ndarray:
    """Row order of the decisions: the reference first (always kept), then input rows in input order
    or longest first."""
    n = len(sk)
    if config.keep == "longest" and n > n_reference:
        rest = np.arange(n_reference, n)
        return np.concatenate((np.arange(n_reference), rest[np.lexsort((rest, -sk.lengths[rest].astype(np.int64)))]))
    return np.arange(n)


def _exact(sk: Sketches, prio: np.ndarray, config: DedupConfig, n_reference: int) -> tuple[np.ndarray, np.ndarray]:
    """(removed rows, the row each duplicates)."""
    n = len(sk)
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
    return prio[is_dup], prio[head[is_dup]]


def cluster(shards: Sequence[Sketches], config: DedupConfig, n_reference: int = 0, pairs=None) -> Clusters:
    """`pairs`: what finds the verified candidate pairs, called as lsh.verified_pairs (the default, in this
    process); dedup_dask.DaskRunner passes one that groups the band keys on a Dask cluster."""
    sk = Sketches.concat(list(shards))
    n = len(sk)
    n_parts = sk.sigs.shape[1] if n else 1
    prio = _priority(sk, config, n_reference)
    dup_of = np.full(n, -1, dtype=np.int64)
    sim = np.zeros(n, dtype=np.float32)
    part_sim = np.zeros((n, n_parts), dtype=np.float32)
    stage = np.zeros(n, dtype=np.int8)
    if config.exact and n:
        removed, of = _exact(sk, prio, config, n_reference)
        dup_of[removed], sim[removed], part_sim[removed], stage[removed] = of, 1.0, 1.0, EXACT
    info: dict = {}
    if config.near and n:
        alive = prio[dup_of[prio] == -1]  # surviving rows, in priority order (positions below index it)
        # a band collides when every part agrees on its rows: with independent permutations per part
        # that happens with probability (product of the parts' similarities) ** rows
        bands, rows = lsh.band_params(config.threshold ** n_parts, sk.sigs.shape[2], *BAND_WEIGHTS)
        def verified(i: np.ndarray, j: np.ndarray) -> np.ndarray:
            s = lsh.weakest(lsh.verify_parts(sk.sigs, alive[i], alive[j], config.threshold, whole_columns(sk),
                                             FOCUS_BAR * config.threshold))
            return np.where((s >= config.threshold) & (sk.anchors[alive[i]] == sk.anchors[alive[j]]), s, -1.0)

        find = pairs or partial(lsh.verified_pairs, threads=config.workers or os.cpu_count() or 1)
        i, j, s, n_candidates = find(sk.sigs, bands, rows, config.bucket_cap, alive, verified)
        n_ref_alive = int(np.count_nonzero(alive < n_reference)) if n_reference else 0
        parent, best = lsh.greedy(len(alive), i, j, s, protected=n_ref_alive,
                                  only_protected_parents=config.against_only and n_reference > 0)
        info = {"bands": bands, "rows": rows, "parts": n_parts, "candidate_pairs": n_candidates,
                "verified_pairs": int(len(i))}
        del i, j, s
        removed = parent >= 0
        dup_of[alive[removed]] = alive[parent[removed]]
        sim[alive[removed]] = best[removed]
        stage[alive[removed]] = NEAR
        part_sim[alive[removed]] = lsh.verify_parts(sk.sigs, alive[parent[removed]], alive[removed],
                                                     split=whole_columns(sk))
    return Clusters(dup_of, sim, stage, info, part_sim)


def sketch_records(records: Sequence[Conversation], config: DedupConfig) -> Sketches:
    """Exact keys and MinHash signatures of records: a pure function of each record (shards sketch anywhere)."""
    parts = parse_fields(config.fields)
    texts = [dedup_parts(c, parts) for c in records]
    return sketch_parallel(texts, config, anchor_texts(records, config, texts))


def review_row(removed: Conversation, kept: Conversation | None, config: DedupConfig, *, stage: str,
               similarity: float, part_similarity: Sequence[float] | None = None, reference: bool = False,
               kept_origin: str | None = None, kept_parts: Sequence[str] | None = None) -> dict[str, Any]:
    """One clusters.jsonl row: the removed record, the one it duplicates, each part's similarity, both
    whole texts and a compact word diff (kept -> removed) so a person can judge the pair. `kept` may be
    None when only its origin (and `kept_parts`, its dedup_parts) are known."""
    parts = parse_fields(config.fields)
    mine = tuple(map(display, dedup_parts(removed, parts)))
    theirs = dedup_parts(kept, parts) if kept is not None else (tuple(kept_parts) if kept_parts is not None else None)
    theirs = tuple(map(display, theirs)) if theirs is not None else None
    each = part_similarity if part_similarity is not None else [similarity] * len(parts)
    return {"origin": removed.origin, "duplicate_of": kept_origin or (kept.origin if kept is not None else ""),
            "similarity": round(float(similarity), 4), "stage": stage, "reference": reference,
            "parts": {p: round(float(v), 4) for p, v in zip(parts, each)},
            "diff": {p: compact_diff(b, a) for p, a, b in zip(parts, mine, theirs)} if theirs else None,
            "text": dict(zip(parts, mine)), "kept_text": dict(zip(parts, theirs)) if theirs else None}


def drop_duplicates(
    records: Sequence[Conversation], clusters: Clusters, config: DedupConfig, log: RunLog,
    reference: Sequence[Conversation] = (),
) -> tuple[list[Conversation], list[dict[str, Any]]]:
    """Apply clustering decisions made over reference + records: (kept records in order, clusters.jsonl rows).
    Removed records go to `log` as kind "duplicates" (their intake was counted by whoever read them)."""
    everything = [*reference, *records]
    kept: list[Conversation] = []
    audit: list[dict[str, Any]] = []
    for k, conv in enumerate(records, start=len(reference)):
        parent = int(clusters.dup_of[k])
        if parent < 0:
            kept.append(conv)
            continue
        head = everything[parent]
        audit.append(drop_duplicate(conv, k, clusters, config, log, len(reference), head.origin or f"record {parent}",
                                    dedup_parts(head, parse_fields(config.fields))))
    log.info["dedup"] = dedup_info(config, clusters, len(reference))
    return kept, audit


def drop_duplicate(conv: Conversation, k: int, clusters: Clusters, config: DedupConfig, log: RunLog,
                   n_reference: int, kept_origin: str, kept_parts: Sequence[str] | None) -> dict[str, Any] | None:
    """Drop record `k` (a duplicate of the record whose origin and dedup_parts are given) into `log`;
    its clusters.jsonl row (None without `kept_parts`: no row is wanted, and its word diff is the cost)."""
    of_reference = int(clusters.dup_of[k]) < n_reference
    if kept_parts is None:
        stage = "exact" if clusters.stage[k] == EXACT else "near"
        log.drop(conv.origin, f"{stage} duplicate" + (" of reference" if of_reference else ""), source_row(conv),
                 kind="duplicates", duplicate_of=kept_origin, similarity=round(float(clusters.similarity[k]), 4))
        return None
    row = review_row(conv, None, config, stage="exact" if clusters.stage[k] == EXACT else "near",
                     similarity=clusters.similarity[k], reference=of_reference,
                     part_similarity=None if clusters.part_similarity is None else clusters.part_similarity[k],
                     kept_origin=kept_origin, kept_parts=kept_parts)
    reason = f"{row['stage']} duplicate" + (" of reference" if of_reference else "")
    log.drop(conv.origin, reason, source_row(conv), kind="duplicates", duplicate_of=row["duplicate_of"],
             similarity=row["similarity"])
    return row


def dedup_info(config: DedupConfig, clusters: Clusters, n_reference: int) -> dict[str, Any]:
    """What stats.json says of a dedup run."""
    return {"threshold": config.threshold, "num_perm": config.num_perm, "shingle": config.shingle,
            "fields": config.fields, "keep": config.keep, "reference_records": n_reference, **clusters.info}


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
