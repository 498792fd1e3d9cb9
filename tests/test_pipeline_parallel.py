"""Shard work on every core: JSONL sources cut into byte ranges that worker processes read themselves, and the
same bytes out as when the rows are read in one process."""

from __future__ import annotations

import platform
from pathlib import Path

import orjson
import pytest

from instructgen.pipeline import OutputFolder, run, workers
from instructgen.pipeline.config import load_config


def _awkward_jsonl(path: Path, n: int = 240) -> Path:
    """Alpaca lines with copies, near copies and junk, plus what a line reader must get right: a BOM, blank
    lines, CRLF endings, a malformed line, a line that is not an object, and no newline at the end."""
    lines = [b"\xef\xbb\xbf" + orjson.dumps({"instruction": "Say hi.", "input": "", "output": "Hi there, friend."}),
             b"", b"   "]
    for i in range(n):
        j = i % 180  # the last 60 rows are copies of the first
        words = " ".join(f"w{(j * 7 + k) % 97}" for k in range(12))
        row = {"instruction": f"Describe item {j}: {words}", "input": "", "output": f"Item {j} is {words}."}
        if i % 9 == 4:
            row["output"] = "As an AI language model, I cannot do that."
        lines.append(orjson.dumps(row) + (b"\r" if i % 5 == 0 else b""))
        if i == 50:
            lines.append(b'{"instruction": "broken"')
        if i == 77:
            lines += [b"[1, 2]", b""]
    path.write_bytes(b"\n".join(lines))  # the last line ends without a newline
    return path


def _config(folder: Path, data: Path, shard_size: int) -> Path:
    path = folder / "run.toml"
    path.write_text(f'[pipeline]\nformats = ["alpaca", "sharegpt"]\nshard_size = {shard_size}\n'
                    '[filter]\ndrop = ["refusal"]\ndrop_disclaimers = true\n[dedup]\nenabled = true\n'
                    f'[[sources]]\npath = "{data}"\n', encoding="utf-8")
    return path


def _run(out: Path, cfg: Path):
    with OutputFolder(out) as layout:
        return run(load_config(cfg), layout, announce=lambda _m: None)


def _written(out: Path) -> dict[str, bytes]:
    files = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
             and p.suffix in (".jsonl", ".json") and not p.name.startswith(".")}
    stats = orjson.loads(files.pop("stats.json"))
    files["stages"] = orjson.dumps([{k: v for k, v in s.items() if k != "rejects_file"} for s in stats["stages"]])
    return files


def test_byte_ranges_cover_the_file_line_by_line(tmp_path, monkeypatch):
    data = _awkward_jsonl(tmp_path / "d.jsonl")
    monkeypatch.setattr(workers, "SCAN_BLOCK", 7)  # every range crosses blocks
    ranges = list(workers._line_ranges(str(data), 10))
    raw = data.read_bytes()
    assert ranges[0][0] == 0 and ranges[-1][1] == len(raw)
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))  # no gap, no overlap
    lines = raw.split(b"\n")
    for start, end, first_line in ranges:
        piece = raw[start:end]
        assert piece.split(b"\n")[0] == lines[first_line - 1]
        assert piece.count(b"\n") == 10 or end == len(raw)


