"""Dedup in two streaming passes (curate/dedup_files.py) decides and writes exactly what the in-memory
path (dedup.dedup_records over every record at once) does, whatever the input type, the number of
workers and byte ranges, and reuses saved signatures only when they still describe the file."""

from __future__ import annotations

import gzip
import json
import random

import orjson
import pytest

from instructgen import convert_parallel
from instructgen.cli import main
from instructgen.convert import ReadOptions, read_records, write_records
from instructgen.curate import dedup_files
from instructgen.curate.dedup import DedupConfig, dedup_records
from instructgen.curate.dedup_files import LocalRunner, SketchBuffer, dedup_files as run_files
from instructgen.io import RowWriter, write_rows
from instructgen.runlog import RunLog

WORDS = ("river stone garden winter lamp paper violin market harbor orchard comet canyon ladder mirror "
         "meadow lantern copper island thunder velvet").split()
TASKS = ["Write a {} about the {} and the {}.", "Explain why the {} needs a {} near the {}.",
         "List three facts about the {}, the {} and a {}.", "Translate the note about the {} into {} for the {}."]


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _edited(rng: random.Random, text: str) -> str:
    words = text.split()
    words[rng.randrange(len(words))] = rng.choice(WORDS)
    return " ".join(words)


def make_rows(n: int, seed: int = 0) -> list[dict]:
    """Alpaca rows, about a fifth of them exact or one-word-edited copies of an earlier or later row; some
    Chinese; a few share numbers that differ (not duplicates)."""
    rng = random.Random(seed)
    rows: list[dict] = []
    for k in range(n):
        if rows and rng.random() < 0.2:
            src = rng.choice(rows)
            copy = dict(src)
            if rng.random() < 0.5:
                copy["instruction"] = _edited(rng, src["instruction"])
            rows.append(copy)
            continue
        if k % 5 == 0:
            text = "".join(rng.choice("山水花鸟风月云雨雪春秋天地人心") for _ in range(30))
            rows.append({"instruction": f"请写一段关于{text}的短文。", "input": "", "output": text * 2})
            continue
        task = rng.choice(TASKS).format(*(rng.choice(WORDS) for _ in range(3)))
        rows.append({"instruction": task + " " + _sentence(rng, 12), "input": rng.choice(["", _sentence(rng, 5)]),
                     "output": _sentence(rng, 25) + f" ({rng.randrange(100)})"})
    rng.shuffle(rows)
    return rows


def write_jsonl(path, rows: list[dict], bad_lines: bool = True) -> None:
    lines = [orjson.dumps(r) for r in rows]
    if bad_lines:  # a malformed line, a wrong type and a blank line: rejected (or skipped) with the same reasons
        lines[3:3] = [b'{"instruction": "broken', b'{"instruction": 5, "input": "", "output": "x"}', b""]
    data = b"\n".join(lines) + b"\n"
    if str(path).endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)


def in_memory(paths: list[str], config: DedupConfig, out, against: list[str] = ()) -> tuple[RunLog, list[dict]]:
    """The path every record is held in memory for (what `instructgen dedup` did before)."""
    log = RunLog("dedup", str(out) + ".rejects.jsonl")
    reference = list(read_records(list(against), RunLog("ref"), ReadOptions()))
    records = list(read_records(paths, log, ReadOptions()))
    kept = dedup_records(records, config, log, against=reference, clusters_path=str(out) + ".clusters.jsonl")
    with RowWriter(str(out)) as writer:
        write_records(kept, writer, records[0].source_format, log)
    log.close()
    return log, _rows(str(out) + ".clusters.jsonl")


def streamed(paths: list[str], config: DedupConfig, out, against: list[str] = (), workers: int = 1,
             signatures: str | None = None) -> tuple[RunLog, list[dict], dedup_files.Outcome]:
    log = RunLog("dedup", str(out) + ".rejects.jsonl")
    with RowWriter(str(out)) as writer, RowWriter(str(out) + ".clusters.jsonl") as reviews:
        outcome = run_files(paths, writer, config, log, against=list(against), reviews=reviews,
                            signatures=signatures, runner=LocalRunner(workers), announce=lambda _m: None)
    log.close()
    return log, _rows(str(out) + ".clusters.jsonl"), outcome


