"""The select stage: keep the best records by a score, with a threshold, a top-k, a token budget, per-group
quotas and Deita's diversity rule.

    SelectConfig
    select_files(paths, config, log, emit, *, from_format=None, ranked_rows=PATH) -> dict (stats)
    select_records(records, config, log, emit, *, ranked_rows=PATH) -> dict (stats)   (records already read)
        emits the selected records in input order; every other record goes to `log` (kind "filtered") with why:
        `no score NAME`, `flag NAME`, `below threshold`, `quota` (the group's --top-k is full), `not in the top K`,
        `over the token budget`, `near selected record FILE:LINE` (with its similarity)
    Walk(...)                                the walk itself, over arrays (what select_records and the tests use)
    brute_force_near(...)                    the diversity rule by comparing with every selected record (reference)

How (one pass to read, one to write, about 40 bytes a record in memory plus the records taken): pass 1 reads
each record's score, group, flags and token count into arrays and its canonical form into a file of ranked rows beside
the output; records are walked best first (ties: input order); only the records the walk reaches are read
back from that file and sketched. The diversity rule is Deita's done right: a record is compared with the
records ALREADY SELECTED, not with the whole pool, through an incremental LSH index over their MinHash
signatures (word 1-2-grams, as dedup's default). The banding is chosen so that a pair at or above
--similarity always shares a band (more bands than the mismatches such a pair can have: pigeonhole), and every
candidate is verified on the signatures, so the result equals comparing with every selected record
(`brute_force_near`); a test and benchmarks/selection.py check that.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import InstructgenError
from ..formats import source_row
from ..record import Conversation
from ..runlog import RunLog

BATCH = 512  # records sketched at once when the walk reaches them
NAME = re.compile(r"^[\w.\-]+$")


class SelectConfig(BaseModel):
    """The select stage: the [select] section of a pipeline config and `instructgen select`'s flags."""

    model_config = ConfigDict(extra="forbid")

    by: str = Field("alpagasus", description="the score to rank by: a name in meta.scores, or a product of names "
                    "such as deita-complexity*deita-quality", json_schema_extra={"metavar": "SCORE"})
    top_k: int | None = Field(None, ge=1, description="keep at most this many (per group with --per)",
                              json_schema_extra={"metavar": "N"})
    min: float | None = Field(None, description="keep only records scoring at least this (AlpaGasus: 4.5)",
                              json_schema_extra={"metavar": "X"})
    budget_tokens: int | None = Field(None, ge=1, description="keep records best first while their estimated "
                                      "tokens (4 characters, or 1 CJK character, a token) fit this total (per group "
                                      "with --per)", json_schema_extra={"metavar": "N"})
    diverse: bool = Field(False, description="skip a record near one already selected (estimated Jaccard of word "
                          "1-2-grams >= --similarity): Deita's rule")
    similarity: float = Field(0.7, gt=0, lt=1, description="with --diverse: the similarity that counts as near",
                              json_schema_extra={"metavar": "F"})
    per: str | None = Field(None, description="quotas per group: language (meta.language, else detected), source "
                            "(the input file), or a FIELD of the record's meta or extra; --top-k and "
                            "--budget-tokens then apply to each group", json_schema_extra={"metavar": "GROUP"})
    drop_flags: tuple[str, ...] = Field((), description="drop records whose meta.scores flag is set (from "
                                        "`score --judge signals`): refusal,needs_media,...",
                                        json_schema_extra={"metavar": "A,B"})
    num_perm: int = Field(128, ge=16, le=512, description="with --diverse: MinHash permutations")
    seed: int = Field(1, description="with --diverse: MinHash seed")

    @field_validator("by")
    @classmethod
    def _by(cls, value: str) -> str:
        parse_by(value)
        return value

    @field_validator("drop_flags", mode="before")
    @classmethod
    def _flags(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return tuple(v.removeprefix("flag_") for v in value)


def parse_by(spec: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in str(spec).split("*"))
    if not names or any(not NAME.match(n) for n in names):
        raise ValueError(f"expected a score name or a product of names (a*b), got {spec!r}")
    return names


def score_of(scores: Any, names: Sequence[str]) -> float | str:
    """The product of the named scores, or the name of the first one missing (or not a number)."""
    if type(scores) is not dict:
        scores = {}
    value = 1.0
    for name in names:
        v = scores.get(name)
        if not _is_number(v):
            return name
        value *= v
    return float(value)


def _is_number(v: Any) -> bool:
    if type(v) is float:  # the common case first (JSON numbers); NaN is no score
        return v == v
    return type(v) is int or (isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v))


