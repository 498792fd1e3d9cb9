"""Benchmark: what a command pays before it starts, and what the imports kept inside functions save.

    python benchmarks/startup.py              # 15 fresh processes per row
    python benchmarks/startup.py --runs 5

Every command imports all of `instructgen.cli`'s command modules (to list them and register the one asked
for), so a stage module imported at the top of any of them would be paid by every command. The rows, each
in a fresh process, min and median over --runs:
  now     the parser of `instructgen formats` as it is built today
  eager   the same plus the stage modules the command modules import inside their commands (convert,
          filter, dedup, stats, the hub configs, the flag builder, the LLaMA-Factory check, tqdm): what
          every command would pay if those imports moved to the top
and the modules each loads.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

NOW = ("import sys, time; t = time.perf_counter(); from instructgen.cli import build_parser; "
       "build_parser(['formats'])")
STAGES = ("instructgen.convert", "instructgen.curate.filter", "instructgen.curate.dedup", "instructgen.curate.stats",
          "instructgen.hub.config", "instructgen.cli.options", "instructgen.formats.llamafactory_check",
          "instructgen.schemas", "tqdm")
EAGER = NOW + "; import " + ", ".join(STAGES)
REPORT = "; print((time.perf_counter() - t) * 1000, len(sys.modules))"


def sample(code: str, runs: int) -> tuple[list[float], int]:
    times, modules = [], 0
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code + REPORT], capture_output=True, text=True, check=True)
        ms, modules = out.stdout.split()
        times.append(float(ms))
    return times, int(modules)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    rows = {}
    for name, code in (("now", NOW), ("eager", EAGER)):
        rows[name] = sample(code, args.runs)
    print(f"{'':<6} {'min ms':>8} {'median ms':>10} {'modules':>8}")
    for name, (times, modules) in rows.items():
        print(f"{name:<6} {min(times):>8.0f} {statistics.median(times):>10.0f} {modules:>8}")
    now, eager = rows["now"][0], rows["eager"][0]
    print(f"eager / now: {min(eager) / min(now):.1f}x (min), "
          f"{statistics.median(eager) / statistics.median(now):.1f}x (median)")


if __name__ == "__main__":
    main()
