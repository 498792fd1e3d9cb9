"""Benchmark: reading a JSON array and JSONL with instructgen.io.read_rows against json.load / orjson.

    python benchmarks/io_read.py                 # 100,000 alpaca records (about 60 MB as an indented array)
    python benchmarks/io_read.py --records 20000

read_rows decodes every element on its own (so one bad element is one reject) and streams the array in
chunks (so memory follows the largest element, not the file). The baselines read the whole file at once
and stop at the first bad element: json.load (what a plain script does) and orjson.loads (the floor).
Each contender runs in a fresh child process; CPU seconds and peak RSS are printed side by side.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convert import make_data  # noqa: E402  (the same alpaca records as the convert benchmark)


def contender(name: str, path: str) -> None:
    start = time.process_time()
    if name == "read_rows":
        from instructgen.io import read_rows

        n = sum(1 for row in read_rows(path) if row.error is None)
    elif name == "json.load":
        import json

        with open(path, encoding="utf-8") as fh:
            n = len(json.load(fh)) if path.endswith(".json") else sum(1 for line in fh if json.loads(line))
    else:
        import orjson

        with open(path, "rb") as fh:
            n = len(orjson.loads(fh.read())) if path.endswith(".json") else sum(1 for line in fh if orjson.loads(line))
    print(n, time.process_time() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def make(folder: str, records: int) -> None:
    import orjson

    jsonl = Path(folder) / "data.jsonl"
    make_data(jsonl, records)
    rows = [orjson.loads(line) for line in jsonl.open("rb")]
    (Path(folder) / "data.json").write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))


def child(*args: str) -> str:
    """Run this script in a fresh process (the parent stays small, so peak RSS is the child's own)."""
    return subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True).stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--make", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--contender", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.make:
        return make(args.make[0], int(args.make[1]))
    if args.contender:
        return contender(*args.contender)
    with tempfile.TemporaryDirectory() as tmp:
        child("--make", tmp, str(args.records))
        for path in (Path(tmp) / "data.json", Path(tmp) / "data.jsonl"):
            print(f"{path.name}: {args.records} records, {path.stat().st_size / 1e6:.0f} MB")
            results = {}
            for name in ("read_rows", "json.load", "orjson"):
                n, cpu, rss = child("--contender", name, str(path)).split()
                results[name] = (int(n), float(cpu), float(rss))
            base = results["read_rows"][1]
            for name, (n, cpu, rss) in results.items():
                print(f"  {name:<10} {n:>8} records  {cpu:6.2f} s CPU  peak RSS {rss:6.0f} MB  "
                      f"read_rows takes {base / cpu:4.2f}x this")


if __name__ == "__main__":
    main()
