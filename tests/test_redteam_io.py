"""Red team for the I/O layer (issue 9, items 5, 6 and 7): run the real commands on hostile input and
check what survives. Every test asserts the input bytes are unchanged, that files appear only where
they should, and that every record is counted (in = out + rejected + ...)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import shared_files

GOOD = [
    {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
    {"instruction": "Name a prime number.", "input": "", "output": "7"},
    {"instruction": "把这句话翻译成英文。", "input": "你好", "output": "Hello"},
]
# valid JSON that is still a bad record, each in a JSON array between good ones
BAD_ARRAY_ELEMENTS = [
    ('{"instruction": "\\ud800", "input": "", "output": "x"}', "lone UTF-16 surrogate"),
    ("[" * 10_000 + "]" * 10_000, "nested deeper than"),
    ('"just a string"', "expected a JSON object, got a string"),
    ('{"instruction": "x", "input": "", "output": NaN}', "malformed JSON"),
]


def run(*args: str, cwd: Path, ok: bool = True, preexec=None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "instructgen.cli", *args], cwd=cwd, capture_output=True, text=True,
                          preexec_fn=preexec, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def jsonl(path: Path) -> list:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "cache" not in p.parts}


def equation(stderr: str, stage: str) -> str:
    return next(line for line in stderr.splitlines() if line.startswith(f"{stage}: in "))


def hostile_array(tmp_path: Path) -> Path:
    parts = [json.dumps(GOOD[0], ensure_ascii=False)]
    for (element, _), good in zip(BAD_ARRAY_ELEMENTS, GOOD[1:] + GOOD[:1] + GOOD[1:2]):
        parts += [element, json.dumps(good, ensure_ascii=False)]
    src = tmp_path / "in" / "hostile.json"
    src.parent.mkdir()
    src.write_text("[\n" + ",\n".join(parts) + "\n]\n", encoding="utf-8")
    return src


# -- item 5: one bad record never sinks a file -------------------------------------------------------

@pytest.mark.parametrize("command", ["convert", "filter", "dedup"])
def test_bad_json_array_elements_cost_one_reject_each(tmp_path, command):
    src = hostile_array(tmp_path)
    before = digest(src)
    out = tmp_path / "out" / "o.jsonl"
    args = [command, str(src), "-o", str(out)]
    if command == "convert":
        args += ["--to", "alpaca"]
    if command == "filter":
        args += ["--rules", "empty_output"]
    proc = run(*args, cwd=tmp_path)
    survivors = jsonl(out)
    expected = [GOOD[0], GOOD[1], GOOD[2], GOOD[0], GOOD[1]]
    if command == "dedup":  # the duplicates among the good records go too, counted as such
        expected = GOOD
    assert survivors == expected
    rejects = jsonl(tmp_path / "out" / "o.rejects.jsonl")
    rejected = [r for r in rejects if r["kind"] == "rejected"]
    assert [r["origin"] for r in rejected] == [f"{src}:{n}" for n in (3, 5, 7, 9)]
    for reject, (_, reason) in zip(rejected, BAD_ARRAY_ELEMENTS):
        assert reason in reject["reason"]
    assert equation(proc.stderr, command).startswith(f"{command}: in 9 = out {len(expected)} + rejected 4")
    assert digest(src) == before
    assert files_under(tmp_path / "out") - {"o.stats.json"} == {"o.jsonl", "o.rejects.jsonl"}  # curate adds stats


def test_validate_reports_each_bad_array_element(tmp_path):
    src = hostile_array(tmp_path)
    proc = run("validate", str(src), "--format", "alpaca", cwd=tmp_path, ok=False)
    assert proc.returncode == 1
    assert [line.split(": $")[0] for line in proc.stdout.splitlines()] == [f"{src}:{n}" for n in (3, 5, 7, 9)]
    assert "9 records as alpaca, 4 invalid" in proc.stderr


def test_push_dry_run_publishes_the_good_elements(tmp_path):
    src = hostile_array(tmp_path)
    before = digest(src)
    proc = run("push", str(src), "--repo", "me/hostile", "--dry-run", str(tmp_path / "hub"), "--from", "alpaca",
               "--rejects-dir", str(tmp_path / "rejects"), cwd=tmp_path)
    [shard] = (tmp_path / "hub").rglob("*.parquet")
    assert pq.read_table(shard).num_rows == 5
    assert "push:read: in 9 = out 5 + rejected 4" in proc.stderr
    assert len(jsonl(next((tmp_path / "rejects").glob("*.jsonl")))) == 4
    assert digest(src) == before


def gz_cut(tmp_path: Path, n: int = 30_000) -> tuple[Path, list[dict]]:
    rows = [{"instruction": f"Task {i}", "input": "", "output": f"answer {i} " * 6} for i in range(n)]
    data = gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    src = tmp_path / "in" / "partial.jsonl.gz"
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(data[: len(data) * 2 // 3])  # a partial download
    return src, rows


def test_truncated_gzip_keeps_the_records_before_the_cut(tmp_path):
    src, rows = gz_cut(tmp_path)
    before = digest(src)
    out = tmp_path / "out" / "o.jsonl"
    proc = run("convert", str(src), "--to", "alpaca", "-o", str(out), "--workers", "1", cwd=tmp_path)
    kept = jsonl(out)
    assert 0 < len(kept) < len(rows) and kept == rows[: len(kept)]
    [cut] = jsonl(tmp_path / "out" / "o.rejects.jsonl")
    assert cut["origin"] == f"{src}:{len(kept) + 1}" and "truncated or corrupt" in cut["reason"]
    assert equation(proc.stderr, "convert") == f"convert: in {len(kept) + 1} = out {len(kept)} + rejected 1"
    assert digest(src) == before and files_under(tmp_path / "out") == {"o.jsonl", "o.rejects.jsonl"}


def test_truncated_gzip_converted_in_shards_gives_the_serial_result(tmp_path, monkeypatch):
    from instructgen import convert_parallel
    from instructgen.convert import ReadOptions, convert
    from instructgen.runlog import RunLog

    monkeypatch.setattr(convert_parallel, "MIN_BYTES", 0)
    monkeypatch.setattr(convert_parallel, "BLOCK_LINES", 4_000)
    src, _ = gz_cut(tmp_path)
    results = []
    for workers in (1, 2):
        out = tmp_path / "out" / f"w{workers}.jsonl"
        log = RunLog("convert", tmp_path / "out" / f"w{workers}.rejects.jsonl")
        convert([str(src)], str(out), "alpaca", log, ReadOptions(from_format="alpaca"), workers=workers)
        log.close()
        results.append((out.read_bytes(), log.n_in, log.n_out, dict(log.dropped),
                        [(r["origin"], r["reason"]) for r in jsonl(Path(log.rejects_path))]))
    assert results[0] == results[1]
    assert results[0][3] == {"rejected": 1}
    assert not [f for f in files_under(tmp_path / "out") if not f.startswith(("w1.", "w2."))]


def test_invalid_utf8_keeps_the_original_bytes_in_the_rejects(tmp_path):
    (tmp_path / "in").mkdir()
    line = b'{"instruction": "caf\xe9 \xff\xfe", "input": "", "output": "x"}'
    src_jsonl = tmp_path / "in" / "latin1.jsonl"
    src_jsonl.write_bytes(json.dumps(GOOD[0]).encode() + b"\n" + line + b"\n")
    src_json = tmp_path / "in" / "latin1.json"
    src_json.write_bytes(b"[" + json.dumps(GOOD[0]).encode() + b",\n" + line + b"]")
    for src in (src_jsonl, src_json):
        out = tmp_path / "out" / f"{src.suffix[1:]}.jsonl"
        run("convert", str(src), "--to", "alpaca", "-o", str(out), cwd=tmp_path)
        assert jsonl(out) == [GOOD[0]]
        [reject] = jsonl(out.with_name(out.stem + ".rejects.jsonl"))
        assert reject["origin"] == f"{src}:2" and "invalid UTF-8" in reject["reason"]
        assert "\ufffd" not in reject["raw"]
        assert reject["raw"].encode("utf-8").decode("unicode_escape").encode("latin-1") == line


def test_empty_and_blank_inputs_are_one_line_errors(tmp_path):
    for name, content in (("empty.jsonl", b""), ("blank.json", b"\n  \n"), ("empty.jsonl.gz", gzip.compress(b""))):
        src = tmp_path / name
        src.write_bytes(content)
        proc = run("convert", str(src), "--to", "alpaca", "--from", "alpaca", "-o", str(tmp_path / "o.jsonl"),
                   cwd=tmp_path, ok=False)
        assert proc.returncode == 1 and str(src) in proc.stderr and "the file" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "o.jsonl").exists()


# -- item 6: Parquet output keeps every field ------------------------------------------------------------

def test_alpaca_through_sharegpt_parquet_keeps_input_apart(tmp_path):
    (tmp_path / "in").mkdir()
    src = tmp_path / "in" / "a.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in [GOOD[1], GOOD[0], GOOD[2]]))
    run("convert", str(src), "--to", "sharegpt", "-o", str(tmp_path / "s.parquet"), cwd=tmp_path)
    run("convert", str(tmp_path / "s.parquet"), "--to", "alpaca", "-o", str(tmp_path / "back.jsonl"), cwd=tmp_path)
    assert jsonl(tmp_path / "back.jsonl") == [GOOD[1], GOOD[0], GOOD[2]]


def moss_record(conversation_id, text: str) -> dict:
    return {"conversation_id": conversation_id, "meta_instruction": "You are MOSS.", "num_turns": 1, "chat": {
        "turn_1": {"Human": f"<|Human|>: {text}<eoh>\n", "Inner Thoughts": "<|Inner Thoughts|>: None<eot>\n",
                   "Commands": "<|Commands|>: None<eoc>\n", "Tool Responses": "<|Results|>: None<eor>\n",
                   "MOSS": f"<|MOSS|>: re {text}<eom>\n"}}}


def test_moss_ids_that_are_ints_and_strings_survive_parquet(tmp_path):
    (tmp_path / "in").mkdir()
    records = [moss_record(1, "a"), moss_record("conv-2", "b"), moss_record(3, "c")]
    src = tmp_path / "in" / "moss.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    proc = run("convert", str(src), "--to", "moss", "-o", str(tmp_path / "m.parquet"), cwd=tmp_path)
    assert "convert: in 3 = out 3" in proc.stderr
    schema = pq.read_schema(tmp_path / "m.parquet")
    assert schema.field("conversation_id").type == pa.string()  # JSON text: every datasets version loads it
    assert json.loads(schema.metadata[b"instructgen"])["json_columns"] == {
        "conversation_id": "mixed types (integer, string)"}
    run("convert", str(tmp_path / "m.parquet"), "--to", "moss", "-o", str(tmp_path / "back.jsonl"), cwd=tmp_path)
    assert jsonl(tmp_path / "back.jsonl") == records


def test_openai_tool_schemas_come_back_without_padded_keys(tmp_path):
    (tmp_path / "in").mkdir()
    records = []
    for i in range(5):
        params = {"type": "object", "properties": {f"p{i}_{j}": {"type": "string"} for j in range(i + 1)},
                  "required": [f"p{i}_0"]}
        records.append({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}],
                        "tools": [{"type": "function", "function": {"name": f"tool{i}", "description": "d",
                                                                     "parameters": params}}]})
    src = tmp_path / "in" / "tools.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    run("convert", str(src), "--to", "openai", "-o", str(tmp_path / "t.parquet"), cwd=tmp_path)
    run("convert", str(tmp_path / "t.parquet"), "--to", "openai", "-o", str(tmp_path / "back.jsonl"), cwd=tmp_path)
    back = jsonl(tmp_path / "back.jsonl")
    direct = tmp_path / "direct.jsonl"
    run("convert", str(src), "--to", "openai", "-o", str(direct), cwd=tmp_path)
    assert back == jsonl(direct)
    assert [len(r["tools"][0]["function"]["parameters"]["properties"]) for r in back] == [1, 2, 3, 4, 5]


REAL = [p for p in shared_files("formats") + shared_files("real") if p.suffix in (".json", ".jsonl")]


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_files_convert_the_same_through_parquet(tmp_path, path):
    """X -> F.jsonl and X -> F.parquet -> F.jsonl give the same records, for the file's own format and openai."""
    from instructgen import formats
    from instructgen.convert import ReadOptions, convert
    from instructgen.io import read_rows
    from instructgen.runlog import RunLog

    head = [r.data for r in read_rows(path) if r.error is None][: formats.DETECT_SAMPLE]
    own = formats.detect_rows(head, str(path))
    targets = {own if formats.get(own).writable else "sharegpt", "openai"}
    quiet = ReadOptions(announce=lambda _: None)
    for to in sorted(targets):
        direct, via, back = tmp_path / f"{to}.jsonl", tmp_path / f"{to}.parquet", tmp_path / f"{to}.back.jsonl"
        log = RunLog("convert")
        convert([str(path)], str(direct), to, log, quiet)
        if log.n_out == 0:
            continue
        convert([str(path)], str(via), to, RunLog("convert"), quiet)
        again = RunLog("convert")
        convert([str(via)], str(back), to, again, ReadOptions(from_format=to, announce=lambda _: None))
        assert again.n_in == log.n_out == again.n_out
        assert [orjson.loads(x) for x in back.read_bytes().splitlines()] == \
            [orjson.loads(x) for x in direct.read_bytes().splitlines()], to


