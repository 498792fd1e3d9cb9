"""The run report: stats and a profile of the output -> report.md and a self-contained report.html.

The HTML has inline SVG charts and inline CSS only (no script, no network),
so it opens from disk, from a CI artifact or a mail attachment. Charts:
counts through the stages, rejects per reason, language mix, length
distributions (instruction/output per language), duplicate cluster sizes;
then a few example records per reject reason.

    data = ReportData(title, stages=[log.to_dict() ...], examples=..., profile=profile_records(records), ...)
    md_path, html_path = write_report(out_dir, data)
"""

from __future__ import annotations

import html
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from .curate import langid, rules
from .io import write_text_atomic
from .record import Conversation

LENGTH_BINS = (0, 5, 10, 20, 40, 80, 160, 320, 640, 1280)
KIND_COLOURS = {"out": "#2e7d32", "filtered": "#f9a825", "duplicates": "#1565c0", "rejected": "#c62828"}
EXAMPLE_CHARS = 400


@dataclass(slots=True)
class Profile:
    """What the report needs to know about each output record, kept small: (lang, instruction length, output length)."""

    rows: list[tuple[str, int, int]] = field(default_factory=list)

    def languages(self) -> Counter[str]:
        return Counter(lang for lang, _, _ in self.rows)


@dataclass(slots=True)
class ReportData:
    title: str
    stages: list[dict[str, Any]]  # RunLog.to_dict() per stage, in pipeline order
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # reason -> a few dropped entries
    profile: Profile = field(default_factory=Profile)
    cluster_sizes: list[int] = field(default_factory=list)  # records per duplicate cluster (kept + removed)
    outputs: dict[str, str] = field(default_factory=dict)  # format -> file
    hub: dict[str, Any] | None = None  # {"repo", "commit_url" | "dry_run_dir"}
    notes: list[str] = field(default_factory=list)


# -- profiling ---------------------------------------------------------------------------------------

def script_language(text: str) -> str:
    """A script-based language guess: zh / ja / ko (the curate stage's script check), else 'latin' or 'other'.

    The curate stage has the real detector; the report only needs a stable, fast split.
    """
    lang = langid.script_language(text)
    if lang:
        return lang
    return "latin" if any(ch.isalpha() and ord(ch) < 0x250 for ch in text[:400]) else "other"


def text_length(text: str) -> int:
    """Words for space-separated text, characters for CJK (the unit the filters use)."""
    return rules.text_length(text)[0]


def profile_records(records: Iterable[Conversation], lang_of: Callable[[str], str] = script_language) -> Profile:
    prof = Profile()
    for conv in records:
        users = [m.content for m in conv.messages if m.role == "user"]
        answers = [m.content for m in conv.messages if m.role == "assistant"]
        instruction = users[0] if users else ""
        output = answers[-1] if answers else ""
        prof.rows.append((lang_of(instruction + "\n" + output), text_length(instruction), text_length(output)))
    return prof


# -- writing -----------------------------------------------------------------------------------------

def write_report(out_dir: str | os.PathLike, data: ReportData) -> tuple[Path, Path]:
    out = Path(out_dir)
    md, page = out / "report.md", out / "report.html"
    write_text_atomic(md, render_markdown(data))
    write_text_atomic(page, render_html(data))
    return md, page


