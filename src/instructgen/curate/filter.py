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
from typing import Iterable, Iterator

from ..convert import source_row
from ..errors import InstructgenError
from ..record import Conversation
from ..runlog import RunLog
from .rules import DEFAULT_RULES, RULES, FilterConfig, View

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
