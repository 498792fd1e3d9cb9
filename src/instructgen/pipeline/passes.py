"""The stages over the whole run: after dedup's decisions, before the write pass, each over every record that
reached it. Scoring could run per shard, but it would then pay a judge for records dedup removes; selection
must rank every record before it can keep one.

    RUN_STAGES                          the declared list, in order: name, section(config) -> its config or
                                        None (off), apply(stream, config, layout) -> Pass
    Stream(spools, passes)              the records that every pass so far kept, in record order
    Pass(kept, spool, log)              what one stage kept (a bool per spooled record) and, when it changed
                                        the records (score adds meta.scores), a spool of the kept ones as
                                        they now are, in order

A new run-wide stage is one entry in RUN_STAGES: `pipeline.run` runs the enabled ones in order, each over the
Stream the earlier ones leave, and the write pass and the Hub step read the last Stream. Dedup's decisions
are the first Pass (a mask, no spool), so the indices of every pass are those of the spooled records and the
dedup rejects keep their place. Nothing holds the records: a Pass is a bool per record plus at most one spool
file.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import orjson
from pydantic import BaseModel

from ..errors import InstructgenError
from ..formats import source_row
from ..record import Conversation
from ..runlog import RunLog
from . import stages
from .stages import Carrier, Spools

EXAMPLES_PER_PLACE = 2  # records shown at the top, middle and bottom of the ranking in the report
LANGUAGE_SAMPLE = 5_000  # ranked records whose language is detected for the report's shares


class Pass(Carrier):
    """`kept`: bool per spooled record, True when this stage kept it (False for records that never reached
    it); `spool`: the kept records as this stage left them, in order (None: unchanged)."""

    __slots__ = ("label", "kept", "spool", "log")

    def __init__(self, name: str, kept: np.ndarray, spool: Spools | None, log: RunLog | None):
        self.label, self.kept, self.spool, self.log = name, kept, spool, log


class Stream(Carrier):
    """The spooled records through a chain of passes."""

    __slots__ = ("label", "spools", "passes")

    def __init__(self, spools: Spools, passes: list[Pass] | tuple[Pass, ...] = ()):
        self.label, self.spools, self.passes = "stream", spools, list(passes)

    def then(self, step: Pass) -> "Stream":
        return Stream(self.spools, [*self.passes, step])

    def fates(self) -> Iterator[tuple[int, Conversation, int]]:
        """(k, record k as the last pass that kept it left it, the index of the pass that dropped it or -1)."""
        readers = [_records(p.spool) if p.spool is not None else None for p in self.passes]
        masks = [p.kept for p in self.passes]
        k = 0
        for conv in _records(self.spools):
            at = -1
            for i, kept in enumerate(masks):
                if not kept[k]:
                    at = i
                    break
                if readers[i] is not None:
                    conv = next(readers[i])
            yield k, conv, at
            k += 1

    def __iter__(self) -> Iterator[Conversation]:
        return (conv for _, conv, at in self.fates() if at < 0)

    def __len__(self) -> int:
        return int(self.passes[-1].kept.sum()) if self.passes else len(self.spools)


def _records(spools: Spools) -> Iterator[Conversation]:
    for path in spools.paths:
        yield from stages.read_spool(path)


class SpoolWriter:
    """Records appended one at a time as spool lines (`Conversation.to_dict()` in orjson), their offsets kept."""

    def __init__(self, path: Path):
        self.path, self.offsets, self.position = path, array("q"), 0
        self.fh = open(path, "wb", buffering=1 << 20)

    def write(self, conv: Conversation) -> None:
        line = orjson.dumps(conv.to_dict(), default=str, option=orjson.OPT_APPEND_NEWLINE)
        self.fh.write(line)
        self.offsets.append(self.position)
        self.position += len(line)

    def close(self) -> Spools:
        self.fh.close()
        return Spools([str(self.path)], [np.frombuffer(self.offsets, dtype=np.int64)])


class SpoolReader:
    """Records of a one-file spool read at their offsets through one open file (the walk asks for many)."""

    def __init__(self, spool: Spools):
        self.offsets = spool.offsets[0] if spool.offsets else np.empty(0, np.int64)
        self.fh = open(spool.paths[0], "rb")

    def __call__(self, j: int) -> Conversation:
        self.fh.seek(int(self.offsets[j]))
        return Conversation.from_dict(orjson.loads(self.fh.readline()))

    def close(self) -> None:
        self.fh.close()


@dataclass(frozen=True)
class RunStage:
    """A stage over the whole run. `section(pipeline_config)`: its config (None: off); `apply(stream, config,
    layout)`: a Pass, its drops in the Pass's log (a RunLog writing layout.rejects(name))."""

    name: str
    section: Callable[[Any], BaseModel | None]
    apply: Callable[[Stream, Any, Any], Pass]


# -- score ----------------------------------------------------------------------------------------------

def score_section(config) -> BaseModel | None:
    return config.score if config.score.enabled else None


