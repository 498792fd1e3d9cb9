"""The direct path (formats/direct_path.py) writes exactly what the canonical path writes.

For every (source, target) pair that has a direct converter, fused or composed, in dict and in JSONL
mode, and under the options that change what is written: on generated rows, a row the direct path
converts comes out byte for byte as parse + dump write it, with the same notes, and only when the
canonical path counts no loss and drops nothing. Rows that are not plain (extra fields, tools,
preference, odd types) must be left to the canonical path or be converted identically. The golden
end-to-end check runs `convert` on the samples with and without the direct path.
"""

from __future__ import annotations

from collections import Counter

import orjson
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SAMPLES
from instructgen import convert as convert_mod
from instructgen import formats
from instructgen.convert import ReadOptions, convert, parse_rows, write_records
from instructgen.formats.base import DumpOptions
from instructgen.formats.direct_path import FUSED
from instructgen.io import Row
from instructgen.runlog import RunLog

SOURCES = [n for n, s in formats.registry().items() if s.read_plain is not None]
TARGETS = [n for n, s in formats.registry().items() if s.write_plain is not None]
PAIRS = [(s, t) for s in SOURCES for t in TARGETS]
OPTIONS = {
    "default": DumpOptions(),
    "no-meta": DumpOptions(keep_meta=False, extras=False),
    "meta-instruction": DumpOptions(meta_instruction="Be brief.\n", meta_instruction_source="mi.txt"),
}
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.one_of(st.text(st.characters(exclude_categories=("Cs",)), max_size=20),
                 st.sampled_from(["", " ", "\n", "你好", "Human: hi", "<eoh>", '"quoted"', "\\", "\u2028"]))
scalar = st.one_of(text, st.integers(-5, 10**9), st.booleans(), st.none(), st.floats(allow_nan=False))
pairs = st.lists(st.tuples(text, text), min_size=1, max_size=3)
system = st.one_of(st.none(), text)


@st.composite
def alpaca_rows(draw) -> dict:
    row = {"instruction": draw(text), "input": draw(text), "output": draw(text)}
    return draw(_perturbed(row))


@st.composite
def sharegpt_rows(draw) -> dict:
    turns = [t for q, a in draw(pairs) for t in ({"from": "human", "value": q}, {"from": "gpt", "value": a})]
    row: dict = {}
    if draw(st.booleans()):
        row["id"] = draw(scalar)
    s = draw(system)
    if s is not None:
        row["system"] = s
    row["conversations"] = turns
    return draw(_perturbed(row))


@st.composite
def openai_rows(draw) -> dict:
    msgs = [m for q, a in draw(pairs) for m in ({"role": "user", "content": q}, {"role": "assistant", "content": a})]
    s = draw(system)
    if s is not None:
        msgs.insert(0, {"role": "system", "content": s})
    return draw(_perturbed({"messages": msgs}))


@st.composite
def _perturbed(draw, row: dict) -> dict:
    """Most rows plain; some with what must send them to the canonical path."""
    kind = draw(st.sampled_from(["plain"] * 6 + ["extra", "meta", "type", "preference", "drop"]))
    row = orjson.loads(orjson.dumps(row))
    if kind == "extra":
        row[draw(st.sampled_from(["images", "score", "id", "system", "tools", "category"]))] = draw(scalar)
    elif kind == "meta":
        row["meta"] = draw(st.dictionaries(st.sampled_from(["id", "category", "split", "x", "rejected", "label"]),
                                           scalar, max_size=2))
    elif kind == "type":
        key = draw(st.sampled_from(sorted(row)))
        row[key] = draw(scalar)
    elif kind == "preference":
        row["label"] = draw(st.booleans())
    elif kind == "drop" and len(row) > 1:
        del row[draw(st.sampled_from(sorted(row)))]
    return row


ROWS = {"alpaca": alpaca_rows(), "sharegpt": sharegpt_rows(), "openai": openai_rows()}


class Collect:
    def __init__(self) -> None:
        self.rows: list = []

    def write(self, row) -> None:
        self.rows.append(row)


