"""Schema-stable rows (issue 20.7): RowWriter(stable_keys=True) gives every row of a JSON/JSONL file the same
top-level keys. The keys the first rows show are added as rows are written (no second pass); a key first
seen after the held-back rows, or rows handed over as bytes, are filled by a pass at close. Keys a format's
readers test by presence (`leave_absent`) are never added."""

from __future__ import annotations

import gzip
import json

import pytest

from instructgen import io as rowio
from instructgen.io import RowWriter, read_rows


def rows_in(path) -> list:
    return [r.data for r in read_rows(str(path))]


def write(path, rows, **kw) -> RowWriter:
    with RowWriter(path, stable_keys=True, **kw) as w:
        for row in rows:
            w.write(row)
    return w


@pytest.fixture
def no_second_pass(monkeypatch):
    """Fail the test if the writer rewrites the file at close."""
    def refuse(*_a, **_k):
        raise AssertionError("the second pass ran")
    monkeypatch.setattr(rowio, "fill_missing_keys", refuse)


@pytest.mark.parametrize("suffix", ["jsonl", "json", "jsonl.gz"])
def test_keys_shown_by_the_first_rows_are_added_as_rows_are_written(suffix, tmp_path, no_second_pass):
    rows = [{"a": 1}, {"a": 2, "b": {"x": 1}}, {"a": 3}, {"b": None, "a": 4}]
    w = write(tmp_path / f"out.{suffix}", rows)
    assert rows_in(tmp_path / f"out.{suffix}") == [{"a": 1, "b": None}, {"a": 2, "b": {"x": 1}}, {"a": 3, "b": None},
                                                   {"b": None, "a": 4}]
    assert w.filled == {"b": 2} and w.count == 4


def test_the_bytes_are_what_the_second_pass_would_write(tmp_path, monkeypatch):
    rows = [{"i": i, **({"m": [i]} if i % 3 == 0 else {}), **({"z": "é"} if i == 7 else {})} for i in range(20)]
    held = tmp_path / "held.jsonl"
    write(held, rows)
    monkeypatch.setattr(rowio, "HOLD_ROWS", 1)  # nothing held: every key the first row lacks costs the pass
    late = tmp_path / "late.jsonl"
    w = write(late, rows)
    assert held.read_bytes() == late.read_bytes()
    assert w.filled == {"m": 13, "z": 19}


def test_a_key_first_seen_after_the_held_rows_is_filled_at_close(tmp_path, monkeypatch):
    monkeypatch.setattr(rowio, "HOLD_ROWS", 3)
    rows = [{"a": i} for i in range(5)] + [{"a": 5, "late": True}, {"a": 6}]
    for suffix in ("jsonl", "json"):
        out = tmp_path / f"out.{suffix}"
        w = write(out, rows)
        assert rows_in(out) == [{"a": i, "late": True if i == 5 else None} for i in range(7)]
        assert w.filled == {"late": 6}


def test_rows_handed_over_as_bytes_are_read_back_for_their_keys(tmp_path):
    out = tmp_path / "out.jsonl.gz"
    with RowWriter(out, stable_keys=True) as w:
        assert not w.takes_jsonl  # the direct path then hands over rows, which cost nothing to learn
        w.write({"a": 0})
        w.append_jsonl(b'{"a":1,"b":2}\n{"a":2}\n', 2)
        w.write({"a": 3})
    assert rows_in(out) == [{"a": 0, "b": None}, {"a": 1, "b": 2}, {"a": 2, "b": None}, {"a": 3, "b": None}]
    assert gzip.open(out).read().count(b"\n") == 4
    assert RowWriter(tmp_path / "plain.jsonl").takes_jsonl


def _handed_over(path, shapes: bool, parts: list[bytes], before=({"a": 0},), after=({"a": 9},)) -> RowWriter:
    with RowWriter(path, stable_keys=True) as w:
        for row in before:
            w.write(row)
        for data in parts:
            w.append_jsonl(data, data.count(b"\n"), rowio.row_shapes(data) if shapes else None)
        for row in after:
            w.write(row)
    return w


