"""The registry of well-known published instruction sets (package data: instructgen/registry/published.json).

    published() -> dict[str, PublishedSet]        by short name
    find_published(name) -> PublishedSet | None   by short name or repo id (case-insensitive)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources


@dataclass(frozen=True, slots=True)
class PublishedSet:
    name: str
    repo: str
    format: str
    license: str | None = None
    language: tuple[str, ...] = ()
    split: str = "train"
    config: str | None = None
    data_files: dict[str, list[str]] = field(default_factory=dict)  # split -> glob patterns
    columns: dict[str, str] | None = None  # format field -> column name in the files
    notes: str = ""


@cache
def published() -> dict[str, PublishedSet]:
    """The registry in instructgen/registry/published.json, by short name."""
    text = resources.files("instructgen").joinpath("registry/published.json").read_text("utf-8")
    doc = json.loads(text, object_pairs_hook=_no_duplicates)
    out = {}
    for name, e in doc["sets"].items():
        out[name] = PublishedSet(
            name=name, repo=e["repo"], format=e["format"], license=e.get("license"),
            language=tuple(e.get("language", ())), split=e.get("split", "train"), config=e.get("config"),
            data_files={k: list(v) for k, v in e.get("data_files", {}).items()}, columns=e.get("columns"),
            notes=e.get("notes", ""),
        )
    return out


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise RuntimeError(f"registry/published.json lists {', '.join(twice)} twice")
    return dict(pairs)


def find_published(name: str) -> PublishedSet | None:
    """A registry entry by short name or by repo id (case-insensitive)."""
    sets = published()
    if name in sets:
        return sets[name]
    return next((s for s in sets.values() if s.repo.lower() == name.lower()), None)