def _rows(path) -> list[dict]:
    with open(path, "rb") as fh:
        return [orjson.loads(line) for line in fh]


def _rejects(log: RunLog) -> list[tuple]:
    return sorted((r["origin"], r["kind"], r["reason"]) for r in _rows(log.rejects_path))


def assert_same(a_out, a: tuple, b_out, b: tuple) -> None:
    assert a_out.read_bytes() == b_out.read_bytes()
    assert a[1] == b[1]  # clusters.jsonl rows, in order
    assert (a[0].n_in, a[0].n_out, dict(a[0].dropped)) == (b[0].n_in, b[0].n_out, dict(b[0].dropped))
    assert _rejects(a[0]) == _rejects(b[0])
    assert a[0].balanced and b[0].balanced


@pytest.fixture
def small_ranges(monkeypatch):
    """Big-file paths (worker processes, byte ranges) on a small file."""
    monkeypatch.setattr(convert_parallel, "MIN_BYTES", 1)


@pytest.mark.parametrize("keep", ["first", "longest"])
@pytest.mark.parametrize("workers,ranges", [(1, 1), (2, 1), (2, 7), (3, 16)])
def test_streamed_equals_in_memory_on_jsonl(tmp_path, monkeypatch, small_ranges, keep, workers, ranges):
    monkeypatch.setattr(convert_parallel, "RANGES_PER_WORKER", ranges)
    src = tmp_path / "data.jsonl"
    write_jsonl(src, make_rows(3000, seed=workers * 10 + ranges))
    config = DedupConfig(keep=keep)
    expected = in_memory([str(src)], config, tmp_path / "mem.jsonl")
    got = streamed([str(src)], config, tmp_path / "stream.jsonl", workers=workers)
    assert got[0].dropped["duplicates"] > 300  # the copies were found
    assert_same(tmp_path / "mem.jsonl", expected, tmp_path / "stream.jsonl", got)


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".json", ".parquet"])
def test_streamed_equals_in_memory_on_other_inputs(tmp_path, small_ranges, suffix):
    rows = make_rows(1500, seed=3)
    src = tmp_path / f"data{suffix}"
    if suffix == ".jsonl.gz":
        write_jsonl(src, rows)
    elif suffix == ".json":
        src.write_text(json.dumps(rows, ensure_ascii=False))
    else:
        write_rows(src, rows)
    config = DedupConfig()
    expected = in_memory([str(src)], config, tmp_path / "mem.jsonl")
    got = streamed([str(src)], config, tmp_path / "stream.jsonl", workers=2)
    assert got[0].dropped["duplicates"] > 150
    assert_same(tmp_path / "mem.jsonl", expected, tmp_path / "stream.jsonl", got)


@pytest.mark.parametrize("reference_suffix", [".jsonl", ".jsonl.gz"])
def test_streamed_equals_in_memory_with_a_reference_and_several_files(tmp_path, small_ranges, reference_suffix):
    rows = make_rows(3000, seed=5)
    ref = tmp_path / f"ref{reference_suffix}"
    write_jsonl(ref, rows[:800], bad_lines=False)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_jsonl(a, rows[800:2000])
    write_jsonl(b, rows[2000:])
    for against_only in (False, True):
        config = DedupConfig(against_only=against_only)
        expected = in_memory([str(a), str(b)], config, tmp_path / "mem.jsonl", against=[str(ref)])
        got = streamed([str(a), str(b)], config, tmp_path / "stream.jsonl", against=[str(ref)], workers=2)
        assert any(r["reference"] for r in got[1])
        assert_same(tmp_path / "mem.jsonl", expected, tmp_path / "stream.jsonl", got)


