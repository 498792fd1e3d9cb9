"""The filter stage in two tiers, judged one turn at a time, over a stream of records.

    parse_rules(spec: str) -> tuple[str, ...]
        "default", a comma list of rule names, or "default,-language" to leave some out ("default,safety_refusal"
        adds the one rule that is off by default).
    judge_record(conv: Conversation, config: FilterConfig) -> Verdict
        Verdict(rule, reason, keep, turn, flags): the first turn a junk rule (or a signal named in config.drop)
        fails and why; keep = how many turns (exchanges) the record keeps: all of them when it passes, the ones
        before the junk turn when the record is cut, 0 when it is dropped; flags = the signals raised on the
        turns it keeps ({"rule", "turn" (1-based), "reason"}).
    check_record(conv: Conversation, config: FilterConfig) -> tuple[str, str] | None
        (rule, reason) of the first junk turn (whether that cuts or drops the record), or None.
    cut(conv: Conversation, keep: int) -> Conversation
        a copy of the record with its first `keep` exchanges (and its system message).
    filter_records(records: Iterable[Conversation], config: FilterConfig, log: RunLog) -> Iterator[Conversation]
        yields the records that pass and the cut ones, each with its flags in meta["flags"] (a list; absent when
        there are none). A dropped record goes to `log` as kind "filtered" (reason = the rule, detail = what it
        found, raw = the record in its source format); the turns a cut removes go to `log` as kind "cut" (the
        record itself goes out, so in = out + rejected + filtered + duplicates still holds, and every removed
        turn is in the rejects file). Counts: log.info["filter_rules"] (drops per rule),
        log.info["filter_truncated"] (cuts per rule), log.info["filter_flags"] (records flagged per signal).

Junk (rules.JUNK) is dropped: a record whose first turn is junk is dropped; one whose later turn is junk is cut
before that turn (config.truncate; off: dropped) when what is left ends with an assistant message. Signals
(rules.SIGNALS) only flag, unless config.drop names them: then they act like junk. A KTO answer labelled false
and a DPO rejected answer are meant to be bad: only their prompt is judged (garbled text).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Iterable, Iterator

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import InstructgenError
from ..formats import source_row
from ..record import Conversation
from ..runlog import RunLog
from .langid import DETECTORS
from .rules import DEFAULT_RULES, JUNK, RULES, SIGNALS, turns_of

__all__ = ["FilterConfig", "Verdict", "parse_rules", "judge_record", "check_record", "cut", "filter_records"]

# what is still judged of an answer that is meant to be bad (KTO label false): its prompt's text
PROMPT_ONLY_RULES = ("garbled",)


def parse_rules(spec: str | None) -> tuple[str, ...]:
    if not spec or spec == "default":
        return DEFAULT_RULES
    chosen: list[str] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        if part == "default":
            chosen += [r for r in DEFAULT_RULES if r not in chosen]
        elif part.startswith("-"):
            name = part[1:]
            _known(name)
            chosen = [r for r in (chosen or list(DEFAULT_RULES)) if r != name]
        else:
            _known(part)
            if part not in chosen:
                chosen.append(part)
    if not chosen:
        raise InstructgenError("--rules selects no rule; name at least one of: " + ", ".join(RULES))
    return tuple(r for r in RULES if r in chosen)  # the canonical order: cheap rules first


def _comma_list(value: Any) -> Any:
    return [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) else value


class FilterConfig(BaseModel):
    """The filter stage's settings: the [filter] section of a pipeline config and `instructgen filter`'s flags."""

    model_config = ConfigDict(extra="forbid")

    rules: tuple[str, ...] = Field(DEFAULT_RULES, description="rules to run: default, a comma list of rule "
                                   "names, or default,-RULE to leave some out (default,safety_refusal adds the "
                                   "signal for refusals of harmful requests). Junk rules (" + ", ".join(JUNK) +
                                   ") drop; signals (" + ", ".join(SIGNALS) + ") flag the record in meta.flags")
    drop: tuple[str, ...] = Field((), description="signals to drop instead of flag, e.g. refusal,needs_media,"
                                  "language,length; none: every signal is only flagged")
    lang: tuple[str, ...] = Field((), description="allowed languages (ISO 639-1 codes, e.g. zh,en); empty: any")
    detector: str = Field("script+langdetect", description="language detector (script check, then seeded "
                          "langdetect by default)", json_schema_extra={"choices": DETECTORS})
    truncate: bool = Field(True, description="cut a dialogue before its first failing turn when turns before it "
                           "pass (counted as truncated); off: drop the whole dialogue")
    drop_disclaimers: bool = Field(False, description="refusal also drops answers that carry an AI disclaimer "
                                   "(\"As an AI language model, ...\"); default: only turns that are mostly one")
    min_instruction_words: int = Field(2, ge=0, description="minimum instruction length in words, one-turn records "
                                       "(space-separated text)")
    min_instruction_chars: int = Field(2, ge=0, description="minimum instruction length in characters, one-turn "
                                       "records (CJK text)")
    max_instruction_words: int = Field(1500, ge=1, description="maximum instruction length in words")
    max_instruction_chars: int = Field(3000, ge=1, description="maximum instruction length in characters (CJK)")
    min_output_words: int = Field(1, ge=0, description="minimum output length in words, one-turn records")
    min_output_chars: int = Field(1, ge=0, description="minimum output length in characters (CJK), one-turn records")
    max_output_words: int = Field(6000, ge=1, description="maximum output length in words")
    max_output_chars: int = Field(12000, ge=1, description="maximum output length in characters (CJK)")

    @field_validator("rules", mode="before")
    @classmethod
    def _rules(cls, value: Any) -> tuple[str, ...]:
        value = _comma_list(value)
        try:
            return parse_rules(",".join(value) if isinstance(value, (list, tuple)) else value)
        except InstructgenError as e:
            raise ValueError(str(e)) from None

    @field_validator("drop", mode="before")
    @classmethod
    def _drop(cls, value: Any) -> Any:
        value = _comma_list(value)
        if isinstance(value, (list, tuple)):
            for name in value:
                if name not in SIGNALS:
                    hint = " (junk is always dropped)" if name in JUNK else ""
                    raise ValueError(f"drop: {name!r} is not a signal{hint}; signals: {', '.join(SIGNALS)}")
            return tuple(dict.fromkeys(value))
        return value

    @field_validator("lang", mode="before")
    @classmethod
    def _lang(cls, value: Any) -> Any:
        value = _comma_list(value)
        return tuple(v.strip().lower() for v in value) if isinstance(value, (list, tuple)) else value

    @field_validator("detector")
    @classmethod
    def _detector(cls, value: str) -> str:
        if value not in DETECTORS:
            raise ValueError(f"unknown detector {value!r}; choose one of: {', '.join(DETECTORS)}")
        return value


def _known(name: str) -> None:
    if name not in RULES:
        raise InstructgenError(f"--rules: unknown rule {name!r}; known rules: {', '.join(RULES)}")


@dataclass(frozen=True, slots=True)
class Verdict:
    rule: str | None  # the rule the first junk turn failed; None: no turn is junk
    reason: str
    keep: int  # exchanges kept: all (passes), 1..n-1 (cut), 0 (dropped)
    turn: int = -1  # 0-based index of the junk turn
    flags: tuple[dict[str, Any], ...] = ()  # signals raised on the kept turns


def judge_record(conv: Conversation, config: FilterConfig) -> Verdict:
    pairwise = conv.pairwise
    if pairwise:  # a preference pair is judged as its prompt + the chosen answer (the rejected one is meant to be worse)
        conv = replace(conv, messages=[*conv.messages, conv.chosen], chosen=None, rejected=None)
    turns = turns_of(conv)
    stopping, flagging = _tiers(config.rules or DEFAULT_RULES, config.drop)
    flags: list[dict[str, Any]] = []
    for turn in turns:
        if conv.label is False and turn.index == len(turns) - 1:  # a KTO answer meant to be bad: its prompt only
            turn = replace(turn, output="")
            checks, raise_flags = [(n, r) for n, r in stopping if n in PROMPT_ONLY_RULES], []
        else:
            checks, raise_flags = stopping, flagging
        for name, rule in checks:
            reason = rule(turn, config)
            if reason:  # a pair is never cut: its answers belong to the last prompt
                keep = turn.index if config.truncate and not pairwise and _valid_cut(conv, turns, turn.index) else 0
                return Verdict(name, reason, keep, turn.index, tuple(flags) if keep else ())
        for name, rule in raise_flags:
            reason = rule(turn, config)
            if reason:
                flags.append({"rule": name, "turn": turn.index + 1, "reason": reason})
    return Verdict(None, "", len(turns), -1, tuple(flags))


@lru_cache(maxsize=64)
def _tiers(rules: tuple[str, ...], drop: tuple[str, ...]) -> tuple[tuple, tuple]:
    """(rules that drop or cut, rules that flag), each as (name, function) in the order they run."""
    stopping = tuple((name, RULES[name]) for name in rules if name in JUNK or name in drop)
    flagging = tuple((name, RULES[name]) for name in rules if name not in JUNK and name not in drop)
    return stopping, flagging


def _valid_cut(conv: Conversation, turns: list, keep: int) -> bool:
    if keep == 0:
        return False
    last = conv.messages[turns[keep].start - 1]
    return last.role == "assistant" and bool(last.content.strip() or last.tool_calls)


def check_record(conv: Conversation, config: FilterConfig) -> tuple[str, str] | None:
    verdict = judge_record(conv, config)
    return (verdict.rule, verdict.reason) if verdict.rule else None


def cut(conv: Conversation, keep: int) -> Conversation:
    start = turns_of(conv)[keep].start
    return replace(conv, messages=conv.messages[:start])


def _with_flags(conv: Conversation, flags: tuple[dict[str, Any], ...]) -> Conversation:
    if flags:  # first: a record written and read back has its meta channel ahead of what the format adds
        conv.meta = {"flags": list(flags), **{k: v for k, v in conv.meta.items() if k != "flags"}}
    elif "flags" in conv.meta:  # flags of an earlier run would mislead: this run raised none
        conv.meta = {k: v for k, v in conv.meta.items() if k != "flags"}
    return conv


def filter_records(records: Iterable[Conversation], config: FilterConfig, log: RunLog) -> Iterator[Conversation]:
    rules = config.rules or DEFAULT_RULES
    counts: Counter[str] = Counter({name: 0 for name in rules if name in JUNK or name in config.drop})
    truncated: Counter[str] = Counter()
    flagged: Counter[str] = Counter({name: 0 for name in rules if name not in JUNK and name not in config.drop})
    log.info["filter_rules"] = counts
    log.info["filter_truncated"] = truncated
    log.info["filter_flags"] = flagged
    for conv in records:
        verdict = judge_record(conv, config)
        flagged.update({f["rule"] for f in verdict.flags})
        if verdict.rule is None:
            yield _with_flags(conv, verdict.flags)
        elif verdict.keep:
            truncated[verdict.rule] += 1
            log.lost(f"cut before a junk turn ({verdict.rule})")
            total = len(turns_of(conv))
            log.drop(conv.origin, verdict.rule, source_row(conv), kind="cut", detail=verdict.reason,
                     turns_removed=f"{verdict.keep + 1}-{total} of {total}")
            yield _with_flags(cut(conv, verdict.keep), verdict.flags)
        else:
            counts[verdict.rule] += 1
            log.drop(conv.origin, verdict.rule, source_row(conv), kind="filtered", detail=verdict.reason)
