"""The format registry: one module per format, gathered once, duplicates refused.

`FORMAT_MODULES` is the only list to edit when a format is added; the CLI's
choices come from here. Detection looks at the first rows of a file and names
the format that claims most of them, preferring a refinement (a more precise
reading of a broader format's rows) over the format it refines, and refusing
with the candidates when two unrelated formats fit.
"""

from __future__ import annotations

import importlib
from collections import Counter
from functools import cache
from typing import TYPE_CHECKING, Any, Iterable

from ..errors import Ambiguous, InstructgenError
from .base import DumpOptions, FormatSpec, restore_preference

if TYPE_CHECKING:
    from ..record import Conversation

FORMAT_MODULES = (
    "alpaca", "history", "chatglm", "chatglm3", "moss", "sharegpt", "openai", "dolly", "firefly", "belle",
)
DETECT_SAMPLE = 50


@cache
def registry() -> dict[str, FormatSpec]:
    specs: dict[str, FormatSpec] = {}
    for module_name in FORMAT_MODULES:
        m = importlib.import_module(f"{__name__}.{module_name}")
        spec = FormatSpec(
            name=m.NAME,
            description=m.DESCRIPTION,
            example=m.EXAMPLE,
            detect=m.detect,
            parse=_restoring(m.parse),
            dump=m.dump if getattr(m, "WRITABLE", True) else None,
            refines=getattr(m, "REFINES", None),
            native_meta=frozenset(getattr(m, "NATIVE_META", ())),
            preference=getattr(m, "PREFERENCE", False),
            turns=tuple(getattr(m, "TURNS", ())),
            alternates=getattr(m, "ALTERNATES", False),
            whole=getattr(m, "WHOLE", False),
            answers_calls=getattr(m, "ANSWERS_CALLS", False),
            keep_absent=frozenset(getattr(m, "KEEP_ABSENT", ())),
            notes=getattr(m, "notes", None),
            read_plain=getattr(m, "read_plain", None),
            write_plain=getattr(m, "write_plain", None),
        )
        if spec.name in specs:
            raise RuntimeError(f"format {spec.name!r} registered twice ({module_name})")
        specs[spec.name] = spec
    return specs


def _restoring(parse):
    """A record reads back the preference data a format without preference fields carried in meta."""
    def parse_and_restore(row: dict) -> "Conversation":
        return restore_preference(parse(row))

    parse_and_restore.__doc__ = parse.__doc__
    return parse_and_restore


def names(writable_only: bool = False) -> list[str]:
    return [n for n, s in registry().items() if s.writable or not writable_only]


def get(name: str) -> FormatSpec:
    try:
        return registry()[name]
    except KeyError:
        raise InstructgenError(f"unknown format {name!r}; choose one of: {', '.join(names())}") from None


def fits(row: object) -> list[str]:
    """Every format whose detect() claims this row."""
    if not isinstance(row, dict):
        return []
    out = []
    for name, spec in registry().items():
        try:
            if spec.detect(row):
                out.append(name)
        except Exception:  # a detector must not crash on odd rows; it just does not claim them
            pass
    return out


def detect_rows(rows: Iterable[object], source: str = "input") -> str:
    """The format that claims the most of the sampled rows (at least half), or Ambiguous naming what fitted.

    Rows no format claims (bad records) do not stop detection: they are rejected later with a reason.
    """
    sample = [r for r in rows if isinstance(r, dict)][:DETECT_SAMPLE]
    if not sample:
        raise Ambiguous(f"{source}: no JSON object to detect the format from")
    votes: Counter[str] = Counter(name for row in sample for name in fits(row))
    best = max(votes.values(), default=0)
    if best * 2 < len(sample):
        seen = f" (closest: {', '.join(f'{n} {c}/{len(sample)}' for n, c in votes.most_common(3))})" if votes else ""
        raise Ambiguous(
            f"{source}: no format fits the first {len(sample)} records{seen}; "
            f"pass --from with one of: {', '.join(names())}"
        )
    common = _prefer_refinements({n for n, c in votes.items() if c == best})
    if len(common) > 1:
        raise Ambiguous(f"{source}: several formats fit ({', '.join(sorted(common))}); pass --from to choose")
    return common.pop()


def _prefer_refinements(candidates: set[str]) -> set[str]:
    specs = registry()
    refined = {specs[n].refines for n in candidates if specs[n].refines in candidates}
    return candidates - refined


def direct(source: str, target: str, opts: DumpOptions, jsonl: bool = False):
    """The direct path of a pair (formats/direct_path.py), or None."""
    from .direct_path import direct as make

    return make(source, target, opts, jsonl)


def source_row(conv: "Conversation") -> Any:
    """A dropped record as a person knows it, for rejects files: the row(s) of its source format,
    else the canonical record."""
    try:
        rows = get(conv.source_format).dump(conv, DumpOptions(), lambda _what: None)
    except Exception:  # noqa: BLE001 - a record its own format cannot write back is shown canonically
        return conv.to_dict()
    return rows[0] if len(rows) == 1 else rows


__all__ = ["DumpOptions", "FormatSpec", "registry", "names", "get", "fits", "detect_rows", "direct", "source_row"]
