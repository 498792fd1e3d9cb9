"""The run report: valid self-contained HTML with charts, and a markdown twin with the same numbers."""

from __future__ import annotations

from html.parser import HTMLParser

from instructgen.curate.langid import script_language
from instructgen.curate.rules import text_length
from instructgen.report import Profile, ReportData, histogram, render_html, render_markdown, write_report
from instructgen.runlog import RunLog

VOID = {"meta", "br", "hr", "img", "input", "link", "rect", "path", "line", "circle"}


class Checker(HTMLParser):
    """Counts elements and checks that every opened element is closed in order."""

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.count: dict[str, int] = {}
        self.errors: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.count[tag] = self.count.get(tag, 0) + 1
        for name, value in attrs:
            if name in ("src", "href") and value and value.startswith(("http:", "https:", "//")):
                self.external.append(value)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.count[tag] = self.count.get(tag, 0) + 1

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()


def sample_data() -> ReportData:
    read = RunLog("read")
    read.took_in(6)
    read.emitted(5)
    read.drop("a.jsonl:3", "malformed JSON", '{"x": <b>', kind="rejected")
    filt = RunLog("filter")
    filt.took_in(5)
    filt.emitted(4)
    filt.drop("a.jsonl:4", "refusal", {"output": "As an AI language model <script>alert(1)</script>"}, kind="filtered")
    dedup = RunLog("dedup")
    dedup.took_in(4)
    dedup.emitted(3)
    dedup.drop("a.jsonl:6", "near duplicate", {"instruction": "x"}, kind="duplicates", duplicate_of="a.jsonl:1")
    profile = Profile(rows=[("en", 5, 8), ("zh", 8, 15), ("en", 3, 3)])
    logs = [read, filt, dedup]
    return ReportData(
        title="test <report>",
        stages=[log.to_dict() for log in logs],
        examples={f"{log.stage}: {reason}": entries for log in logs for reason, entries in log.examples.items()},
        profile=profile,
        cluster_sizes=[2],
        outputs={"alpaca": "out/data/alpaca.jsonl"},
        hub={"repo": "me/data", "commit_url": "http://127.0.0.1:9/me/data/commit/abc"},
    )


def test_html_is_valid_self_contained_and_has_charts(tmp_path):
    data = sample_data()
    md_path, html_path = tmp_path / "report.md", tmp_path / "report.html"
    write_report(data, md_path, html_path)
    page = html_path.read_text(encoding="utf-8")
    checker = Checker()
    checker.feed(page)
    checker.close()
    assert checker.errors == [] and checker.stack == []
    assert "script" not in checker.count  # the escaped example must not become a script element
    assert checker.count.get("svg", 0) >= 5  # stages, reasons, languages, lengths (x2 per language), clusters
    assert checker.count.get("rect", 0) > 10
    assert checker.external == ["http://127.0.0.1:9/me/data/commit/abc"]  # only the Hub commit link
    assert "&lt;script&gt;" in page and "test &lt;report&gt;" in page
    for label in ("zh: instruction length", "en: output length", "records through the stages"):
        assert label in page


def test_markdown_has_the_same_counts(tmp_path):
    data = sample_data()
    md = render_markdown(data)
    assert "| read | 6 | 5 | 1 | 0 | 0 | yes |" in md
    assert "| filter | 5 | 4 | 0 | 1 | 0 | yes |" in md
    assert "| dedup | 4 | 3 | 0 | 0 | 1 | yes |" in md
    assert "| dedup | duplicates | near duplicate | 1 |" in md
    assert "| zh | 1 |" in md and "| en | 2 |" in md
    assert "[me/data](http://127.0.0.1:9/me/data/commit/abc)" in md
    assert "a.jsonl:4" in md  # an example of each reject reason
    page = render_html(data)
    assert "records dropped per reason" in page


def test_profile_units_and_histogram():
    assert script_language("用一句话介绍长城") == "zh"
    assert script_language("hello there") is None
    assert script_language("こんにちは、元気ですか") == "ja"
    assert text_length("three short words") == (3, "words")
    assert text_length("长城很长") == (4, "characters")
    assert text_length("用 Python 写代码") == (5, "characters")
    hist = dict(histogram([0, 4, 5, 19, 20, 5000]))
    assert hist["0-4"] == 2 and hist["5-9"] == 1 and hist["10-19"] == 1 and hist["20-39"] == 1 and hist["1280+"] == 1


def test_losses_of_the_write_stages_are_reported(tmp_path):
    data = sample_data()
    write = RunLog("write:alpaca")
    write.took_in(3)
    write.emitted(3)
    write.lost("history dropped (kept the first turn)", 2)
    data.stages.append(write.to_dict())
    md = render_markdown(data)
    assert "| write:alpaca | history dropped (kept the first turn) | 2 |" in md
    html = render_html(data)
    assert "Losses when writing formats" in html and "history dropped (kept the first turn)" in html


def test_renderings_match_the_golden_files():
    """The templates' output, byte for byte (regenerate with INSTRUCTGEN_UPDATE_GOLDEN=1 after a deliberate change)."""
    import os
    from pathlib import Path

    golden = Path(__file__).parent / "golden"
    data = sample_data()
    for name, text in (("report.md", render_markdown(data)), ("report.html", render_html(data))):
        if os.environ.get("INSTRUCTGEN_UPDATE_GOLDEN"):
            (golden / name).write_text(text, encoding="utf-8")
        assert text == (golden / name).read_text(encoding="utf-8"), name


def test_signals_flagged_and_dialogues_cut_are_shown_in_both_reports(tmp_path):
    """The filter's signals are kept and flagged, not dropped, and cut dialogues are kept up to the junk turn:
    neither is a dropped record, so both get their own table (with the filter's counts) in each report."""
    data = sample_data()
    data.stages[1]["filter_flags"] = {"refusal": 3, "needs_media": 0, "language": 2}
    data.stages[1]["filter_truncated"] = {"repetition": 1}
    md = render_markdown(data)
    html = render_html(data)
    assert "| filter | refusal | 3 |" in md and "| filter | language | 2 |" in md and "needs_media" not in md
    assert "## Dialogues cut before a junk turn" in md and "| filter | repetition | 1 |" in md
    for cell in ("<td>refusal</td><td class=n>3</td>", "<td>language</td><td class=n>2</td>",
                 "<td>repetition</td><td class=n>1</td>"):
        assert cell in html
    checker = Checker()
    checker.feed(html)
    checker.close()
    assert checker.errors == [] and checker.stack == []


def test_a_run_with_no_flags_or_cuts_has_no_such_tables():
    md = render_markdown(sample_data())
    assert "Flagged records" not in md and "Dialogues cut" not in md
