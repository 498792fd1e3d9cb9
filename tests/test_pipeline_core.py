"""The plain pipeline (no Prefect): it owns its output folder, and it makes the same decisions as the
single-stage commands run by hand on the same real data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from conftest import SAMPLES, shared_path

from instructgen.errors import InstructgenError
from instructgen.record import Conversation
from instructgen.pipeline import OutputFolder, run
from instructgen.pipeline.config import load_config, parse_config
from instructgen.pipeline.layout import MANIFEST


def config_file(folder: Path, sources: list[Path], publish: bool = False, extra: str = "") -> Path:
    text = ('[pipeline]\nformats = ["sharegpt", "alpaca"]\nshard_size = 7\n\n[filter]\nlang = ["en", "zh"]\n\n'
            f'[publish]\nenabled = {str(publish).lower()}\nrepo = "me/test"\ndry_run = true\n{extra}\n')
    text += "".join(f'\n[[sources]]\npath = "{p}"\n' for p in sources)
    path = folder / "pipeline.toml"
    path.write_text(text, encoding="utf-8")
    return path


def quiet(_msg: str) -> None:
    pass


def run_in(out: Path, cfg_path: Path):
    cfg = load_config(cfg_path)
    with OutputFolder(out) as layout:
        return run(cfg, layout, announce=quiet)


def test_a_run_replaces_the_previous_outputs_as_a_whole(tmp_path):
    out = tmp_path / "out"
    run_in(out, config_file(tmp_path, [SAMPLES / "alpaca.jsonl"], publish=True))
    assert (out / "hub" / "README.md").exists() and (out / "data" / "alpaca.jsonl").exists()
    summary = run_in(out, config_file(tmp_path, [SAMPLES / "sharegpt.jsonl"], publish=False))
    assert not (out / "hub").exists()  # no stale Hub folder next to new data
    assert summary.balanced
    entries = set(orjson.loads((out / MANIFEST).read_bytes())["entries"])
    assert "hub" not in entries and {"data", "stats.json", "report.html"} <= entries
    assert not list(out.glob(".staging-*"))


def test_a_killed_runs_staging_folder_is_gone_after_the_next_start(tmp_path):
    out = tmp_path / "out"
    stale = out / ".staging-999999-abc"
    (stale / "data").mkdir(parents=True)
    (stale / "data" / "alpaca.jsonl").write_text("half\n", encoding="utf-8")
    run_in(out, config_file(tmp_path, [SAMPLES / "alpaca.jsonl"]))
    assert not stale.exists() and not list(out.rglob("*.tmp"))


def test_a_failed_run_leaves_the_previous_outputs_alone(tmp_path):
    out = tmp_path / "out"
    run_in(out, config_file(tmp_path, [SAMPLES / "alpaca.jsonl"]))
    before = (out / "data" / "alpaca.jsonl").read_bytes()
    cfg = load_config(config_file(tmp_path, [SAMPLES / "alpaca.jsonl"]))
    with pytest.raises(RuntimeError):
        with OutputFolder(out) as layout:
            run(cfg, layout, announce=quiet)
            raise RuntimeError("the disk caught fire")
    assert (out / "data" / "alpaca.jsonl").read_bytes() == before
    assert not list(out.glob(".staging-*"))


def test_files_no_run_wrote_are_never_replaced(tmp_path):
    out = tmp_path / "out"
    (out / "data").mkdir(parents=True)
    (out / "data" / "mine.txt").write_text("precious\n", encoding="utf-8")
    with pytest.raises(InstructgenError, match="no instructgen run wrote"):
        run_in(out, config_file(tmp_path, [SAMPLES / "alpaca.jsonl"]))
    assert (out / "data" / "mine.txt").read_text(encoding="utf-8") == "precious\n"


def test_a_second_run_on_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from instructgen.pipeline.layout import hold_lock\n"
        f"with hold_lock({str(out)!r}):\n    print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(InstructgenError, match=f"in use by another instructgen run \\(pid {holder.pid}\\)"):
            run_in(out, config_file(tmp_path, [SAMPLES / "alpaca.jsonl"]))
    finally:
        holder.kill()
        holder.wait()
    run_in(out, config_file(tmp_path, [SAMPLES / "alpaca.jsonl"]))  # free again once the holder is gone


def test_stats_and_card_name_no_local_folder(tmp_path):
    out = tmp_path / "out"
    (tmp_path / "inputs").mkdir()
    src = tmp_path / "inputs" / "alpaca.jsonl"
    src.write_bytes((SAMPLES / "alpaca.jsonl").read_bytes())
    run_in(out, config_file(tmp_path, [Path("inputs/alpaca.jsonl")], publish=True))
    stats = orjson.loads((out / "stats.json").read_bytes())
    assert stats["sources"][0]["path"] == "inputs/alpaca.jsonl" and len(stats["sources"][0]["sha256"]) == 64
    card = (out / "hub" / "README.md").read_text(encoding="utf-8")
    assert str(tmp_path) not in card
    assert f"- `inputs/alpaca.jsonl` — sha256 `{stats['sources'][0]['sha256']}`" in card  # the run's sources,
    assert "Filters:" in card and "Deduplication:" in card  # its settings
    for stage in stats["stages"]:  # and its counts, as the run made them
        if not stage["stage"].startswith("push:"):
            assert f"| {stage['stage']} | {stage['in']} | {stage['out']} |" in card, stage


# -- the CLI and the pipeline make the same decisions ------------------------------------------------------

def _cli(*args: str, cwd: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "instructgen.cli", *args], cwd=cwd, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr


def _rejects(path: Path) -> list[tuple[str, str, bytes]]:
    if not path.exists():
        return []
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return sorted((r["reason"], r.get("detail", ""), orjson.dumps(r["raw"], option=orjson.OPT_SORT_KEYS))
                  for r in rows)


def test_commands_by_hand_equal_the_pipeline_on_real_data(tmp_path):
    """filter -> dedup -> convert by hand, and `run` with the same settings: same records, same drops."""
    en = shared_path("formats", "llamafactory_alpaca_en_demo.json")
    zh = shared_path("formats", "llamafactory_alpaca_zh_demo.json")
    # the demos hold no junk: the signals are dropped on both sides (--drop, [filter] drop) so there are drops to compare
    _cli("filter", str(en), str(zh), "-o", "filtered.jsonl", "--lang", "en,zh", "--drop", "refusal,needs_media,language",
         cwd=tmp_path)
    _cli("dedup", "filtered.jsonl", "-o", "deduped.jsonl", cwd=tmp_path)
    _cli("convert", "deduped.jsonl", "--to", "sharegpt", "-o", "by-hand.sharegpt.jsonl", cwd=tmp_path)

    cfg = parse_config(f'[pipeline]\nformats = ["sharegpt"]\nshard_size = 300\n[filter]\nlang = ["en", "zh"]\n'
                       f'drop = ["refusal", "needs_media", "language"]\n'
                       f'[[sources]]\npath = "{en}"\n[[sources]]\npath = "{zh}"\n', tmp_path / "p.toml")
    out = tmp_path / "out"
    with OutputFolder(out) as layout:
        summary = run(cfg, layout, announce=quiet)
    assert summary.balanced
    assert (out / "data" / "sharegpt.jsonl").read_bytes() == (tmp_path / "by-hand.sharegpt.jsonl").read_bytes()
    assert _rejects(out / "rejects" / "filter.jsonl") == _rejects(tmp_path / "filtered.rejects.jsonl")
    assert _rejects(out / "rejects" / "dedup.jsonl") == _rejects(tmp_path / "deduped.rejects.jsonl")
    stages = {s["stage"]: s for s in summary.stages}
    assert stages["filter"]["filtered"] == len(_rejects(tmp_path / "filtered.rejects.jsonl")) > 0


def test_a_folder_source_with_a_pattern_and_turns(tmp_path):
    """Folders are read recursively (natural order, only files matching `glob`); `turns = "explode"` gives the
    single-turn formats one row per turn and leaves the others alone."""
    folder = tmp_path / "raw"
    (folder / "b").mkdir(parents=True)
    (folder / "a.jsonl").write_bytes((SAMPLES / "history.jsonl").read_bytes())
    (folder / "b" / "c.jsonl").write_bytes((SAMPLES / "sharegpt.jsonl").read_bytes())
    (folder / "b" / "notes.txt").write_text("not data\n", encoding="utf-8")
    cfg = parse_config(f'[pipeline]\nformats = ["alpaca", "sharegpt"]\nturns = "explode"\n[filter]\nenabled = false\n'
                       f'[dedup]\nenabled = false\n[[sources]]\npath = "{folder}"\nglob = "*.jsonl"\n',
                       tmp_path / "p.toml")
    out = tmp_path / "out"
    with OutputFolder(out) as layout:
        summary = run(cfg, layout, announce=quiet)
    stages = {s["stage"]: s for s in summary.stages}
    n_records = stages["read"]["out"]
    assert stages["read"]["in"] == len((SAMPLES / "history.jsonl").read_text().splitlines()) + \
        len((SAMPLES / "sharegpt.jsonl").read_text().splitlines())
    alpaca_rows = (out / "data" / "alpaca.jsonl").read_bytes().count(b"\n")
    sharegpt_rows = (out / "data" / "sharegpt.jsonl").read_bytes().count(b"\n")
    assert sharegpt_rows == n_records and alpaca_rows > n_records  # multi-turn records exploded into turns
    origins = [orjson.loads(line)["origin"] for line in (out / "rejects" / "read.jsonl").read_bytes().splitlines()] \
        if (out / "rejects" / "read.jsonl").exists() else []
    assert not any("notes.txt" in o for o in origins)


# -- streaming: no step holds every record -------------------------------------------------------------------

def _dataset(path: Path, n: int = 300) -> Path:
    """Alpaca rows with exact and near copies (every 10th row repeats an earlier one, every 15th nearly)."""
    rows = []
    for i in range(n):
        words = " ".join(f"w{(i * 7 + k) % 97}" for k in range(12))
        rows.append({"instruction": f"Describe item {i}: {words}", "input": "", "output": f"Item {i} is {words}."})
        if i % 10 == 9:
            rows.append(rows[-5])
        if i % 15 == 14:
            near = dict(rows[-3])
            near["output"] = near["output"].replace("w", "v", 1)
            rows.append(near)
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def _streaming_config(tmp_path: Path, data: Path, extra: str = "") -> Path:
    path = tmp_path / "stream.toml"
    path.write_text('[pipeline]\nformats = ["alpaca", "sharegpt"]\nshard_size = 40\n[filter]\nenabled = false\n'
                    f'[dedup]\nenabled = true\n{extra}\n[[sources]]\npath = "{data}"\n', encoding="utf-8")
    return path


def _outputs(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.jsonl"))
            if "signatures" not in p.parts}


def test_shards_are_read_as_curated_and_written_back_spool_by_spool(tmp_path, monkeypatch):
    """A JSONL source is handed out as byte ranges (no rows), a bounded number ahead of the shard being
    curated; each shard's rows are read by whoever curates it, curate_shard hands back no record, and the
    write pass reads the spools one at a time, in order."""
    import os

    from instructgen.pipeline import stages, workers

    data = _dataset(tmp_path / "data.jsonl")
    handed_out, curated_at, opened, reading = [], [], [], []
    range_shards, curate_shard, read_spool = workers.range_shards, stages.curate_shard, stages.read_spool

    def counting_shards(*args, **kwargs):
        for shard in range_shards(*args, **kwargs):
            assert isinstance(shard, workers.RangeShard) and not hasattr(shard, "rows")
            handed_out.append(shard.label)
            yield shard

    def spying_curate(shard, *args):
        curated_at.append(len(handed_out))
        result = curate_shard(shard, *args)
        assert not any(isinstance(v, Conversation) or (isinstance(v, list) and v and isinstance(v[0], Conversation))
                       for v in (getattr(result, s) for s in type(result).__slots__))
        return result

    def spying_read(path):
        opened.append(path)
        reading.append(path)
        assert len(reading) == 1, reading  # never two spools at once
        try:
            yield from read_spool(path)
        finally:
            reading.remove(path)

    monkeypatch.setattr(workers, "range_shards", counting_shards)
    monkeypatch.setattr(stages, "curate_shard", spying_curate)
    monkeypatch.setattr(stages, "read_spool", spying_read)
    out = tmp_path / "out"
    summary = run_in(out, _streaming_config(tmp_path, data))
    assert summary.balanced and len(handed_out) > 5
    window = 2 * (os.cpu_count() or 1)
    assert len(curated_at) == len(handed_out)
    assert all(at <= i + 1 + window for i, at in enumerate(sorted(curated_at)))  # a bounded number ahead
    assert [Path(p).name for p in opened] == [f"{i:06d}.jsonl" for i in range(len(handed_out))]
    assert not list(out.rglob(".spool")) and not list(out.rglob("*.spool"))
    stages_by_name = {s["stage"]: s for s in summary.stages}
    assert stages_by_name["dedup"]["duplicates"] > 0


def test_a_rerun_with_another_threshold_reuses_the_saved_signatures(tmp_path, monkeypatch):
    from instructgen.curate import dedup, dedup_sketch

    data = _dataset(tmp_path / "data.jsonl")
    out = tmp_path / "out"
    run_in(out, _streaming_config(tmp_path, data, "threshold = 0.7"))
    saved = sorted((out / "signatures").iterdir())
    assert len(saved) == 1 and saved[0].name.startswith("data.jsonl.")

    fresh = tmp_path / "fresh"
    run_in(fresh, _streaming_config(tmp_path, data, "threshold = 0.5"))

    def no_sketching(*_args, **_kwargs):
        raise AssertionError("sketched again")

    with monkeypatch.context() as m:
        m.setattr(dedup, "sketch", no_sketching)
        m.setattr(dedup_sketch, "sketch", no_sketching)
        messages = []
        cfg = load_config(_streaming_config(tmp_path, data, "threshold = 0.5"))
        with OutputFolder(out) as layout:
            run(cfg, layout, announce=messages.append)
    assert "dedup: signatures reused for data.jsonl" in messages
    assert _outputs(out) == _outputs(fresh)
    assert orjson.loads((out / "stats.json").read_bytes())["stages"] == \
        [{**s, "rejects_file": s["rejects_file"].replace(str(fresh), str(out))} if "rejects_file" in s else s
         for s in orjson.loads((fresh / "stats.json").read_bytes())["stages"]]


def test_saved_signatures_of_other_records_are_not_reused(tmp_path, monkeypatch):
    """Another filter setting yields other records: sketched again. Saved signatures that do not match the
    records read this time (the file changed) are sketched again from the spools, the same as a fresh run."""
    from instructgen.pipeline import signatures

    data = _dataset(tmp_path / "data.jsonl")
    out = tmp_path / "out"
    run_in(out, _streaming_config(tmp_path, data))
    messages = []
    cfg = load_config(_streaming_config(tmp_path, data).parent / "stream.toml")
    cfg.filter.enabled, cfg.filter.min_output_words = True, 3
    with OutputFolder(out) as layout:
        run(cfg, layout, announce=messages.append)
    assert not any("signatures reused" in m for m in messages)
    assert len(list((out / "signatures").iterdir())) == 2  # one per filter setting

    _dataset(data, n=280)  # the file changes; pretend its saved sketches still look valid
    monkeypatch.setattr(signatures, "_saved_for", lambda *_a: True)
    run_in(out, _streaming_config(tmp_path, data))
    monkeypatch.undo()
    fresh = tmp_path / "fresh"
    run_in(fresh, _streaming_config(tmp_path, data))
    assert _outputs(out) == _outputs(fresh)


def test_progress_bars_name_the_passes(tmp_path, capsys):
    data = _dataset(tmp_path / "data.jsonl", n=60)
    cfg = load_config(_streaming_config(tmp_path, data))
    with OutputFolder(tmp_path / "out") as layout:
        run(cfg, layout, announce=quiet, progress=True)
    err = capsys.readouterr().err
    assert "curate: 100%" in err and "write: 100%" in err


def test_the_language_worker_answers_as_the_detector_here(monkeypatch):
    from instructgen.pipeline import languages

    texts = [["Write a short poem about the sea and the wind, please.", "请写一首关于大海的短诗。"],
             ["Escribe un poema corto sobre el mar y el viento, por favor.", "", "ok"]]
    worker = languages.LanguageWorker()
    for batch in texts:
        worker.submit(batch)
    here = [lang for batch in texts for lang in languages.detect_languages(batch)]
    assert worker.finish() == here and worker.child is not None and worker.child.returncode == 0

    monkeypatch.setattr(languages.sys, "executable", "/nonexistent/python")  # no child: detected here
    worker = languages.LanguageWorker()
    worker.submit(texts[0])
    assert worker.child is None and worker.finish() == here[:2]


def test_on_a_dask_address_the_decisions_are_made_there_and_are_the_same(tmp_path):
    pytest.importorskip("instructgen.curate.dedup_dask")
    from distributed import LocalCluster

    from instructgen.convert import ReadOptions, read_records
    from instructgen.curate import dedup
    from instructgen.pipeline import stages
    from instructgen.runlog import RunLog

    records = list(read_records([str(_dataset(tmp_path / "data.jsonl"))], RunLog("read"),
                                ReadOptions(announce=quiet)))
    config = dedup.DedupConfig()
    view = stages.SketchView(dedup.sketch_records(records, config))
    here = stages.decide(view, config, 0, "threads")
    from instructgen.curate.dedup_dask import DaskRunner

    asked = []
    real = DaskRunner.verified_pairs
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            pytest.MonkeyPatch.context() as m:
        m.setattr(DaskRunner, "verified_pairs", lambda self, *a, **k: asked.append(1) or real(self, *a, **k))
        there = stages.decide(view, config, 0, f"dask={cluster.scheduler_address}")
    assert asked and (here.dup_of >= 0).sum() > 0 and (here.dup_of == there.dup_of).all()


def test_the_profile_is_the_same_detected_by_several_workers(monkeypatch):
    from instructgen.pipeline import summary
    from instructgen.record import from_pairs

    records = [from_pairs([(f"Write a short note number {i} about rivers and the sea, please.",
                            "Rivers run to the sea.")] if i % 3 else [(f"请写第{i}条关于河流的短文。", "河流奔向大海。")])
               for i in range(90)]
    here = summary.profile_records(records, sample=45)
    monkeypatch.setattr(summary, "PROFILE_WORKER_MIN", 5)
    monkeypatch.setattr(summary, "PROFILE_BATCH", 4)
    monkeypatch.setattr(summary.os, "cpu_count", lambda: 4)
    sampler = summary.ProfileSampler(len(records), sample=45)
    assert len(sampler.workers) == 3
    for conv in records:
        sampler.observe(conv)
    assert sampler.finish().rows == here.rows and len(here.rows) == 45 and here.languages()["zh"] == 15


def test_publish_takes_the_formats_written_in_data_as_they_are(tmp_path, monkeypatch):
    """The Hub step publishes data/<fmt>.jsonl as the run wrote it: only a format published but not written
    is converted from the records (once), and each config's rows are the written file's rows."""
    import pyarrow.parquet as pq

    from instructgen.hub import folder

    converted = []
    real_write = folder.write_records

    def counting(records, writer, fmt, *args, **kwargs):
        converted.append(fmt)
        return real_write(records, writer, fmt, *args, **kwargs)

    monkeypatch.setattr(folder, "write_records", counting)
    out = tmp_path / "out"
    summary = run_in(out, config_file(tmp_path, [SAMPLES / "alpaca.jsonl"], publish=True,
                                      extra='formats = ["alpaca", "sharegpt", "openai"]'))
    assert summary.balanced and set(converted) == {"openai"}
    stages = {s["stage"]: s for s in summary.stages}
    for fmt in ("alpaca", "sharegpt"):
        written = [orjson.loads(line) for line in (out / "data" / f"{fmt}.jsonl").read_bytes().splitlines()]
        shards = sorted((out / "hub").glob(f"{fmt}/*.parquet"))
        published = [row for shard in shards for row in pq.read_table(shard).to_pylist()]
        assert stages[f"push:{fmt}"]["out"] == stages[f"write:{fmt}"]["out"] == len(written) == len(published) > 0
        as_published = [{k: v for k, v in row.items() if v is not None and k in w} for row, w in zip(published, written)]
        assert as_published == [{k: v for k, v in row.items() if v is not None} for row in written]
    assert stages["push:openai"]["out"] == stages["push:read"]["out"] == stages["write:alpaca"]["out"]
