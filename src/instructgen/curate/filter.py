"""The filter stage: named quality rules over a stream of records.

    parse_rules(spec: str) -> tuple[str, ...]
        "default", a comma list of rule names, or "default,-language" to drop some.
    check_record(conv: Conversation, config: FilterConfig) -> tuple[str, str] | None
        (rule, reason) of the first rule the record trips, or None.
    filter_records(records: Iterable[Conversation], config: FilterConfig, log: RunLog) -> Iterator[Conversation]
        yields the records that pass; each dropped record goes to `log` as kind "filtered", reason
        = the rule's name, detail = what it found, raw = the record in its source format (intake is counted by whoever read the records, e.g. convert.read_records).
        log.info["filter_rules"] holds the count per rule.

Rules run cheapest first; the language rule (the only one that calls a statistical model) runs
last, so a record another rule drops never reaches the detector.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Iterator

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import InstructgenError
from ..formats import source_row
from ..record import Conversation
from ..runlog import RunLog
from .langid import DETECTORS
from .rules import DEFAULT_RULES, RULES, View

__all__ = ["FilterConfig", "parse_rules", "check_record", "filter_records"]


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
                                   "names, or default,-RULE to leave some out")
    lang: tuple[str, ...] = Field((), description="allowed languages (ISO 639-1 codes, e.g. zh,en); empty: any")
    detector: str = Field("script+langdetect", description="language detector (script check, then seeded "
                          "langdetect by default)", json_schema_extra={"choices": DETECTORS})
    min_instruction_words: int = Field(2, ge=0, description="minimum instruction length in words (space-separated text)")
    min_instruction_chars: int = Field(2, ge=0, description="minimum instruction length in characters (CJK text)")
    max_instruction_words: int = Field(1500, ge=1, description="maximum instruction length in words")
    max_instruction_chars: int = Field(3000, ge=1, description="maximum instruction length in characters (CJK)")
    min_output_words: int = Field(1, ge=0, description="minimum output length in words")
    min_output_chars: int = Field(1, ge=0, description="minimum output length in characters (CJK)")
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


def check_record(conv: Conversation, config: FilterConfig) -> tuple[str, str] | None:
    view = View.of(conv)
    for name in config.rules or DEFAULT_RULES:
        reason = RULES[name](view, config)
        if reason:
            return name, reason
    return None


def filter_records(records: Iterable[Conversation], config: FilterConfig, log: RunLog) -> Iterator[Conversation]:
    counts: Counter[str] = Counter({name: 0 for name in config.rules or DEFAULT_RULES})
    log.info["filter_rules"] = counts
    for conv in records:
        hit = check_record(conv, config)
        if hit is None:
            yield conv
            continue
        rule, reason = hit
        counts[rule] += 1
        log.drop(conv.origin, rule, source_row(conv), kind="filtered", detail=reason)
