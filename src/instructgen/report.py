"""The run report: stage counts and a profile of the output -> report.md and a self-contained report.html.

Both come from Jinja2 templates (templates/report.md.j2, report.html.j2). The HTML has inline SVG charts
and inline CSS only (no script, no network), so it opens from disk, a CI artifact or a mail attachment.
Charts: counts through the stages, rejects per reason, language mix, length distributions per language,
duplicate cluster sizes; then a few example records per reject reason.

This module only renders numbers it is given; the pipeline computes them (pipeline/summary.py).

Names and texts in a report come from the run's inputs (the pipeline name, file names, rejected records)
and may carry markup: the HTML is autoescaped, and the markdown escapes them too (`text`, `cell`), puts file
names in code spans and records in code blocks whose fences no backticks inside can close (`code`,
`codeblock`), so no input becomes HTML, a link or an image in a markdown viewer.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Iterable

import orjson

LENGTH_BINS = (0, 5, 10, 20, 40, 80, 160, 320, 640, 1280)
KIND_COLOURS = (("out", "#2e7d32"), ("filtered", "#f9a825"), ("duplicates", "#1565c0"), ("rejected", "#c62828"))
EXAMPLE_CHARS = 400


@dataclass(slots=True)
class Profile:
    """Per output record (or an even sample of them): (language, instruction length, output length)."""

    rows: list[tuple[str, int, int]] = field(default_factory=list)
    total: int | None = None  # records the sample was drawn from (None: rows are every record)

    def languages(self) -> Counter[str]:
        return Counter(lang for lang, _, _ in self.rows)


@dataclass(slots=True)
class ReportData:
    title: str
    stages: list[dict[str, Any]]  # RunLog.to_dict() per stage, in pipeline order
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # "stage: reason" -> dropped entries
    profile: Profile = field(default_factory=Profile)
    cluster_sizes: list[int] = field(default_factory=list)  # records per duplicate cluster (kept + removed)
    outputs: dict[str, str] = field(default_factory=dict)  # format -> file
    hub: dict[str, Any] | None = None  # {"repo", "commit_url" | "dry_run_dir"}
    notes: list[str] = field(default_factory=list)


def write_report(data: ReportData, markdown: str | os.PathLike, html: str | os.PathLike) -> None:
    """The report as markdown and as an HTML page, each written atomically where the caller names it."""
    from .io import write_text_atomic

    write_text_atomic(markdown, render_markdown(data))
    write_text_atomic(html, render_html(data))


def render_markdown(d: ReportData) -> str:
    return _env(html=False).get_template("report.md.j2").render(**_context(d)).rstrip() + "\n"


def render_html(d: ReportData) -> str:
    return _env(html=True).get_template("report.html.j2").render(**_context(d)).rstrip() + "\n"


# -- the numbers the templates show ------------------------------------------------------------------------

def counts_table(stages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per stage: stage, in, out, rejected, filtered, duplicates, balanced."""
    return [{k: s.get(k, 0) for k in ("stage", "in", "out", "rejected", "filtered", "duplicates", "balanced")}
            for s in stages]


def histogram(values: Iterable[int]) -> list[tuple[str, int]]:
    counts = [0] * len(LENGTH_BINS)
    for v in values:
        i = len(LENGTH_BINS) - 1
        while LENGTH_BINS[i] > v:
            i -= 1
        counts[i] += 1
    labels = [f"{lo}-{LENGTH_BINS[i + 1] - 1}" for i, lo in enumerate(LENGTH_BINS[:-1])] + [f"{LENGTH_BINS[-1]}+"]
    return list(zip(labels, counts))


def percentiles(values: list[int]) -> str:
    """p5 / median / p95 / max."""
    if not values:
        return "-"
    v = sorted(values)
    pick = lambda q: v[min(len(v) - 1, int(q * (len(v) - 1) + 0.5))]  # noqa: E731
    return f"{pick(0.05)} / {pick(0.5)} / {pick(0.95)} / {v[-1]}"


def _by_language(p: Profile) -> dict[str, tuple[list[int], list[int]]]:
    out: dict[str, tuple[list[int], list[int]]] = {}
    for lang, i, o in p.rows:
        ins, outs = out.setdefault(lang, ([], []))
        ins.append(i)
        outs.append(o)
    return dict(sorted(out.items(), key=lambda kv: -len(kv[1][0])))


def _cluster_hist(sizes: list[int]) -> list[tuple[str, int]]:
    c = Counter(min(s, 10) for s in sizes)
    return [(f"{k}" if k < 10 else "10+", c[k]) for k in sorted(c)]