def score_stage(stream: Stream, config, layout) -> Pass:
    """Every record through the judges (quality.score.score_records, generate's client and request cache):
    scored records go on with meta.scores, the others to rejects/score.jsonl with why. The answers are cached
    in OUTPUT/.cache/score, kept between runs. Requests that failed for good fail the step after the pass
    (a retry pays only for them); a budget stop keeps what was scored and says so."""
    from ..generate.failures import FailureSink
    from ..quality.score import ScoreConfig, ScoreLog, request_secrets, score_records

    stage_config = ScoreConfig(**config.model_dump(exclude={"enabled", "prices", "cache_dir"}))
    cache_dir = Path(config.cache_dir) if config.cache_dir else Path(layout.cache) / "score"
    prices = _prices(config.prices) if config.prices else None
    log = ScoreLog("score", str(layout.rejects("score")))
    kept = np.zeros(len(stream.spools), dtype=bool)
    index_of: dict[int, int] = {}  # id(record) -> k, for the records handed to the judges and not back yet
    out = SpoolWriter(Path(layout.spool) / "scored.jsonl")

    def reaching() -> Iterator[Conversation]:
        for k, conv, at in stream.fates():
            if at < 0:
                index_of[id(conv)] = k
                log.took_in()
                yield conv

    def emit(conv: Conversation) -> None:
        kept[index_of.pop(id(conv))] = True
        out.write(conv)
        log.emitted()

    secrets = request_secrets(stage_config)
    try:
        with FailureSink(layout.rejects("score-failures"), secrets) as failures:
            report = score_records(reaching(), stage_config, log, emit, cache_dir=cache_dir, failures=failures,
                                   prices=prices, say=print)
    finally:
        spool = out.close()
        log.close()
    log.info["score"] = report.to_dict()
    if report.stop_reason:
        print(f"score: stopped ({report.stop_reason}); the records not scored are in {log.rejects_path}; the "
              "next run continues (answers so far come from the cache)")
    if report.failures:
        raise InstructgenError(f"score: {report.failures} requests to the judge failed for good (see "
                               f"{layout.rejects('score-failures')}); once that is fixed, run again: the answers so "
                               "far come from the cache")
    return Pass("score", kept, spool, log)


def _prices(path: Path) -> dict:
    try:
        return orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as e:
        raise InstructgenError(f"[score] prices: cannot read {path} as JSON: {e}") from None


# -- select ---------------------------------------------------------------------------------------------

def select_section(config) -> BaseModel | None:
    return config.select if config.select.enabled else None


@dataclass
class _Ranked:
    index: array  # k of each ranked record
    values: array
    groups: array
    tokens: array
    names: dict[str, int]  # group -> id
    sources: array  # the source file's id of each ranked record
    source_names: dict[str, int]  # source file name -> id


def select_stage(stream: Stream, config, layout) -> Pass:
    """quality.select's walk (best first, thresholds, quotas, budget, Deita's diversity rule) over the records
    that reached it; each record not selected goes to rejects/select.jsonl with why."""
    from ..quality.select import SELECTED, SelectConfig, Walk, signatures, walk_stats

    select_config = SelectConfig(**config.model_dump(exclude={"enabled"}))
    log = RunLog("select", str(layout.rejects("select")))
    try:
        ranked, spool = _rank(stream, select_config, log, Path(layout.spool) / "ranked.jsonl")
        read = SpoolReader(spool)

        def sketch(indices: np.ndarray) -> np.ndarray:
            texts = [record_text(read(int(j))) for j in indices]
            return signatures(texts, select_config.num_perm, select_config.seed)

        walk = Walk(np.frombuffer(ranked.values, dtype=np.float64), np.frombuffer(ranked.groups, dtype=np.int64),
                    np.frombuffer(ranked.tokens, dtype=np.int64), select_config, sketch=sketch).run()
        _drop_unselected(spool, read, walk, select_config, log)
        kept = np.zeros(len(stream.spools), dtype=bool)
        kept[np.frombuffer(ranked.index, dtype=np.int64)[walk.fate == SELECTED]] = True
        log.emitted(int(kept.sum()))
        log.info["select"] = {**walk_stats(walk, ranked.names, select_config),
                              **selection_profile(read, walk, select_config, ranked)}
        read.close()
    finally:
        log.close()
    return Pass("select", kept, None, log)


def _rank(stream: Stream, config, log: RunLog, path: Path) -> tuple[_Ranked, Spools]:
    """Each record's rank value, group and tokens into arrays, the record into a spool (for the walk's
    sketches and the rejects); a record that cannot be ranked is dropped with why (`no score X`, `flag X`)."""
    from ..quality.select import estimated_tokens, grouper, parse_by, rank_value

    names, group_of = parse_by(config.by), grouper(config.per)
    need_text = bool(config.budget_tokens) or config.per == "language"
    ranked = _Ranked(array("q"), array("d"), array("q"), array("q"), {}, array("q"), {})
    out = SpoolWriter(path)
    try:
        for k, conv, at in stream.fates():
            if at >= 0:
                continue
            log.took_in()
            value = rank_value(conv.meta.get("scores"), names, config.drop_flags)
            if isinstance(value, str):
                log.drop(conv.origin, value, source_row(conv), kind="filtered")
                continue
            text = record_text(conv) if need_text else ""
            group = group_of({**conv.extra, "meta": conv.meta}, conv.origin, text) if group_of else ""
            ranked.index.append(k)
            ranked.values.append(value)
            ranked.groups.append(ranked.names.setdefault(group, len(ranked.names)))
            ranked.tokens.append(estimated_tokens(text) if need_text else 0)
            source = _source_name(conv.origin)
            ranked.sources.append(ranked.source_names.setdefault(source, len(ranked.source_names)))
            out.write(conv)
    finally:
        spool = out.close()
    return ranked, spool


