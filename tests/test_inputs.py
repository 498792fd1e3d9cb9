"""Inputs as they ship: a .json file holding one object, folders (recursive, --glob), patterns, many files."""

from __future__ import annotations

import json

import pytest

from conftest import shared_path
from instructgen.cli import main
from instructgen.errors import InstructgenError
from instructgen.inputs import expand_inputs, natural_key
from instructgen.io import read_rows

MOSS_ROW = {
    "conversation_id": 7, "meta_instruction": "Be kind.\n", "num_turns": 1,
    "chat": {"turn_1": {"Human": "<|Human|>: 1+1?<eoh>\n", "Inner Thoughts": "<|Inner Thoughts|>: None<eot>\n",
                        "Commands": '<|Commands|>: Calculate("1+1")<eoc>\n',
                        "Tool Responses": "<|Results|>:\nCalculate(\"1+1\") => '2'\n<eor>\n",
                        "MOSS": "<|MOSS|>: 2.<eom>\n"}},
}


def write_object(path, row: dict, indent: int = 4) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(row, ensure_ascii=False, indent=indent) + "\n", encoding="utf-8")


def test_a_json_file_holding_one_object_is_one_row_with_its_origin(tmp_path):
    path = tmp_path / "one.json"
    path.write_text("\n" + json.dumps(MOSS_ROW, indent=4), encoding="utf-8")
    (row,) = read_rows(path)
    assert row.error is None and row.data == MOSS_ROW and row.origin == f"{path}:2"


def test_a_broken_one_object_file_is_one_rejected_row_not_an_abort(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(MOSS_ROW, indent=4)[:-20], encoding="utf-8")
    (row,) = read_rows(path)
    assert row.data is None and row.error.startswith("malformed JSON") and row.origin == f"{path}:1"


def test_json_files_that_are_jsonl_or_arrays_still_read_as_before(tmp_path):
    lines = tmp_path / "lines.json"
    lines.write_text('{"a": 1}\n{"a": 2}\n', encoding="utf-8")
    assert [(r.data, r.origin) for r in read_rows(lines)] == [({"a": 1}, f"{lines}:1"), ({"a": 2}, f"{lines}:2")]
    array = tmp_path / "array.json"
    array.write_text('[\n  {"a": 1},\n  {"a": 2}\n]\n', encoding="utf-8")
    assert [r.data for r in read_rows(array)] == [{"a": 1}, {"a": 2}]


def test_folders_are_read_recursively_in_natural_order_skipping_hidden_files(tmp_path):
    for name in ("b/conv_10.json", "b/conv_9.json", "a.jsonl", "b/notes.txt", ".cache/x.json", "b/.tmp.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}\n", encoding="utf-8")
    found = [p.removeprefix(str(tmp_path) + "/") for p in expand_inputs([str(tmp_path)])]
    assert found == ["a.jsonl", "b/conv_9.json", "b/conv_10.json"]
    only = [p.removeprefix(str(tmp_path) + "/") for p in expand_inputs([str(tmp_path)], glob="conv_*.json")]
    assert only == ["b/conv_9.json", "b/conv_10.json"]
    pattern = [p.removeprefix(str(tmp_path) + "/") for p in expand_inputs([f"{tmp_path}/**/*.json"])]
    assert pattern == ["b/conv_9.json", "b/conv_10.json"]
    assert natural_key("x_2.json") < natural_key("x_10.json")


@pytest.mark.parametrize("paths, glob, message", [
    (["nowhere.json"], None, "no such file or folder"),
    (["{tmp}/*.parquet"], None, "no file matches this pattern"),
    (["{tmp}"], "*.parquet", r"no file matching '\*\.parquet' in this folder"),
])
def test_naming_nothing_that_exists_says_what_was_looked_for(tmp_path, paths, glob, message):
    (tmp_path / "a.jsonl").write_text("{}\n", encoding="utf-8")
    with pytest.raises(InstructgenError, match=message):
        expand_inputs([p.format(tmp=tmp_path) for p in paths], glob)


def test_convert_a_folder_of_single_object_files_keeps_each_origin(tmp_path, capsys):
    data = tmp_path / "SFT_data"
    for i in (1, 2, 10):
        write_object(data / "calculator" / f"plugin_conversation_{i}.json", {**MOSS_ROW, "conversation_id": i})
    write_object(data / "calculator" / "plugin_conversation_3.json", {"conversation_id": 3})  # not a record
    out = tmp_path / "out.openai.jsonl"
    assert main(["convert", str(data), "--glob", "*.json", "--to", "openai", "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["meta"]["id"] for r in rows] == [1, 2, 10]
    assert all(r["messages"][2]["tool_calls"][0]["function"]["name"] == "Calculate" for r in rows)
    (reject,) = [json.loads(line) for line in (tmp_path / "out.openai.rejects.jsonl").read_text().splitlines()]
    assert reject["origin"] == f"{data}/calculator/plugin_conversation_3.json:1"
    err = capsys.readouterr().err
    assert "plugin_conversation_1.json: detected format moss" in err and "2 more files detected as moss" in err
    assert "plugin_conversation_3.json: no format fits it on its own; read as moss" in err
    assert "convert: in 4 = out 3 + rejected 1" in err


def test_many_files_in_one_call_and_the_default_output_beside_the_folder(tmp_path):
    data = tmp_path / "data"
    write_object(data / "x.json", MOSS_ROW)
    extra = tmp_path / "more.jsonl"
    extra.write_text(json.dumps({"instruction": "hi", "input": "", "output": "hello"}) + "\n", encoding="utf-8")
    assert main(["convert", str(data), str(extra), "--to", "sharegpt"]) == 0
    out = tmp_path / "data.sharegpt.jsonl"  # named after the first input, beside it, not inside it
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2


def test_an_input_named_twice_through_a_folder_is_refused(tmp_path):
    data = tmp_path / "data"
    write_object(data / "x.json", MOSS_ROW)
    assert main(["convert", str(data), str(data / "x.json"), "--to", "sharegpt", "-o", str(tmp_path / "o.jsonl")]) == 1


def test_the_real_moss_plugin_folder_converts_whole(tmp_path):
    folder = shared_path("real", "moss_003_plugin_files")
    out = tmp_path / "plugins.sharegpt.jsonl"
    assert main(["convert", str(folder), "--to", "sharegpt", "--strict", "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 10 and all(any(t["from"] == "function_call" for t in r["conversations"]) for r in rows)
