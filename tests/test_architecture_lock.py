"""One owner for the output folder's lock: a run takes it once, where the folder is opened (issue 22, item 3).

`instructgen run` opens the folder before Prefect starts and hands the opened layout to the flow; the flow
opens the folder itself only when nobody did (a deployment's run). No lock is taken twice, so none is
reference-counted: a second hold, even in the same process, is refused like another run's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from instructgen.errors import InstructgenError
from instructgen.pipeline import layout as layout_module
from instructgen.pipeline.layout import OutputFolder, hold_lock

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "samples" / "alpaca.jsonl"


def test_a_second_hold_in_the_same_process_is_refused(tmp_path):
    out = tmp_path / "out"
    with hold_lock(out):
        with pytest.raises(InstructgenError, match="in use by another instructgen run"):
            with OutputFolder(out):
                pass
    with OutputFolder(out) as opened:  # free again once released
        (opened.root / "stats.json").write_text("{}", encoding="utf-8")
    assert (out / "stats.json").read_text(encoding="utf-8") == "{}"


def test_instructgen_run_takes_the_folder_lock_once(prefect, tmp_path, monkeypatch, capsys):
    from instructgen.cli import main

    taken = []
    acquire = layout_module._acquire

    def counting(folder):
        taken.append(Path(folder).resolve())
        return acquire(folder)

    monkeypatch.setattr(layout_module, "_acquire", counting)
    cfg = tmp_path / "p.toml"
    cfg.write_text(f'[pipeline]\nformats = ["alpaca"]\n\n[[sources]]\npath = "{SAMPLE}"\n', encoding="utf-8")
    out = tmp_path / "out"
    assert main(["run", str(cfg), "-o", str(out)]) == 0
    assert taken == [out.resolve()]
    assert (out / "data" / "alpaca.jsonl").stat().st_size > 0 and (out / "stats.json").exists()
    assert not list(out.glob(".staging-*"))  # swapped in by the opener once the flow returned