def _reasons(config) -> dict[int, str]:
    from ..quality.select import REASONS, TOP_K

    return {code: f"not in the top {config.top_k}" if code == TOP_K else why for code, why in REASONS.items()}


def _drop_unselected(spool: Spools, read: SpoolReader, walk, config, log: RunLog) -> None:
    from ..quality.select import NEAR, SELECTED

    reasons = _reasons(config)
    fate = walk.fate.tolist()
    for j, conv in enumerate(_records(spool)):
        f = fate[j]
        if f == SELECTED:
            continue
        if f == NEAR:
            near = read(int(walk.near_of[j])).origin
            log.drop(conv.origin, "near selected record", source_row(conv), kind="filtered",
                     detail=f"near selected record {near} (similarity {walk.near_sim[j]:.2f})", near=near)
        else:
            log.drop(conv.origin, reasons[f], source_row(conv), kind="filtered", score=float(walk.scores[j]))


def record_text(conv: Conversation) -> str:
    """The words of a record (every message, both answers of a pair, tool-call arguments), for sketching and
    token estimates."""
    parts = []
    for m in [*conv.messages, *(a for a in (conv.chosen, conv.rejected) if a is not None)]:
        parts.append(m.content)
        parts += [call.arguments for call in m.tool_calls]
    return "\n".join(parts)


def selection_profile(read: SpoolReader, walk, config, ranked: _Ranked) -> dict[str, Any]:
    """What the report shows of a selection: the selected share per source and per language (the language of
    an even sample of the ranked records when there are many), and example records at the top, middle and
    bottom of the ranking with their score and fate."""
    from ..quality.select import SELECTED

    reasons = _reasons(config)
    n = len(walk.fate)
    chosen = walk.fate == SELECTED
    order = np.lexsort((np.arange(n), -walk.scores))
    sample = np.unique(np.linspace(0, n - 1, min(n, LANGUAGE_SAMPLE)).astype(np.int64)) if n else np.empty(0, int)
    per_language: dict[str, list[int]] = {}
    for j, language in zip(sample.tolist(), _languages([read(int(j)) for j in sample])):
        row = per_language.setdefault(language, [0, 0])
        row[0] += 1
        row[1] += bool(chosen[j])
    sources = np.frombuffer(ranked.sources, dtype=np.int64)
    size = len(ranked.source_names)
    all_, taken = np.bincount(sources, minlength=size), np.bincount(sources[chosen], minlength=size)
    per_source = {name: [int(all_[i]), int(taken[i])] for name, i in ranked.source_names.items()}

    def example(j: int, place: str) -> dict[str, Any]:
        conv = read(j)
        f = int(walk.fate[j])
        return {"place": place, "origin": conv.origin, "score": round(float(walk.scores[j]), 4),
                "fate": "selected" if f == SELECTED else reasons.get(f, "not selected"),
                "text": record_text(conv)[:300]}

    middle = max(0, n // 2 - EXAMPLES_PER_PLACE // 2)
    places = [("top", order[:EXAMPLES_PER_PLACE]), ("middle", order[middle:middle + EXAMPLES_PER_PLACE]),
              ("bottom", order[max(0, n - EXAMPLES_PER_PLACE):])]
    return {
        "selected_per_source": {k: {"ranked": v[0], "selected": v[1]} for k, v in sorted(per_source.items())},
        "selected_per_language": {k: {"ranked": v[0], "selected": v[1]}
                                  for k, v in sorted(per_language.items(), key=lambda kv: -kv[1][0])},
        "language_sample": int(len(sample)),
        "examples": [example(int(j), place) for place, js in places for j in js] if n else [],
    }


def _source_name(origin: str) -> str:
    return _file_name(origin.rsplit(":", 1)[0])


@lru_cache(maxsize=4096)
def _file_name(path: str) -> str:
    return Path(path).name or "(unknown)"


def _languages(records: list[Conversation]) -> list[str]:
    from ..curate.langid import get_detector

    detector = get_detector("script+langdetect")
    out = []
    for conv in records:
        given = conv.meta.get("language")
        out.append(given if isinstance(given, str) and given else
                   (detector.detect(record_text(conv)[:2000]) or "unknown"))
    return out


# The run-wide stages, in order, after dedup's decisions.
RUN_STAGES: list[RunStage] = [RunStage("score", score_section, score_stage),
                              RunStage("select", select_section, select_stage)]
