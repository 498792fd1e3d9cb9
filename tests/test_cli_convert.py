"""End-to-end tests of `instructgen convert`, `validate` and `formats`, including bad input."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from instructgen import io as rowio
from instructgen.cli import main

ALPACA = [
    {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
    {"instruction": "把这句话翻译成英文。", "input": "你好", "output": "Hello"},
    {"instruction": "Name a prime number.", "input": "", "output": "7"},
]
SHAREGPT_MULTI = {
    "id": "c1",
    "system": "Be brief.",
    "conversations": [
        {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"},
        {"from": "human", "value": "What is 2+2?"}, {"from": "gpt", "value": "4"},
    ],
}


def write_jsonl(path: Path, rows, raw_lines=()) -> Path:
    with open(path, "wb") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False).encode() + b"\n")
        for line in raw_lines:
            fh.write(line + b"\n")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_alpaca_to_sharegpt_and_back_keeps_instruction_and_input_apart(tmp_path, capsys):
    src = write_jsonl(tmp_path / "a.jsonl", ALPACA)
    assert main(["convert", str(src), "--to", "sharegpt", "-o", str(tmp_path / "s.jsonl")]) == 0
    sharegpt = read_jsonl(tmp_path / "s.jsonl")
    assert sharegpt[0]["conversations"][0] == {"from": "human", "value": "Translate to French.\nGood morning"}
    assert main(["convert", str(tmp_path / "s.jsonl"), "--to", "alpaca", "-o", str(tmp_path / "back.jsonl")]) == 0
    assert read_jsonl(tmp_path / "back.jsonl") == ALPACA
    err = capsys.readouterr().err
    assert "detected format alpaca" in err and "detected format sharegpt" in err
    assert "convert: in 3 = out 3" in err


def test_default_output_name_is_beside_the_input(tmp_path):
    src = write_jsonl(tmp_path / "data.jsonl", ALPACA)
    assert main(["convert", str(src), "--to", "openai"]) == 0
    out = read_jsonl(tmp_path / "data.openai.jsonl")
    assert [m["role"] for m in out[0]["messages"]] == ["user", "assistant"]


def test_losses_are_counted_on_stderr_and_strict_refuses(tmp_path, capsys):
    src = write_jsonl(tmp_path / "chat.jsonl", [SHAREGPT_MULTI, SHAREGPT_MULTI])
    out = tmp_path / "a.jsonl"
    assert main(["convert", str(src), "--to", "alpaca", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "history dropped (kept the first turn): 2 records" in err
    assert "system prompt dropped: 2 records" in err
    assert read_jsonl(out)[0] == {"instruction": "Hi", "input": "", "output": "Hello!", "meta": {"id": "c1"}}

    strict_out = tmp_path / "strict.jsonl"
    assert main(["convert", str(src), "--to", "alpaca", "--strict", "-o", str(strict_out)]) == 1
    err = capsys.readouterr().err
    assert "would lose information" in err and f"{src}:1" in err
    assert not strict_out.exists()


BAD_LINES = [
    (b'{"instruction": "x", "output": 5}', "field 'output' must be a string, got int"),
    (b'{"instruction": "x"', "malformed JSON"),
    (b'{"instruction": "x", "output": NaN}', "malformed JSON"),
    (b'{"instruction": "caf\xe9", "output": "y"}', "invalid UTF-8"),
    (b'["not", "an", "object"]', "expected a JSON object, got an array"),
    (b'{"prompt": "p", "response": "r"}', "not a valid alpaca record: missing field 'instruction'"),
]


def test_bad_records_go_to_rejects_with_file_line_reason_and_raw_text(tmp_path, capsys):
    src = write_jsonl(tmp_path / "mixed.jsonl", ALPACA, [line for line, _ in BAD_LINES])
    out = tmp_path / "out.jsonl"
    assert main(["convert", str(src), "--to", "sharegpt", "-o", str(out)]) == 0
    assert len(read_jsonl(out)) == len(ALPACA)
    rejects = read_jsonl(tmp_path / "out.rejects.jsonl")
    assert len(rejects) == len(BAD_LINES)
    for i, (reject, (line, reason)) in enumerate(zip(rejects, BAD_LINES)):
        assert reject["origin"] == f"{src}:{len(ALPACA) + i + 1}"
        assert reason in reject["reason"]
        assert reject["raw"] == line.decode("utf-8", "backslashreplace")  # invalid bytes kept as \xNN
    err = capsys.readouterr().err
    assert err.rstrip().splitlines()[-1] == f"convert: in {len(ALPACA) + len(BAD_LINES)} = out {len(ALPACA)} + rejected {len(BAD_LINES)}"


def test_bom_and_crlf_are_normal_input(tmp_path):
    src = tmp_path / "bom.jsonl"
    src.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(json.dumps(r).encode() for r in ALPACA) + b"\r\n")
    out = tmp_path / "out.jsonl"
    assert main(["convert", str(src), "--to", "alpaca", "-o", str(out)]) == 0
    assert read_jsonl(out) == ALPACA
    assert not (tmp_path / "out.rejects.jsonl").exists()


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b"{oops\n{also bad\n", "malformed JSON"),
    (b"\xff\xfe\n", "invalid UTF-8"),
])
def test_input_without_any_record_is_a_one_line_error(tmp_path, content, message):
    src = tmp_path / "bad.jsonl"
    src.write_bytes(content)
    proc = subprocess.run([sys.executable, "-m", "instructgen.cli", "convert", str(src), "--to", "moss",
                           "-o", str(tmp_path / "o.jsonl")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert message in proc.stderr and str(src) in proc.stderr


def test_unknown_file_and_type_are_one_line_errors(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "missing.jsonl"), "--to", "moss"]) == 1
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "x.csv").write_text("a,b\n")
    assert main(["convert", str(tmp_path / "x.csv"), "--to", "moss"]) == 1
    assert "unknown file type" in capsys.readouterr().err


def test_json_array_rows_report_their_line(tmp_path):
    src = tmp_path / "arr.json"
    src.write_text(json.dumps([ALPACA[0], {"instruction": 1, "output": "x"}, ALPACA[1]], indent=2))
    out = tmp_path / "out.jsonl"
    assert main(["convert", str(src), "--to", "alpaca", "-o", str(out)]) == 0
    rejects = read_jsonl(tmp_path / "out.rejects.jsonl")
    assert rejects[0]["origin"] == f"{src}:7"  # the line where the second element starts
    assert json.loads(rejects[0]["raw"]) == {"instruction": 1, "output": "x"}


def test_every_container_type_round_trips(tmp_path):
    src = write_jsonl(tmp_path / "a.jsonl", ALPACA)
    for name in ("o.json", "o.jsonl.gz", "o.parquet", "o.jsonl"):
        out = tmp_path / name
        assert main(["convert", str(src), "--to", "alpaca", "-o", str(out)]) == 0
        back = [r.data for r in rowio.read_rows(out)]
        assert back == ALPACA, name
    assert gzip.open(tmp_path / "o.jsonl.gz").read().count(b"\n") == 3
    assert pq.read_table(tmp_path / "o.parquet").num_rows == 3


def test_stdin_to_stdout(tmp_path):
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ALPACA)
    proc = subprocess.run([sys.executable, "-m", "instructgen.cli", "convert", "-", "--to", "openai", "-o", "-"],
                          input=data, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert rows[1]["messages"][0] == {"role": "user", "content": "把这句话翻译成英文。\n你好"}
    assert "convert: in 3 = out 3" in proc.stderr


def test_detection_refuses_a_file_no_format_fits(tmp_path, capsys):
    src = write_jsonl(tmp_path / "odd.jsonl", [{"question": "q", "answer": "a"}] * 3)
    assert main(["convert", str(src), "--to", "alpaca"]) == 1
    err = capsys.readouterr().err
    assert "no format fits" in err and "--from" in err


def test_columns_map_advertisegen_style_fields(tmp_path):
    src = write_jsonl(tmp_path / "adgen.jsonl", [{"q": "类型#裙", "a": "这款裙子很好看。"}])
    out = tmp_path / "out.jsonl"
    assert main(["convert", str(src), "--from", "chatglm", "--columns", "prompt=q,response=a",
                 "--to", "alpaca", "-o", str(out)]) == 0
    assert read_jsonl(out) == [{"instruction": "类型#裙", "input": "", "output": "这款裙子很好看。"}]


def test_validate_reports_each_invalid_record(tmp_path, capsys):
    src = write_jsonl(tmp_path / "v.jsonl", ALPACA + [{"instruction": "x", "output": 3}])
    assert main(["validate", str(src), "--format", "alpaca"]) == 1
    out = capsys.readouterr().out
    assert f"{src}:4: $.output:" in out
    good = write_jsonl(tmp_path / "good.jsonl", ALPACA)
    assert main(["validate", str(good)]) == 0


def test_formats_lists_every_registered_format_with_an_example(capsys):
    from instructgen import formats

    assert main(["formats"]) == 0
    out = capsys.readouterr().out
    for name, spec in formats.registry().items():
        assert f"{name}  (" in out
        assert json.dumps(spec.example, ensure_ascii=False) in out


def test_help_teaches_with_examples():
    proc = subprocess.run([sys.executable, "-m", "instructgen.cli", "convert", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "examples:" in proc.stdout and "--to" in proc.stdout and "instructgen convert data.json --to moss" in proc.stdout


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])  # byte ranges; blocks of lines (compressed)
@pytest.mark.parametrize("to", ["chatglm3", "moss"])  # canonical path; direct path
def test_parallel_conversion_matches_the_serial_one(tmp_path, monkeypatch, to, suffix):
    from instructgen import convert_parallel

    monkeypatch.setattr(convert_parallel, "MIN_BYTES", 0)
    monkeypatch.setattr(convert_parallel, "BLOCK_LINES", 7)
    pooled, real = [], convert_parallel.convert_file
    monkeypatch.setattr(convert_parallel, "convert_file", lambda *a, **k: (pooled.append(a[0]), real(*a, **k)))
    rows = [dict(r, instruction=f"{r['instruction']} #{i}") for i in range(20) for r in ALPACA]
    src = write_jsonl(tmp_path / "big.jsonl", rows, [line for line, _ in BAD_LINES])
    if suffix == ".jsonl.gz":
        gz = tmp_path / "big.jsonl.gz"
        gz.write_bytes(gzip.compress(src.read_bytes()))
        src.unlink()
        src = gz
    outputs = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}.jsonl"
        assert main(["convert", str(src), "--to", to, "--workers", str(workers), "-o", str(out)]) == 0
        outputs[workers] = (out.read_bytes(), (tmp_path / f"w{workers}.rejects.jsonl").read_bytes())
    assert outputs[1] == outputs[2]
    assert len(pooled) == 1  # the second run went through the pool
    assert len(outputs[2][0].splitlines()) == len(rows)
    assert len(outputs[2][1].splitlines()) == len(BAD_LINES)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [src.name, "w1.jsonl", "w1.rejects.jsonl", "w2.jsonl", "w2.rejects.jsonl"])  # no part left behind


def test_byte_ranges_start_at_line_starts_and_cover_the_file(tmp_path):
    from instructgen.convert_parallel import byte_ranges

    path = tmp_path / "f.jsonl"
    path.write_bytes(b"".join(b"x" * (i % 7) + b"\n" for i in range(200)) + b"last line without newline")
    data = path.read_bytes()
    for n in (1, 2, 3, 8, 50, 500):
        ranges = byte_ranges(str(path), n)
        assert ranges[0][0] == 0 and ranges[-1][1] == len(data)
        assert all(a == prev_b for (a, _), (_, prev_b) in zip(ranges[1:], ranges))
        assert all(a == 0 or data[a - 1:a] == b"\n" for a, _ in ranges)


def test_outputs_get_ordinary_file_permissions(tmp_path):
    import os

    src = write_jsonl(tmp_path / "a.jsonl", ALPACA)
    out = tmp_path / "o.jsonl"
    old = os.umask(0o022)
    try:
        assert main(["convert", str(src), "--to", "alpaca", "-o", str(out)]) == 0
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o644


def test_a_reader_that_leaves_early_is_not_an_error(tmp_path):
    src = write_jsonl(tmp_path / "many.jsonl", ALPACA * 20000)
    proc = subprocess.run(f"{sys.executable} -m instructgen.cli convert {src} --to sharegpt -o - | head -1",
                          shell=True, capture_output=True, text=True)
    assert proc.stdout.count("\n") == 1
    assert "error" not in proc.stderr.lower() and "Traceback" not in proc.stderr


def test_preference_data_end_to_end_then_validate(tmp_path, capsys):
    """The issue's case: DPO pairs into a single-turn format keep the prompt their answers reply to,
    and validate checks meaning, not only the schema."""
    src = tmp_path / "dpo.json"
    src.write_text(json.dumps([
        {"conversations": [{"from": "human", "value": "q1"}, {"from": "gpt", "value": "a1"},
                           {"from": "human", "value": "q2"}],
         "chosen": {"from": "gpt", "value": "good"}, "rejected": {"from": "gpt", "value": "bad"}},
    ]), encoding="utf-8")
    out = tmp_path / "dpo.alpaca.jsonl"
    assert main(["convert", str(src), "--to", "alpaca", "-o", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8")) == {"instruction": "q2", "input": "", "chosen": "good",
                                                           "rejected": "bad"}
    assert "history dropped (kept the turn the preference judges): 1 record" in capsys.readouterr().err
    assert main(["validate", str(out)]) == 0
    assert main(["convert", str(src), "--to", "alpaca", "--strict", "-o", str(tmp_path / "s.jsonl")]) == 1
    # the same prompt without its answers: no assistant turn to train on
    bare = tmp_path / "bare.openai.jsonl"
    bare.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}]}) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["validate", str(bare)]) == 1
    assert "ends with a user turn: there is no assistant answer to train on" in capsys.readouterr().out
