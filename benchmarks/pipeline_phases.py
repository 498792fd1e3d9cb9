"""Where a pipeline run spends its time and memory, phase by phase (issue 22's scale figures).

    python benchmarks/pipeline_phases.py --records 1000000
    python benchmarks/pipeline_phases.py --records 10000000 --data-dir /big/disk   # about an hour on 2 cores

The records are benchmarks/pipeline.py's (alpaca, en/zh, exact and near copies, junk), run through
`instructgen.pipeline.run` (read -> filter -> exact + near dedup -> alpaca + sharegpt) with steps that time
each phase: curate (the shards: read, filter, sketch, on the worker processes), the dedup decisions (in this
process, one thread per core), and the write pass (this process reviews the duplicates while one process per
format writes). A thread samples every half second the resident memory of this process and of every process
under it, and the CPU seconds each child has used. Printed per phase: wall seconds, this process's CPU
seconds, the children's CPU seconds, and the peak RSS of this process and of the whole tree; then the counts
per stage. Numbers from another machine or a busy one are not comparable: the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]
sys.path.insert(0, str(HERE.parent / "src"))

from pipeline import config_for, make_data  # noqa: E402  (benchmarks/pipeline.py: the same records)

from instructgen.pipeline import InProcess, OutputFolder, run  # noqa: E402

PHASES = {"curate": "curate", "cluster": "decisions", "write": "write"}
TICK = os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _cpu_s(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except OSError:
        return None


def _children(pid: int) -> list[int]:
    found = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                for child in map(int, fh.read().split()):
                    found += [child, *_children(child)]
    except OSError:
        pass
    return found


class Phase:
    def __init__(self, name: str):
        self.name, self.wall, self.cpu = name, 0.0, 0.0
        self.peak_parent = self.peak_tree = 0.0
        self.child_cpu: dict[int, tuple[float, float]] = {}  # pid -> (CPU seconds when first seen, last seen)

    @property
    def children_cpu(self) -> float:
        return sum(last - first for first, last in self.child_cpu.values())


class Meter:
    """The phase running now, sampled by a thread: RSS peaks and the children's CPU."""

    def __init__(self) -> None:
        self.phases: dict[str, Phase] = {}
        self.now: Phase | None = None
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        me = os.getpid()
        while True:
            phase = self.now
            if phase is not None:
                kids = _children(me)
                parent = _rss_mb(me)
                phase.peak_parent = max(phase.peak_parent, parent)
                phase.peak_tree = max(phase.peak_tree, parent + sum(map(_rss_mb, kids)))
                for pid in kids:
                    cpu = _cpu_s(pid)
                    if cpu is not None:
                        first = phase.child_cpu.get(pid, (cpu, cpu))[0]
                        phase.child_cpu[pid] = (first, cpu)
            time.sleep(0.5)

    def start(self, step: str) -> tuple[Phase, float, float]:
        self.now = self.phases.setdefault(step, Phase(PHASES[step]))
        return self.now, time.perf_counter(), time.process_time()

    def stop(self, started: tuple[Phase, float, float]) -> None:
        phase, wall, cpu = started
        phase.wall += time.perf_counter() - wall
        phase.cpu += time.process_time() - cpu
        self.now = None


class MeteredSteps(InProcess):
    """The pipeline's default steps, each phase timed (a map from its first item to its last)."""

    def __init__(self, meter: Meter):
        self.meter = meter

    def map(self, step, fn, items, *args):
        started = self.meter.start(step) if step in PHASES else None
        yield from super().map(step, fn, items, *args)
        if started:
            self.meter.stop(started)

    def call(self, step, fn, *args, fresh=False):
        started = self.meter.start(step) if step in PHASES else None
        try:
            return super().call(step, fn, *args, fresh=fresh)
        finally:
            if started:
                self.meter.stop(started)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--shard-size", type=int, default=20_000)
    ap.add_argument("--data-dir", type=Path, help="where the records and the output go (default: a temporary "
                    "folder, removed at the end); a data file of that size already there is reused")
    args = ap.parse_args()
    tmp = args.data_dir or Path(tempfile.mkdtemp(prefix="instructgen-phases-"))
    tmp.mkdir(parents=True, exist_ok=True)
    data = tmp / f"data{args.records}.jsonl"
    if not data.exists():
        print(f"making {args.records:,} records ...", file=sys.stderr)
        make_data(data, args.records)
    cfg = config_for(data, args.shard_size)
    out = tmp / "phases-out"
    shutil.rmtree(out, ignore_errors=True)
    meter = Meter()
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        with OutputFolder(out) as layout:
            summary = run(cfg, layout, MeteredSteps(meter), announce=lambda _m: None)
    finally:
        if args.data_dir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    total = time.perf_counter() - t0
    print(f"pipeline.run, {args.records:,} records, shards of {args.shard_size:,}, {os.cpu_count()} cores, "
          f"load average before {load:.2f}, after {os.getloadavg()[0]:.2f}")
    print(f"   {'phase':<10} {'wall s':>8} {'this cpu s':>11} {'children cpu s':>15} {'peak this MB':>13} "
          f"{'peak tree MB':>13}")
    for phase in meter.phases.values():
        print(f"   {phase.name:<10} {phase.wall:8.1f} {phase.cpu:11.1f} {phase.children_cpu:15.1f} "
              f"{phase.peak_parent:13,.0f} {phase.peak_tree:13,.0f}")
    print(f"   {'total':<10} {total:8.1f}   (records/s {args.records / total:,.0f})")
    print("   counts out per stage:", {s["stage"]: s["out"] for s in summary.stages})


if __name__ == "__main__":
    main()