SKIP_KEYS = frozenset({"meta", "from", "role", "id", "type", "name", "tool_call_id"})  # labels, not the record's text


def row_texts(value: Any, out: list[str]) -> list[str]:
    """The text of a row as its format writes it: every string value, in order, but meta and role labels."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in SKIP_KEYS:
                row_texts(item, out)
    elif isinstance(value, list):
        for item in value:
            row_texts(item, out)
    return out


def estimated_tokens(text: str) -> int:
    """About 4 characters a token, 1 a CJK character."""
    cjk = len(_CJK.findall(text))
    return (len(text) - cjk) // 4 + cjk + 1


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")


def signatures(texts: Sequence[str], num_perm: int, seed: int) -> np.ndarray:
    """MinHash signatures (uint32[n, num_perm]) of word 1-2-grams: dedup's tokens and hashing."""
    from ..curate.minhash import minhash, ngram_range_hashes
    from ..curate.text import token_ids

    ids, lens = token_ids(list(texts))
    hashes, counts = ngram_range_hashes(ids, lens, 1, 2)
    return minhash(hashes, counts, num_perm, seed)


def needed_matches(similarity: float, num_perm: int) -> int:
    """Equal signature values a pair needs to be near: estimated Jaccard = matches / num_perm >= similarity."""
    return math.ceil(similarity * num_perm - 1e-9)


