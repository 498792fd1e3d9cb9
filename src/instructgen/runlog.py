"""Counting what a stage did, and keeping what it dropped.

Every stage owns one `RunLog`. Each record that comes in is counted once, and
leaves once: as output, or as a reject (kind `rejected` for bad input,
`filtered` for a quality rule, `duplicates` for dedup), so that

    in = out + rejected + filtered + duplicates

always holds. Dropped records go to a JSONL rejects file with stage, kind,
reason, origin (`file:line`) and the raw record. Losses (information a target
format cannot hold, applied the documented way) are counted separately: the
record still goes out.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

import orjson

from .io import finish_temp, jsonl_safe, temp_beside, write_text_atomic

DROP_KINDS = ("rejected", "filtered", "duplicates")
# what a stage removed from a record that still goes out (the filter's cut turns): written, not counted as a record
PART_KINDS = ("cut",)


class RunLog:
    def __init__(self, stage: str, rejects_path: str | os.PathLike | None = None, keep_entries: bool = False):
        self.stage = stage
        self.entries: list[dict[str, Any]] | None = [] if keep_entries else None  # for a worker's log
        self.rejects_path = str(rejects_path) if rejects_path else None
        self.n_in = 0
        self.n_out = 0
        self.dropped: Counter[str] = Counter()  # kind -> count
        self.reasons: Counter[tuple[str, str]] = Counter()  # (kind, reason) -> count
        self.losses: Counter[str] = Counter()
        self.examples: dict[str, list[dict[str, Any]]] = {}  # reason -> a few dropped rows, for reports
        self.info: dict[str, Any] = {}
        self._rejects_fh = None
        self._rejects_tmp: str | None = None  # written beside the target, moved into place by close()
        self._rejects_done = False  # close() has put this run's rejects file in place

    # -- counting -----------------------------------------------------------------------------
    def took_in(self, n: int = 1) -> None:
        self.n_in += n

    def emitted(self, n: int = 1) -> None:
        self.n_out += n

    def drop(self, origin: str, reason: str, raw: Any, kind: str = "rejected", **details: Any) -> None:
        """Count one dropped record and write it to the rejects file (a PART_KINDS entry is only written)."""
        assert kind in DROP_KINDS or kind in PART_KINDS, kind
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "backslashreplace")  # invalid bytes kept, escaped as \xNN
        if kind in DROP_KINDS:
            self.dropped[kind] += 1
        self.reasons[(kind, reason)] += 1
        entry = {"stage": self.stage, "kind": kind, "reason": reason, "origin": origin, **details, "raw": raw}
        if self.entries is not None:
            self.entries.append(entry)
        examples = self.examples.setdefault(reason, [])
        if len(examples) < 3:
            examples.append(entry)
        if self.rejects_path:
            if self._rejects_fh is None:
                self._open_rejects()
            self._rejects_fh.write(jsonl_safe(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE, default=str)))

    def drop_serialised(self, kind: str, reason: str, line: bytes) -> None:
        """Count one dropped record whose rejects entry the caller serialised itself (one JSON object with this
        stage, kind and reason, newline-terminated): for stages that drop most of millions of rows. The caller
        uses `drop` for a reason's first rows, which become its examples, and whenever `entries` is kept."""
        assert kind in DROP_KINDS and self.entries is None, kind
        self.dropped[kind] += 1
        self.reasons[(kind, reason)] += 1
        if self.rejects_path:
            if self._rejects_fh is None:
                self._open_rejects()
            self._rejects_fh.write(jsonl_safe(line))

    def _open_rejects(self) -> None:
        self._rejects_tmp = temp_beside(self.rejects_path)
        self._rejects_fh = open(self._rejects_tmp, "wb")

    def absorb(self, n_in: int, n_out: int, entries: list[dict[str, Any]], losses: Counter[str]) -> None:
        """Add what a worker counted (its drops are written to this log's rejects file)."""
        self.n_in += n_in
        self.n_out += n_out
        for e in entries:
            details = {k: v for k, v in e.items() if k not in ("stage", "kind", "reason", "origin", "raw")}
            self.drop(e["origin"], e["reason"], e["raw"], kind=e["kind"], **details)
        self.losses.update(losses)

    def lost(self, what: str, n: int = 1) -> None:
        """Count a record that went out with `what` lost (e.g. 'history dropped')."""
        self.losses[what] += n

    def close(self) -> None:
        """Move the rejects into place. With no drops, a rejects file an earlier run left at this path is
        replaced by an empty one (it would mislead); none is created otherwise."""
        if self.rejects_path and self._rejects_fh is None and not self._rejects_done \
                and os.path.exists(self.rejects_path):
            self._open_rejects()
        if self._rejects_fh is not None:

            self._rejects_fh.close()
            self._rejects_fh = None
            finish_temp(self._rejects_tmp, self.rejects_path)
            self._rejects_tmp = None
            self._rejects_done = True

    # -- reporting ----------------------------------------------------------------------------
    @property
    def balanced(self) -> bool:
        return self.n_in == self.n_out + sum(self.dropped.values())

    def equation(self) -> str:
        parts = [f"out {self.n_out}"] + [f"{k} {self.dropped[k]}" for k in DROP_KINDS if self.dropped[k]]
        mark = "" if self.balanced else "  (DOES NOT BALANCE: a bug, please report it)"
        return f"{self.stage}: in {self.n_in} = " + " + ".join(parts) + mark

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "in": self.n_in,
            "out": self.n_out,
            **{k: self.dropped[k] for k in DROP_KINDS},
            "balanced": self.balanced,
            "reasons": [
                {"kind": k, "reason": r, "count": c} for (k, r), c in self.reasons.most_common()
            ],
            "losses": dict(self.losses.most_common()),
            **({"rejects_file": self.rejects_path} if self.dropped else {}),
            **self.info,
        }

    def print_summary(self, out: TextIO | None = None) -> None:
        out = out or sys.stderr
        for what, n in self.losses.most_common():
            print(f"{what}: {n} record{'s' if n != 1 else ''}", file=out)
        if self.reasons:
            width = max(len(r) for _, r in self.reasons)
            for (kind, reason), n in self.reasons.most_common():
                print(f"  {kind:<10} {reason:<{width}}  {n}", file=out)
            if self.rejects_path:
                print(f"dropped records are in {self.rejects_path}", file=out)
        print(self.equation(), file=out)


def write_stats(path: str | os.PathLike, logs: list[RunLog | dict[str, Any]], **extra: Any) -> None:
    """Write stats.json: one entry per stage (a RunLog, or its to_dict() from another process),
    merging with stages already in the file."""

    stages: dict[str, Any] = {}
    if os.path.exists(path):
        try:
            stages = {s["stage"]: s for s in orjson.loads(Path(path).read_bytes()).get("stages", [])}
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
            stages = {}
    for log in logs:
        entry = log.to_dict() if isinstance(log, RunLog) else log
        stages[entry["stage"]] = entry
    doc = {"stages": list(stages.values()), **extra}
    write_text_atomic(path, orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")
