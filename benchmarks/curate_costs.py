"""What one record costs in a shard, part by part, against the CPU that issue 22's 1M-in-120-s target leaves.

    python benchmarks/curate_costs.py                 # 40,000 of benchmarks/pipeline.py's records (+ real sets)
    python benchmarks/curate_costs.py --records 100000 --cores 2

A shard's work (`pipeline.stages.curate_shard`) is: rows -> records (parse), the quality filter, the dedup
sketch (exact keys + MinHash), the spool file. Each part runs here over the same records, one after another, in
this process (what one worker process does), timed in CPU seconds after a warm-up (the language profiles and
word lists load once per process, as they do in a worker). The filter is also split by rule, each rule run
over every turn on its own (rules that stop at a drop run on all turns here: an upper bound).

The budget: `--target-seconds` (120) of wall time on `--cores` (2) cores is target x cores CPU seconds for a
million records, for every phase (curate, the dedup decisions, the write pass). Printed: each part's
microseconds per record and CPU seconds per million, and the curate total against that budget (the ratio is
curate's CPU over the whole run's budget; above 1.00x the target cannot be met by spreading the work over the
cores, only by doing less of it). With ../shared present (INSTRUCTGEN_SHARED), the filter's cost per record is
also measured on the real sets of benchmarks/curate_real.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]
sys.path.insert(0, str(HERE.parent / "src"))

import curate_real as real  # noqa: E402  (the real sets and their loader)
from pipeline import make_data  # noqa: E402  (benchmarks/pipeline.py: the same records)

from instructgen import formats  # noqa: E402
from instructgen.convert import ReadOptions, parse_rows  # noqa: E402
from instructgen.curate.dedup import DedupConfig, sketch_records  # noqa: E402
from instructgen.curate.filter import FilterConfig, filter_records  # noqa: E402
from instructgen.curate.langid import get_detector  # noqa: E402
from instructgen.curate.language import candidates  # noqa: E402
from instructgen.curate.rules import RULES, turns_of  # noqa: E402
from instructgen.io import read_rows  # noqa: E402
from instructgen.pipeline.stages import shard_log, spool_records  # noqa: E402
from instructgen.runlog import RunLog  # noqa: E402

WARM_UP = 1_000


def cpu(fn, *args):
    start = time.process_time()
    result = fn(*args)
    return time.process_time() - start, result


def shard_parts(path: Path, tmp: Path) -> tuple[list, dict[str, float]]:
    """(the records of `path`, CPU seconds of each part of a shard's work over them)."""
    rows = list(read_rows(path))
    opts = ReadOptions(from_format="alpaca", announce=lambda _m: None)
    spec = formats.get("alpaca")
    warm = list(parse_rows(iter(rows[:WARM_UP]), spec, RunLog("read"), opts))
    list(filter_records(warm, FilterConfig(), shard_log("filter")))
    sketch_records(warm, DedupConfig())
    parts = {}
    parts["parse"], records = cpu(lambda: list(parse_rows(iter(rows), spec, RunLog("read"), opts)))
    parts["filter"], kept = cpu(lambda: list(filter_records(records, FilterConfig(), shard_log("filter"))))
    parts["sketch"], _ = cpu(sketch_records, kept, DedupConfig())
    parts["spool"], _ = cpu(spool_records, kept, str(tmp / "spool.jsonl"))
    return records, parts


def rule_costs(records: list) -> dict[str, float]:
    """CPU seconds of each rule over every turn of `records` (and of cutting them into turns)."""
    config = FilterConfig()
    seconds, turns = cpu(lambda: [t for c in records for t in turns_of(c)])
    costs = {"(turns_of)": seconds}
    for name, rule in RULES.items():
        costs[name], _ = cpu(lambda: [rule(t, config) for t in turns])
    return costs


def real_records() -> list | None:
    root = real.shared_root()
    if not (root / "data").is_dir():
        return None
    return [conv for s in real.SETS for conv in real.load_set(s, root)]


def show(title: str, n: int, costs: dict[str, float]) -> None:
    print(f"{title}\n   (CPU microseconds per record = CPU seconds per million records)")
    for name, seconds in sorted(costs.items(), key=lambda kv: -kv[1]):
        print(f"   {name:18s} {1e6 * seconds / n:8.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=40_000)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--target-seconds", type=float, default=120.0, help="issue 22: 1M records in 120 s")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="curate-costs-") as tmp:
        data = Path(tmp) / "records.jsonl"
        make_data(data, args.records)
        generated, parts = shard_parts(data, Path(tmp))
    n = len(generated)
    show(f"1. one shard's work, {n:,} records of benchmarks/pipeline.py, this process (CPU time)", n, parts)
    curate = sum(parts.values()) / n * 1e6  # CPU-s per 1M records
    budget = args.target_seconds * args.cores
    print(f"   {'curate, all parts':18s} {curate:8.1f}")
    print(f"\n   budget: 1M records in {args.target_seconds:.0f} s on {args.cores} cores = {budget:.0f} CPU-s for every "
          f"phase (curate, decisions, write)")
    print(f"   curate alone needs {curate:.0f} CPU-s: {curate / budget:.2f}x the whole budget "
          f"(the filter {1e6 * parts['filter'] / n:.0f}, {parts['filter'] / sum(parts.values()):.0%} of curate)")

    show(f"\n2. the filter's rules, each over every turn, the same {len(generated):,} records", len(generated),
         rule_costs(generated))
    reals = real_records()
    if reals is None:
        print("\n3. real sets: skipped (../shared not found; set INSTRUCTGEN_SHARED)")
        return
    seconds, _ = cpu(lambda: list(filter_records(reals, FilterConfig(), shard_log("filter"))))
    print(f"\n3. the filter on the {len(real.SETS)} real sets of benchmarks/curate_real.py, {len(reals):,} records: "
          f"{1e6 * seconds / len(reals):.0f} us/record ({1e6 * seconds / len(reals) / budget:.2f}x the budget per 1M)")
    show("   its rules, each over every turn", len(reals), rule_costs(reals))
    calls, seconds = langdetect_share(reals)
    print(f"   langdetect (the language rule's fallback, for Latin-script text the script and English words do not "
          f"settle): {calls:,} calls, {1e3 * seconds / max(calls, 1):.1f} ms each, {1e6 * seconds / len(reals):.0f} us "
          f"a record")


def langdetect_share(records: list) -> tuple[int, float]:
    """(calls, CPU seconds) of langdetect while the language rule judges every turn of `records`."""
    config = FilterConfig()
    detector = get_detector(config.detector, candidates(config.lang))
    ranked = detector.fallback.ranked
    spent = [0, 0.0]

    def counted(text: str):
        seconds, result = cpu(ranked, text)
        spent[0] += 1
        spent[1] += seconds
        return result

    detector.fallback.ranked = counted
    try:
        for turn in (t for c in records for t in turns_of(c)):
            RULES["language"](turn, config)
    finally:
        del detector.fallback.ranked
    return spent[0], spent[1]


if __name__ == "__main__":
    main()
