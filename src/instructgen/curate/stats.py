"""`instructgen stats`: what a dataset holds, at a glance.

    dataset_stats(records: Iterable[Conversation], detector: str = "script+langdetect",
                  lang_sample: int = 20000) -> dict
        counts (records, formats, multi-turn, system prompts, tools, empty outputs, records flagged per signal
        by the filter: meta.flags), language mix of
        the first user message (over the first `lang_sample` records: langdetect costs ~2 ms a text),
        and length percentiles (characters, and words/CJK characters) of instructions and outputs.
    format_stats(stats: dict) -> str      the same as a plain-text table
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from ..record import Conversation
from .langid import get_detector
from .rules import text_length, turns_of

PERCENTILES = (5, 25, 50, 75, 95)


def dataset_stats(records: Iterable[Conversation], detector: str = "script+langdetect", lang_sample: int = 20000) -> dict:
    import polars as pl

    det = get_detector(detector)
    formats: Counter[str] = Counter()
    languages: Counter[str] = Counter()
    flags: Counter[str] = Counter()
    cols: dict[str, list[int]] = {k: [] for k in ("turns", "instruction_chars", "instruction_units",
                                                   "output_chars", "output_units")}
    n = with_system = with_tools = empty_output = multi_turn = 0
    for conv in records:
        n += 1
        formats[conv.source_format or "?"] += 1
        output = "\n".join(t.output for t in turns_of(conv))
        user = next((m.content for m in conv.turns if m.role == "user"), "")
        turns = sum(1 for m in conv.turns if m.role == "user")
        multi_turn += turns > 1
        with_system += conv.system is not None
        with_tools += conv.has_tools()
        empty_output += not output.strip()
        flags.update({f.get("rule", "?") for f in conv.meta.get("flags") or [] if isinstance(f, dict)})
        cols["turns"].append(turns)
        cols["instruction_chars"].append(len(user))
        cols["instruction_units"].append(text_length(user)[0])
        cols["output_chars"].append(len(output))
        cols["output_units"].append(text_length(output)[0])
        if n <= lang_sample:
            languages[det.detect(user) or "unknown"] += 1
    lengths = {}
    if n:
        df = pl.DataFrame(cols)
        for name in cols:
            s = df[name]
            lengths[name] = {"mean": round(float(s.mean()), 1), "max": int(s.max()),
                             **{f"p{p}": round(float(s.quantile(p / 100, "linear")), 1) for p in PERCENTILES}}
    return {
        "records": n,
        "formats": dict(formats.most_common()),
        "multi_turn": multi_turn,
        "with_system": with_system,
        "with_tools": with_tools,
        "empty_output": empty_output,
        "flags": dict(flags.most_common()),
        "languages": dict(languages.most_common()),
        "language_sample": min(n, lang_sample),
        "language_detector": det.name,
        "lengths": lengths,
    }


def format_stats(stats: dict) -> str:
    n = stats["records"]
    pct = lambda k: f"{k} ({100 * k / n:.1f} %)" if n else "0"  # noqa: E731
    lines = [
        f"records        {n}",
        f"formats        {', '.join(f'{k} {v}' for k, v in stats['formats'].items()) or '-'}",
        f"multi-turn     {pct(stats['multi_turn'])}",
        f"system prompt  {pct(stats['with_system'])}",
        f"tools          {pct(stats['with_tools'])}",
        f"empty output   {pct(stats['empty_output'])}",
    ]
    if stats.get("flags"):
        lines.append("flagged        " + ", ".join(f"{k} {pct(v)}" for k, v in stats["flags"].items()))
    sample = stats["language_sample"]
    mix = ", ".join(f"{k} {100 * v / sample:.1f} %" for k, v in stats["languages"].items()) if sample else "-"
    note = f" (first {sample} records)" if sample < n else ""
    lines.append(f"languages      {mix}{note}  [{stats['language_detector']}]")
    if stats["lengths"]:
        head = ["", "mean", *(f"p{p}" for p in PERCENTILES), "max"]
        lines.append("")
        lines.append(f"{head[0]:<20}" + "".join(f"{h:>9}" for h in head[1:]))
        labels = {"turns": "user turns", "instruction_chars": "instruction chars",
                  "instruction_units": "instruction words*", "output_chars": "output chars",
                  "output_units": "output words*"}
        for key, label in labels.items():
            row = stats["lengths"][key]
            vals = [row["mean"], *(row[f"p{p}"] for p in PERCENTILES), row["max"]]
            lines.append(f"{label:<20}" + "".join(f"{v:>9g}" for v in vals))
        lines.append("* words for space-separated text, characters for CJK text")
    return "\n".join(lines)
