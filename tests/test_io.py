"""instructgen.io, json_array, parquet and tempfiles: what each reader keeps, what each writer leaves behind."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import subprocess
import sys

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instructgen import io as rowio
from instructgen import json_array, tempfiles
from instructgen.errors import InstructgenError
from instructgen.io import MAX_NESTING, RowWriter, read_rows, remove_stale_temps, temp_beside, temp_name
from instructgen.parquet import ColumnPlan

ALPACA = {"instruction": "Name a colour.", "input": "", "output": "Red"}


def canon(value) -> bytes:
    """Type-exact comparison: 1 and 1.0 differ, key order does not."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def good(rows):
    return [r.data for r in rows if r.error is None]


def bad(rows):
    return [r for r in rows if r.error is not None]


# -- JSON arrays ----------------------------------------------------------------------------------

def deep(n: int) -> str:
    return "[" * n + "]" * n


BAD_ELEMENTS = [
    ('{"instruction": "\\ud800", "output": "x"}', "lone UTF-16 surrogate"),
    ('{"instruction": "x", "output": NaN}', "malformed JSON"),
    ('{"instruction": "x", "output": 1e999}', "malformed JSON"),
    (deep(10_000), f"nested deeper than {MAX_NESTING} levels"),
    (deep(300), f"nested deeper than {MAX_NESTING} levels"),
    ('{"instruction": "tab\tinside", "output": "x"}', "control character"),
]


@pytest.mark.parametrize("element, reason", BAD_ELEMENTS)
def test_a_bad_array_element_is_one_reject_and_the_rest_is_read(tmp_path, element, reason):
    src = tmp_path / "a.json"
    src.write_text("[\n" + ",\n".join([json.dumps(ALPACA), element, json.dumps(ALPACA)]) + "\n]\n")
    rows = list(read_rows(src))
    assert good(rows) == [ALPACA, ALPACA]
    [reject] = bad(rows)
    assert reason in reject.error
    assert reject.origin == f"{src}:3"
    assert [r.origin for r in rows] == [f"{src}:2", f"{src}:3", f"{src}:4"]


def test_invalid_utf8_in_an_array_element_keeps_its_bytes_and_the_rest(tmp_path):
    src = tmp_path / "a.json"
    src.write_bytes(b'[{"instruction": "caf\xe9", "output": "x"},\n' + json.dumps(ALPACA).encode() + b"]")
    rows = list(read_rows(src))
    assert good(rows) == [ALPACA]
    assert rows[0].raw == b'{"instruction": "caf\xe9", "output": "x"}'
    assert "invalid UTF-8" in rows[0].error and rows[1].origin == f"{src}:2"


def test_a_syntax_error_between_elements_stops_the_array_with_one_reject(tmp_path):
    src = tmp_path / "a.json"
    src.write_text("[" + json.dumps(ALPACA) + ",\n" + json.dumps(ALPACA) + "\n" + json.dumps(ALPACA) + "]")
    rows = list(read_rows(src))
    assert good(rows) == [ALPACA, ALPACA]
    assert "cannot read the array past it (2 elements before it were read)" in rows[-1].error
    assert rows[-1].origin == f"{src}:3"


def test_an_unclosed_array_keeps_the_elements_before_the_end(tmp_path):
    src = tmp_path / "a.json"
    src.write_text("[" + json.dumps(ALPACA) + ",\n" + json.dumps(ALPACA)[:-5])
    rows = list(read_rows(src))
    assert good(rows) == [ALPACA] and len(bad(rows)) == 1


def test_empty_and_blank_files_are_errors_but_an_empty_array_is_not(tmp_path):
    for content in (b"", b" \n\n\t\n", b"\xef\xbb\xbf"):
        (tmp_path / "e.jsonl").write_bytes(content)
        with pytest.raises(InstructgenError, match="e.jsonl: the file"):
            list(read_rows(tmp_path / "e.jsonl"))
    (tmp_path / "e.json").write_text(" [ ] \n")
    assert list(read_rows(tmp_path / "e.json")) == []


