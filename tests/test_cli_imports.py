"""Single-stage commands never import Prefect (they must start fast); run/serve import it only when they run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import sys, json
from instructgen.cli import main
argv = json.loads(sys.argv[1])
try:
    code = main(argv)
except SystemExit as e:
    code = e.code
heavy = sorted(m for m in ("prefect", "prefect_dask", "dask", "distributed", "fastapi") if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}))
"""


def probe(argv: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [
    ["convert", "--help"], ["--help"], ["formats"], ["run", "--help"], ["serve", "--help"], ["run", "--print-example"],
])
def test_commands_do_not_import_prefect(argv):
    result = probe(argv)
    assert result["code"] in (0, None)
    assert result["heavy"] == []


def test_convert_run_does_not_import_prefect(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_text(json.dumps({"instruction": "Say hi", "input": "", "output": "Hi"}) + "\n", encoding="utf-8")
    result = probe(["convert", str(src), "--to", "sharegpt", "-o", str(tmp_path / "b.jsonl")])
    assert result["code"] == 0 and result["heavy"] == []
    assert json.loads((tmp_path / "b.jsonl").read_text())["conversations"][0]["value"] == "Say hi"


def test_run_with_a_bad_config_fails_before_prefect_starts(tmp_path):
    cfg = tmp_path / "p.toml"
    cfg.write_text('[pipeline]\nshard_size = -1\n[[sources]]\npath = "x.jsonl"\n', encoding="utf-8")
    result = probe(["run", str(cfg)])
    assert result["code"] == 1 and result["heavy"] == []
