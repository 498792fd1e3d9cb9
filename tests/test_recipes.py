"""ARCHITECTURE.md's recipes for a new format and a new filter rule, followed once, word for word, in a copy of
the package (the stage recipes: tests/test_stages_shard.py and tests/test_pipeline_quality.py).

The copy holds the four installed packages (instructgen, instructgen_schemas, instructgen_data,
instructgen_flows) and the recipe's edits; the commands run in a fresh interpreter with the copy first on the
path. What each recipe promises, "nothing else changes", is what these tests check: the commands pick the
format or the rule up without another edit, and the pipeline writes the new format.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO, SAMPLES

PACKAGES = {"instructgen": REPO / "src" / "instructgen", "instructgen_schemas": REPO / "schemas",
            "instructgen_data": REPO / "data", "instructgen_flows": REPO / "flows"}

QA_MODULE = '''
"""A question and its answer: {question, answer}. Single turn."""

from __future__ import annotations

from ..record import Conversation
from .base import DumpOptions, Lost, as_sft, drop_system, finish_row, require_str, single_turn, split_known, turn_rows

NAME = "qa"
DESCRIPTION = "question and answer pairs (single turn)"
EXAMPLE = {"question": "What is the capital of France?", "answer": "Paris."}
FIELDS = frozenset({"question", "answer"})


def detect(row: dict) -> bool:
    return isinstance(row.get("question"), str) and isinstance(row.get("answer"), str)


def parse(row: dict) -> Conversation:
    meta, extra = split_known(row, FIELDS)
    return single_turn(require_str(row, "question"), "", require_str(row, "answer"), meta=meta, extra=extra,
                       source_format=NAME).check()


def dump(conv: Conversation, opts: DumpOptions, lost: Lost) -> list[dict]:
    drop_system(conv, lost)
    turns = turn_rows(conv, opts, lost)
    conv = as_sft(conv, opts, lost)
    return [finish_row({"question": t.user, "answer": t.answer}, conv, opts, frozenset(), NAME) for t in turns]
'''

QA_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "QA",
    "type": "object",
    "required": ["question", "answer"],
    "properties": {"question": {"type": "string"}, "answer": {"type": "string"},
                   "meta": {"type": ["object", "null"]}},
    "additionalProperties": True,
}

QA_SAMPLES = [{"question": "What is the boiling point of water at sea level?", "answer": "100 °C."},
              {"question": "中国的首都是哪里？", "answer": "北京。"}]

SHOUTING_RULE = '''

def shouting(t: Turn, cfg: FilterConfig) -> str | None:
    letters = [c for c in t.output if c.isalpha() and c.isascii()]
    share = sum(c.isupper() for c in letters) / len(letters) if len(letters) >= 10 else 0.0
    return f"{share:.0%} of the answer's letters are capitals" if share >= cfg.max_capitals_share else None


RULES["shouting"] = shouting
'''

SHOUTING_FIELD = '''    max_capitals_share: float = Field(0.8, gt=0, le=1, description="flag an answer whose share of capital letters "
                                      "reaches this (shouting)")
'''


def copy_packages(root: Path) -> Path:
    site = root / "site"
    for name, source in PACKAGES.items():
        shutil.copytree(source, site / name, ignore=shutil.ignore_patterns("__pycache__"))
    return site


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{path.name}: the recipe's anchor {old!r} is not there once"
    path.write_text(text.replace(old, new), encoding="utf-8")


def cli(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, "-m", "instructgen.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_the_copy_is_what_the_commands_run(tmp_path):
    site = copy_packages(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(site)}
    found = subprocess.run([sys.executable, "-c", "import instructgen, instructgen_schemas; "
                            "print(instructgen.__file__); print(instructgen_schemas.__file__)"],
                           env=env, capture_output=True, text=True, check=True).stdout.split()
    assert all(Path(f).is_relative_to(site) for f in found), found


@pytest.fixture(scope="module")
def with_qa(tmp_path_factory) -> Path:
    """A copy with the format recipe followed: a module in formats/ with NAME, DESCRIPTION, EXAMPLE, detect,
    parse, dump; its name in formats.FORMAT_MODULES; schemas/qa.schema.json; samples in data/samples/."""
    site = copy_packages(tmp_path_factory.mktemp("recipe-format"))
    (site / "instructgen" / "formats" / "qa.py").write_text(textwrap.dedent(QA_MODULE).lstrip(), encoding="utf-8")
    edit(site / "instructgen" / "formats" / "__init__.py", '"firefly", "belle",\n)', '"firefly", "belle", "qa",\n)')
    (site / "instructgen_schemas" / "qa.schema.json").write_text(json.dumps(QA_SCHEMA, indent=2), encoding="utf-8")
    (site / "instructgen_data" / "samples" / "qa.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in QA_SAMPLES), encoding="utf-8")
    return site


def test_a_new_format_is_listed_and_offered_by_every_command(with_qa, tmp_path):
    listed = cli(with_qa, "formats", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "qa" in listed.stdout and "question and answer pairs" in listed.stdout
    for command, listing in (("convert", "belle, qa (see"), ("validate", ",belle,qa}")):  # --help names the formats
        shown = cli(with_qa, command, "--help", cwd=tmp_path)
        assert shown.returncode == 0 and listing in " ".join(shown.stdout.split()), (command, shown.stdout[:600])
    sample = with_qa / "instructgen_data" / "samples" / "qa.jsonl"
    for command in ("filter", "dedup"):  # and the curation commands read and write it
        out = tmp_path / f"{command}.jsonl"
        done = cli(with_qa, command, str(sample), "--to", "qa", "-o", str(out), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert [{k: r[k] for k in ("question", "answer")} for r in rows(out)] == QA_SAMPLES


def test_a_new_format_converts_both_ways_and_validates_against_its_schema(with_qa, tmp_path):
    out = tmp_path / "alpaca.qa.jsonl"
    done = cli(with_qa, "convert", str(SAMPLES / "alpaca.jsonl"), "--to", "qa", "-o", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = rows(out)
    assert written and all(set(r) >= {"question", "answer"} for r in written)
    checked = cli(with_qa, "validate", str(out), "--format", "qa", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    sample = with_qa / "instructgen_data" / "samples" / "qa.jsonl"
    for to in ("sharegpt", "moss", "openai"):  # detected as qa, read into the canonical record, written out
        back = tmp_path / f"qa.{to}.jsonl"
        done = cli(with_qa, "convert", str(sample), "--to", to, "-o", str(back), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert len(rows(back)) == len(QA_SAMPLES)
        assert cli(with_qa, "validate", str(back), "--format", to, cwd=tmp_path).returncode == 0


def test_a_new_format_refuses_a_bad_record_with_its_reason(with_qa, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "Why?", "answer": "Because."}\n{"question": "How?", "answer": 3}\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    done = cli(with_qa, "convert", str(bad), "--from", "qa", "--to", "alpaca", "-o", str(out), cwd=tmp_path)
    assert len(rows(out)) == 1 and "in 2 = out 1 + rejected 1" in done.stdout + done.stderr
    (rejected,) = rows(tmp_path / "out.rejects.jsonl")
    assert rejected["origin"].endswith("bad.jsonl:2")
    assert rejected["reason"] == "not a valid qa record: field 'answer' must be a string, got int"


@pytest.fixture(scope="module")
def with_shouting(tmp_path_factory) -> Path:
    """A copy with the rule recipe followed: a function in curate/rules.py returning a reason or None,
    registered in RULES (not named in JUNK: a signal, flagged in meta.flags), its setting a field of
    FilterConfig with a description."""
    site = copy_packages(tmp_path_factory.mktemp("recipe-rule"))
    rules = site / "instructgen" / "curate" / "rules.py"
    edit(rules, '\nJUNK = (', SHOUTING_RULE + '\nJUNK = (')
    edit(site / "instructgen" / "curate" / "filter.py",
         '    max_output_chars: int = Field(', SHOUTING_FIELD + '    max_output_chars: int = Field(')
    return site


SHOUTED = {"instruction": "Tell me about the weather today.", "input": "",
           "output": "IT IS SUNNY AND WARM TODAY, WITH A LIGHT BREEZE FROM the west."}  # 41 capitals of 48 letters
CALM = {"instruction": "Tell me about the weather tomorrow.", "input": "",
        "output": "Tomorrow brings rain in the morning and sun in the afternoon."}


def test_a_new_rule_runs_by_default_and_flags_what_it_finds(with_shouting, tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps(SHOUTED) + "\n" + json.dumps(CALM) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    done = cli(with_shouting, "filter", str(data), "-o", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    kept = rows(out)
    assert len(kept) == 2  # a signal flags, it does not drop
    flags = [[f["rule"] for f in (r.get("meta") or {}).get("flags", [])] for r in kept]
    assert flags == [["shouting"], []], kept


def test_a_new_rules_setting_is_a_flag_and_a_toml_key(with_shouting, tmp_path):
    shown = cli(with_shouting, "filter", "--help", cwd=tmp_path)
    assert "--max-capitals-share" in shown.stdout and "shouting" in shown.stdout
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps(SHOUTED) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    done = cli(with_shouting, "filter", str(data), "-o", str(out), "--max-capitals-share", "0.9", "--drop", "shouting",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(rows(out)) == 1  # 90 % capitals needed now: its 85 % pass
    done = cli(with_shouting, "filter", str(data), "-o", str(out), "--drop", "shouting", cwd=tmp_path)
    assert rows(out) == [] and "shouting" in done.stdout + done.stderr
    config = tmp_path / "pipeline.toml"
    config.write_text(f'[filter]\nmax_capitals_share = 0.5\n[[sources]]\npath = "{data}"\n', encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(with_shouting)}
    parsed = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                             "from instructgen.pipeline.config import load_config; "
                             "print(load_config(Path(sys.argv[1])).filter.max_capitals_share)", str(config)],
                            env=env, capture_output=True, text=True)
    assert parsed.returncode == 0 and parsed.stdout.strip() == "0.5", parsed.stderr


PIPELINE_SCRIPT = """
import sys
from pathlib import Path
from instructgen.pipeline import OutputFolder, run
from instructgen.pipeline.config import load_config

if __name__ == "__main__":
    with OutputFolder(Path(sys.argv[2])) as layout:
        summary = run(load_config(Path(sys.argv[1])), layout, announce=lambda _m: None)
    print({s["stage"]: s["out"] for s in summary.stages})
"""


def test_the_pipeline_writes_a_new_format(with_qa, tmp_path):
    config = tmp_path / "pipeline.toml"
    sample = with_qa / "instructgen_data" / "samples" / "alpaca.jsonl"
    config.write_text(f'[pipeline]\nformats = ["qa", "alpaca"]\nreport = false\n[[sources]]\npath = "{sample}"\n',
                      encoding="utf-8")
    script = tmp_path / "run_pipeline.py"
    script.write_text(PIPELINE_SCRIPT, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(with_qa)}
    done = subprocess.run([sys.executable, str(script), str(config), str(tmp_path / "out")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    written = rows(tmp_path / "out" / "data" / "qa.jsonl")
    assert len(written) == len(rows(tmp_path / "out" / "data" / "alpaca.jsonl")) > 0
    assert all(isinstance(r["question"], str) and isinstance(r["answer"], str) for r in written)