def test_worker_processes_write_the_same_bytes_as_one_reader(tmp_path, monkeypatch):
    """The same run three ways: rows read here, curated and written in this process (as before), byte ranges
    curated in this process, byte ranges curated by a pool of worker processes and each format written by a
    process of its own. Every output, reject file, cluster file, stage count and the report's profile is
    the same."""
    data = _awkward_jsonl(tmp_path / "data.jsonl")
    cfg = _config(tmp_path, data, shard_size=23)
    outputs = {}

    monkeypatch.setattr(workers, "splittable", lambda _path: False)
    outputs["rows"] = (_run(tmp_path / "rows", cfg), _written(tmp_path / "rows"))
    monkeypatch.undo()

    outputs["ranges"] = (_run(tmp_path / "ranges", cfg), _written(tmp_path / "ranges"))

    pooled = []
    running = workers.ShardPool.running

    def counting_running():
        pool = running()
        if pool is not None:
            pooled.append(pool)
        return pool

    monkeypatch.setattr(workers, "POOL_MIN_BYTES", 0)
    monkeypatch.setattr(workers, "PARALLEL_WRITE_MIN", 0)
    started = []
    start = workers.FormatProcesses.start
    monkeypatch.setattr(workers.FormatProcesses, "start", lambda self, *a: started.append(a[1]) or start(self, *a))
    monkeypatch.setattr(workers.ShardPool, "running", counting_running)
    outputs["pool"] = (_run(tmp_path / "pool", cfg), _written(tmp_path / "pool"))

    assert len(pooled) == -(-(len(data.read_bytes().split(b"\n"))) // 23)  # every shard went to the pool
    assert workers.ShardPool._executor is None  # stopped with the run
    assert started == ["alpaca", "sharegpt"]
    base_summary, base = outputs["rows"]
    stages = {s["stage"]: s for s in base_summary.stages}
    assert base_summary.balanced and stages["read"]["rejected"] == 2 and stages["filter"]["filtered"] > 0
    assert stages["dedup"]["duplicates"] > 0 and "rejects/read.jsonl" in base and "data/alpaca.jsonl" in base
    assert base_summary.report.profile.rows and "clusters.jsonl" in base
    for side in ("ranges", "pool"):
        summary, written = outputs[side]
        assert summary.balanced and summary.report.profile == base_summary.report.profile
        assert [s["stage"] for s in summary.stages] == [s["stage"] for s in base_summary.stages]
        assert written.keys() == base.keys()
        for name in base:
            assert written[name] == base[name], (side, name)


def test_runs_open_at_once_share_the_pool_and_the_last_stops_it():
    assert workers.ShardPool.running() is None
    with workers.ShardPool(workers=1):
        first = workers.ShardPool.running()
        with workers.ShardPool(workers=1):
            assert workers.ShardPool.running() is first
        assert workers.ShardPool.running() is first  # the other run still uses it
        assert first.submit(sum, [1, 2]).result() == 3
    assert workers.ShardPool.running() is None


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_the_parent_fixes_glibcs_mmap_threshold():
    """The run gives the shards' sketches back to the OS once copied (glibc would otherwise keep them in its
    heap: 160 MB more at 500,000 records, benchmarks/results/pipeline_cores.txt): glibc says it took it."""
    assert workers.fixed_mmap_threshold()


def test_a_run_fixes_the_threshold_before_the_shards_come_back(tmp_path, monkeypatch):
    from instructgen.pipeline.config import parse_config

    calls = []
    monkeypatch.setattr(workers, "fixed_mmap_threshold",
                        lambda threshold=128 << 10: calls.append(("threshold", threshold)) or True)
    real_curate = workers.curate
    monkeypatch.setattr(workers, "curate", lambda *a: calls.append("shard") or real_curate(*a))
    sample = Path(__file__).resolve().parent.parent / "data" / "samples" / "alpaca.jsonl"
    config = parse_config(f'[pipeline]\nformats = ["alpaca"]\nreport = false\n[[sources]]\npath = "{sample}"\n',
                          tmp_path / "run.toml")
    with OutputFolder(tmp_path / "out") as layout:
        run(config, layout, announce=lambda _m: None)
    assert calls[0] == ("threshold", 128 << 10) and "shard" in calls
    # the decisions raise it (their pieces come from the heap and are reused), then it is fixed low again
    assert calls[-2:] == [("threshold", 32 << 20), ("threshold", 128 << 10)]
    assert calls.index(("threshold", 32 << 20)) > max(i for i, c in enumerate(calls) if c == "shard")
