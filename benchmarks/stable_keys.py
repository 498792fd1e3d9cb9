"""Benchmark: what schema-stable JSONL costs `convert`, before and after the writer learned keys as it writes.

    python benchmarks/stable_keys.py --records 200000 --dir /dev/shm

The same alpaca JSONL as benchmarks/convert.py (40 % of rows carry an input, so their sharegpt/moss rows
carry `meta` and the others are given `"meta": null`), converted to sharegpt and moss, serially
(--workers 1) and by 2 worker processes, each contender in a fresh process:
  unfilled   the writer without schema-stable keys (what the cost is measured against)
  before     the writer as it was: rows reach it as JSONL bytes, so at close it reads every row back to
             learn its keys, then rewrites the file (the stable writer with `takes_jsonl` forced on and
             `learns_keys` off)
  now        the writer as it is: the serial direct path hands it rows; it holds the first rows back and
             adds the keys they show as rows are written, so no second pass runs; workers hand over their
             rows' keys with their bytes (read on every core), so only the rows lacking a key are rewritten
Prints wall and CPU seconds (this process and its workers) and each contender's time over `unfilled`;
the outputs of `before` and `now` must be byte-identical, which the script checks.
"""

from __future__ import annotations

import sys

if sys.path and sys.path[0] and __file__.startswith(sys.path[0]):  # benchmarks/select.py would shadow the stdlib
    sys.path.pop(0)

import argparse
import hashlib
import importlib.util
import json
import resource
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONTENDERS = ("unfilled", "before", "now")


def run(contender: str, src: str, out: str, to: str, workers: int) -> dict:
    from instructgen import convert as convert_module
    from instructgen import io
    from instructgen.convert import ReadOptions, convert
    from instructgen.runlog import RunLog

    if contender == "unfilled":
        class Writer(io.RowWriter):
            def __init__(self, path, stable_keys=False):
                super().__init__(path, stable_keys=False)
        convert_module.RowWriter = Writer
    elif contender == "before":
        io.RowWriter.takes_jsonl = property(lambda self: self.kind in ("jsonl", "jsonl.gz"))
        io.RowWriter.learns_keys = property(lambda self: False)  # workers' rows read back at close
    log = RunLog("convert")
    wall, cpu = time.perf_counter(), time.process_time()
    convert([src], out, to, log, ReadOptions(from_format="alpaca", announce=lambda _: None), workers=workers)
    wall = time.perf_counter() - wall
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert log.balanced and log.n_out == log.n_in
    return {"wall": wall, "cpu": time.process_time() - cpu + children.ru_utime + children.ru_stime}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--dir", help="where to put the data (default: the system's temp folder)")
    ap.add_argument("--run", nargs=5, metavar=("CONTENDER", "SRC", "OUT", "TO", "WORKERS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        contender, src, out, to, workers = args.run
        print(json.dumps(run(contender, src, out, to, int(workers))))
        return
    spec = importlib.util.spec_from_file_location("convert_bench", HERE / "convert.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="stable-keys-") as tmp:
        src = Path(tmp) / "alpaca.jsonl"
        bench.make_data(src, args.records)
        print(f"{args.records:,} alpaca records, {src.stat().st_size / 1e6:.0f} MB JSONL\n")
        print(f"{'target':<9} {'workers':>7} {'contender':<10} {'seconds':>8} {'cpu s':>7} {'x unfilled':>11}")
        for to in ("sharegpt", "moss"):
            for workers in (1, 2):
                res, digests = {}, {}
                for contender in CONTENDERS:
                    out = Path(tmp) / f"{contender}.{to}.jsonl"
                    proc = subprocess.run([sys.executable, __file__, "--run", contender, str(src), str(out), to,
                                           str(workers)], capture_output=True, text=True, check=True)
                    res[contender] = json.loads(proc.stdout)
                    digests[contender] = hashlib.sha256(out.read_bytes()).hexdigest()
                    out.unlink()
                for contender in CONTENDERS:
                    r = res[contender]
                    print(f"{to:<9} {workers:>7} {contender:<10} {r['wall']:>8.2f} {r['cpu']:>7.2f} "
                          f"{r['wall'] / res['unfilled']['wall']:>10.2f}x")
                same = digests["before"] == digests["now"]
                print(f"{'':<9} {'':>7} now / before: {res['now']['wall'] / res['before']['wall']:.2f}x the time, "
                      f"output {'identical' if same else 'DIFFERENT'}\n")
                if not same:
                    raise SystemExit("the outputs of before and now differ")


if __name__ == "__main__":
    main()
