"""Dedup's decisions (`dedup.cluster`) on the pipeline benchmark's template-heavy records: before and after.

The records are benchmarks/pipeline.py's (alpaca, en/zh, exact and near copies, English answers drawn from
1,680 template sentences, Chinese from 60 characters), two parts each (prompt, response) as the pipeline
compares them. On such data a record meets tens of candidates in the LSH bands, and verifying them is what the
decisions cost. Sketched once (worker processes), then, in this process on the same sketches:

  before   the verification as it was (rows gathered with a slice inside the fancy index, equal columns
           summed over the short axis, the parts' minimum over it too), the bands one after another
  1 thread the verification now (rows sliced first, equal columns counted eight at a time as bit counts,
           lsh.equal_counts; lsh.weakest), the bands one after another (DedupConfig.workers = 1)
  threads  the same, the bands spread over one thread per core (the default)

Every side must decide the same: each record's duplicate-of and similarity are compared.

Usage: python benchmarks/decisions.py [--records 1000000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import pipeline as pipeline_bench  # noqa: E402  (the same records as the pipeline benchmark)


def before_estimated_jaccard(sigs, i, j, threshold=0.0):
    """lsh.estimated_jaccard before this change (commit f993f2c), for the side-by-side."""
    from instructgen.curate import lsh

    num_perm = sigs.shape[1]
    half = num_perm // 2
    need = threshold * num_perm
    out = np.zeros(len(i), dtype=np.float32)
    for s in range(0, len(i), lsh.PAIR_CHUNK):
        a, b = i[s:s + lsh.PAIR_CHUNK], j[s:s + lsh.PAIR_CHUNK]
        first = (sigs[a, :half] == sigs[b, :half]).sum(axis=1)
        alive = first + (num_perm - half) >= need
        rest = (sigs[a[alive], half:] == sigs[b[alive], half:]).sum(axis=1)
        chunk = np.zeros(len(a), dtype=np.float32)
        chunk[alive] = (first[alive] + rest) / num_perm
        out[s:s + lsh.PAIR_CHUNK] = chunk
    return out


def sketches_of(path: Path):
    """The records' sketches under the pipeline's dedup settings (benchmarks/pipeline.py's config)."""
    import orjson

    from instructgen.curate.dedup import sketch_records
    from instructgen.formats import alpaca

    config = pipeline_bench.config_for(path, 20_000).dedup
    records = [alpaca.parse(orjson.loads(line)) for line in path.read_bytes().splitlines()]
    return sketch_records(records, config), config


def decide(sketches, config, workers: int, before: bool = False):
    from instructgen.curate import dedup, lsh

    saved = lsh.estimated_jaccard, lsh.weakest
    if before:
        lsh.estimated_jaccard, lsh.weakest = before_estimated_jaccard, lambda sims: sims.min(axis=1)
    try:
        t0 = time.perf_counter()
        clusters = dedup.cluster([sketches], config.model_copy(update={"workers": workers}))
        return time.perf_counter() - t0, clusters
    finally:
        lsh.estimated_jaccard, lsh.weakest = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.jsonl"
        pipeline_bench.make_data(data, args.records)
        print(f"sketching {args.records:,} records ...", file=sys.stderr)
        sketches, config = sketches_of(data)
    sides = [("before", 1, True), ("1 thread", 1, False), (f"threads ({cores})", cores, False)]
    results = {}
    for name, workers, before in sides:
        results[name] = decide(sketches, config, workers, before)
    base_seconds, base = results["before"]
    info = base.info
    print(f"dedup decisions, {args.records:,} records, {info['candidate_pairs']:,} candidate pairs checked, "
          f"{info['verified_pairs']:,} verified ({info['parts']} parts, {info['bands']} bands of {info['rows']} rows), {cores} cores, load average {os.getloadavg()[0]:.2f}")
    print(f"   {'side':<22}{'wall s':>8}{'vs before':>11}")
    for name, (seconds, clusters) in results.items():
        same = np.array_equal(clusters.dup_of, base.dup_of) and np.array_equal(clusters.similarity, base.similarity) \
            and np.array_equal(clusters.part_similarity, base.part_similarity)
        assert same, f"{name} decided differently"
        print(f"   {name:<22}{seconds:8.2f}{base_seconds / seconds:10.2f}x")


if __name__ == "__main__":
    main()
