"""The dataset card (README.md) of a pushed dataset: YAML front matter + a body a person can read.

    SourceInfo.local(path, base_dir) / SourceInfo.dataset(repo, revision, ...)   one source of the data
    CardInfo(title, license, languages, tags, sources, generation, filters, dedup, stages)
    CardInfo.from_stats(stats, base_dir)       the same from a stats.json (the pipeline's or `download`'s)
    render_card(repo_id, configs, info, other_configs=()) -> str

`render_card` is pure: the same arguments give the same bytes (no dates, no environment), so an
unchanged dataset gives an unchanged card and the push stays a no-op. It never sees a token.

What is published names no local path: a local source is its file name (relative to the config's
folder when it lies inside it) plus the file's sha256; a Hub source is its dataset id and revision.
Setting values that look like absolute paths (a seed file, a cache folder, dedup references) are
shown by their file name only, wherever they appear.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

FIELD_DOCS = {
    "instruction": "the task or question given to the model",
    "input": "optional context for the instruction (may be empty)",
    "output": "the reference answer",
    "context": "optional context for the instruction (dolly)",
    "response": "the reference answer",
    "category": "task category",
    "conversations": "the dialogue: a list of turns",
    "messages": "the dialogue: a list of {role, content} messages (OpenAI chat format)",
    "conversation": "the dialogue: a list of {human, assistant} turns (Firefly)",
    "chat": "the dialogue: turn_1..turn_N, each with Human / Inner Thoughts / Commands / Tool Responses / MOSS",
    "meta_instruction": "the system prompt of the dialogue",
    "num_turns": "number of turns in `chat`",
    "conversation_id": "dialogue id",
    "system": "the system prompt",
    "tools": "function definitions the assistant may call (JSON)",
    "history": "earlier [question, answer] turns",
    "prompt": "the user turn",
    "id": "record id",
    "meta": "fields the format has no place for (kept so conversions back are lossless)",
}


@dataclass(slots=True)
class ConfigCard:
    """What the card says about one config (one output format)."""

    name: str
    format: str
    rows: int
    schema: list[tuple[str, str]]  # (column, type as text)
    examples: list[dict[str, Any]] = field(default_factory=list)
    splits: list[str] = field(default_factory=lambda: ["train"])


def size_category(n: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]
    for bound, label in bounds:
        if n < bound:
            return label
    return "n>1B"




# -- what the card says beyond the data -----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SourceInfo:
    """One source of the data: a local file (name + sha256) or a Hub dataset (id + revision)."""

    name: str
    revision: str | None = None
    sha256: str | None = None
    license: str | None = None
    records: int | None = None

    @classmethod
    def local(cls, path: str | os.PathLike, base_dir: str | os.PathLike | None = None, *,
              license: str | None = None, records: int | None = None, sha256: str | None = None) -> "SourceInfo":
        """A local file by its public name; its sha256 is computed when the file is there."""
        if sha256 is None and os.path.isfile(path):
            sha256 = file_sha256(path)
        return cls(public_name(path, base_dir), None, sha256, license, records)

    @classmethod
    def dataset(cls, repo: str, revision: str | None, *, license: str | None = None,
                records: int | None = None) -> "SourceInfo":
        return cls(repo, revision, None, license, records)


@dataclass(frozen=True, slots=True)
class CardInfo:
    """Everything the card describes beyond the data itself."""

    title: str | None = None
    license: str | None = None
    languages: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    sources: tuple[SourceInfo, ...] = ()
    generation: dict[str, Any] | None = None
    filters: dict[str, Any] | None = None
    dedup: dict[str, Any] | None = None
    stages: tuple[dict[str, Any], ...] = ()  # RunLog.to_dict() of each stage

    @classmethod
    def from_stats(cls, stats: dict[str, Any] | None, base_dir: str | os.PathLike | None = None) -> "CardInfo":
        """From a stats.json: `sources` (or `download`'s one `source`), `generation`, `filters`, `dedup`,
        `stages`, `license`. Local paths become public names relative to base_dir."""
        stats = stats or {}
        raw = stats.get("sources") or ([stats["source"]] if isinstance(stats.get("source"), dict) else [])
        sources = tuple(_source(s, base_dir) for s in raw if isinstance(s, dict))
        settings = {k: public_value(stats[k], base_dir) if isinstance(stats.get(k), dict) else None
                    for k in ("generation", "filters", "dedup")}
        stages = tuple(s for s in stats.get("stages") or [] if isinstance(s, dict) and "stage" in s)
        return cls(license=stats.get("license"), sources=sources, stages=stages, **settings)

    def with_choices(self, title: str | None = None, license: str | None = None,
                     languages: tuple[str, ...] = (), tags: tuple[str, ...] = ()) -> "CardInfo":
        """The user's choices (PublishConfig's license, languages, pretty_name, tags) over what was known."""
        return replace(self, title=title or self.title, license=license or self.license,
                       languages=tuple(languages) or self.languages, tags=tuple(dict.fromkeys((*self.tags, *tags))))


def _source(s: dict[str, Any], base_dir: str | os.PathLike | None) -> SourceInfo:
    records = s.get("records") if isinstance(s.get("records"), int) else None
    if s.get("repo"):
        return SourceInfo.dataset(str(s["repo"]), s.get("revision"), license=s.get("license"), records=records)
    if s.get("path"):
        path = Path(os.path.expanduser(str(s["path"])))
        if not path.is_absolute() and base_dir is not None:  # relative to the stats file, not to the cwd
            path = Path(base_dir) / path
        return SourceInfo.local(path, base_dir, license=s.get("license"), records=records, sha256=s.get("sha256"))
    return SourceInfo(public_text(str(s.get("name") or "?")), s.get("revision"), s.get("sha256"), s.get("license"),
                      records)


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def public_name(path: str | os.PathLike, base_dir: str | os.PathLike | None = None) -> str:
    """A path as it may be published: relative to base_dir when inside it, else the file name alone
    (a relative path without '..' is already public and kept)."""
    given = Path(os.path.expanduser(str(path)))
    if not given.is_absolute() and ".." not in given.parts and base_dir is None:
        return given.as_posix()
    p = Path(os.path.abspath(given))
    if base_dir is not None:
        base = Path(os.path.abspath(os.path.expanduser(str(base_dir))))
        if p.is_relative_to(base):
            return p.relative_to(base).as_posix()
    return p.name


_PATHLIKE = re.compile(r"(?P<url>[A-Za-z][\w+.-]*://\S+)"
                       r"|(?<![\w./~-])(?:~|[A-Za-z]:)?[/\\](?:[^\s'\"`/\\]+[/\\])*[^\s'\"`/\\]*")


def public_text(text: str) -> str:
    """Absolute paths inside a text replaced by their file names (URLs are left alone)."""
    return _PATHLIKE.sub(lambda m: m.group(0) if m.group("url") else re.split(r"[/\\]", m.group(0))[-1] or ".", text)


def public_value(value: Any, base_dir: str | os.PathLike | None = None) -> Any:
    """A settings value with every path-like string made public (relative to base_dir, else a file name)."""
    if isinstance(value, dict):
        return {str(k): public_value(v, base_dir) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [public_value(v, base_dir) for v in value]
    if isinstance(value, os.PathLike) or (isinstance(value, str) and (os.path.isabs(value) or value.startswith("~"))):
        return public_name(value, base_dir)
    return public_text(value) if isinstance(value, str) else value


# -- the card -------------------------------------------------------------------------------------

def render_card(repo_id: str, configs: list[ConfigCard], info: CardInfo,
                other_configs: tuple[dict[str, Any], ...] | list[dict[str, Any]] = ()) -> str:
    license = info.license or "unknown"
    rows = max((c.rows for c in configs), default=0)
    title = info.title or repo_id.split("/")[-1]
    meta: dict[str, Any] = {
        "license": license,
        **({"language": list(info.languages)} if info.languages else {}),
        "task_categories": ["text-generation"],
        "size_categories": [size_category(rows)],
        "pretty_name": title,
        "tags": sorted({"instruction-tuning", "instructgen", *(c.format for c in configs), *info.tags}),
        "configs": [
            {"config_name": c.name, **({"default": True} if i == 0 else {}),
             "data_files": [{"split": s, "path": f"{c.name}/{s}-*"} for s in c.splits]}
            for i, c in enumerate(configs)
        ] + list(other_configs),
    }
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    body = [f"# {title}", ""]
    body += _what(configs)
    if other_configs:
        body += ["Other configs in this repository, pushed separately: "
                 + ", ".join(f"`{c['config_name']}`" for c in other_configs) + ".", ""]
    body += _how_built(info)
    body += _counts(info.stages)
    for c in configs:
        body += _config_section(c)
    body += _how_to_load(repo_id, configs, "SHA")
    body += ["## License", "", f"`{license}`" + (" (see the sources above for the terms of each source)."
                                                   if info.sources else "."), ""]
    return f"---\n{front}---\n\n" + "\n".join(body)


def _what(configs: list[ConfigCard]) -> list[str]:
    lines = [
        "Instruction-tuning data built with instructgen. "
        "The same records are published once per trainer format; each format is a config:", "",
        "| config | format | rows |", "|---|---|---|",
    ]
    lines += [f"| `{c.name}` | {c.format} | {c.rows} |" for c in configs]
    return lines + [""]


def _how_built(info: CardInfo) -> list[str]:
    lines = ["## How it was built", ""]
    if info.sources:
        lines += ["Sources:", ""]
        for s in info.sources:
            parts = [f"revision `{s.revision}`" if s.revision else None,
                     f"sha256 `{s.sha256}`" if s.sha256 else None,
                     f"license `{s.license}`" if s.license else None,
                     f"{s.records} records" if s.records is not None else None]
            kept = [p for p in parts if p]
            lines.append(f"- `{public_text(s.name)}`" + (" — " + ", ".join(kept) if kept else ""))
        lines.append("")
    for value, title in ((info.generation, "Generation"), (info.filters, "Filters"), (info.dedup, "Deduplication")):
        if value:
            lines += [f"{title}:", ""] + _settings(public_value(value)) + [""]
    if len(lines) == 2:
        lines += ["No build statistics were given when this dataset was pushed.", ""]
    return lines


def _settings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [f"- {k}: `{json.dumps(v, ensure_ascii=False, sort_keys=True)}`" for k, v in value.items()]
    return [f"- `{json.dumps(value, ensure_ascii=False, sort_keys=True)}`"]


def _counts(stages: tuple[dict[str, Any], ...]) -> list[str]:
    if not stages:
        return []
    lines = ["## Counts per stage", "", "in = out + rejected + filtered + duplicates", "",
             "| stage | in | out | rejected | filtered | duplicates |", "|---|---|---|---|---|---|"]
    for s in stages:
        lines.append("| {} | {} | {} | {} | {} | {} |".format(
            public_text(str(s["stage"])), *(s.get(k, 0) for k in ("in", "out", "rejected", "filtered", "duplicates"))))
    return lines + [""]


def _config_section(c: ConfigCard) -> list[str]:
    lines = [f"## Config `{c.name}` ({c.format})", "", "| field | type | description |", "|---|---|---|"]
    lines += [f"| `{name}` | {kind} | {FIELD_DOCS.get(name, '')} |" for name, kind in c.schema]
    lines.append("")
    for i, example in enumerate(c.examples[:2], 1):
        text = json.dumps(example, ensure_ascii=False, indent=2)
        lines += [f"Example {i}:", "", "```json", text, "```", ""]
    return lines


def _how_to_load(repo_id: str, configs: list[ConfigCard], revision_hint: str) -> list[str]:
    first = configs[0].name if configs else "default"
    lines = ["## How to load it", "", "```python", "from datasets import load_dataset", ""]
    lines += [f'ds = load_dataset("{repo_id}", "{c.name}", revision="{revision_hint}")' for c in configs[:3]]
    lines += ["```", "", "or, as instructgen records in any format:", "", "```",
              f"instructgen download {repo_id} --config {first} --revision {revision_hint} --to sharegpt -o data.jsonl",
              "```", "",
              "Pin `revision` to the commit you trained on: the commit SHA is printed by `instructgen push` "
              "and listed in the repository's history.", ""]
    return lines