def test_blank_lines_before_the_array_count_in_line_numbers(tmp_path):
    src = tmp_path / "a.json"
    src.write_bytes(b"\xef\xbb\xbf\n\n[\n" + json.dumps(ALPACA).encode() + b"]")
    [row] = read_rows(src)
    assert row.data == ALPACA and row.origin == f"{src}:4"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(elements=st.lists(st.one_of(json_values.map(lambda v: ("good", v)),
                                   st.sampled_from([b for b, _ in BAD_ELEMENTS if len(b) < 1000]).map(lambda b: ("bad", b))),
                         max_size=8),
       indent=st.sampled_from([None, 1, 2]), chunk=st.sampled_from([1, 3, 7, 64, 1 << 20]))
def test_array_elements_survive_any_chunking(tmp_path, monkeypatch, elements, indent, chunk):
    """Chunks cut numbers, escapes and multi-byte characters anywhere: the good elements still come back
    exactly, each bad one is one reject on the line where it starts."""
    monkeypatch.setattr(json_array, "ARRAY_CHUNK_BYTES", chunk)
    parts, lines, line = [], [], 2
    for kind, value in elements:
        text = json.dumps(value, ensure_ascii=False, indent=indent) if kind == "good" else value
        parts.append(text)
        lines.append(line)
        line += text.count("\n") + 1
    src = tmp_path / "p.json"
    src.write_text("[\n" + ",\n".join(parts) + "\n]\n", encoding="utf-8")
    rows = list(read_rows(src))
    assert len(rows) == len(elements)
    assert [r.origin for r in rows] == [f"{src}:{n}" for n in lines]
    assert [r.error is None for r in rows] == [kind == "good" for kind, _ in elements]
    assert canon(good(rows)) == canon([v for kind, v in elements if kind == "good"])


# -- JSONL and gzip -------------------------------------------------------------------------------

@pytest.mark.parametrize("line, reason", [
    (b'{"instruction": "\\ud800", "output": "x"}', "lone UTF-16 surrogate"),
    (deep(300).encode(), f"nested deeper than {MAX_NESTING} levels"),
    (deep(5000).encode(), f"nested deeper than {MAX_NESTING} levels"),
])
def test_jsonl_refuses_what_json_arrays_refuse(tmp_path, line, reason):
    src = tmp_path / "a.jsonl"
    src.write_bytes(json.dumps(ALPACA).encode() + b"\n" + line + b"\n" + json.dumps(ALPACA).encode() + b"\n")
    rows = list(read_rows(src))
    assert good(rows) == [ALPACA, ALPACA]
    assert reason in rows[1].error and rows[1].origin == f"{src}:2"


def test_nesting_up_to_the_limit_is_read_and_can_be_written(tmp_path):
    value = json.loads(deep(MAX_NESTING - 1))  # + the record's own object = MAX_NESTING
    src = tmp_path / "a.jsonl"
    src.write_text(json.dumps({"meta": value}) + "\n")
    [row] = read_rows(src)
    assert row.error is None
    rowio.write_rows(tmp_path / "o.jsonl", [{"meta": {"wrapped": row.data}}])


def gz_cut(tmp_path, n: int, keep: float, name="cut.jsonl.gz"):
    lines = [{"i": i, "text": f"record {i} " * 8} for i in range(n)]
    data = gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in lines))
    path = tmp_path / name
    path.write_bytes(data[: int(len(data) * keep)])
    return path, lines


def test_a_truncated_gzip_keeps_every_complete_line_before_the_cut(tmp_path):
    path, lines = gz_cut(tmp_path, 20_000, 0.5)
    rows = list(read_rows(path))
    kept, cut = good(rows), rows[-1]
    assert 0 < len(kept) < len(lines) and kept == lines[: len(kept)]
    assert len(bad(rows)) == 1 and "truncated or corrupt" in cut.error
    assert cut.origin == f"{path}:{len(kept) + 1}"
    assert orjson.dumps(lines[len(kept)]).startswith(cut.raw or b"")  # the line the cut went through, as far as it got


