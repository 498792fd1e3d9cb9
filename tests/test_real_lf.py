"""Every real file in ../shared/data, converted to every format LLaMA-Factory reads, is read back by
LLaMA-Factory's own converter with no record skipped (tests/lf_reader.py; preference outputs with its
ranking/kto layouts), and validates (schema and meaning). The files, formats and LLaMA-Factory wheel
come from ../shared; the tests skip without them.

The shared tool itself, ../shared/tools/lf_client.py, runs on the supervised outputs too (as a
JSON array: it splits JSONL with str.splitlines(), which also splits inside strings holding
U+2028; and it reads openai files with the ShareGPT converter, so openai is left to lf_reader).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import SHARED, shared_files
from instructgen import formats, schemas
from instructgen.convert import ReadOptions, convert
from instructgen.formats.meaning import meaning_problems
from instructgen.inputs import expand_inputs
from instructgen.io import read_rows
from instructgen.runlog import RunLog
from lf_reader import LF_READS, lf_client, lf_read

REAL = [p for p in shared_files("formats") + shared_files("real") if p.suffix in (".json", ".jsonl")]
PLUGINS = SHARED / "data" / "real" / "moss_003_plugin_files"
INPUTS = REAL + ([PLUGINS] if PLUGINS.is_dir() else [])


def converted(src, to: str, tmp_path, suffix: str = ".jsonl"):
    out = tmp_path / f"{src.stem}.{to}{suffix}"
    log = RunLog("convert", tmp_path / f"{src.stem}.{to}.rejects.jsonl")
    convert(expand_inputs([str(src)]), str(out), to, log, ReadOptions(announce=lambda _: None))
    log.close()
    return out, log


@pytest.fixture(scope="module")
def lf():
    if lf_client() is None:
        pytest.skip("LLaMA-Factory's converter is not available (../shared/tools/lf_client.py or its wheel)")


@pytest.mark.parametrize("to", sorted(LF_READS))
@pytest.mark.parametrize("src", INPUTS, ids=lambda p: p.name)
def test_llamafactory_reads_every_record_we_write(src, to, tmp_path, lf):
    out, log = converted(src, to, tmp_path)
    rows = [r.data for r in read_rows(out)]
    assert log.n_out == len(rows) > 0 and log.balanced
    first = rows[0]
    good, total, warnings = lf_read(out, LF_READS[to], ranking="chosen" in first,
                                    kto=isinstance(first.get("label"), bool))
    assert (good, total) == (len(rows), len(rows)), warnings[:2]


@pytest.mark.parametrize("to", formats.names(writable_only=True))
@pytest.mark.parametrize("src", INPUTS, ids=lambda p: p.name)
def test_every_output_validates(src, to, tmp_path):
    out, log = converted(src, to, tmp_path)
    spec = formats.get(to)
    for row in read_rows(out):
        assert list(schemas.errors(to, row.data)) == [], row.origin
        assert meaning_problems(spec.parse(row.data).check(), spec.alternates, spec.answers_calls) == [], row.origin
    # a record is dropped only where the target truly cannot hold it: BELLE's text form, or a source record
    # whose tool turns mean nothing there (glaive: a result that answers no call; MOSS: a command with no result)
    # or media whose placeholders were in the turns a single-turn format drops (LLaMA-Factory's mllm demo)
    assert all(reason.startswith("cannot write as belle") or "answers no call" in reason or "never answered" in reason
               or "placeholder" in reason for _, reason in log.reasons), log.reasons


@pytest.mark.parametrize("to", ["alpaca", "sharegpt"])
def test_the_shared_lf_client_reads_our_supervised_outputs(to, tmp_path, lf):
    sources = [p for p in INPUTS if "dpo" not in p.name]  # lf_client reads supervised layouts only
    rows = []
    for src in sources:
        out, _ = converted(src, to, tmp_path, ".json")
        rows += json.loads(out.read_text(encoding="utf-8"))
    if to == "sharegpt":  # lf_client.py knows only the gpt tag; BELLE's assistant rows are read in lf_reader
        rows = [r for r in rows if all(t["from"] != "assistant" for t in r["conversations"])]
    both = tmp_path / f"all.{to}.json"
    both.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    proc = subprocess.run([sys.executable, str(SHARED / "tools" / "lf_client.py"), str(both), to],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert f"aligned {len(rows)}/{len(rows)} records" in proc.stdout