def test_signatures_are_reused_for_another_threshold_and_as_a_reference(tmp_path, monkeypatch):
    src = tmp_path / "data.jsonl"
    write_jsonl(src, make_rows(2000, seed=7))
    sigs = str(tmp_path / "signatures")
    streamed([str(src)], DedupConfig(), tmp_path / "first.jsonl", signatures=sigs)
    assert len(list((tmp_path / "signatures").iterdir())) == 1

    def no_pass_1(*_args, **_kwargs):
        raise AssertionError("pass 1 ran although its signatures were saved")

    monkeypatch.setattr(dedup_files, "index_file", no_pass_1)
    for config in (DedupConfig(threshold=0.8), DedupConfig(keep="longest")):
        log, clusters, outcome = streamed([str(src)], config, tmp_path / "again.jsonl", signatures=sigs)
        assert outcome.reused == [str(src)]
        monkeypatch.undo()
        fresh = streamed([str(src)], config, tmp_path / "fresh.jsonl")
        monkeypatch.setattr(dedup_files, "index_file", no_pass_1)
        assert_same(tmp_path / "fresh.jsonl", fresh[:2], tmp_path / "again.jsonl", (log, clusters))
    # as a reference of another file: its saved signatures serve again
    other = tmp_path / "other.jsonl"
    write_jsonl(other, make_rows(300, seed=8), bad_lines=False)
    monkeypatch.undo()
    _, _, outcome = streamed([str(other)], DedupConfig(), tmp_path / "o.jsonl", against=[str(src)], signatures=sigs)
    assert outcome.reused == [str(src)]


def test_signatures_of_a_changed_file_or_other_settings_are_not_reused(tmp_path):
    src = tmp_path / "data.jsonl"
    rows = make_rows(500, seed=9)
    write_jsonl(src, rows)
    sigs = str(tmp_path / "signatures")
    streamed([str(src)], DedupConfig(), tmp_path / "a.jsonl", signatures=sigs)
    _, _, outcome = streamed([str(src)], DedupConfig(num_perm=64), tmp_path / "b.jsonl", signatures=sigs)
    assert outcome.reused == []  # other sketch settings: other signatures (saved beside the first)
    write_jsonl(src, rows[:-10])
    _, _, outcome = streamed([str(src)], DedupConfig(), tmp_path / "c.jsonl", signatures=sigs)
    assert outcome.reused == []
    expected = in_memory([str(src)], DedupConfig(), tmp_path / "mem.jsonl")
    assert (tmp_path / "c.jsonl").read_bytes() == (tmp_path / "mem.jsonl").read_bytes()
    assert expected[0].n_out == sum(1 for _ in open(tmp_path / "c.jsonl"))


def test_a_damaged_signatures_file_is_computed_again(tmp_path):
    src = tmp_path / "data.jsonl"
    write_jsonl(src, make_rows(400, seed=11))
    sigs = tmp_path / "signatures"
    streamed([str(src)], DedupConfig(), tmp_path / "a.jsonl", signatures=str(sigs))
    saved = next(sigs.iterdir())
    saved.write_bytes(saved.read_bytes()[:1000])
    _, _, outcome = streamed([str(src)], DedupConfig(), tmp_path / "b.jsonl", signatures=str(sigs))
    assert outcome.reused == []
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_sketch_buffer_grows_and_keeps_rows_in_order():
    from instructgen.curate.dedup import sketch

    config = DedupConfig(num_perm=16, fields="prompt")
    buffer = SketchBuffer(config)
    texts = [(f"text number {k} about {WORDS[k % len(WORDS)]}",) for k in range(50)]
    for start in range(0, 50, 7):
        buffer.append(sketch(texts[start:start + 7], config))
    whole = sketch(texts, config)
    view = buffer.view()
    assert buffer.size == 50
    assert (view.sigs == whole.sigs).all() and (view.keys == whole.keys).all()


def test_cli_dedup_streams_and_prints_the_equation(tmp_path, capsys):
    src = tmp_path / "data.jsonl"
    write_jsonl(src, make_rows(600, seed=12))
    assert main(["dedup", str(src), "-o", str(tmp_path / "out.jsonl"), "--signatures", str(tmp_path / "sigs"),
                 "--clusters", str(tmp_path / "clusters.jsonl")]) == 0
    err = capsys.readouterr().err
    log_line = [line for line in err.splitlines() if line.startswith("dedup: in ")][0]
    n_in = int(log_line.split()[2])
    assert n_in == 602  # 600 records + 2 unreadable lines (the blank line is no row)
    assert main(["dedup", str(src), "-o", str(tmp_path / "out2.jsonl"), "--signatures", str(tmp_path / "sigs"),
                 "--threshold", "0.9"]) == 0
    assert "signatures reused" in capsys.readouterr().err


