"""The dataset card (README.md) of a pushed dataset: YAML front matter + a body a person can read.

`render_card(...)` is pure: the same arguments give the same bytes (no dates,
no environment), so an unchanged dataset gives an unchanged card and the push
stays a no-op. It never sees a token. The build details come from an optional
`stats` dict (the pipeline's stats.json): `stages` (counts per stage, as
written by `runlog.write_stats`), `sources` ([{name|repo, revision, license, records}]) or one
`source` (as `instructgen download` writes it),
`generation` ({model, params...}), `filters` and `dedup` (settings).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
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


def render_card(
    repo_id: str,
    configs: list[ConfigCard],
    *,
    license: str | None = None,
    languages: list[str] | None = None,
    pretty_name: str | None = None,
    tags: list[str] | None = None,
    stats: dict[str, Any] | None = None,
    revision_hint: str = "SHA",
    other_configs: list[dict[str, Any]] | None = None,
) -> str:
    stats = stats or {}
    license = license or stats.get("license") or "unknown"
    rows = max((c.rows for c in configs), default=0)
    meta: dict[str, Any] = {
        "license": license,
        **({"language": languages} if languages else {}),
        "task_categories": ["text-generation"],
        "size_categories": [size_category(rows)],
        "pretty_name": pretty_name or repo_id.split("/")[-1],
        "tags": sorted({"instruction-tuning", "instructgen", *(c.format for c in configs), *(tags or [])}),
        "configs": [
            {"config_name": c.name, **({"default": True} if i == 0 else {}),
             "data_files": [{"split": s, "path": f"{c.name}/{s}-*"} for s in c.splits]}
            for i, c in enumerate(configs)
        ] + list(other_configs or []),
    }
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    body = [f"# {meta['pretty_name']}", ""]
    body += _what(repo_id, configs)
    if other_configs:
        body += ["Other configs in this repository, pushed separately: "
                 + ", ".join(f"`{c['config_name']}`" for c in other_configs) + ".", ""]
    body += _how_built(stats)
    body += _counts(stats)
    for c in configs:
        body += _config_section(c)
    body += _how_to_load(repo_id, configs, revision_hint)
    body += ["## License", "", f"`{license}`" + (" (see the sources above for the terms of each source)."
                                                   if stats.get("sources") else "."), ""]
    return f"---\n{front}---\n\n" + "\n".join(body)


def _what(repo_id: str, configs: list[ConfigCard]) -> list[str]:
    lines = [
        "Instruction-tuning data built with instructgen. "
        "The same records are published once per trainer format; each format is a config:", "",
        "| config | format | rows |", "|---|---|---|",
    ]
    lines += [f"| `{c.name}` | {c.format} | {c.rows} |" for c in configs]
    return lines + [""]


def _how_built(stats: dict[str, Any]) -> list[str]:
    lines = ["## How it was built", ""]
    sources = stats.get("sources") or ([stats["source"]] if isinstance(stats.get("source"), dict) else [])
    if sources:
        lines += ["Sources:", ""]
        for s in sources:
            name = s.get("repo") or s.get("name") or s.get("path") or "?"
            parts = [f"revision `{s['revision']}`" if s.get("revision") else None,
                     f"license `{s['license']}`" if s.get("license") else None,
                     f"{s['records']} records" if s.get("records") is not None else None]
            lines.append(f"- `{name}`" + (" — " + ", ".join(p for p in parts if p) if any(parts) else ""))
        lines.append("")
    for key, title in (("generation", "Generation"), ("filters", "Filters"), ("dedup", "Deduplication")):
        value = stats.get(key)
        if value:
            lines += [f"{title}:", ""] + _settings(value) + [""]
    if len(lines) == 2:
        lines += ["No build statistics were given when this dataset was pushed.", ""]
    return lines


def _settings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [f"- {k}: `{json.dumps(v, ensure_ascii=False, sort_keys=True)}`" for k, v in value.items()]
    return [f"- `{json.dumps(value, ensure_ascii=False, sort_keys=True)}`"]


def _counts(stats: dict[str, Any]) -> list[str]:
    stages = [s for s in stats.get("stages") or [] if isinstance(s, dict) and "stage" in s]
    if not stages:
        return []
    lines = ["## Counts per stage", "", "in = out + rejected + filtered + duplicates", "",
             "| stage | in | out | rejected | filtered | duplicates |", "|---|---|---|---|---|---|"]
    for s in stages:
        lines.append("| {} | {} | {} | {} | {} | {} |".format(
            s["stage"], *(s.get(k, 0) for k in ("in", "out", "rejected", "filtered", "duplicates"))))
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
