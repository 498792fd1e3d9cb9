"""chatglm3 output as ChatGLM3's own fine-tuning code reads it (issue 20).

ChatGLM3's finetune_chatmodel_demo/preprocess_utils.py calls `parameters.items()` on a tool call and adds the
tools prompt when a row has the `tools` key: so `parameters` is always a JSON object (a call whose arguments are
not one is refused, with the reason), and a row without tools has no `tools` key (never `null`), while the other
keys are still the same on every row. `datasets` reads the files in its own environments (3.6, 4.0: skipped when
not built); a file whose parameter values change type between rows is named as what datasets < 5 cannot load.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from instructgen.cli import main
from instructgen.io import read_rows

CALL = {"conversations": [{"role": "user", "content": "weather in Paris?"},
                          {"role": "tool", "name": "weather", "parameters": {"city": "Paris", "days": 2},
                           "observation": "18C"},
                          {"role": "assistant", "content": "18C."}],
        "tools": [{"name": "weather", "description": "forecast",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]}
PLAIN = {"conversations": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def openai_call(arguments: str) -> dict:
    return {"messages": [{"role": "user", "content": "q"},
                         {"role": "assistant", "content": None, "tool_calls": [
                             {"id": "call_0", "type": "function", "function": {"name": "f", "arguments": arguments}}]},
                         {"role": "tool", "tool_call_id": "call_0", "content": "r"},
                         {"role": "assistant", "content": "a"}]}


@pytest.mark.parametrize("suffix", ["jsonl", "json"])
def test_a_row_without_tools_has_no_tools_key_and_the_file_reads_back(suffix, tmp_path, capsys):
    rows = [PLAIN, CALL, {**PLAIN, "source": "web"}]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out, back = tmp_path / f"out.{suffix}", tmp_path / "back.jsonl"
    assert main(["convert", str(src), "--to", "chatglm3", "-o", str(out)]) == 0
    written = [r.data for r in read_rows(str(out))]
    assert ["tools" in r for r in written] == [False, True, False]
    assert {frozenset(set(r) - {"tools"}) for r in written} == {frozenset({"conversations", "source"})}
    assert main(["convert", str(out), "--to", "chatglm3", "-o", str(back)]) == 0
    assert [{k: v for k, v in r.data.items() if v is not None} for r in read_rows(str(back))] == rows


def test_parameters_are_the_call_arguments_as_an_object(tmp_path, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [openai_call('{"city": "Paris", "days": [1, 2]}')])
    out = tmp_path / "out.jsonl"
    assert main(["convert", str(src), "--to", "chatglm3", "-o", str(out)]) == 0
    (row,) = [r.data for r in read_rows(str(out))]
    assert row["conversations"][1]["parameters"] == {"city": "Paris", "days": [1, 2]}


@pytest.mark.parametrize("arguments", ['"just text"', "[1, 2]", "not json"])
def test_a_call_whose_arguments_are_not_an_object_is_refused_with_the_reason(arguments, tmp_path, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [openai_call(arguments), openai_call("{}")])
    out = tmp_path / "out.jsonl"
    assert main(["convert", str(src), "--to", "chatglm3", "-o", str(out)]) == 0
    assert [r.data["conversations"][1]["parameters"] for r in read_rows(str(out))] == [{}]
    (reject,) = [json.loads(x) for x in (tmp_path / "out.rejects.jsonl").read_text().splitlines()]
    assert "are not a JSON object" in reject["reason"] and "keyword arguments" in reject["reason"]
    assert "in 2 = out 1 + rejected 1" in capsys.readouterr().err


def test_a_chatglm3_source_is_written_back_as_it_was_read(tmp_path, capsys):
    row = {"conversations": [{"role": "user", "content": "q"},
                             {"role": "tool", "name": "f", "parameters": "{\"raw\": 1}", "observation": "r"},
                             {"role": "assistant", "content": "a"}]}
    src = write_jsonl(tmp_path / "in.jsonl", [row])
    out = tmp_path / "out.jsonl"
    assert main(["convert", str(src), "--to", "chatglm3", "-o", str(out)]) == 0
    assert [r.data for r in read_rows(str(out))] == [row]


def _client_python(name: str) -> Path:
    root = Path(os.environ.get("IG_CLIENTS", Path(tempfile.gettempdir()) / "ig-clients"))
    if not (root / name / ".built").exists():
        pytest.skip(f"client environment {name} not built (bash ../shared/tools/clients/client_venvs.sh)")
    return root / name / "bin" / "python"


LOAD = ("import datasets, sys; datasets.disable_progress_bars()\n"
        "d = datasets.load_dataset('json', data_files=sys.argv[1], split='train', cache_dir=sys.argv[2])\n"
        "print(datasets.__version__, len(d), d[1]['conversations'][1]['parameters'], d[0]['tools'])\n")


@pytest.mark.parametrize("env", ["ds3", "ds4"])
def test_datasets_3_and_4_load_a_chatglm3_tool_file(env, tmp_path, capsys):
    python = _client_python(env)
    src = write_jsonl(tmp_path / "in.jsonl", [PLAIN, CALL, CALL])
    out = tmp_path / "out.json"
    assert main(["convert", str(src), "--to", "chatglm3", "-o", str(out)]) == 0
    proc = subprocess.run([str(python), "-c", LOAD, str(out), str(tmp_path / "cache")], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "HF_DATASETS_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-800:]
    version, n, rest = proc.stdout.split(" ", 2)
    assert version[0] in "34" and n == "3"
    assert rest.strip() == "{'city': 'Paris', 'days': 2} None"  # the object; null where the row had no tools


def test_parameter_values_that_change_type_are_what_datasets_before_5_cannot_load(shared, tmp_path, capsys):
    """LLaMA-Factory's glaive demo calls one tool with `keywords` a list in some rows and a string in others.
    ChatGLM3 needs the object as it is; datasets 5 (installed) loads it, 4.0 names the column."""
    datasets = pytest.importorskip("datasets")
    src = shared("real", "llamafactory_glaive_toolcall_zh_demo.json")
    out = tmp_path / "glaive.chatglm3.json"
    assert main(["convert", str(src), "--to", "chatglm3", "-o", str(out)]) == 0
    rows = json.loads(out.read_text(encoding="utf-8"))
    calls = [t for r in rows for t in r["conversations"] if t["role"] == "tool"]
    assert calls and all(isinstance(t["parameters"], dict) for t in calls)
    kinds = {type(t["parameters"].get("keywords")).__name__ for t in calls if "keywords" in t["parameters"]}
    assert {"list", "str"} <= kinds
    if int(datasets.__version__.split(".")[0]) >= 5:
        ds = datasets.load_dataset("json", data_files=str(out), split="train", cache_dir=str(tmp_path / "cache"))
        assert len(ds) == len(rows)
    python = _client_python("ds4")
    proc = subprocess.run([str(python), "-c", LOAD, str(out), str(tmp_path / "cache4")], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "HF_DATASETS_OFFLINE": "1"})
    said = proc.stderr + proc.stdout
    assert proc.returncode != 0 and ("changed from array to string" in said or "cannot mix list and non-list" in said)