def test_cli_refuses_signatures_folder_holding_the_input(tmp_path, capsys):
    src = tmp_path / "data.jsonl"
    write_jsonl(src, make_rows(50, seed=13))
    code = main(["dedup", str(src), "-o", str(tmp_path / "out.jsonl"), "--signatures", str(tmp_path)])
    assert code != 0
    assert "--signatures" in capsys.readouterr().err


def test_without_a_clusters_file_the_rejects_still_name_the_kept_record(tmp_path, small_ranges):
    src = tmp_path / "data.jsonl.gz"
    write_jsonl(src, make_rows(1200, seed=14))
    plain = tmp_path / "plain.jsonl"
    write_jsonl(plain, make_rows(1200, seed=14))

    def rejects(path, reviews: bool) -> list[dict]:
        out = tmp_path / f"{path.name}.{reviews}.out.jsonl"
        log = RunLog("dedup", str(out) + ".rejects.jsonl")
        with RowWriter(str(out)) as writer, RowWriter(str(out) + ".clusters.jsonl") as review_writer:
            run_files([str(path)], writer, DedupConfig(), log, reviews=review_writer if reviews else None,
                      runner=LocalRunner(2), announce=lambda _m: None)
        log.close()
        return _rows(log.rejects_path)

    for path in (src, plain):
        with_rows, without = rejects(path, True), rejects(path, False)
        assert with_rows == without
        assert sum(r["kind"] == "duplicates" and r["duplicate_of"].startswith(str(path)) for r in without) > 100


def _sketch_both_ways(path, fields: str):
    """Pass 1's sketches of a JSONL file with plain records read the fast way, and every record parsed."""
    from instructgen import formats
    from instructgen.curate.dedup_sketch import index_records, line_items, line_records, numbered_lines

    from instructgen.convert import open_source

    config = DedupConfig(fields=fields)
    spec, _ = open_source(str(path), RunLog("x"), ReadOptions(announce=lambda _m: None))
    with open(path, "rb") as fh:
        fast = index_records(line_items(numbered_lines(fh, 1, 0), str(path), spec, config), config)
    with open(path, "rb") as fh:
        slow = index_records((((c, None), line, off) for c, line, off in
                              line_records(numbered_lines(fh, 1, 0), str(path), spec)), config)
    return spec, fast, slow


@pytest.mark.parametrize("fields", ["prompt,response", "all", "user+system,output", "instruction,input"])
def test_plain_records_sketch_as_their_conversations(tmp_path, fields):
    from instructgen.convert import convert

    src = tmp_path / "data.jsonl"
    write_jsonl(src, make_rows(600, seed=15))
    files = [src]
    for target in ("sharegpt", "openai"):  # the formats with a plain reader, from the same records
        out = tmp_path / f"{target}.jsonl"
        convert([str(src)], str(out), target, RunLog("convert"))
        files.append(out)
    for path in files:
        _, (fast, f_lines, f_offsets), (slow, s_lines, s_offsets) = _sketch_both_ways(path, fields)
        assert (f_lines == s_lines).all() and (f_offsets == s_offsets).all()
        assert (fast.keys == slow.keys).all() and (fast.sigs == slow.sigs).all()
        assert (fast.anchors == slow.anchors).all() and (fast.lengths == slow.lengths).all()


def test_plain_records_of_the_bundled_samples_sketch_as_their_conversations():
    from pathlib import Path

    samples = [p for p in sorted((Path(__file__).parent.parent / "data" / "samples").glob("*.jsonl"))]
    assert samples
    for path in samples:
        _, (fast, *_), (slow, *_) = _sketch_both_ways(path, "prompt,response")
        assert (fast.keys == slow.keys).all() and (fast.sigs == slow.sigs).all() and (fast.anchors == slow.anchors).all()