def _context(d: ReportData) -> dict[str, Any]:
    reasons = [(s["stage"], r["kind"], r["reason"], r["count"]) for s in d.stages for r in s.get("reasons", [])]
    by_lang = _by_language(d.profile)
    sampled = d.profile.total is not None and d.profile.total > len(d.profile.rows)
    # the filter's signals: records kept and flagged in meta.flags (dropped only when asked, --drop)
    flags = [(s["stage"], rule, n) for s in d.stages for rule, n in (s.get("filter_flags") or {}).items() if n]
    return {
        "d": d,
        "counts": counts_table(d.stages),
        "reasons": reasons,
        "reasons_chart": [(f"{s}: {r}", n) for s, _, r, n in reasons],
        "losses": [(s["stage"], what, n) for s in d.stages for what, n in (s.get("losses") or {}).items()],
        "flags": flags,
        "flags_chart": [(f"{stage}: {rule}", n) for stage, rule, n in flags],
        # dialogues cut before a junk turn (the removed turns are in the rejects file, kind "cut")
        "cuts": [(s["stage"], rule, n) for s in d.stages for rule, n in (s.get("filter_truncated") or {}).items()
                 if n],
        "languages": d.profile.languages().most_common(),
        "sample_note": (f"From an even sample of {len(d.profile.rows)} of the {d.profile.total} output records.\n\n"
                        if sampled else ""),
        "lengths": [(lang, percentiles(i), percentiles(o)) for lang, (i, o) in by_lang.items()],
        "histograms": [(lang, histogram(i), histogram(o)) for lang, (i, o) in by_lang.items()],
        "clusters": d.cluster_sizes,
        "cluster_hist": _cluster_hist(d.cluster_sizes),
        "kind_colours": KIND_COLOURS,
        **_quality(d.stages),
        "hub_md": _hub_line(d.hub, markdown=True) if d.hub else "",
        "hub_text": _hub_line(d.hub, markdown=False) if d.hub else "",
        "hub_link": _web_link(d.hub.get("commit_url")) if d.hub else None,
    }


def _quality(stages: list[dict[str, Any]]) -> dict[str, Any]:
    """The score and select stages' numbers: each judge's histogram, the ranking's histogram before and after
    selection, the selected share per source and language, and records at the top, middle and bottom."""
    score = next((s["score"] for s in stages if isinstance(s.get("score"), dict)), None)
    select = next((s["select"] for s in stages if isinstance(s.get("select"), dict)), None)
    judges = [(name, t.get("scored", 0), t.get("unscored", 0), t.get("mean"), list((t.get("histogram") or {}).items()))
              for name, t in ((score or {}).get("judges") or {}).items()]
    selection = None
    if select:
        hist = select.get("histogram") or {}
        edges = hist.get("edges") or []
        bins = [(f"{edges[i]:g}-{edges[i + 1]:g}", a, b)
                for i, (a, b) in enumerate(zip(hist.get("all", []), hist.get("selected", [])))]
        share = lambda groups: [(name, g["ranked"], g["selected"], f"{g['selected'] / g['ranked']:.0%}" if g["ranked"]  # noqa: E731
                                 else "-") for name, g in (groups or {}).items()]
        selection = {"by": select.get("by"), "ranked": select.get("ranked"), "selected": select.get("selected"),
                     "bins": bins, "bins_all": [(label, a) for label, a, _ in bins],
                     "bins_selected": [(label, b) for label, _, b in bins],
                     "sources": share(select.get("selected_per_source")),
                     "languages": share(select.get("selected_per_language")),
                     "language_sample": select.get("language_sample"),
                     "examples": select.get("examples") or []}
    return {"judges": judges, "selection": selection}


def _web_link(url: Any) -> str | None:
    """A link the report may make: http(s) only (a `javascript:` address from a server stays text)."""
    return url if isinstance(url, str) and re.match(r"https?://[^\s<>\"'()]+$", url) else None


def _hub_line(hub: dict[str, Any], markdown: bool) -> str:
    """The Hub line; for markdown already escaped (the link, or the text)."""
    if markdown and _web_link(hub.get("commit_url")):
        return f"[{_md_text(hub.get('repo') or 'commit')}]({hub['commit_url']})"
    if hub.get("dry_run_dir"):
        line = f"dry run for {hub.get('repo', '')} written to {hub['dry_run_dir']}"
    else:
        line = str(hub.get("message", "not published"))
    return _md_text(line) if markdown else line


def _detail(entry: dict[str, Any], lead: str) -> str:
    """What a rule or dedup said beyond the reason: the rule's detail, or the record it duplicates."""
    if entry.get("detail"):
        return f"{lead}{entry['detail']}"
    if entry.get("duplicate_of"):
        return f"{lead}duplicate of {entry['duplicate_of']} (similarity {entry.get('similarity', '?')})"
    return ""


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS] + " …"


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|])")


def _md_text(text: Any) -> str:
    """Plain text for markdown outside code: no HTML (entities), no emphasis, link, image or code syntax,
    one line."""
    one_line = " ".join(str(text).splitlines())
    escaped = one_line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", escaped)


def _cell(text: Any) -> str:
    """Text for a markdown table cell (a `|` inside is escaped like any other markup)."""
    return _md_text(text)


def _code(text: Any) -> str:
    """A markdown code span holding TEXT literally, whatever backticks it has (its fence is longer)."""
    one_line = " ".join(str(text).splitlines())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", one_line)), default=0) + 1)
    pad = " " if one_line.startswith("`") or one_line.endswith("`") else ""
    return f"{fence}{pad}{one_line}{pad}{fence}"


def _codeblock(text: Any, language: str = "") -> str:
    """A fenced markdown code block holding TEXT literally: its fence is longer than any backtick run inside."""
    body = str(text)
    fence = "`" * max(3, max((len(run) for run in re.findall(r"`+", body)), default=0) + 1)
    return f"{fence}{language}\n{body}\n{fence}"


@cache
def _env(html: bool):
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("instructgen", "templates"), autoescape=html,
                             trim_blocks=False, lstrip_blocks=False, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    env.filters.update(detail=_detail, short=_short, cell=_cell, text=_md_text, code=_code, codeblock=_codeblock)
    return env