def test_gzip_cut_inside_the_header_is_one_reject(tmp_path):
    path, _ = gz_cut(tmp_path, 10, 0.2)
    rows = list(read_rows(path))
    assert len(rows) == 1 and "truncated or corrupt" in rows[0].error


def test_a_bad_gzip_checksum_is_one_reject_after_the_lines(tmp_path):
    """gzip checks its CRC only at the end: the lines all come through, then the corruption is reported."""
    path, lines = gz_cut(tmp_path, 100, 1.0)
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF
    path.write_bytes(bytes(data))
    rows = list(read_rows(path))
    assert good(rows) == lines
    assert len(bad(rows)) == 1 and "CRC check failed" in rows[-1].error


# -- Parquet --------------------------------------------------------------------------------------

def parquet_round_trip(tmp_path, rows, batch=None, monkeypatch=None, name="r.parquet"):
    if batch is not None:
        monkeypatch.setattr(rowio, "PARQUET_BATCH_ROWS", batch)
    out = tmp_path / name
    with RowWriter(out) as w:
        w.write_many(rows)
    back = list(read_rows(out))
    assert all(r.error is None for r in back)
    return [r.data for r in back], w.notes


def test_parquet_schema_comes_from_every_row_not_the_first(tmp_path, monkeypatch):
    rows = [{"conversations": [{"from": "human", "value": "a"}]},
            {"conversations": [{"from": "human", "value": "b"}], "meta": {"split": {"instruction": "b", "input": "x"}}}]
    for batch in (1, 50_000):
        back, _ = parquet_round_trip(tmp_path, rows * 3, batch, monkeypatch)
        assert canon(back) == canon(rows * 3)


def test_parquet_mixed_ids_are_json_text_counted_in_notes(tmp_path, monkeypatch):
    rows = [{"conversation_id": 1, "x": "a"}, {"conversation_id": "c2", "x": "b"}, {"conversation_id": 3, "x": "c"}]
    for batch in (1, 2, 50_000):  # the mix inside one batch, or only across batches
        back, notes = parquet_round_trip(tmp_path, rows, batch, monkeypatch)
        assert canon(back) == canon(rows)
        [note] = notes
        assert "'conversation_id'" in note and "integer, string" in note and "3 values" in note
    schema = pq.read_schema(tmp_path / "r.parquet")
    assert schema.field("conversation_id").type == pa.string() and schema.field("x").type == pa.string()
    assert json.loads(schema.metadata[b"instructgen"])["json_columns"] == {"conversation_id": "mixed types (integer, string)"}


def test_a_tool_schema_comes_back_without_padded_keys(tmp_path):
    tools = [[{"type": "function", "function": {"name": f"f{i}", "parameters": {
        "type": "object", "properties": {f"arg{i}_{j}": {"type": "string"} for j in range(i % 4 + 1)}}}}]
        for i in range(40)]
    rows = [{"messages": [{"role": "user", "content": "q"}], "tools": t} for t in tools]
    back, notes = parquet_round_trip(tmp_path, rows)
    assert canon(back) == canon(rows)
    assert any("'tools'" in n for n in notes)
    assert pa.types.is_list(pq.read_schema(tmp_path / "r.parquet").field("messages").type)  # stays native


def test_int_and_float_in_one_column_keep_their_types(tmp_path, monkeypatch):
    rows = [{"score": 1}, {"score": 2.5}]
    for batch in (1, 50_000):
        back, notes = parquet_round_trip(tmp_path, rows, batch, monkeypatch)
        assert canon(back) == canon(rows) and len(notes) == 1


KINDS = [1, 1.5, True, "a", None, [1], ["a", 2], {"a": 1}, {"b": None}, [], {}, 2**63, -(2**63), 0.0, [[1.0], [2]]]