def band_rows(similarity: float, num_perm: int) -> int:
    """The most rows per band such that a near pair surely shares a band: it differs in at most
    num_perm - needed positions, so with more bands than that one band has no difference (pigeonhole)."""
    mismatches = num_perm - needed_matches(similarity, num_perm)
    return max(r for r in range(1, num_perm + 1) if num_perm // r > mismatches)


class NearIndex:
    """The selected records' signatures, banded into one hash table (band keys are salted by band, so one
    table serves every band), growing as records are selected."""

    def __init__(self, similarity: float, num_perm: int):
        self.need = needed_matches(similarity, num_perm)
        self.rows = band_rows(similarity, num_perm)
        self.bands = num_perm // self.rows
        self.table: dict[int, list[int]] = {}
        self.sigs = np.empty((1024, num_perm), dtype=np.uint32)
        self.size = 0

    def keys(self, sigs: np.ndarray) -> list[list[int]]:
        from ..curate.lsh import band_hashes

        if not len(sigs):
            return []
        return np.stack([band_hashes(sigs, b, self.rows) for b in range(self.bands)], axis=1).tolist()

    def nearest(self, sig: np.ndarray, keys: list[int]) -> tuple[int, float] | None:
        """(slot, similarity) of the most similar selected record at or above the threshold (ties: the
        earliest selected), or None."""
        found: set[int] = set()
        get = self.table.get
        for key in keys:
            hit = get(key)
            if hit:
                found.update(hit)
        if not found:
            return None
        slots = np.fromiter(sorted(found), dtype=np.int64, count=len(found))
        matches = (self.sigs[slots] == sig).sum(axis=1)
        best = int(np.argmax(matches))
        if matches[best] < self.need:
            return None
        return int(slots[best]), float(matches[best]) / sig.shape[0]

    def add(self, sig: np.ndarray, keys: list[int]) -> int:
        if self.size == len(self.sigs):
            self.sigs = np.concatenate([self.sigs, np.empty_like(self.sigs)])
        slot = self.size
        self.sigs[slot] = sig
        self.size += 1
        table = self.table
        for key in keys:
            bucket = table.get(key)
            if bucket is None:
                table[key] = [slot]
            else:
                bucket.append(slot)
        return slot


def brute_force_near(selected: np.ndarray, sig: np.ndarray, similarity: float) -> tuple[int, float] | None:
    """The reference rule: compare with every selected signature."""
    if not len(selected):
        return None
    matches = (selected == sig).sum(axis=1)
    best = int(np.argmax(matches))
    if matches[best] < needed_matches(similarity, sig.shape[0]):
        return None
    return best, float(matches[best]) / sig.shape[0]


# reasons (codes in the walk's arrays)
SELECTED, BELOW, QUOTA, TOP_K, BUDGET, NEAR, INVALID = range(7)  # INVALID: not a record of its format
REASONS = {BELOW: "below threshold", QUOTA: "quota", TOP_K: "not in the top K", BUDGET: "over the token budget",
           NEAR: "near selected record"}


@dataclass
class Walk:
    """The walk over arrays: scores, groups (int ids), tokens; `sketch(indices)` gives signatures on demand,
    `check(indices)` whether each is a valid record (asked only of records about to be taken)."""

    scores: np.ndarray
    groups: np.ndarray
    tokens: np.ndarray
    config: SelectConfig
    sketch: Callable[[np.ndarray], np.ndarray] | None = None
    check: Callable[[np.ndarray], np.ndarray] | None = None
    brute_force: bool = False  # the diversity rule by comparing with every selected record (the reference)
    fate: np.ndarray = field(init=False)
    near_of: np.ndarray = field(init=False)  # for NEAR: the record index it is near
    near_sim: np.ndarray = field(init=False)
    sketched: int = 0

    def run(self) -> "Walk":
        n, cfg = len(self.scores), self.config
        self.fate = np.full(n, BELOW, dtype=np.uint8)  # what the walk does not reach is below --min
        self.near_of = np.full(n, -1, dtype=np.int64)
        self.near_sim = np.zeros(n, dtype=np.float32)
        order = np.lexsort((np.arange(n), -self.scores))  # best first, ties in input order
        if cfg.min is not None:
            order = order[self.scores[order] >= cfg.min]  # the rest stay BELOW
        n_groups = int(self.groups.max()) + 1 if n else 0
        taken = np.zeros(n_groups, dtype=np.int64)
        spent = np.zeros(n_groups, dtype=np.int64)
        full = 0
        index = NearIndex(cfg.similarity, cfg.num_perm) if cfg.diverse and not self.brute_force else None
        selected_rows: list[int] = []  # record index per selected slot
        brute_sigs = np.empty((0, cfg.num_perm), dtype=np.uint32)
        sigs = keys = valid = None
        base = checked = -1
        quota_kind = QUOTA if cfg.per else TOP_K
        for pos, i in enumerate(order.tolist()):
            g = self.groups[i]
            if cfg.top_k and taken[g] >= cfg.top_k:
                self.fate[i] = quota_kind
                if full == n_groups:
                    self.fate[order[pos:]] = quota_kind
                    break
                continue
            if cfg.budget_tokens and spent[g] + self.tokens[i] > cfg.budget_tokens:
                self.fate[i] = BUDGET
                continue
            if self.check is not None:
                if pos >= checked + BATCH or checked < 0:
                    checked, valid = pos, self.check(order[pos:pos + BATCH])
                if not valid[pos - checked]:
                    self.fate[i] = INVALID
                    continue
            if cfg.diverse:
                if pos >= base + BATCH or base < 0:  # sketch the next batch of the walk
                    base = pos
                    sigs = self.sketch(order[pos:pos + BATCH])
                    self.sketched += len(sigs)
                    keys = index.keys(sigs) if index is not None else None
                sig = sigs[pos - base]
                near = index.nearest(sig, keys[pos - base]) if index is not None else \
                    brute_force_near(brute_sigs, sig, cfg.similarity)
                if near is not None:
                    self.fate[i], self.near_of[i], self.near_sim[i] = NEAR, selected_rows[near[0]], near[1]
                    continue
                if index is not None:
                    index.add(sig, keys[pos - base])
                else:
                    brute_sigs = np.vstack([brute_sigs, sig[None, :]])
                selected_rows.append(i)
            self.fate[i] = SELECTED
            taken[g] += 1
            spent[g] += self.tokens[i]
            if cfg.top_k and taken[g] == cfg.top_k:
                full += 1
        return self


class _RankedRows:
    """Rows as read, one line each: the origin as a JSON string, TAB, the format's name, TAB, the row's JSON
    (its raw bytes when it has them), in a private temporary beside the output. Read back by offset (the rows
    the walk reaches) or in order (the writing pass, which splices a dropped row's JSON into its rejects entry
    without decoding it). A JSON string holds no raw TAB, so the first two TABs split a line."""

    def __init__(self, beside: str):
        from array import array

        from ..tempfiles import temp_beside

        self.path = temp_beside(beside)  # a kill -9 leaves it behind: the next run writing there removes it
        self.fh = open(self.path, "w+b")
        self.offsets = array("q")
        self.end = 0  # (tell() costs a system call per record)

    def add(self, origin: str, spec_name: bytes, row: Any) -> None:
        raw = row.raw if type(row.raw) is bytes and b"\n" not in row.raw and b"\r" not in row.raw \
            else orjson.dumps(row.data, default=str)
        line = b"%b\t%b\t%b\n" % (orjson.dumps(origin), spec_name, raw)
        self.offsets.append(self.end)
        self.fh.write(line)
        self.end += len(line)

    def read(self, index: int) -> tuple[str, str, Any]:
        self.fh.seek(self.offsets[index])
        origin, spec_name, raw = self.fh.readline().split(b"\t", 2)
        return orjson.loads(origin), spec_name.decode(), orjson.loads(raw)

    def all(self) -> Iterable[list[bytes]]:
        """[origin as JSON, format name, the row's JSON and a newline] per row, in order."""
        self.fh.flush()
        self.fh.seek(0)
        for line in self.fh:
            yield line.split(b"\t", 2)

    def close(self) -> None:
        from ..tempfiles import unlink_quietly

        self.fh.close()
        unlink_quietly(self.path)


@dataclass
class _Ranked:
    """Pass 1's arrays, one entry per ranked record (in input order)."""

    scores: list = field(default_factory=list)
    groups: list = field(default_factory=list)
    tokens: list = field(default_factory=list)
    names: dict = field(default_factory=dict)  # group -> id


def select_files(paths: Sequence[str], config: SelectConfig, log: RunLog, emit: Callable[[Conversation], None], *,
                 from_format: str | None = None, ranked_rows: str = "select.ranked") -> dict[str, Any]:
    """The stage over files: rows are ranked as read (their meta.scores), only those the walk reaches are
    sketched and only the selected ones parsed into records."""
    from ..convert import ReadOptions, open_source

    opts = ReadOptions(from_format=from_format)
    sources = (open_source(path, log, opts) for path in paths)  # (format, rows) per file, opened in turn
    return _select(sources, config, log, emit, ranked_rows, count_intake=True)


def select_records(records: Iterable[Conversation], config: SelectConfig, log: RunLog,
                   emit: Callable[[Conversation], None], *, ranked_rows: str = "select.ranked") -> dict[str, Any]:
    """The stage over records already read (their intake counted by whoever read them)."""
    from ..formats import get
    from ..rows import Row

    sources = ((get(conv.source_format or "alpaca"), [Row(source_row(conv), conv.origin)]) for conv in records)
    return _select(sources, config, log, emit, ranked_rows, count_intake=False)


def _select(sources: Iterable, config: SelectConfig, log: RunLog, emit: Callable[[Conversation], None],
            rows_path: str, count_intake: bool) -> dict[str, Any]:
    ranked_rows_file = _RankedRows(rows_path)
    try:
        ranked, specs = _rank(sources, config, log, ranked_rows_file, count_intake)

        def sketch(indices: np.ndarray) -> np.ndarray:
            texts = ["\n".join(row_texts(ranked_rows_file.read(int(i))[2], [])) for i in indices]
            return signatures(texts, config.num_perm, config.seed)
        def check(indices: np.ndarray) -> np.ndarray:
            rows = (ranked_rows_file.read(int(i)) for i in indices)
            return np.array([_is_record(specs[spec_name], data) for _, spec_name, data in rows], dtype=bool)
        walk = Walk(np.asarray(ranked.scores, dtype=np.float64), np.asarray(ranked.groups, dtype=np.int64),
                    np.asarray(ranked.tokens, dtype=np.int64), config, sketch=sketch, check=check).run()
        origins = {int(j): ranked_rows_file.read(int(j))[0] for j in np.unique(walk.near_of[walk.near_of >= 0])}
        _write(ranked_rows_file, specs, walk, origins, log, emit, config)
    finally:
        ranked_rows_file.close()
    return walk_stats(walk, ranked.names, config)


def _rank(sources: Iterable, config: SelectConfig, log: RunLog, ranked_rows_file: _RankedRows, count_intake: bool
          ) -> tuple[_Ranked, dict[str, Any]]:
    """Pass 1: each row's rank value, group and tokens into arrays, the row into the ranked rows file; rows that cannot be
    ranked go to `log` with why."""
    names, flags = parse_by(config.by), config.drop_flags
    group_of = grouper(config.per)
    need_text = bool(config.budget_tokens) or config.per == "language"
    ranked, specs = _Ranked(), {}
    scores_out, groups_out, tokens_out, group_ids = ranked.scores, ranked.groups, ranked.tokens, ranked.names
    taken = 0
    try:
        for spec, rows in sources:
            specs[spec.name] = spec
            spec_name = spec.name.encode()
            for row in rows:
                data = row.data
                if row.error is not None or type(data) is not dict:
                    _reject_row(log, spec, row)  # counted in and dropped, with the reason `convert` gives
                    continue
                taken += 1
                meta = data.get("meta")
                scores = (meta.get("scores") or {}) if type(meta) is dict else _scores(data, spec, log, row.origin)
                if scores is None:
                    continue
                value = rank_value(scores, names, flags)
                if type(value) is str:
                    log.drop(row.origin, value, data, kind="filtered")
                    continue
                text = "\n".join(row_texts(data, [])) if need_text else ""
                scores_out.append(value)
                group = group_of(data, row.origin, text) if group_of else ""
                groups_out.append(group_ids.setdefault(group, len(group_ids)))
                tokens_out.append(estimated_tokens(text) if need_text else 0)
                ranked_rows_file.add(row.origin, spec_name, row)
    finally:
        if count_intake:
            log.took_in(taken)
    ranked_rows_file.fh.flush()
    return ranked, specs


def _is_record(spec: Any, data: dict) -> bool:
    from ..errors import BadRecord

    try:
        spec.parse(data).check()
    except BadRecord:
        return False
    return True


def _reject_row(log: RunLog, spec: Any, row: Any) -> None:
    from ..convert import ReadOptions, parse_rows

    for _ in parse_rows([row], spec, log, ReadOptions(from_format=spec.name)):
        pass


def _scores(data: dict, spec: Any, log: RunLog, origin: str) -> Any:
    """meta.scores of a row: its `meta` column, or (formats that keep meta elsewhere) the parsed record's."""
    meta = data.get("meta")
    if isinstance(meta, dict):
        return meta.get("scores") or {}
    conv = _parse(spec, data, origin, log)  # None: not a valid record (dropped with the reason)
    return None if conv is None else (conv.meta.get("scores") or {})


def _parse(spec: Any, data: dict, origin: str, log: RunLog) -> Conversation | None:
    from ..errors import BadRecord

    try:
        conv = spec.parse(data).check()
    except BadRecord as e:
        log.drop(origin, f"not a valid {spec.name} record: {e.reason}", data)
        return None
    conv.origin, conv.source_format = origin, spec.name
    return conv


def rank_value(scores: Any, names: Sequence[str], drop_flags: Sequence[str]) -> float | str:
    """The record's rank value, or why it is not ranked (`flag NAME`, `no score NAME`)."""
    scores = scores if isinstance(scores, dict) else {}
    for flag in drop_flags:
        if scores.get(f"flag_{flag}") or scores.get(flag) is True:
            return f"flag {flag}"
    value = score_of(scores, names)
    return f"no score {value}" if isinstance(value, str) else value


def grouper(per: str | None) -> Callable[[dict, str, str], str] | None:
    if not per:
        return None
    if per == "source":
        return lambda row, origin, text: origin.rsplit(":", 1)[0]
    if per == "language":
        from ..curate.langid import get_detector

        detector = get_detector("script+langdetect")

        def language(row: dict, origin: str, text: str) -> str:
            meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
            given = meta.get("language")
            return given if isinstance(given, str) and given else (detector.detect(text[:2000]) or "unknown")
        return language

    def field_value(row: dict, origin: str, text: str) -> str:
        meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
        value = meta.get(per, row.get(per))
        return "" if value is None else str(value)
    return field_value


def _write(ranked_rows_file: _RankedRows, specs: dict[str, Any], walk: Walk, origins: dict[int, str], log: RunLog,
           emit: Callable[[Conversation], None], config: SelectConfig) -> None:
    reasons = {code: f"not in the top {config.top_k}" if code == TOP_K else why for code, why in REASONS.items()}
    heads = {code: orjson.dumps({"stage": log.stage, "kind": "filtered", "reason": why})[:-1] + b',"origin":'
             for code, why in reasons.items()}  # a rejects entry up to its origin, per reason
    seen = dict.fromkeys(reasons, 0)
    bulk = log.entries is None
    fate, scores = walk.fate.tolist(), walk.scores.tolist()
    for k, (origin, spec_name, raw) in enumerate(ranked_rows_file.all()):
        f = fate[k]
        if f == SELECTED or f == INVALID:  # an invalid one is dropped by _parse, with the format's reason
            conv = _parse(specs[spec_name.decode()], orjson.loads(raw), orjson.loads(origin), log)
            if conv is not None:
                emit(conv)
        elif f == NEAR:
            near = origins[int(walk.near_of[k])]
            log.drop(orjson.loads(origin), "near selected record", orjson.Fragment(raw.rstrip(b"\n")), kind="filtered",
                     detail=f"near selected record {near} (similarity {walk.near_sim[k]:.2f})", near=near)
        elif bulk and seen[f] >= 3:  # the first few go through drop(): they are the reason's examples
            log.drop_serialised("filtered", reasons[f], b"%b%b,\"score\":%b,\"raw\":%b}\n" % (
                heads[f], origin, orjson.dumps(scores[k]), raw.rstrip(b"\n")))
        else:
            seen[f] += 1
            log.drop(orjson.loads(origin), reasons[f], orjson.Fragment(raw.rstrip(b"\n")), kind="filtered",
                     score=scores[k])


def walk_stats(walk: Walk, groups: dict[str, int], config: SelectConfig) -> dict[str, Any]:
    chosen = walk.fate == SELECTED
    names = {v: k for k, v in groups.items()}
    out: dict[str, Any] = {"by": config.by, "ranked": int(len(walk.fate)), "selected": int(chosen.sum()),
                           "sketched": walk.sketched}
    if len(walk.fate):
        out["score_selected"] = _summary(walk.scores[chosen])
        out["score_all"] = _summary(walk.scores)
        edges = np.histogram_bin_edges(walk.scores, bins=10)
        out["histogram"] = {"edges": [round(float(e), 4) for e in edges],
                            "all": np.histogram(walk.scores, edges)[0].tolist(),
                            "selected": np.histogram(walk.scores[chosen], edges)[0].tolist()}
    if config.per:
        out["per_group"] = {names[g]: {"ranked": int((walk.groups == g).sum()),
                                       "selected": int((chosen & (walk.groups == g)).sum())} for g in names}
    return out


def _summary(values: np.ndarray) -> dict[str, float] | None:
    if not len(values):
        return None
    return {"min": float(values.min()), "mean": round(float(values.mean()), 4), "max": float(values.max())}


def check_config(config: SelectConfig) -> None:
    if not (config.top_k or config.min is not None or config.budget_tokens or config.diverse):
        raise InstructgenError("select keeps everything: give --top-k N, --min X, --budget-tokens N or --diverse")
