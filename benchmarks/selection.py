"""`instructgen select --diverse`: time and memory at 1,000,000 records, and equality with the brute-force reference.

1. Scale: N records (default 1,000,000) generated here as alpaca JSONL with meta.scores (families of near
   duplicates: a base sentence and variants with a word or two changed, ~1 in 3 records has a near twin),
   `instructgen select IN -o OUT --by alpagasus --top-k 10000 --diverse` run as a child process; wall time
   and the child's peak RSS against the issue's limits (60 s; 1 GB + 700 B a record).
2. Reference: on R records (default 20,000), the walk through the incremental LSH index of the selected
   records (what `select` runs) against the brute-force rule (each candidate compared with EVERY selected
   record), same signatures, one process: equal fates and near-of records, and the time of each. The
   baseline of the issue (distilabel's Deita filter) compares each record with the whole pool; its cost is
   shown as the count of comparisons it would make (R x R / 2), not run.

(Named selection.py, not select.py: a select.py in this folder would shadow the standard library's `select`
module for every script here.)

Usage: python benchmarks/selection.py [--n 1000000] [--top-k 10000] [--reference 20000]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import orjson

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from instructgen.quality.select import NEAR, SELECTED, SelectConfig, Walk, signatures  # noqa: E402

VOCAB = [f"{a}{b}{c}" for a in ("ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "zu") for b in
         ("rat", "mon", "lis", "dex", "pur", "gan", "tol", "vir", "sem", "nok", "bal", "cor")
         for c in ("", "a", "e", "i", "o", "u", "an", "en", "in", "on", "um", "er", "is", "os", "us", "ax")]  # 1,920 words
TOPICS = ["garden", "tax", "chess", "volcano", "jazz", "bicycle", "sleep", "origami", "storage", "glacier"]


def texts(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    while len(out) < n:
        base = [rng.choice(VOCAB) for _ in range(rng.randint(12, 24))]
        topic = rng.choice(TOPICS)
        for _ in range(1 if rng.random() < 0.7 else rng.randint(2, 4)):
            words = list(base)
            for _ in range(rng.randint(0, 2)):
                words[rng.randrange(len(words))] = rng.choice(VOCAB)
            out.append((f"Explain the {topic}: " + " ".join(words[:6]), " ".join(words)))
    return out[:n]


def write_input(path: str, n: int) -> None:
    rng = random.Random(1)
    with open(path, "wb") as fh:
        for i, (instruction, output) in enumerate(texts(n)):
            fh.write(orjson.dumps({"instruction": f"{instruction} ({i})", "input": "", "output": output,
                                   "meta": {"scores": {"alpagasus": round(rng.random() * 10) / 2}}},
                                  option=orjson.OPT_APPEND_NEWLINE))


def scale(n: int, top_k: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src, out = os.path.join(tmp, "scored.jsonl"), os.path.join(tmp, "best.jsonl")
        t = time.perf_counter()
        write_input(src, n)
        print(f"generated {n:,} records ({os.path.getsize(src) / 1e6:.0f} MB) in {time.perf_counter() - t:.1f} s")
        argv = [sys.executable, "-m", "instructgen.cli", "select", src, "-o", out, "--by", "alpagasus",
                "--top-k", str(top_k), "--diverse"]
        t = time.perf_counter()
        run = subprocess.run(argv, capture_output=True, text=True)
        seconds = time.perf_counter() - t
        if run.returncode:
            sys.exit(run.stderr)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        limit = 1e9 + 700 * n
        print(run.stderr.strip().splitlines()[-1])
        print(f"select --diverse, {top_k:,} of {n:,}: {seconds:.1f} s (limit 60 s, ratio {seconds / 60:.2f}); "
              f"peak RSS {peak / 1e9:.2f} GB (limit {limit / 1e9:.2f} GB, ratio {peak / limit:.2f})")


def reference(n: int, top_k: int) -> None:
    pairs = texts(n, seed=5)
    rng = np.random.default_rng(3)
    scores = np.round(rng.random(n) * 10) / 2
    config = SelectConfig(by="alpagasus", top_k=top_k, diverse=True)
    t = time.perf_counter()
    sigs = signatures([f"{a}\n{b}" for a, b in pairs], config.num_perm, config.seed)
    sketch_s = time.perf_counter() - t
    zeros, tokens = np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.int64)
    t = time.perf_counter()
    fast = Walk(scores, zeros, tokens, config, sketch=lambda idx: sigs[idx]).run()
    fast_s = time.perf_counter() - t
    t = time.perf_counter()
    slow = Walk(scores, zeros, tokens, config, sketch=lambda idx: sigs[idx], brute_force=True).run()
    slow_s = time.perf_counter() - t
    equal = np.array_equal(fast.fate, slow.fate) and np.array_equal(fast.near_of, slow.near_of)
    print(f"reference, {n:,} records, top {top_k:,}: selected {(fast.fate == SELECTED).sum():,}, near "
          f"{(fast.fate == NEAR).sum():,}; equal to brute force: {equal}")
    print(f"  LSH walk {fast_s:.2f} s | brute force over the selected {slow_s:.2f} s | ratio {slow_s / fast_s:.1f}x "
          f"(signatures {sketch_s:.2f} s, shared); the whole-pool rule would compare {n * (n - 1) // 2:,} pairs")
    if not equal:
        sys.exit("NOT EQUAL")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--top-k", type=int, default=10_000)
    ap.add_argument("--reference", type=int, default=20_000)
    ap.add_argument("--skip-scale", action="store_true")
    args = ap.parse_args()
    reference(args.reference, min(args.top_k, args.reference // 2))
    if not args.skip_scale:
        scale(args.n, args.top_k)


if __name__ == "__main__":
    main()