@pytest.mark.parametrize("a, b", list(itertools.permutations(KINDS, 2)), ids=repr)
def test_any_two_json_kinds_in_one_column_come_back_exactly(tmp_path, a, b):
    rows = [{"k": "x", "v": a}, {"k": "y", "v": b}]
    back, _ = parquet_round_trip(tmp_path, rows)
    assert canon(back) == canon([{k: v for k, v in r.items() if v is not None} for r in rows])


def test_batches_of_empty_lists_and_nulls_unify_natively(tmp_path, monkeypatch):
    rows = [{"history": [], "s": None}, {"history": [["q", "a"]], "s": "x"}]
    back, notes = parquet_round_trip(tmp_path, rows, 1, monkeypatch)
    assert canon(back) == canon([{"history": []}, {"history": [["q", "a"]], "s": "x"}])  # top-level null: absent
    assert notes == []
    assert pq.read_schema(tmp_path / "r.parquet").field("history").type == pa.list_(pa.list_(pa.string()))


def test_parquet_of_no_rows_reads_as_no_rows_and_rows_without_fields_are_refused(tmp_path):
    back, notes = parquet_round_trip(tmp_path, [])
    assert back == [] and notes == []
    with pytest.raises(InstructgenError, match="no field at all"):
        rowio.write_rows(tmp_path / "e.parquet", [{}, {}])
    assert not (tmp_path / "e.parquet").exists() and not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


rows_strategy = st.lists(
    st.dictionaries(st.sampled_from(["id", "conversations", "meta", "tools", "n", "text"]),
                    json_values.filter(lambda v: v is not None), max_size=4),
    max_size=12,
).filter(lambda rows: not rows or any(rows))  # rows with no field at all are refused (tested above)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows_strategy, batch=st.sampled_from([1, 2, 5, 50_000]))
def test_parquet_round_trip_is_exact(tmp_path, monkeypatch, rows, batch):
    """Any JSON rows (a top-level null is the one documented exception) come back as written."""
    back, _ = parquet_round_trip(tmp_path, rows, batch, monkeypatch)
    assert canon(back) == canon(rows)


def test_parquet_from_pandas_and_datasets_reads_as_before(tmp_path):
    import datasets
    import pandas as pd

    rows = [{"instruction": "a", "output": "b", "n": 1}, {"instruction": "c", "output": "d", "n": 2}]
    pd.DataFrame(rows).to_parquet(tmp_path / "pd.parquet")
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "ds.parquet"))
    for name in ("pd.parquet", "ds.parquet"):
        back = list(read_rows(tmp_path / name))
        assert [r.data for r in back] == rows and back[1].origin == f"{tmp_path / name}:row 2"


def test_datasets_reads_our_json_columns_back(tmp_path):
    """JSON text in plain string columns (every datasets version loads them; json.loads gives the values)."""
    import datasets

    rows = [{"id": 1, "meta": {"a": 1}}, {"id": "x", "meta": {"b": [1, 2]}}]
    with RowWriter(tmp_path / "o.parquet") as w:
        w.write_many(rows)
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "o.parquet"), split="train",
                               cache_dir=str(tmp_path / "cache"))
    assert [{k: json.loads(v) for k, v in r.items()} for r in ds] == rows


def test_column_plan_two_passes_match_the_writer(tmp_path):
    """The Hub publisher's way: observe every batch, then build each batch in the final schema."""
    batches = [[{"id": 1, "chat": {"turn_1": "a"}}], [{"id": "b", "chat": {"turn_1": "b", "turn_2": "c"}}]]
    plan = ColumnPlan()
    for b in batches:
        plan.observe(b)
    tables = [plan.table(b) for b in batches]
    assert all(t.schema == plan.schema() for t in tables)
    pq.write_table(pa.concat_tables(tables), tmp_path / "two.parquet")
    assert canon([r.data for r in read_rows(tmp_path / "two.parquet")]) == canon(batches[0] + batches[1])
    assert set(plan.json_columns()) == {"id", "chat"}


