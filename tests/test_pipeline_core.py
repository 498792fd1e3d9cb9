"""The plain pipeline (no Prefect): it owns its output folder, and it makes the same decisions as the
single-stage commands run by hand on the same real data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from conftest import SAMPLES, shared_path

from instructgen.errors import InstructgenError
from instructgen.pipeline import OutputFolder, run
from instructgen.pipeline.config import load_config, parse_config
from instructgen.pipeline.layout import MANIFEST


def config_file(folder: Path, sources: list[Path], publish: bool = False, extra: str = "") -> Path:
    text = ('[pipeline]\nformats = ["sharegpt", "alpaca"]\nshard_size = 7\n\n[filter]\nlang = ["en", "zh"]\n\n'
            f'[publish]\nenabled = {str(publish).lower()}\nrepo = "me/test"\ndry_run = true\n{extra}\n')
    text += "".join(f'\n[[sources]]\npath = "{p}"\n' for p in sources)
    path = folder / "pipeline.toml"
    path.write_text(text, encoding="utf-8")
    return path


def quiet(_msg: str) -> None:
    pass


def run_in(out: Path, cfg_path: Path):
    cfg = load_config(cfg_path)
    with OutputFolder(out) as layout:
        return run(cfg, layout, announce=quiet)


def test_a_run_replaces_the_previous_outputs_as_a_whole(tmp_path):
    out = tmp_path / "out"
    run_in(out, config_file(tmp_path, [SAMPLES / "alpaca.jsonl"], publish=True))
    assert (out / "hub" / "README.md").exists() and (out / "data" / "alpaca.jsonl").exists()
    summary = run_in(out, config_file(tmp_path, [SAMPLES / "sharegpt.jsonl"], publish=False))
    assert not (out / "hub").exists()  # no stale Hub folder next to new data
    assert summary.balanced
    entries = set(orjson.loads((out / MANIFEST).read_bytes())["entries"])
    assert "hub" not in entries and {"data", "stats.json", "report.html"} <= entries
    assert not list(out.glob(".staging-*"))


def test_a_killed_runs_staging_folder_is_gone_after_the_next_start(tmp_path):
    out = tmp_path / "out"
    stale = out / ".staging-999999-abc"
    (stale / "data").mkdir(parents=True)
    (stale / "data" / "alpaca.jsonl").write_text("half\n", encoding="utf-8")
    run_in(out, config_file(tmp_path, [SAMPLES / "alpaca.jsonl"]))
    assert not stale.exists() and not list(out.rglob("*.tmp"))


def test_a_failed_run_leaves_the_previous_outputs_alone(tmp_path):
    out = tmp_path / "out"
    run_in(out, config_file(tmp_path, [SAMPLES / "alpaca.jsonl"]))
    before = (out / "data" / "alpaca.jsonl").read_bytes()
    cfg = load_config(config_file(tmp_path, [SAMPLES / "alpaca.jsonl"]))
    with pytest.raises(RuntimeError):
        with OutputFolder(out) as layout:
            run(cfg, layout, announce=quiet)
            raise RuntimeError("the disk caught fire")
    assert (out / "data" / "alpaca.jsonl").read_bytes() == before
    assert not list(out.glob(".staging-*"))


def test_files_no_run_wrote_are_never_replaced(tmp_path):
    out = tmp_path / "out"
    (out / "data").mkdir(parents=True)
    (out / "data" / "mine.txt").write_text("precious\n", encoding="utf-8")
    with pytest.raises(InstructgenError, match="no instructgen run wrote"):
        run_in(out, config_file(tmp_path, [SAMPLES / "alpaca.jsonl"]))
    assert (out / "data" / "mine.txt").read_text(encoding="utf-8") == "precious\n"


def test_a_second_run_on_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from instructgen.pipeline.layout import hold_lock\n"
        f"with hold_lock({str(out)!r}):\n    print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(InstructgenError, match=f"in use by another instructgen run \\(pid {holder.pid}\\)"):
            run_in(out, config_file(tmp_path, [SAMPLES / "alpaca.jsonl"]))
    finally:
        holder.kill()
        holder.wait()
    run_in(out, config_file(tmp_path, [SAMPLES / "alpaca.jsonl"]))  # free again once the holder is gone


def test_stats_and_card_name_no_local_folder(tmp_path):
    out = tmp_path / "out"
    (tmp_path / "inputs").mkdir()
    src = tmp_path / "inputs" / "alpaca.jsonl"
    src.write_bytes((SAMPLES / "alpaca.jsonl").read_bytes())
    run_in(out, config_file(tmp_path, [Path("inputs/alpaca.jsonl")], publish=True))
    stats = orjson.loads((out / "stats.json").read_bytes())
    assert stats["sources"][0]["path"] == "inputs/alpaca.jsonl" and len(stats["sources"][0]["sha256"]) == 64
    card = (out / "hub" / "README.md").read_text(encoding="utf-8")
    assert str(tmp_path) not in card


# -- the CLI and the pipeline make the same decisions ------------------------------------------------------

def _cli(*args: str, cwd: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "instructgen.cli", *args], cwd=cwd, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr


def _rejects(path: Path) -> list[tuple[str, str, bytes]]:
    if not path.exists():
        return []
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return sorted((r["reason"], r.get("detail", ""), orjson.dumps(r["raw"], option=orjson.OPT_SORT_KEYS))
                  for r in rows)


def test_commands_by_hand_equal_the_pipeline_on_real_data(tmp_path):
    """filter -> dedup -> convert by hand, and `run` with the same settings: same records, same drops."""
    en = shared_path("formats", "llamafactory_alpaca_en_demo.json")
    zh = shared_path("formats", "llamafactory_alpaca_zh_demo.json")
    _cli("filter", str(en), str(zh), "-o", "filtered.jsonl", "--lang", "en,zh", cwd=tmp_path)
    _cli("dedup", "filtered.jsonl", "-o", "deduped.jsonl", cwd=tmp_path)
    _cli("convert", "deduped.jsonl", "--to", "sharegpt", "-o", "by-hand.sharegpt.jsonl", cwd=tmp_path)

    cfg = parse_config(f'[pipeline]\nformats = ["sharegpt"]\nshard_size = 300\n[filter]\nlang = ["en", "zh"]\n'
                       f'[[sources]]\npath = "{en}"\n[[sources]]\npath = "{zh}"\n', tmp_path / "p.toml")
    out = tmp_path / "out"
    with OutputFolder(out) as layout:
        summary = run(cfg, layout, announce=quiet)
    assert summary.balanced
    assert (out / "data" / "sharegpt.jsonl").read_bytes() == (tmp_path / "by-hand.sharegpt.jsonl").read_bytes()
    assert _rejects(out / "rejects" / "filter.jsonl") == _rejects(tmp_path / "filtered.rejects.jsonl")
    assert _rejects(out / "rejects" / "dedup.jsonl") == _rejects(tmp_path / "deduped.rejects.jsonl")
    stages = {s["stage"]: s for s in summary.stages}
    assert stages["filter"]["filtered"] == len(_rejects(tmp_path / "filtered.rejects.jsonl")) > 0


def test_a_folder_source_with_a_pattern_and_turns(tmp_path):
    """Folders are read recursively (natural order, only files matching `glob`); `turns = "explode"` gives the
    single-turn formats one row per turn and leaves the others alone."""
    folder = tmp_path / "raw"
    (folder / "b").mkdir(parents=True)
    (folder / "a.jsonl").write_bytes((SAMPLES / "history.jsonl").read_bytes())
    (folder / "b" / "c.jsonl").write_bytes((SAMPLES / "sharegpt.jsonl").read_bytes())
    (folder / "b" / "notes.txt").write_text("not data\n", encoding="utf-8")
    cfg = parse_config(f'[pipeline]\nformats = ["alpaca", "sharegpt"]\nturns = "explode"\n[filter]\nenabled = false\n'
                       f'[dedup]\nenabled = false\n[[sources]]\npath = "{folder}"\nglob = "*.jsonl"\n',
                       tmp_path / "p.toml")
    out = tmp_path / "out"
    with OutputFolder(out) as layout:
        summary = run(cfg, layout, announce=quiet)
    stages = {s["stage"]: s for s in summary.stages}
    n_records = stages["read"]["out"]
    assert stages["read"]["in"] == len((SAMPLES / "history.jsonl").read_text().splitlines()) + \
        len((SAMPLES / "sharegpt.jsonl").read_text().splitlines())
    alpaca_rows = (out / "data" / "alpaca.jsonl").read_bytes().count(b"\n")
    sharegpt_rows = (out / "data" / "sharegpt.jsonl").read_bytes().count(b"\n")
    assert sharegpt_rows == n_records and alpaca_rows > n_records  # multi-turn records exploded into turns
    origins = [orjson.loads(line)["origin"] for line in (out / "rejects" / "read.jsonl").read_bytes().splitlines()] \
        if (out / "rejects" / "read.jsonl").exists() else []
    assert not any("notes.txt" in o for o in origins)