# -- item 7: no temporaries left behind; full disk -----------------------------------------------------------

def test_a_killed_run_leaves_a_temporary_that_the_next_start_removes(tmp_path):
    out = tmp_path / "out" / "o.jsonl"
    code = ("import sys; from instructgen.io import RowWriter\n"
            "w = RowWriter(sys.argv[1]); w.write({'a': 1}); w._fh.flush(); print(w._tmp, flush=True)\n"
            "sys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    tmp = Path(proc.stdout.readline().strip())
    assert tmp.exists() and tmp.parent == out.parent
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert tmp.exists()  # kill -9: nothing could clean up
    (tmp_path / "in").mkdir()
    src = tmp_path / "in" / "a.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in GOOD))
    run("convert", str(src), "--to", "alpaca", "-o", str(out), cwd=tmp_path)
    assert not tmp.exists()
    assert files_under(tmp_path / "out") == {"o.jsonl"} and jsonl(out) == GOOD


def limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 10, 256 << 10))


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".json", ".parquet"])
def test_a_full_disk_removes_the_partial_file_and_keeps_the_old_output(tmp_path, suffix):
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    rows = [{"instruction": f"Task {i} " + os.urandom(64).hex(), "input": "", "output": os.urandom(256).hex()}
            for i in range(4_000)]
    src = tmp_path / "in" / "big.jsonl"
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    out = tmp_path / "out" / f"o{suffix}"
    out.write_bytes(b"the previous output\n")
    proc = run("convert", str(src), "--to", "alpaca", "-o", str(out), "--workers", "1", cwd=tmp_path, ok=False,
               preexec=limit_file_size)
    assert proc.returncode == 1
    [message] = proc.stderr.strip().splitlines()[-1:]
    assert f"{out}: cannot write" in message and "file too large" in message and "partial file was removed" in message
    assert out.read_bytes() == b"the previous output\n"
    assert files_under(tmp_path / "out") <= {f"o{suffix}", "o.rejects.jsonl"}
