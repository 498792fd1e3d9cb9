"""Issue 17, "records the target cannot hold": what convert writes, validate passes; a record the
target cannot hold is rejected with its reason, never written as if fine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from instructgen.cli import main
from instructgen.io import read_rows


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def rejects(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


# -- 1. a tool result that answers no call ----------------------------------------------------------

def test_glaive_records_whose_result_answers_no_call_are_rejected_and_the_output_validates(shared, tmp_path, capsys):
    src = shared("real", "llamafactory_glaive_toolcall_zh_demo.json")
    out = tmp_path / "glaive.openai.jsonl"
    assert main(["convert", str(src), "--to", "openai", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    n_in = len(json.loads(src.read_text(encoding="utf-8")))
    dropped = rejects(tmp_path / "glaive.openai.rejects.jsonl")
    assert len(dropped) == 2 and all("a tool result that answers no call" in d["reason"] for d in dropped)
    assert f"convert: in {n_in} = out {n_in - 2} + rejected 2" in err
    assert main(["validate", str(out)]) == 0


@pytest.mark.parametrize("to", ["openai", "sharegpt", "chatglm3"])
def test_a_result_that_answers_no_call_never_reaches_a_format_that_writes_it(to, tmp_path, capsys):
    row = {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "let me look"},
                             {"from": "observation", "value": "{\"x\": 1}"}, {"from": "gpt", "value": "x is 1"}]}
    src = write_jsonl(tmp_path / "in.jsonl", [row, {"conversations": row["conversations"][:2]}])
    out = tmp_path / f"out.{to}.jsonl"
    assert main(["convert", str(src), "--to", to, "-o", str(out)]) == 0
    assert len(list(read_rows(out))) == 1
    assert [d["origin"].rsplit(":", 1)[1] for d in rejects(tmp_path / f"out.{to}.rejects.jsonl")] == ["1"]
    capsys.readouterr()
    assert main(["validate", str(out), "--format", to]) == 0


# -- 2. a tool call never answered ----------------------------------------------------------------------

CALL = {"id": "call_a", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
UNANSWERED = {"messages": [{"role": "user", "content": "q"},
                           {"role": "assistant", "content": None, "tool_calls": [CALL]},
                           {"role": "user", "content": "never mind"},
                           {"role": "assistant", "content": "ok"}]}
HALF_ANSWERED = {"messages": [{"role": "user", "content": "q"},
                              {"role": "assistant", "content": None,
                               "tool_calls": [CALL, {**CALL, "id": "call_b"}]},
                              {"role": "tool", "tool_call_id": "call_a", "content": "1"},
                              {"role": "assistant", "content": "ok"}]}
FINAL_CALL = {"messages": [{"role": "user", "content": "q"},
                           {"role": "assistant", "content": None, "tool_calls": [CALL]}]}


@pytest.mark.parametrize("row", [UNANSWERED, HALF_ANSWERED], ids=["unanswered", "half-answered"])
def test_validate_flags_a_call_never_answered(row, tmp_path, capsys):
    src = write_jsonl(tmp_path / "calls.jsonl", [row])
    assert main(["validate", str(src)]) == 1
    assert "never answered" in capsys.readouterr().out


def test_a_final_call_is_what_function_calling_fine_tuning_teaches(tmp_path, capsys):
    assert main(["validate", str(write_jsonl(tmp_path / "final.jsonl", [FINAL_CALL]))]) == 0


def test_convert_rejects_a_call_never_answered_with_the_reason(tmp_path, capsys):
    src = write_jsonl(tmp_path / "calls.jsonl", [UNANSWERED, HALF_ANSWERED, FINAL_CALL])
    out = tmp_path / "out.jsonl"
    assert main(["convert", str(src), "--to", "openai", "-o", str(out)]) == 0
    assert "in 3 = out 1 + rejected 2" in capsys.readouterr().err
    assert all("never answered" in d["reason"] for d in rejects(tmp_path / "out.rejects.jsonl"))
    assert main(["validate", str(out)]) == 0


# -- 3. KTO labels that are not booleans -------------------------------------------------------------------

@pytest.mark.parametrize("label", ["yes", 1, None, "false", [True], 0, "True"])
@pytest.mark.parametrize("to", ["alpaca", "sharegpt", "openai"])
def test_a_kto_label_that_is_not_a_boolean_is_rejected_with_the_reason(label, to, tmp_path, capsys):
    good = {"conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}], "label": True}
    bad = {**good, "conversations": [good["conversations"][0], {"from": "gpt", "value": "5"}], "label": label}
    src = write_jsonl(tmp_path / "kto.jsonl", [good, bad])
    out = tmp_path / "out.jsonl"
    assert main(["convert", str(src), "--to", to, "-o", str(out), "--from", "sharegpt"]) == 0
    written = [r.data for r in read_rows(out)]
    assert len(written) == 1 and '"5"' not in json.dumps(written)  # the bad answer is no training target
    (reason,) = [d["reason"] for d in rejects(tmp_path / "out.rejects.jsonl")]
    assert "'label'" in reason and "true or false" in reason and repr(label) in reason


def test_a_category_named_label_is_still_an_ordinary_field(tmp_path, capsys):
    src = write_jsonl(tmp_path / "cat.jsonl", [{"instruction": "q", "input": "", "output": "a", "label": "spam"}])
    out = tmp_path / "out.jsonl"
    assert main(["convert", str(src), "--to", "sharegpt", "-o", str(out)]) == 0
    assert [r.data["meta"] for r in read_rows(out)] == [{"label": "spam"}]


# -- 4. --turns explode grows the output with the square of the turns -------------------------------------------

def long_chat(tmp_path: Path, turns: int = 100) -> Path:
    conversation = []
    for i in range(turns):
        conversation += [{"from": "human", "value": f"q{i} " + "x" * 400}, {"from": "gpt", "value": f"a{i} " + "y" * 400}]
    return write_jsonl(tmp_path / "long.jsonl", [{"conversations": conversation}])


def test_explode_into_history_says_the_size_and_refuses_past_the_cap(tmp_path, capsys):
    src = long_chat(tmp_path)
    out = tmp_path / "out.jsonl"
    assert main(["convert", str(src), "--to", "history", "--turns", "explode", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "expected output about" in err and "past the cap of 10x" in err and "--max-explode-growth" in err
    assert not out.exists()


def test_explode_past_the_cap_is_written_when_asked(tmp_path, capsys):
    src = long_chat(tmp_path)
    out = tmp_path / "out.jsonl"
    assert main(["convert", str(src), "--to", "history", "--turns", "explode", "-o", str(out),
                 "--max-explode-growth", "0"]) == 0
    rows = [r.data for r in read_rows(out)]
    assert len(rows) == 100 and len(rows[-1]["history"]) == 99
    assert out.stat().st_size > 20 * src.stat().st_size  # what the estimate warned about
    assert "expected output about" in capsys.readouterr().err


def test_the_cap_also_holds_where_nothing_can_be_estimated_up_front(tmp_path):
    """A stream (stdin, or a library call) is checked while it is written."""
    from instructgen.convert import ReadOptions, convert
    from instructgen.errors import InstructgenError
    from instructgen.formats.base import DumpOptions
    from instructgen.runlog import RunLog

    src = long_chat(tmp_path, turns=150)
    out = tmp_path / "out.jsonl"
    with pytest.raises(InstructgenError, match="past the cap"):
        convert([str(src)], str(out), "history", RunLog("convert"), ReadOptions(announce=lambda _m: None),
                DumpOptions(turns="explode"), workers=1)
    assert not out.exists()


def test_explode_to_alpaca_grows_nothing_and_is_not_refused(tmp_path, capsys):
    src = long_chat(tmp_path)
    out = tmp_path / "out.jsonl"
    assert main(["convert", str(src), "--to", "alpaca", "--turns", "explode", "-o", str(out)]) == 0
    assert len(list(read_rows(out))) == 100
    assert "(1.0x" in capsys.readouterr().err