PARTS = [b'{"a":1,"b":2}\n{"a":2}\n[1,2]\n', b'{"b":3,"a":3}\n{}\n{"a":4,"c":[1]}\n']


@pytest.mark.parametrize("suffix", ["jsonl", "jsonl.gz"])
def test_rows_handed_over_with_their_shapes_are_not_read_back_and_give_the_same_bytes(suffix, tmp_path, monkeypatch):
    read_back = tmp_path / f"read_back.{suffix}"
    w_read = _handed_over(read_back, False, PARTS)
    loads = []
    real = rowio.orjson.loads
    monkeypatch.setattr(rowio.orjson, "loads", lambda b: loads.append(b) or real(b))
    told = tmp_path / f"told.{suffix}"
    w_told = _handed_over(told, True, [])  # warm: nothing handed over
    loads.clear()
    w_told = _handed_over(told, True, PARTS)
    parsed_by_shapes = sum(data.count(b"\n") for data in PARTS)
    assert len(loads) == parsed_by_shapes  # the rows were read once, as a worker does, not again at close
    monkeypatch.setattr(rowio.orjson, "loads", real)
    text = (lambda p: gzip.decompress(p.read_bytes())) if suffix == "jsonl.gz" else (lambda p: p.read_bytes())
    assert text(told) == text(read_back) and w_told.filled == w_read.filled
    assert rows_in(told)[1:4] == [{"a": 1, "b": 2, "c": None}, {"a": 2, "b": None, "c": None}, [1, 2]]


def test_rows_handed_over_with_their_shapes_and_one_set_of_keys_cost_no_second_pass(tmp_path, no_second_pass):
    data = b'{"a":1,"b":2}\n{"b":3,"a":4}\n'
    w = _handed_over(tmp_path / "out.jsonl", True, [data], before=({"a": 0, "b": 1},), after=())
    assert rows_in(tmp_path / "out.jsonl") == [{"a": 0, "b": 1}, {"a": 1, "b": 2}, {"b": 3, "a": 4}]
    assert w.filled == {}


def test_shapes_that_do_not_match_the_count_are_not_trusted(tmp_path):
    """A worker's shapes that disagree with the rows counted: the rows are read back instead."""
    out = tmp_path / "out.jsonl"
    with RowWriter(out, stable_keys=True) as w:
        w.write({"a": 0})
        w.append_jsonl(b'{"a":1,"b":2}\n{"a":2}\n', 2, rowio.row_shapes(b'{"a":1}\n'))
    assert rows_in(out) == [{"a": 0, "b": None}, {"a": 1, "b": 2}, {"a": 2, "b": None}]


def test_leave_absent_keys_are_never_added(tmp_path, monkeypatch):
    rows = [{"c": 1}, {"c": 2, "tools": [1], "meta": {"k": 1}}, {"c": 3}]
    out = tmp_path / "out.json"
    with RowWriter(out, stable_keys=True) as w:
        w.leave_absent({"tools"})
        w.write_many(rows)
    assert json.loads(out.read_text()) == [{"c": 1, "meta": None}, rows[1], {"c": 3, "meta": None}]
    monkeypatch.setattr(rowio, "HOLD_ROWS", 1)  # the second pass leaves them out too
    with RowWriter(out, stable_keys=True) as w:
        w.leave_absent({"tools"})
        w.write_many(rows)
    assert json.loads(out.read_text()) == [{"c": 1, "meta": None}, rows[1], {"c": 3, "meta": None}]


def test_rows_that_are_not_objects_and_empty_objects(tmp_path, no_second_pass):
    out = tmp_path / "out.jsonl"
    write(out, [{}, [1, 2], "text", {"k": 1}])
    assert rows_in(out) == [{"k": None}, [1, 2], "text", {"k": 1}]


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    out = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError):
        with RowWriter(out, stable_keys=True) as w:
            w.write({"a": 1})
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