def counts_table(stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per stage: stage, in, out, rejected, filtered, duplicates, balanced."""
    return [{k: s.get(k, 0) for k in ("stage", "in", "out", "rejected", "filtered", "duplicates", "balanced")}
            for s in stages]


def _reasons(stages: list[dict[str, Any]]) -> list[tuple[str, str, str, int]]:
    return [(s["stage"], r["kind"], r["reason"], r["count"]) for s in stages for r in s.get("reasons", [])]


def _losses(stages: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    """(stage, what was lost, records): information a target format could not hold; the records still went out."""
    return [(s["stage"], what, n) for s in stages for what, n in (s.get("losses") or {}).items()]


def _bin_label(i: int) -> str:
    lo = LENGTH_BINS[i]
    return f"{lo}+" if i == len(LENGTH_BINS) - 1 else f"{lo}-{LENGTH_BINS[i + 1] - 1}"


def histogram(values: Iterable[int]) -> list[tuple[str, int]]:
    counts = [0] * len(LENGTH_BINS)
    for v in values:
        i = len(LENGTH_BINS) - 1
        while LENGTH_BINS[i] > v:
            i -= 1
        counts[i] += 1
    return [(_bin_label(i), c) for i, c in enumerate(counts)]


def _percentiles(values: list[int]) -> str:
    if not values:
        return "-"
    v = sorted(values)
    pick = lambda q: v[min(len(v) - 1, int(q * (len(v) - 1) + 0.5))]  # noqa: E731
    return f"{pick(0.05)} / {pick(0.5)} / {pick(0.95)} / {v[-1]}"


def _cluster_hist(sizes: list[int]) -> list[tuple[str, int]]:
    c = Counter(min(s, 10) for s in sizes)
    return [(f"{k}" if k < 10 else "10+", c[k]) for k in sorted(c)]


def _by_lang(p: Profile) -> dict[str, tuple[list[int], list[int]]]:
    out: dict[str, tuple[list[int], list[int]]] = {}
    for lang, i, o in p.rows:
        ins, outs = out.setdefault(lang, ([], []))
        ins.append(i)
        outs.append(o)
    return dict(sorted(out.items(), key=lambda kv: -len(kv[1][0])))


def _short(value: Any) -> str:
    import orjson

    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS] + " …"


def render_markdown(d: ReportData) -> str:
    md = [f"# {d.title}", ""]
    md += ["## Records through the stages", "", "| stage | in | out | rejected | filtered | duplicates | balanced |",
           "|---|---:|---:|---:|---:|---:|---|"]
    for r in counts_table(d.stages):
        md.append(f"| {r['stage']} | {r['in']} | {r['out']} | {r['rejected']} | {r['filtered']} | {r['duplicates']} | "
                  f"{'yes' if r['balanced'] else 'NO'} |")
    reasons = _reasons(d.stages)
    md += ["", "## Dropped records per reason", ""]
    if reasons:
        md += ["| stage | kind | reason | records |", "|---|---|---|---:|"]
        md += [f"| {s} | {k} | {_md_cell(r)} | {n} |" for s, k, r, n in reasons]
    else:
        md.append("Nothing was dropped.")
    losses = _losses(d.stages)
    if losses:
        md += ["", "## Losses when writing formats (records kept, information dropped)", "",
               "| stage | lost | records |", "|---|---|---:|"]
        md += [f"| {s} | {_md_cell(w)} | {n} |" for s, w, n in losses]
    langs = d.profile.languages()
    md += ["", "## Language mix of the output", "", "| language | records |", "|---|---:|"]
    md += [f"| {lang} | {n} |" for lang, n in langs.most_common()]
    md += ["", "## Lengths (words; characters for CJK): p5 / median / p95 / max", "",
           "| language | instruction | output |", "|---|---|---|"]
    md += [f"| {lang} | {_percentiles(i)} | {_percentiles(o)} |" for lang, (i, o) in _by_lang(d.profile).items()]
    md += ["", "## Duplicate clusters", ""]
    if d.cluster_sizes:
        md += [f"{len(d.cluster_sizes)} clusters, largest {max(d.cluster_sizes)} records.", "",
               "| cluster size | clusters |", "|---|---:|"]
        md += [f"| {label} | {n} |" for label, n in _cluster_hist(d.cluster_sizes)]
    else:
        md.append("No duplicate clusters.")
    if d.outputs or d.hub:
        md += ["", "## Outputs", ""]
        md += [f"- `{fmt}`: `{path}`" for fmt, path in d.outputs.items()]
        if d.hub:
            md += [f"- Hub: {_hub_line(d.hub)}"]
    if d.examples:
        md += ["", "## Examples of dropped records", ""]
        for reason, entries in d.examples.items():
            md += [f"### {reason}", ""]
            for e in entries:
                md += [f"- `{e.get('origin', '')}` ({e.get('stage', '')}, {e.get('kind', '')}){_detail(e, ': ')}", "",
                       "  ```json", "  " + _short(e.get("raw")).replace("\n", "\n  "), "  ```"]
            md.append("")
    md += [f"- {n}" for n in d.notes]
    return "\n".join(md).rstrip() + "\n"


def _detail(entry: dict[str, Any], lead: str) -> str:
    """What a rule or dedup said beyond the reason: the rule's detail, or the record it duplicates."""
    if entry.get("detail"):
        return f"{lead}{entry['detail']}"
    if entry.get("duplicate_of"):
        return f"{lead}duplicate of {entry['duplicate_of']} (similarity {entry.get('similarity', '?')})"
    return ""


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _hub_line(hub: dict[str, Any]) -> str:
    if hub.get("commit_url"):
        return f"[{hub.get('repo', 'commit')}]({hub['commit_url']})"
    if hub.get("dry_run_dir"):
        return f"dry run for `{hub.get('repo', '')}` written to `{hub['dry_run_dir']}`"
    return hub.get("message", "not published")


# -- HTML + SVG ----------------------------------------------------------------------------------------

CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
td.n{text-align:right}h2{margin-top:1.6em;border-bottom:1px solid #ddd}svg{display:block;margin:.5em 0}
pre{background:#f6f6f6;padding:6px;white-space:pre-wrap;word-break:break-all;font-size:12px}.bad{color:#c62828}
.grid{display:flex;flex-wrap:wrap;gap:1em}.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def svg_bars(items: list[tuple[str, int]], title: str, colour: str = "#1565c0", width: int = 460) -> str:
    """A horizontal bar chart."""
    label_w, bar_h, gap = 170, 16, 4
    height = 24 + len(items) * (bar_h + gap)
    top = max([v for _, v in items] + [1])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
             f'aria-label="{_e(title)}"><title>{_e(title)}</title>',
             f'<text x="0" y="14" font-weight="bold" font-size="13">{_e(title)}</text>']
    span = width - label_w - 60
    for i, (label, v) in enumerate(items):
        y = 24 + i * (bar_h + gap)
        w = round(span * v / top)
        short = label if len(label) <= 26 else label[:25] + "…"
        parts.append(f'<text x="{label_w - 6}" y="{y + 12}" font-size="11" text-anchor="end">'
                     f'<title>{_e(label)}</title>{_e(short)}</text>'
                     f'<rect x="{label_w}" y="{y}" width="{w}" height="{bar_h}" fill="{colour}"/>'
                     f'<text x="{label_w + w + 4}" y="{y + 12}" font-size="11">{v}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_stages(stages: list[dict[str, Any]], width: int = 720) -> str:
    """One stacked bar per stage: out / filtered / duplicates / rejected, scaled to the largest `in`."""
    label_w, bar_h, gap = 150, 18, 6
    height = 44 + len(stages) * (bar_h + gap)
    top = max([s.get("in", 0) for s in stages] + [1])
    span = width - label_w - 90
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
             'aria-label="records through the stages"><title>records through the stages</title>']
    x = 0
    for kind, colour in KIND_COLOURS.items():
        parts.append(f'<rect x="{x}" y="4" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{x + 14}" y="13" font-size="11">{kind}</text>')
        x += 90
    for i, s in enumerate(stages):
        y = 30 + i * (bar_h + gap)
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" font-size="11" text-anchor="end">{_e(s["stage"])}</text>')
        x = label_w
        for kind, colour in KIND_COLOURS.items():
            n = s.get(kind, 0)
            w = span * n / top
            if n:
                parts.append(f'<rect x="{x:.1f}" y="{y}" width="{max(w, 1):.1f}" height="{bar_h}" fill="{colour}">'
                             f'<title>{_e(s["stage"])}: {kind} {n}</title></rect>')
            x += w
        parts.append(f'<text x="{x + 4:.1f}" y="{y + 13}" font-size="11">in {s.get("in", 0)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(header: list[str], rows: list[list[Any]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td{" class=n" if j in numeric else ""}>{_e(c)}</td>' for j, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(d: ReportData) -> str:
    h = [f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(d.title)}</title>'
         f"<style>{CSS}</style></head><body><h1>{_e(d.title)}</h1>"]
    h.append("<h2>Records through the stages</h2>" + svg_stages(d.stages))
    h.append(_table(["stage", "in", "out", "rejected", "filtered", "duplicates", "balanced"],
                    [[r["stage"], r["in"], r["out"], r["rejected"], r["filtered"], r["duplicates"],
                      "yes" if r["balanced"] else "NO"] for r in counts_table(d.stages)], {1, 2, 3, 4, 5}))
    reasons = _reasons(d.stages)
    h.append("<h2>Dropped records per reason</h2>")
    if reasons:
        h.append(svg_bars([(f"{s}: {r}", n) for s, _, r, n in reasons], "records dropped per reason", "#c62828"))
        h.append(_table(["stage", "kind", "reason", "records"], [list(x) for x in reasons], {3}))
    else:
        h.append("<p>Nothing was dropped.</p>")
    losses = _losses(d.stages)
    if losses:
        h.append("<h2>Losses when writing formats</h2><p>Records kept; information the format cannot hold dropped.</p>")
        h.append(_table(["stage", "lost", "records"], [list(x) for x in losses], {2}))
    h.append("<h2>Language mix of the output</h2>")
    h.append(svg_bars(d.profile.languages().most_common(), "output records per language", "#6a1b9a"))
    h.append("<h2>Length distributions</h2><p>Words for space-separated text, characters for CJK.</p><div class=grid>")
    for lang, (ins, outs) in _by_lang(d.profile).items():
        h.append(svg_bars(histogram(ins), f"{lang}: instruction length", "#00838f", 340))
        h.append(svg_bars(histogram(outs), f"{lang}: output length", "#ef6c00", 340))
    h.append("</div><h2>Duplicate clusters</h2>")
    if d.cluster_sizes:
        h.append(f"<p>{len(d.cluster_sizes)} clusters, largest {max(d.cluster_sizes)} records.</p>")
        h.append(svg_bars(_cluster_hist(d.cluster_sizes), "clusters by size (records)", "#1565c0"))
    else:
        h.append("<p>No duplicate clusters.</p>")
    if d.outputs or d.hub:
        items = [f"<li><code>{_e(f)}</code>: <code>{_e(p)}</code></li>" for f, p in d.outputs.items()]
        if d.hub:
            link = (f'<a href="{_e(d.hub["commit_url"])}">{_e(d.hub.get("repo", "commit"))}</a>'
                    if d.hub.get("commit_url") else _e(_hub_line(d.hub)))
            items.append(f"<li>Hub: {link}</li>")
        h.append("<h2>Outputs</h2><ul>" + "".join(items) + "</ul>")
    if d.examples:
        h.append("<h2>Examples of dropped records</h2>")
        for reason, entries in d.examples.items():
            h.append(f"<h3>{_e(reason)}</h3>")
            for e in entries:
                h.append(f"<p><code>{_e(e.get('origin', ''))}</code> ({_e(e.get('stage', ''))}, "
                         f"{_e(e.get('kind', ''))}){_e(_detail(e, ': '))}</p><pre>{_e(_short(e.get('raw')))}</pre>")
    if d.notes:
        h.append("<ul>" + "".join(f"<li>{_e(n)}</li>" for n in d.notes) + "</ul>")
    h.append("</body></html>\n")
    return "\n".join(h)