def canonical(row: dict, source: str, target: str, opts: DumpOptions, origin: str):
    """(rows, losses, drops, notes) of the canonical path for one row."""
    log, out = RunLog("convert", keep_entries=True), Collect()
    records = parse_rows([Row(row, origin)], formats.get(source), log, ReadOptions(from_format=source))
    write_records(records, out, target, log, opts)
    return out.rows, dict(log.losses), log.entries, Counter(log.info.get(convert_mod.NOTES, {}))


def check(row: dict, source: str, target: str, opts: DumpOptions, jsonl: bool) -> bool:
    """The direct path's row for `row`, checked against the canonical path; True if it converted it."""
    origin = "data/in.jsonl:7"
    converter = formats.direct(source, target, opts, jsonl=jsonl)
    notes: Counter = Counter()
    out = converter(row, origin if getattr(converter, "needs_origin", True) else "", notes)
    if out is None:
        return False
    if getattr(converter, "row_note", None):
        notes[converter.row_note] += 1
    rows, losses, drops, canonical_notes = canonical(row, source, target, opts, origin)
    assert not drops and not losses, (drops, losses)
    assert len(rows) == 1
    expected = orjson.dumps(rows[0], option=orjson.OPT_APPEND_NEWLINE)
    assert (out if jsonl else orjson.dumps(out, option=orjson.OPT_APPEND_NEWLINE)) == expected
    assert notes == canonical_notes
    return True


@pytest.mark.parametrize("jsonl", [False, True], ids=["dict", "jsonl"])
@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("source,target", PAIRS, ids=[f"{s}-{t}" for s, t in PAIRS])
def test_direct_path_writes_what_the_canonical_path_writes(source, target, option, jsonl):
    opts = OPTIONS[option]

    @SETTINGS
    @given(ROWS[source])
    def run(row):
        check(row, source, target, opts, jsonl)

    run()


@pytest.mark.parametrize("source,target", PAIRS, ids=[f"{s}-{t}" for s, t in PAIRS])
def test_direct_path_takes_the_plain_rows(source, target):
    """The rows it exists for do take it (a single-turn alpaca row from every source, say)."""
    plain = {
        "alpaca": {"instruction": "Translate.", "input": "Bonjour", "output": "Hello"},
        "sharegpt": {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]},
        "openai": {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
    }[source]
    for jsonl in (False, True):
        assert check(plain, source, target, DumpOptions(), jsonl)


def test_the_fused_pairs_have_a_direct_path_and_options_that_change_rows_have_none():
    for source, target in FUSED:
        assert (source, target) in PAIRS
    assert formats.direct("alpaca", "sharegpt", DumpOptions(turns="last")) is None
    assert formats.direct("alpaca", "sharegpt", DumpOptions(columns={"prompt": "q"})) is None
    assert formats.direct("alpaca", "chatglm3", DumpOptions()) is None  # no write_plain: canonical


@pytest.mark.parametrize("shape", ["jsonl", "json-array", "to-json-array", "to-parquet"])
@pytest.mark.parametrize("source", ["alpaca", "sharegpt", "openai"])
@pytest.mark.parametrize("target", ["alpaca", "sharegpt", "openai", "moss", "chatglm3"])
def test_convert_gives_the_same_file_with_and_without_the_direct_path(tmp_path, monkeypatch, source, target, shape):
    """Raw JSONL lines, rows of a JSON array, and JSON-array or Parquet output all take the direct path."""
    src = SAMPLES / f"{source}.jsonl"
    if shape == "json-array":
        rows = [orjson.loads(line) for line in src.read_bytes().splitlines() if line.strip()]
        src = tmp_path / f"{source}.json"
        src.write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))
    suffix = {"to-json-array": ".json", "to-parquet": ".parquet"}.get(shape, ".jsonl")
    outputs = {}
    for label in ("direct", "canonical"):
        if label == "canonical":
            monkeypatch.setattr(formats, "direct", lambda *a, **k: None)
        out = tmp_path / f"{label}{suffix}"
        log = RunLog("convert", tmp_path / f"{label}.rejects.jsonl")
        convert([str(src)], str(out), target, log, ReadOptions(announce=lambda _: None))
        log.close()
        data = out.read_bytes() if suffix != ".parquet" else pq.read_table(out).to_pylist()
        outputs[label] = (data, log.n_in, log.n_out, dict(log.losses), dict(log.info.get("notes", {})))
    assert outputs["direct"] == outputs["canonical"]
