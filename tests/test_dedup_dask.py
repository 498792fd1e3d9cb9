"""Dedup on a Dask LocalCluster (2 workers, 1 thread and 1 GiB each): the same decisions as dedup.cluster and
the same bytes as a local run."""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil
import pytest

from instructgen.cli import main
from instructgen.curate import dedup_dask, lsh
from instructgen.curate.dedup import DedupConfig, cluster, sketch
from instructgen.curate.dedup_dask import DaskRunner, band_hash, band_keys, bucket_pairs
from instructgen.curate.dedup_files import LocalRunner, dedup_files
from instructgen.errors import InstructgenError
from instructgen.io import RowWriter
from instructgen.runlog import RunLog

WORDS = [f"{a}{b}" for a in ("ka", "lo", "mi", "ne", "po", "ru", "si", "tu") for b in ("ba", "de", "fi", "go", "hu",
                                                                                      "ja", "ko", "le", "mo", "nu")]


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _edited(rng: random.Random, text: str, share: float) -> str:
    words = text.split()
    for k in rng.sample(range(len(words)), max(1, int(len(words) * share))):
        words[k] = rng.choice(WORDS)
    return " ".join(words)


def make_records(n: int, seed: int = 0) -> list[dict]:
    """Alpaca records: originals (some about a number), a third of them copies of an earlier or later one:
    exact, in another case, or with a few words changed; a few big families (more than a bucket holds)."""
    rng = random.Random(seed)
    originals = [{"instruction": _words(rng, rng.randint(8, 20)) + (f" for {k} people" if k % 5 == 0 else ""),
                  "input": "", "output": _words(rng, rng.randint(10, 30))} for k in range(n * 2 // 3)]
    records = list(originals)
    while len(records) < n:
        family = rng.random() < 0.3
        rec = dict(originals[rng.randrange(8)] if family else rng.choice(originals))
        style = rng.choice(("exact", "case", "edit"))
        if style == "case":
            rec["instruction"] = rec["instruction"].upper()
        elif style == "edit":
            rec["instruction"] = _edited(rng, rec["instruction"], 0.05)
            rec["output"] = _edited(rng, rec["output"], 0.05)
        records.insert(rng.randrange(len(records) + 1), rec)
    return records


@pytest.fixture(scope="module")
def runner():
    """A LocalCluster started by DaskRunner; every process it started is gone once it closes."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with DaskRunner(workers=2, memory_limit="1GiB", dashboard_address=":0") as r:
        assert len(r.client.nthreads()) == 2 and r.threads() == 2
        yield r
    left = [p for p in psutil.Process().children(recursive=True)
            if p.pid not in before and p.is_running() and "resource_tracker" not in " ".join(p.cmdline())]
    assert not left, f"processes left behind: {[p.cmdline() for p in left]}"


# -- the pieces, without a cluster -------------------------------------------------------------------------

def test_band_hash_is_lsh_band_hashes():
    sigs = np.random.default_rng(0).integers(0, 1 << 16, (500, 2, 128), dtype=np.uint16)
    for band in (0, 7, 31):
        assert np.array_equal(band_hash(sigs[:, :, band * 4:(band + 1) * 4], band), lsh.band_hashes(sigs, band, 4))


def test_bucket_pairs_are_lsh_band_pairs_whatever_the_row_order():
    rng = np.random.default_rng(1)
    sigs = rng.integers(0, 3, (2000, 2, 16), dtype=np.uint16)  # few values: big buckets
    for cap in (2, 64):
        keys = band_keys(sigs[:, :, 8:16], 2, 4, 0)
        codes, count = bucket_pairs(keys.sample(frac=1, random_state=2), cap, len(sigs))
        expected = np.concatenate([lsh.band_pairs(sigs, band, 4, cap) for band in (2, 3)])
        assert count == len(expected)
        assert np.array_equal(codes, np.unique(expected))


# -- on the cluster ----------------------------------------------------------------------------------------

def _same(a, b) -> None:
    assert np.array_equal(a.dup_of, b.dup_of)
    assert np.array_equal(a.similarity, b.similarity)
    assert np.array_equal(a.stage, b.stage)
    assert np.array_equal(a.part_similarity, b.part_similarity)
    assert a.info == b.info


@pytest.mark.parametrize("settings, n_reference", [
    ({}, 0),
    ({"keep": "longest", "bucket_cap": 4}, 0),
    ({"keep": "longest"}, 600),
    ({"against_only": True}, 600),
])
def test_decide_equals_cluster(runner, monkeypatch, settings, n_reference):
    monkeypatch.setattr(dedup_dask, "PARTITION_POSITIONS", 1000)  # 3 partitions
    monkeypatch.setattr(dedup_dask, "SHUFFLE_ROWS", 12 * 3000)  # 12 bands a shuffle: 3 shuffles
    config = DedupConfig(**settings)
    records = make_records(3000)
    sketches = sketch([(r["instruction"], r["output"]) for r in records], config)
    local = cluster([sketches], config, n_reference)
    assert (local.stage == 1).sum() > 100 and (local.stage == 2).sum() > 100
    _same(runner.decide(sketches, config, n_reference), local)


def _write_jsonl(path: Path, records: list[dict], opener=open) -> None:
    with opener(path, "wt", encoding="utf-8") as fh:
        for k, rec in enumerate(records):
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            if k == 100:
                fh.write('{"instruction": "broken"\n\n')  # a reject and a blank line in the first range


def _run(name: str, inputs: list[str], reference: str, *extra: str, clusters: bool = True) -> dict[str, bytes]:
    """The command's files, with paths relative to the working folder; without --dask in a child process (this
    one runs a Dask client, whose threads a forked process must not inherit)."""
    out = Path(name) / "out.jsonl"
    out.parent.mkdir()
    review = ["--clusters", str(out.parent / "clusters.jsonl")] if clusters else []
    argv = ["dedup", *inputs, "-o", str(out), *review, "--against", reference, "--progress", "never", *extra]
    if "--dask" in extra:
        assert main(argv) == 0
    else:
        subprocess.run([sys.executable, "-m", "instructgen.cli", *argv], check=True, capture_output=True)
    stats = json.loads((out.parent / "out.stats.json").read_text())["stages"][0]["dedup"]
    return {"out": out.read_bytes(), "rejects": (out.parent / "out.rejects.jsonl").read_bytes(),
            "clusters": (out.parent / "clusters.jsonl").read_bytes() if clusters else b"",
            "stats": {k: v for k, v in stats.items() if k != "seconds"}}


@pytest.fixture
def workers_elsewhere(runner):
    """The workers' working folder is / (as on another machine): relative input paths must still reach them."""
    before = runner.client.run(os.getcwd)
    runner.client.run(os.chdir, "/")
    yield
    for worker, folder in before.items():
        runner.client.run(os.chdir, folder, workers=[worker])


def test_cli_dask_output_is_byte_identical(runner, workers_elsewhere, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    records = make_records(6000, seed=3)
    records[5]["output"] += " line\u2028separator"  # escaped in JSONL outputs
    _write_jsonl(Path("big.jsonl"), records[:4500])
    _write_jsonl(Path("small.jsonl.gz"), records[4500:5500], gzip.open)  # compressed: read on the client
    _write_jsonl(Path("reference.jsonl"), records[5500:])
    inputs, address = ["big.jsonl", "small.jsonl.gz"], runner.client.scheduler.address
    monkeypatch.setattr(dedup_dask, "MIN_RANGE_BYTES", 20_000)  # about 30 ranges per pass
    for clusters in (True, False):
        local = _run(f"local-{clusters}", inputs, "reference.jsonl", clusters=clusters)
        dask = _run(f"dask-{clusters}", inputs, "reference.jsonl", "--dask", address, clusters=clusters)
        assert local["stats"]["verified_pairs"] > 100 and local["rejects"].count(b"\n") > 1000
        assert b'of reference"' in local["rejects"] and b'"rejected"' in local["rejects"]
        assert b'"origin":"big.jsonl:' in local["rejects"]
        for name in ("out", "rejects", "clusters", "stats"):
            assert dask[name] == local[name], name


def _dedup_with(runner, src: Path, out: Path, config: DedupConfig) -> tuple[bytes, bytes]:
    rejects = out.with_suffix(".rejects.jsonl")
    log = RunLog("dedup", rejects)
    with RowWriter(str(out)) as writer:
        dedup_files([str(src)], writer, config, log, runner=runner, announce=lambda _m: None)
    log.close()
    return out.read_bytes(), rejects.read_bytes()


def test_one_runner_serves_several_runs(runner, tmp_path, monkeypatch):
    monkeypatch.setattr(dedup_dask, "MIN_RANGE_BYTES", 20_000)
    src = tmp_path / "in.jsonl"
    _write_jsonl(src, make_records(2000, seed=5))
    for k, threshold in enumerate((0.7, 0.85)):
        config = DedupConfig(threshold=threshold)
        local = _dedup_with(LocalRunner(1), src, tmp_path / f"local{k}.jsonl", config)
        assert _dedup_with(runner, src, tmp_path / f"dask{k}.jsonl", config) == local


def test_files_the_workers_cannot_see_are_named(runner, tmp_path):
    with pytest.raises(InstructgenError, match="does not see this file.*storage every worker sees"):
        runner._check_visible([str(tmp_path / "elsewhere.jsonl")])


def test_a_given_client_stays_open(runner):
    with DaskRunner(client=runner.client) as given:
        assert given.threads() == 2
    assert runner.client.status == "running"


def test_an_input_taken_for_the_address_is_explained(tmp_path, capsys):
    assert main(["dedup", "--dask", "data.jsonl", "more.jsonl", "-o", str(tmp_path / "out.jsonl")]) != 0
    assert "--dask data.jsonl: not a scheduler address" in capsys.readouterr().err


def test_stdin_cannot_go_to_dask(tmp_path, capsys):
    assert main(["dedup", "-", "-o", str(tmp_path / "out.jsonl"), "--dask"]) != 0
    assert "stdin" in capsys.readouterr().err
