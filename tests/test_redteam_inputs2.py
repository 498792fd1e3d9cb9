"""Red team, issue 17 "Inputs": folders of many files, planted links, names that are not UTF-8, outputs read
back, signatures of a file rewritten in place, Dask workers that see another file.

Each case runs the command the way a user would and asserts what it read and wrote, or a one-line error.
Speed is measured by benchmarks/many_files.py, not here: the many-files cases count the work instead
(identity look-ups, sketch batches), which grows with the square of the files on 24d2370.
"""

from __future__ import annotations

import json
import os
import random
import string
from pathlib import Path

import pytest

from instructgen import paths
from instructgen.cli import main
from instructgen.curate import dedup as dedup_module
from instructgen.inputs import expand_inputs


def alpaca(k: int, text: str | None = None) -> dict:
    return {"instruction": text or f"Question {k}: what is {k} times {k + 3}?", "input": "",
            "output": f"The product is {k * (k + 3)}, computed step by step {k}."}


def one_record_files(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(n):
        path = folder / f"conversation_{k}.json"
        path.write_text(json.dumps(alpaca(k), indent=2), encoding="utf-8")
        out.append(path)
    return out


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def one_line_error(err: str, *words: str) -> str:
    assert "Traceback" not in err, err
    errors = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(errors) == 1, err
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


# -- 1. a folder of many one-record files: linear ------------------------------------------------------------

def test_checking_many_inputs_resolves_each_name_a_bounded_number_of_times(tmp_path, monkeypatch):
    """24d2370 compared every input with every other (two realpath + stat each): 300 files, 180,000 calls."""
    files = [str(p) for p in one_record_files(tmp_path / "data", 300)]
    calls = {"stat": 0}
    real_stat = os.stat

    def counting_stat(path, *args, **kwargs):
        calls["stat"] += 1
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(paths.os, "stat", counting_stat)
    plan = paths.CommandPaths()
    plan.read_all(files)
    plan.write(str(tmp_path / "out.jsonl"), "-o")
    plan.write(str(tmp_path / "out.rejects.jsonl"), "the default rejects file", chosen=False)
    plan.check()
    assert calls["stat"] <= 3 * len(files) + 20, calls


def test_dedup_of_a_folder_of_one_record_files_sketches_them_in_shared_batches(tmp_path, monkeypatch, capsys):
    """24d2370 took no folder, and sketched each named file alone (a polars batch per one-record file)."""
    one_record_files(tmp_path / "SFT_data", 300)
    (tmp_path / "SFT_data" / "conversation_300.json").write_text(json.dumps(alpaca(7), indent=2), encoding="utf-8")
    batches = []
    real_sketch = dedup_module.sketch

    def counting_sketch(texts, config, anchors=None):
        batches.append(len(texts))
        return real_sketch(texts, config, anchors)

    monkeypatch.setattr("instructgen.curate.dedup_sketch.sketch", counting_sketch)
    out = tmp_path / "clean.jsonl"
    assert main(["dedup", str(tmp_path / "SFT_data"), "-o", str(out)]) == 0, capsys.readouterr().err
    assert batches == [301]
    kept = lines(out)
    assert len(kept) == 300 and kept[7] == alpaca(7)
    err = capsys.readouterr().err
    assert "dedup: in 301 = out 300 + duplicates 1" in err
    assert "300 more files detected as alpaca" in err  # said once for the folder, not once a file


# -- 4. links out of a folder ---------------------------------------------------------------------------------

def test_a_link_out_of_an_input_folder_is_not_followed_and_is_named(tmp_path, capsys):
    data = tmp_path / "data"
    one_record_files(data, 2)
    secret = tmp_path / "outside" / "secrets.jsonl"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n", encoding="utf-8")
    (data / "passwd.jsonl").symlink_to(secret)
    (data / "elsewhere").symlink_to(secret.parent, target_is_directory=True)
    out = tmp_path / "out.jsonl"
    assert main(["convert", str(data), "--to", "sharegpt", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert len(lines(out)) == 2
    assert not (tmp_path / "out.rejects.jsonl").exists()  # the planted lines were not read at all
    said = [ln for ln in err.splitlines() if ln.startswith("skipped")]
    assert said == [f"skipped 2 links that lead outside the folder named: {data}/elsewhere, {data}/passwd.jsonl"]
    assert "in 2 = out 2" in err


def test_a_link_inside_the_folder_is_still_read(tmp_path):
    data = tmp_path / "data"
    one_record_files(data / "real", 2)
    (data / "alias").symlink_to(data / "real", target_is_directory=True)  # the same folder twice: read once
    found = expand_inputs([str(data)], announce=lambda _m: None)
    assert sorted(Path(p).name for p in found) == ["conversation_0.json", "conversation_1.json"]
    assert found.skipped == {"loop": [str(data / "real")]} or found.skipped == {"loop": [str(data / "alias")]}


# -- 5. file names that are not UTF-8 -------------------------------------------------------------------------

def _bad_name(folder: Path) -> Path:
    path = Path(os.fsdecode(bytes(folder) + b"/caf\xe9.json"))  # Latin-1, as an old archive may carry
    path.write_text(json.dumps(alpaca(99)), encoding="utf-8")
    return path


def test_a_file_name_that_is_not_utf8_in_a_folder_is_named_escaped_and_the_rest_converted(tmp_path, capsys):
    data = tmp_path / "data"
    one_record_files(data, 3)
    (data / "mixed.jsonl").write_text(json.dumps(alpaca(50)) + '\n{"instruction": "broken\n', encoding="utf-8")
    _bad_name(data)
    out = tmp_path / "out.jsonl"
    assert main(["convert", str(data), "--to", "openai", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"skipped 1 names that are not UTF-8 (rename them to read them): {data}/caf\\xe9.json" in err
    assert len(lines(out)) == 4
    assert "in 5 = out 4 + rejected 1" in err  # the reject names its file (no name that UTF-8 cannot hold)
    (reject,) = lines(tmp_path / "out.rejects.jsonl")
    assert reject["origin"] == f"{data}/mixed.jsonl:2"


def test_a_file_name_that_is_not_utf8_with_dedup_signatures(tmp_path, capsys):
    data = tmp_path / "data"
    one_record_files(data, 3)
    bad = _bad_name(data)
    out = tmp_path / "out.jsonl"
    assert main(["dedup", str(data), "-o", str(out), "--signatures", str(tmp_path / "sigs")]) == 0
    err = capsys.readouterr().err
    assert "caf\\xe9.json" in err and "Traceback" not in err
    assert len(lines(out)) == 3
    assert '"inputs_skipped":{"not_utf8":1}' in (tmp_path / "out.stats.json").read_text().replace(" ", "").replace("\n", "")
    # named directly, it is one line naming it, nothing written
    assert main(["dedup", str(bad), "-o", str(tmp_path / "two.jsonl"), "--signatures", str(tmp_path / "sigs")]) == 1
    one_line_error(capsys.readouterr().err, "caf\\xe9.json", "not UTF-8")
    assert not (tmp_path / "two.jsonl").exists()


# -- 6. an output inside an input folder ----------------------------------------------------------------------

@pytest.mark.parametrize("command", ["convert", "dedup"])
def test_an_output_inside_an_input_folder_is_refused_before_it_is_read_back(tmp_path, capsys, command):
    data = tmp_path / "data"
    one_record_files(data, 2)
    extra = ["--to", "alpaca"] if command == "convert" else []
    out = data / "all.jsonl"
    assert main([command, str(data), *extra, "-o", str(out)]) == 1
    one_line_error(capsys.readouterr().err, str(out), "inside the input folder", "read this output back")
    assert not out.exists()
    assert sorted(p.name for p in data.iterdir()) == ["conversation_0.json", "conversation_1.json"]


# -- 7. a pattern over a link loop ----------------------------------------------------------------------------

def test_a_pattern_over_a_link_loop_reads_each_file_once_and_says_so(tmp_path, capsys):
    data = tmp_path / "data"
    one_record_files(data / "a", 2)
    (data / "a" / "again").symlink_to(data, target_is_directory=True)  # data/a/again/a/again/...: 40 names by glob
    out = tmp_path / "out.jsonl"
    assert main(["convert", f"{data}/**/*.json", "--to", "sharegpt", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "named twice" not in err
    assert len(lines(out)) == 2
    assert f"skipped 1 folders already read under another name (a link loop, or two links to one folder): " \
           f"{data}/a/again" in err


# -- 3. saved signatures of a file rewritten in place ---------------------------------------------------------

def test_signatures_of_a_file_rewritten_with_its_size_and_mtime_kept_are_not_reused(tmp_path, capsys):
    src = tmp_path / "data.jsonl"
    originals = [alpaca(k) for k in range(20)]
    write_jsonl(src, originals + [dict(originals[k % 20]) for k in range(80)])  # 80 copies
    sigs = str(tmp_path / "sigs")
    assert main(["dedup", str(src), "-o", str(tmp_path / "one.jsonl"), "--signatures", sigs]) == 0
    assert len(lines(tmp_path / "one.jsonl")) == 20
    st = src.stat()
    rng = random.Random(5)
    distinct = originals + [dict(r, instruction="".join(rng.choice(string.ascii_lowercase) for _ in r["instruction"]))
                            for r in (originals[k % 20] for k in range(80))]  # the copies, asked otherwise
    write_jsonl(src, distinct)  # the same size, then the old mtime back
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (src.stat().st_size, src.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    capsys.readouterr()
    assert main(["dedup", str(src), "-o", str(tmp_path / "two.jsonl"), "--signatures", sigs]) == 0
    err = capsys.readouterr().err
    assert "signatures reused" not in err
    assert len(lines(tmp_path / "two.jsonl")) == 100  # 24d2370: 20 (the saved sketches dropped 80 distinct)
    # unchanged, they are reused (a digest of the bytes, not the clock, decides)
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert main(["dedup", str(src), "-o", str(tmp_path / "three.jsonl"), "--signatures", sigs]) == 0
    assert "signatures reused" in capsys.readouterr().err
    assert lines(tmp_path / "three.jsonl") == lines(tmp_path / "two.jsonl")


# -- 2. Dask: a worker that reads another file; a bad scheduler address -----------------------------------------

def test_dask_address_that_is_not_a_scheduler_is_one_line(tmp_path, capsys):
    src = tmp_path / "data.jsonl"
    write_jsonl(src, [alpaca(k) for k in range(3)])
    assert main(["dedup", str(src), "-o", str(tmp_path / "out.jsonl"), "--dask", "http://127.0.0.1:8787/status"]) == 1
    one_line_error(capsys.readouterr().err, "--dask http://127.0.0.1:8787/status", "tcp://")
    assert not (tmp_path / "out.jsonl").exists()


def test_a_dask_worker_reading_other_bytes_stops_the_run(tmp_path, capsys, monkeypatch):
    """The file is replaced (same size, same mtime) after the decisions: pass 2's workers read other records
    than pass 1 decided on. 24d2370 wrote the other file's records, exit 0."""
    from instructgen.curate import dedup_dask

    monkeypatch.setattr(dedup_dask, "MIN_RANGE_BYTES", 4_000)  # a few ranges, on the workers
    monkeypatch.chdir(tmp_path)
    src = Path("data.jsonl")
    write_jsonl(src, [alpaca(k) for k in range(200)])
    st = src.stat()
    swapped = src.read_bytes().replace(b"Question 1", b"Qu3stion 1")
    real_decide = dedup_dask.DaskRunner.decide

    def decide_then_swap(self, *args, **kwargs):
        clusters = real_decide(self, *args, **kwargs)
        src.write_bytes(swapped)
        os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
        return clusters

    monkeypatch.setattr(dedup_dask.DaskRunner, "decide", decide_then_swap)
    assert main(["dedup", str(src), "-o", "out.jsonl", "--workers", "1", "--dask=local"]) == 1
    one_line_error(capsys.readouterr().err, "data.jsonl", "reads other bytes at this path")
    assert not Path("out.jsonl").exists()


def test_a_worker_checks_its_range_against_the_clients_digest(tmp_path):
    from instructgen.curate import dedup_dask

    src = tmp_path / "data.jsonl"
    write_jsonl(src, [alpaca(k) for k in range(50)])
    size = src.stat().st_size
    good = {(0, size): dedup_dask.range_digest(str(src), 0, size)}
    assert dedup_dask._differs(str(src), 0, size, good) is None
    src.write_bytes(src.read_bytes().replace(b"Question 4", b"Questi0n 4"))
    assert dedup_dask._differs(str(src), 0, size, good) == dedup_dask.Mismatch("here", 0, size)
