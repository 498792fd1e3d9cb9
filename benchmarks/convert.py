"""Benchmark: `instructgen convert` against a datasets.map converter and the JSONL I/O floor.

    python benchmarks/convert.py               # 1,000,000 records (the issue's size)
    python benchmarks/convert.py --records 200000 --skip-baseline --dir /dev/shm
    python benchmarks/convert.py --records 200000 --profile     # cProfile's top lines for instructgen

Generates alpaca JSONL (mixed en/zh, 40 % with input), then times, each in a
fresh child process so peak RSS is its own:
  instructgen    convert --to moss / --to sharegpt (the library call the CLI makes, with its default
                 --workers: it converts serially when the rows take the direct path)
  canonical      the same with the direct path switched off (every row through the canonical record):
                 its output must be byte-identical to instructgen's, which the script checks
  keys not filled  instructgen without the writer's schema-stable pass (a key some rows lack, here the
                 `meta` of the 40 % with input, given to the others as null): what that pass costs
  (a) baseline   LLaMA-Factory style: datasets.load_dataset("json") + Dataset.map with a
                 per-record Python function, written back with Dataset.to_json
  (b) I/O floor  read the same JSONL and write it back unchanged with the same JSON library (orjson)
and prints wall time, CPU time, records/s, peak RSS and the ratios side by side. A MOSS row is
about 2.8 times the size of its alpaca row (the meta instruction and the empty plugin fields):
the floor writes the input's bytes, instructgen writes MOSS's.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import random
import tempfile
import time
from pathlib import Path

EN_WORDS = ("explain describe summarize write list compare translate classify the a of model data "
            "language learning quick brown fox river mountain city history science music poem story "
            "function code python algorithm reason answer question simple detailed short").split()
ZH_CHARS = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经"


def make_data(path: Path, n: int, seed: int = 0) -> None:
    import orjson

    rng = random.Random(seed)
    with open(path, "wb") as fh:
        for i in range(n):
            if rng.random() < 0.5:
                instruction = " ".join(rng.choices(EN_WORDS, k=rng.randint(6, 20))).capitalize() + "."
                output = " ".join(rng.choices(EN_WORDS, k=rng.randint(20, 120))) + "."
                inp = " ".join(rng.choices(EN_WORDS, k=rng.randint(5, 30))) if rng.random() < 0.4 else ""
            else:
                instruction = "".join(rng.choices(ZH_CHARS, k=rng.randint(8, 30))) + "。"
                output = "".join(rng.choices(ZH_CHARS, k=rng.randint(30, 200))) + "。"
                inp = "".join(rng.choices(ZH_CHARS, k=rng.randint(5, 40))) if rng.random() < 0.4 else ""
            fh.write(orjson.dumps({"instruction": instruction, "input": inp, "output": output}) + b"\n")


def peak_rss_mb() -> float:
    """The peak resident memory of this process or of any worker process it started (the largest)."""
    import resource

    own = float("nan")
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                own = int(line.split()[1]) / 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return max(own, workers)


# -- the contenders, each run in its own process ---------------------------------------------------

def run_instructgen(src: str, out: str, to: str) -> None:
    from instructgen.convert import ReadOptions, convert
    from instructgen.runlog import RunLog

    log = RunLog("convert")
    workers = min(os.cpu_count() or 1, 4)  # the CLI's default --workers
    convert([src], out, to, log, ReadOptions(from_format="alpaca", announce=lambda _: None), workers=workers)
    assert log.balanced and log.n_out == log.n_in


def run_canonical(src: str, out: str, to: str) -> None:
    from instructgen import formats

    formats.direct = lambda *a, **k: None  # every row through parse + dump
    run_instructgen(src, out, to)


def run_unfilled(src: str, out: str, to: str) -> None:
    from instructgen import convert, io

    class Unfilled(io.RowWriter):  # the same writer without the schema-stable second pass
        def __init__(self, path, stable_keys=False):
            super().__init__(path, stable_keys=False)

    convert.RowWriter = Unfilled
    run_instructgen(src, out, to)


def run_floor(src: str, out: str, to: str) -> None:
    import orjson

    with open(src, "rb") as fi, open(out, "wb", buffering=1 << 20) as fo:
        for line in fi:
            fo.write(orjson.dumps(orjson.loads(line), option=orjson.OPT_APPEND_NEWLINE))


MOSS_META = "You are a helpful assistant."


def _to_sharegpt(example):
    prompt = example["instruction"] + ("\n" + example["input"] if example["input"] else "")
    return {"conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": example["output"]}]}


def _to_moss(example, idx):
    prompt = example["instruction"] + ("\n" + example["input"] if example["input"] else "")
    return {
        "conversation_id": idx + 1,
        "meta_instruction": MOSS_META,
        "num_turns": 1,
        "chat": {"turn_1": {
            "Human": f"<|Human|>: {prompt}<eoh>\n",
            "Inner Thoughts": "<|Inner Thoughts|>: None<eot>\n",
            "Commands": "<|Commands|>: None<eoc>\n",
            "Tool Responses": "<|Results|>: None<eor>\n",
            "MOSS": f"<|MOSS|>: {example['output']}<eom>\n",
        }},
    }


def run_datasets_map(src: str, out: str, to: str) -> None:
    import datasets

    datasets.disable_progress_bars()
    cache = tempfile.mkdtemp(prefix="ds-cache-")
    ds = datasets.load_dataset("json", data_files=src, split="train", cache_dir=cache)
    if to == "moss":
        ds = ds.map(_to_moss, with_indices=True, remove_columns=ds.column_names)
    else:
        ds = ds.map(_to_sharegpt, remove_columns=ds.column_names)
    ds.to_json(out, force_ascii=False)


CONTENDERS = {"instructgen": run_instructgen, "canonical": run_canonical, "keys not filled": run_unfilled,
              "(a) datasets.map": run_datasets_map,
              "(b) I/O floor": run_floor}


def _child(name: str, src: str, out: str, to: str, conn) -> None:
    if name in ("instructgen", "canonical", "keys not filled"):
        import instructgen.convert  # noqa: F401 - imported before the clock starts, as orjson is for the floor
    start, cpu = time.perf_counter(), time.process_time()
    CONTENDERS[name](src, out, to)
    conn.send((time.perf_counter() - start, time.process_time() - cpu, peak_rss_mb()))


def measure(name: str, src: str, out: str, to: str) -> tuple[float, float, float]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child, args=(name, src, out, to, child))
    proc.start()
    seconds, cpu, rss = parent.recv()
    proc.join()
    return seconds, cpu, rss


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def profile(src: str, out: str, to: str, lines: int = 12) -> None:
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.runcall(run_instructgen, src, out, to)
    print(f"-- cProfile of instructgen --to {to} (top {lines} by own time) --")
    pstats.Stats(prof).sort_stats("tottime").print_stats(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--skip-baseline", action="store_true", help="skip (a), the slowest")
    ap.add_argument("--dir", help="where to put the data (default: the system's temp folder)")
    ap.add_argument("--profile", action="store_true", help="print cProfile's top lines for instructgen instead")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-convert-", dir=args.dir))
    src = work / "alpaca.jsonl"
    make_data(src, args.records)
    print(f"{args.records:,} alpaca records, {src.stat().st_size / 1e6:.0f} MB JSONL (en/zh, 40 % with input)\n")
    try:
        if args.profile:
            for to in ("sharegpt", "moss"):
                profile(str(src), str(work / f"{to}.jsonl"), to)
            return
        compare(work, src, args)
    finally:
        for f in work.iterdir():
            f.unlink()
        os.rmdir(work)


def compare(work: Path, src: Path, args) -> None:
    print(f"{'target':<9} {'contender':<18} {'seconds':>8} {'cpu s':>7} {'records/s':>11} {'peak RSS MB':>12}"
          f" {'output MB':>10}")
    for to in ("sharegpt", "moss"):
        results, outputs = {}, {}
        for name in CONTENDERS:
            if args.skip_baseline and name.startswith("(a)"):
                continue
            out = work / f"{to}.{name[:3].strip('()')}.jsonl"
            seconds, cpu, rss = measure(name, str(src), str(out), to)
            results[name] = seconds
            size = out.stat().st_size / 1e6
            if name in ("instructgen", "canonical"):
                outputs[name] = digest(out)
            out.unlink()
            print(f"{to:<9} {name:<18} {seconds:8.2f} {cpu:7.2f} {args.records / seconds:11,.0f} {rss:12.0f}"
                  f" {size:10.0f}")
        ours = results["instructgen"]
        same = "identical" if outputs["instructgen"] == outputs["canonical"] else "DIFFERENT"
        print(f"{to:<9} output sha256 {outputs['instructgen'][:16]}..., {same} to the canonical path's")
        print(f"{to:<9} speed-up vs the canonical path: {results['canonical'] / ours:.2f}x")
        print(f"{to:<9} cost of schema-stable keys (rows lacking 'meta' given it as null): "
              f"{ours / results['keys not filled']:.2f}x the time without")
        if "(a) datasets.map" in results:
            print(f"{to:<9} speed-up vs (a) datasets.map: {results['(a) datasets.map'] / ours:.2f}x   (target >= 3x)")
        print(f"{to:<9} time vs (b) I/O floor: {ours / results['(b) I/O floor']:.2f}x   (target <= 2x)\n")


if __name__ == "__main__":
    main()
