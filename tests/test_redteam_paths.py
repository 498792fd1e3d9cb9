"""Red team, issue 9 §2: no output path destroys an input.

Each case runs the real command the way a tired user would type it and asserts what survives: the
input's bytes, the files that exist afterwards, and a one-line error (no traceback) where the command
must refuse.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ROWS = [
    '{"instruction": "Name three primary colours.", "input": "", "output": "Red, yellow and blue."}',
    '{"instruction": "Translate good morning into French.", "input": "", "output": "Bonjour."}',
    '{"instruction": "Name three primary colours.", "input": "", "output": "Red, yellow and blue."}',
    '{"instruction": "broken',
]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "instructgen.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def refused(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "error:" in lines[0], result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(ROWS) + "\n", encoding="utf-8")
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_filter_whose_input_is_the_default_rejects_name_keeps_the_input(tmp_path, data):
    """`cp data.jsonl in.rejects.jsonl; instructgen filter in.rejects.jsonl -o in.jsonl` deleted its input."""
    src = tmp_path / "in.rejects.jsonl"
    src.write_bytes(data.read_bytes())
    before = src.read_bytes()
    result = cli("filter", src.name, "-o", "in.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert src.read_bytes() == before
    assert (tmp_path / "in.jsonl").exists()
    moved = tmp_path / "in.rejects.1.jsonl"  # the default rejects name was taken by the input: moved aside
    assert moved.exists() and "in.rejects.1.jsonl" in result.stderr


@pytest.mark.parametrize("flag", ["--stats", "--rejects"])
def test_convert_refuses_an_output_flag_naming_the_input(tmp_path, data, flag):
    before = data.read_bytes()
    result = cli("convert", str(data), "--to", "sharegpt", "-o", "out.jsonl", flag, str(data), cwd=tmp_path)
    refused(result, flag, str(data))
    assert data.read_bytes() == before
    assert not (tmp_path / "out.jsonl").exists()


def test_dedup_clusters_naming_the_input_through_an_alias_is_refused(tmp_path, data):
    (tmp_path / "sub").mkdir()
    alias = f"sub/../{data.name}"
    before = data.read_bytes()
    refused(cli("dedup", str(data), "-o", "out.jsonl", "--clusters", alias, cwd=tmp_path), "--clusters")
    assert data.read_bytes() == before


def test_dedup_output_naming_the_reference_is_refused(tmp_path, data):
    ref = tmp_path / "ref.jsonl"
    ref.write_text(ROWS[0] + "\n", encoding="utf-8")
    before = ref.read_bytes()
    refused(cli("dedup", str(data), "--against", str(ref), "-o", str(ref), cwd=tmp_path), "-o", "--against")
    assert ref.read_bytes() == before


def test_a_symlink_to_the_input_is_the_input(tmp_path, data):
    link = tmp_path / "link.jsonl"
    link.symlink_to(data)
    before = data.read_bytes()
    refused(cli("filter", str(data), "-o", str(link), cwd=tmp_path), "-o")
    assert data.read_bytes() == before and link.is_symlink()


def test_a_hard_link_to_the_input_is_the_input(tmp_path, data):
    twin = tmp_path / "twin.jsonl"
    os.link(data, twin)
    before = data.read_bytes()
    refused(cli("convert", str(data), "--to", "alpaca", "-o", "out.jsonl", "--rejects", str(twin), cwd=tmp_path),
            "--rejects")
    assert data.read_bytes() == before


def test_two_outputs_that_are_one_file_are_refused(tmp_path, data):
    refused(cli("filter", str(data), "-o", "out.jsonl", "--rejects", "out.jsonl", cwd=tmp_path), "same file")
    assert snapshot(tmp_path).keys() == {"data.jsonl"}


def test_stats_json_naming_the_input_is_refused(tmp_path, data):
    before = data.read_bytes()
    refused(cli("stats", str(data), "--json", str(data), cwd=tmp_path), "--json")
    assert data.read_bytes() == before


def test_the_same_input_named_twice_is_refused_not_doubled(tmp_path, data):
    result = cli("convert", str(data), f"./{data.name}", "--to", "alpaca", "-o", "out.jsonl", cwd=tmp_path)
    refused(result, "named twice")
    assert not (tmp_path / "out.jsonl").exists()


def test_nothing_is_unlinked_before_the_input_is_read(tmp_path, data):
    """A stale rejects file of an earlier run is replaced only once the run has its own (never unlinked first)."""
    (tmp_path / "out.rejects.jsonl").write_text("stale\n", encoding="utf-8")
    result = cli("convert", str(data), "--to", "alpaca", "-o", "out.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rejects = (tmp_path / "out.rejects.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rejects) == 1 and "stale" not in rejects[0] and "data.jsonl:4" in rejects[0]