# -- writing, temporaries ---------------------------------------------------------------------------

def test_a_failed_write_removes_the_partial_file_and_keeps_the_old_output(tmp_path):
    out = tmp_path / "o.jsonl"
    out.write_text("old\n")
    with pytest.raises(RuntimeError):
        with RowWriter(out) as w:
            w.write(ALPACA)
            raise RuntimeError("boom")
    assert out.read_text() == "old\n" and sorted(os.listdir(tmp_path)) == ["o.jsonl"]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_of_dead_runs_go_live_ones_stay(tmp_path):
    out = tmp_path / "o.jsonl"
    host = tempfiles._HOST
    (tmp_path / "elsewhere").mkdir()
    stale = [tmp_path / f".o.jsonl.{host}-{dead_pid()}.abc123.tmp",  # an output
             tmp_path / f".o.jsonl.{host}-{dead_pid()}.shard7.tmp",  # a worker's part
             tmp_path / f".o.rejects.jsonl.{host}-{dead_pid()}.q_1.tmp"]  # another file of the same run
    with subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE) as live:
        kept = [tmp_path / f".o.jsonl.{host}-{live.pid}.xyz.tmp",  # a live process's
                tmp_path / f".o.jsonl.otherhost-{dead_pid()}.q.tmp",  # another host's
                tmp_path / "elsewhere" / f".o.jsonl.{host}-{dead_pid()}.q.tmp",  # another folder
                tmp_path / f"o.jsonl.{host}-{dead_pid()}.q.tmp",  # not hidden: not ours
                tmp_path / f".o.jsonl.{host}-{dead_pid()}.q.tmp.bak"]
        for f in stale + kept:
            f.write_text("partial")
        mine = temp_beside(out)
        assert all(not f.exists() for f in stale)
        assert all(f.exists() for f in kept) and os.path.exists(mine)
        assert remove_stale_temps(out) == [] and os.path.exists(mine)  # this process's own temporary stays
        live.stdin.close()
    os.unlink(mine)


def test_temp_name_is_cleaned_once_its_process_is_gone(tmp_path):
    code = ("import sys; from instructgen.io import temp_name; p = temp_name(sys.argv[1], 'shard-3'); "
            "open(p, 'w').write('x'); print(p)")
    part = subprocess.run([sys.executable, "-c", code, str(tmp_path / "o.jsonl")], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert os.path.exists(part) and part.endswith(".shard-3.tmp")
    assert remove_stale_temps(tmp_path / "o.jsonl") == [part] and not os.path.exists(part)


def test_two_writers_beside_each_other_under_relative_names(tmp_path, monkeypatch):
    """An output and its rejects file in the current folder: opening the second must not take the first's
    temporary for a stale one (a relative name once did, and the output could not be written)."""
    from instructgen.io import RowWriter, temp_beside

    monkeypatch.chdir(tmp_path)
    writer = RowWriter("out.jsonl")
    writer.write({"a": 1})
    other = temp_beside("out.rejects.jsonl")
    writer.close()
    assert (tmp_path / "out.jsonl").read_bytes() == b'{"a":1}\n'
    assert os.path.exists(other)


def test_jsonl_output_escapes_line_and_paragraph_separators(tmp_path):
    """JSON allows U+2028/U+2029 raw, but readers that split on them (str.splitlines) would cut the record."""
    from instructgen.io import RowWriter, read_rows

    row = {"instruction": "a\u2028b", "input": "", "output": "c\u2029d"}
    with RowWriter(tmp_path / "x.jsonl") as writer:
        writer.write(row)
        writer.append_jsonl(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE), 1)
    text = (tmp_path / "x.jsonl").read_text(encoding="utf-8")
    assert len(text.splitlines()) == 2 and "\\u2028" in text and "\u2028" not in text
    assert [r.data for r in read_rows(tmp_path / "x.jsonl")] == [row, row]
