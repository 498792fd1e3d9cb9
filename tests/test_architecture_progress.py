"""One rule for progress bars (issue 22, item 3): `instructgen.progress` decides and draws; no command copies it."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from instructgen import progress
from instructgen.cli import build_parser, main

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "samples" / "alpaca.jsonl"


class _Terminal:
    def __init__(self, tty: bool):
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("setting, tty, shown", [
    ("always", False, True), ("always", True, True), ("never", True, False), ("never", False, False),
    ("auto", True, True), ("auto", False, False),
])
def test_the_rule(monkeypatch, setting, tty, shown):
    monkeypatch.setattr(sys, "stderr", _Terminal(tty))
    assert progress.wanted(setting) is shown
    assert (progress.bar_maker(progress.wanted(setting)) is not None) is shown


def test_every_progress_flag_offers_the_same_choices():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    flags = {name: a for name, p in sub.choices.items() for a in p._actions if "--progress" in a.option_strings}
    assert {"convert", "filter", "dedup", "generate", "score", "push", "download", "run"} <= set(flags)
    assert all(tuple(a.choices) == progress.CHOICES for a in flags.values())


def test_no_front_end_decides_on_its_own():
    """The on/off rule (stderr a terminal?) lives in instructgen.progress only."""
    copies = [f"{rel}:{node.lineno}" for rel, _path, node in _nodes_outside_progress()
              if isinstance(node, ast.Attribute) and node.attr == "isatty"]
    assert copies == []


def _nodes_outside_progress():
    """(file relative to the repo, its path, node) for every AST node of src/instructgen and flows but
    instructgen/progress.py."""
    for path in [*(REPO / "src" / "instructgen").rglob("*.py"), *(REPO / "flows").rglob("*.py")]:
        rel = str(path.relative_to(REPO))
        if rel != "src/instructgen/progress.py":
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                yield rel, path, node


@pytest.mark.parametrize("command", ["filter", "convert", "score"])
def test_always_draws_a_bar_and_never_draws_none(tmp_path, capsys, command):
    extra = {"convert": ["--to", "sharegpt"], "score": ["--judge", "signals"]}.get(command, [])
    for setting, expected in (("always", True), ("never", False), ("auto", False)):  # captured: not a terminal
        out = tmp_path / f"{command}-{setting}.jsonl"
        assert main([command, str(SAMPLE), "-o", str(out), "--progress", setting, *extra]) == 0
        err = capsys.readouterr().err
        assert (" rec/s" in err or " rec]" in err) is expected, err
        assert out.stat().st_size > 0


def test_only_the_progress_module_makes_bars():
    """tqdm's bar class is imported in instructgen.progress only (generate imports tqdm for `tqdm.write`, which
    prints a line above bars without drawing one)."""
    makers = [f"{rel}:{node.lineno}" for rel, path, node in _nodes_outside_progress()
              if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tqdm")
              and any(alias.name != "tqdm" or not _writes_only(path) for alias in node.names)]
    assert makers == []


def _writes_only(path: Path) -> bool:
    """The module uses tqdm only as `tqdm.write(...)`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    uses = [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "tqdm"]
    writes = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "write"
              and isinstance(n.value, ast.Name) and n.value.id == "tqdm"]
    return len(uses) == len(writes)


def test_the_pipeline_draws_its_bars_through_the_progress_module(tmp_path, monkeypatch):
    from instructgen.pipeline import OutputFolder, run
    from instructgen.pipeline.config import parse_config

    drawn = []
    real = progress.bar

    def counting(*args, **kwargs):
        drawn.append(kwargs.get("desc"))
        return real(*args, **kwargs)

    monkeypatch.setattr(progress, "bar", counting)
    text = f'[pipeline]\nformats = ["alpaca"]\nreport = false\n[[sources]]\npath = "{SAMPLE}"\n'
    config = parse_config(text, tmp_path / "run.toml")
    with OutputFolder(tmp_path / "out") as layout:
        run(config, layout, announce=lambda _m: None, progress=True)
    assert {"curate", "write"} <= set(drawn)
