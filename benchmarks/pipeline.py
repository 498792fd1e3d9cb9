"""Benchmark: which task runner the pipeline should use by default, what Prefect costs, how fast a command starts.

    python benchmarks/pipeline.py                   # 200,000 records (the issue's size)
    python benchmarks/pipeline.py --records 50000 --runners threads,processes

1. Runners: 200,000 alpaca records (en/zh, with exact and near copies and junk) through the
   pipeline (read -> quality filter -> exact + near dedup -> write alpaca + sharegpt), side by
   side in one process on the same file:
     one-process pipeline.run as it was before worker processes (issue 22 item 9's baseline): every shard
                 and every format in this process, one after another
     direct      pipeline.run with InProcess steps, no Prefect: JSONL shards curated by worker processes
                 that read their own byte range, formats after the first written by processes of their own
     threads     the Prefect flow, ThreadPoolTaskRunner, one task per 20,000-row shard
     processes   the Prefect flow, ProcessPoolTaskRunner
     dask        the Prefect flow, a Dask LocalCluster (one single-threaded worker process per core)
   against a Prefect server that is already up (as in a served deployment). Each line prints its
   wall time and its ratio to `direct`; every runner must write the same bytes. The temporary
   server's start-up, paid once per `instructgen run`, is printed separately.
2. Start-up: wall time of `instructgen convert --help` from process start to exit
   (median of 7), target < 0.5 s, next to `python -c pass` for scale.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUBJECTS = ("the river", "a city", "our team", "the model", "this poem", "the market", "a small garden", "the museum",
            "my old bicycle", "the school library", "a quiet village", "the night train", "the data set", "his song")
VERBS = ("changes", "helps", "explains", "describes", "protects", "surprises", "follows", "teaches", "remembers",
         "connects", "improves", "shapes")
OBJECTS = ("the people who live there", "a new kind of music", "the history of the region", "the way we work",
           "every visitor in summer", "the results of the test", "a simple idea about time", "the price of bread",
           "the children in the park", "an answer to the question")
TASKS = ("Explain why", "Describe how", "Write a short story in which", "Summarize the idea that", "List reasons why",
         "Give an example showing that", "Argue for or against the claim that")


def _en_sentence(rng: random.Random) -> str:
    return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"


ZH = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经"


def make_data(path: Path, n: int, seed: int = 0) -> None:
    import orjson

    rng = random.Random(seed)
    rows = []
    with open(path, "wb") as fh:
        for i in range(n):
            r = rng.random()
            if rows and r < 0.05:  # exact copy of an earlier record
                row = dict(rng.choice(rows))
            elif rows and r < 0.10:  # near copy: one word changed
                row = dict(rng.choice(rows))
                words = row["output"].split(" ")
                words[rng.randrange(len(words))] = rng.choice(VERBS)
                row["output"] = " ".join(words)
            elif r < 0.12:  # junk the filter should catch
                row = {"instruction": f"{rng.choice(TASKS)} {_en_sentence(rng)}.", "input": "",
                       "output": "As an AI language model, I cannot do that."}
            elif r < 0.55:
                row = {"instruction": f"{rng.choice(TASKS)} {_en_sentence(rng)}.",
                       "input": _en_sentence(rng).capitalize() + "." if rng.random() < 0.4 else "",
                       "output": " ".join(_en_sentence(rng).capitalize() + "."
                                          for _ in range(rng.randint(2, 8))) + f" ({i})"}
            else:
                row = {"instruction": "".join(rng.choices(ZH, k=rng.randint(8, 30))) + "。",
                       "input": "",
                       "output": "".join(rng.choices(ZH, k=rng.randint(30, 200))) + "。"}
            if len(rows) < 5000:
                rows.append(row)
            fh.write(orjson.dumps(row) + b"\n")


def config_for(data: Path, shard_size: int):
    from instructgen.pipeline.config import parse_config

    text = (f'[pipeline]\nformats = ["alpaca", "sharegpt"]\nshard_size = {shard_size}\nreport = false\n'
            f'[[sources]]\npath = "{data}"\nformat = "alpaca"\n')
    path = data.parent / f"{data.stem}.toml"
    path.write_text(text, encoding="utf-8")
    return parse_config(text, path)


def run_direct(cfg, out: Path) -> dict[str, int]:
    """The pipeline without Prefect: InProcess steps, the same functions, one after another."""
    from instructgen.pipeline import OutputFolder, run

    with OutputFolder(out) as layout:
        summary = run(cfg, layout, announce=lambda _m: None)
    return {s["stage"]: s["out"] for s in summary.stages}


class OneAfterAnother:
    """Steps that run every shard in this process, one after another."""

    def map(self, step, fn, items, *args):
        return (fn(item, *args) for item in items)

    def call(self, step, fn, *args, fresh=False):
        return fn(*args)


def run_one_process(cfg, out: Path) -> dict[str, int]:
    """The pipeline with no worker process at all: no shard pool, no format process, shards one at a time."""
    from instructgen.pipeline import OutputFolder, run, workers

    saved = workers.POOL_MIN_BYTES, workers.PARALLEL_WRITE_MIN
    workers.POOL_MIN_BYTES = workers.PARALLEL_WRITE_MIN = float("inf")
    try:
        with OutputFolder(out) as layout:
            summary = run(cfg, layout, OneAfterAnother(), announce=lambda _m: None)
    finally:
        workers.POOL_MIN_BYTES, workers.PARALLEL_WRITE_MIN = saved
    return {s["stage"]: s["out"] for s in summary.stages}


def run_flow(cfg, out: Path, runner: str) -> dict[str, int]:
    from instructgen_flows.pipeline import run_pipeline

    result = run_pipeline(str(cfg.config_path), str(out), runner=runner)
    return {s["stage"]: s["out"] for s in result["stages"]}


def timed(fn, *args) -> tuple[float, dict[str, int]]:
    t0 = time.perf_counter()
    counts = fn(*args)
    return time.perf_counter() - t0, counts


def _same_outputs(cfg, tmp: Path, base: str, other: str, counts, runner: str) -> None:
    assert counts[runner] == counts["direct"], (runner, counts[runner], counts["direct"])
    for f in cfg.pipeline.formats:
        same = (tmp / base / "data" / f"{f}.jsonl").read_bytes() == (tmp / other / "data" / f"{f}.jsonl").read_bytes()
        assert same, f"{runner} wrote different bytes in {f}"
    shutil.rmtree(tmp / other, ignore_errors=True)


def startup_times(argv: list[str], runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--shard-size", type=int, default=20_000)
    ap.add_argument("--runners", default="threads,processes,dask")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs of each side (the best is kept)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the one-process side (for a long run)")
    args = ap.parse_args()

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"  # per-task log lines would be printed, not measured
    tmp = Path(tempfile.mkdtemp(prefix="instructgen-bench-"))
    os.environ.setdefault("PREFECT_HOME", str(tmp / "prefect-home"))
    data = tmp / "data.jsonl"
    print(f"making {args.records:,} records ...", file=sys.stderr)
    make_data(data, args.records)
    cfg = config_for(data, args.shard_size)
    make_data(tmp / "warm.jsonl", 1000, seed=1)
    warm = config_for(tmp / "warm.jsonl", 500)
    runners = [r for r in args.runners.split(",") if r]

    from prefect.testing.utilities import prefect_test_harness

    load_before = f"{os.getloadavg()[0]:.2f}"
    t0 = time.perf_counter()
    with prefect_test_harness(server_startup_timeout=120):
        startup = time.perf_counter() - t0
        run_direct(warm, tmp / "warm-direct")  # imports, language profiles, first-call costs
        for runner in runners:
            run_flow(warm, tmp / f"warm-{runner}", runner)
        times: dict[str, list[float]] = {"direct": []}
        counts: dict[str, dict[str, int]] = {}
        sides = [] if args.no_baseline else ["one-process"]
        for i in range(args.repeats):
            seconds, counts["direct"] = timed(run_direct, cfg, tmp / f"direct{i}")
            times["direct"].append(seconds)
            for runner in sides + runners:
                if runner == "one-process":
                    seconds, counts[runner] = timed(run_one_process, cfg, tmp / f"{runner}{i}")
                    times.setdefault(runner, []).append(seconds)
                    _same_outputs(cfg, tmp, f"direct{i}", f"{runner}{i}", counts, runner)
                    continue
                seconds, counts[runner] = timed(run_flow, cfg, tmp / f"{runner}{i}", runner)
                times.setdefault(runner, []).append(seconds)
                _same_outputs(cfg, tmp, f"direct{i}", f"{runner}{i}", counts, runner)
            shutil.rmtree(tmp / f"direct{i}", ignore_errors=True)

    best = {k: min(v) for k, v in times.items()}
    print(f"\n1. pipeline, {args.records:,} records, shards of {args.shard_size:,}, same file, same process, "
          f"{os.cpu_count()} cores")
    base = "one-process" if "one-process" in best else "direct"
    print(f"   {'':<36}{'wall s':>9}{'records/s':>12}{'vs ' + base:>16}   runs")
    for name, seconds in best.items():
        label = {"direct": "direct (pipeline.run, InProcess)", "one-process": "one process (the issue's baseline)"
                 }.get(name, f"flow, {name} runner")
        print(f"   {label:<36}{seconds:>9.2f}{args.records / seconds:>12,.0f}{seconds / best[base]:>15.2f}x   "
              + ", ".join(f"{x:.2f}" for x in times[name]))
    print(f"   load average before/after: {load_before} / {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    fastest = min((r for r in best if r not in ("direct", "one-process")), key=best.get, default=None)
    if fastest:
        print(f"   fastest runner here: {fastest}")
    print(f"   counts out per stage (identical on every side): {counts['direct']}")
    print(f"   one-off: Prefect temporary server start-up {startup:.1f} s (paid once per `instructgen run`, "
          "not by a served deployment)")

    convert_help = startup_times([sys.executable, "-m", "instructgen.cli", "convert", "--help"])
    exe = Path(sys.executable).with_name("instructgen")
    script_help = startup_times([str(exe), "convert", "--help"]) if exe.exists() else None
    bare = startup_times([sys.executable, "-c", "pass"])
    print("\n2. start-up, median of 7, process start to exit")
    if script_help is not None:
        print(f"   instructgen convert --help            {script_help:.3f} s   (target < 0.5 s)")
    print(f"   python -m instructgen.cli convert --help {convert_help:.3f} s")
    print(f"   python -c pass (interpreter floor)    {bare:.3f} s")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
