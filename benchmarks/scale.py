"""Scale: `instructgen dedup` on millions of records, wall time and peak memory per size.

The issue "Curate ten million records in bounded memory". Data comes from benchmarks/scale_data.py
(no downloads), cached in the data folder and reused:
  alpaca    instruction-length records (about 430 bytes of JSONL), en/zh half and half,
            at each of --sizes (default 1M, 2M, 5M, 10M)
  sharegpt  long multi-turn records (about 2 KB), at --long (default 1M)
each with 10 % injected copies (the whole record, edited at the levels of benchmarks/dedup.py).

Compared on the same file, each measurement in its own child process:
  new     `python -m instructgen.cli dedup IN -o OUT.jsonl --progress never`: the code checked out
          here (the streaming path once it lands)
  inmem   the same command on the base commit (today's in-memory path), from a git worktree at
          /work/scale-base (made once); run up to --inmem-max records and where its estimated
          peak stays under --rss-limit
  dask    `new` with --dask (a Dask LocalCluster), at --dask-sizes (each one of --sizes); its output
          must be byte-identical to new's at the same size
Per run: wall time, records/s, peak memory (the peak of the sum of PSS over the child's whole process
tree, workers included, sampled every 0.25 s, and never below the largest single process's
ru_maxrss; PSS splits pages forked workers share with the parent, which a sum of RSS would count once
per process; the column keeps the name "RSS"), peak bytes per record, (peak - base) per record where base is the peak RSS of
`python -c "import instructgen.cli"`, and kept/removed from the CLI's `in = out + ...` line. Outputs
are compared by sha256 (new vs inmem, new vs dask). Then a least-squares line over the alpaca `new`
runs (seconds and bytes per extra record, intercepts) and PASS/FAIL against the targets on this
2-core machine: 10M records in <= 900 s with peak RSS <= 8 GB, peak <= 1 GB + 700 bytes x records
at every size, time and memory within 10 % of the line at every size, and dask byte-identical.
GB = 10^9 bytes throughout. A run whose tree goes over --rss-limit is killed (the machine has 24 GB).

The table is printed and written to benchmarks/results/scale.md. Outputs go to DATA/runs/ and are
deleted after each run unless --keep-outputs (10M records: about 4.3 GB in, as much out).

Usage: python benchmarks/scale.py [--sizes 1000000,2000000,5000000,10000000] [--long 1000000]
       [--paths new,inmem,dask] [--dask-sizes 2000000] [--inmem-max 2000000] [--data DIR]
       [--keep-outputs] [--rss-limit 16] [--seed 0]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np
import psutil

import scale_data

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results", "scale.md")
BASE_COMMIT = "88ace43"
BASE_TREE = "/work/scale-base"
# the base's own packages beside src/ (flows, schemas, data), under the names they import as, so
# the editable install of this checkout cannot lend it newer ones
BASE_PACKAGES = os.path.join(BASE_TREE, ".scale-pythonpath")
# peak RSS per record of the base commit on this data (alpaca at 1M, sharegpt at 100k), to skip what cannot fit
INMEM_BYTES_PER_RECORD = {"alpaca": 4.0e3, "sharegpt": 17.7e3}
GB = 1e9
TARGET_SIZE, TARGET_SECONDS, TARGET_PEAK = 10_000_000, 900, 8 * GB
TARGET_ALLOWANCE, TARGET_BYTES_PER_RECORD = 1 * GB, 700
LINEAR_TOLERANCE = 0.10


@dataclass
class Run:
    kind: str
    n: int
    path: str
    wall_s: float | None = None
    peak_rss: int | None = None
    counts: dict = field(default_factory=dict)
    sha256: str | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.wall_s is not None and not self.note


# ---------------------------------------------------------------------------------------------
# measuring a child process

def tree_rss(root: psutil.Process) -> int:
    total = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    for proc in procs:
        try:
            # PSS, not RSS: forked workers share the parent's pages (pass 2 inherits the decisions), and a sum
            # of RSS would count those pages once per process
            total += proc.memory_full_info().pss
        except psutil.Error:  # exited between listing and reading
            pass
    return total


def kill_tree(root: psutil.Process) -> None:
    try:
        procs = [*root.children(recursive=True), root]
    except psutil.Error:
        return
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass


def measure(cmd: list[str], env: dict | None = None, rss_limit: float | None = None, interval: float = 0.25) -> dict:
    """Run cmd; wall time, peak RSS of its process tree, return code and the end of its stderr."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        root = psutil.Process(proc.pid)
        peak, killed = 0, False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            rss = tree_rss(root)
            peak = max(peak, rss)
            if rss_limit and rss > rss_limit and not killed:
                kill_tree(root)
                killed = True
            time.sleep(interval)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait
        err.seek(max(0, err.seek(0, os.SEEK_END) - 4000))
        tail = err.read().decode("utf-8", "replace")
    return {"wall_s": wall, "peak_rss_bytes": max(peak, usage.ru_maxrss * 1024), "returncode": proc.returncode,
            "stderr_tail": tail, "killed": killed}


def base_rss(env: dict | None) -> int:
    code = "import resource, instructgen.cli; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    return int(output_of([sys.executable, "-c", code], env)) * 1024


def output_of(cmd: list[str], env: dict | None = None) -> str:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout.strip()


# ---------------------------------------------------------------------------------------------
# the three paths

def base_env() -> dict:
    """Environment that runs the base commit's instructgen; makes the worktree the first time."""
    if not os.path.isdir(BASE_TREE):
        subprocess.run(["git", "-C", REPO, "worktree", "add", "--detach", BASE_TREE, BASE_COMMIT], check=True)
    os.makedirs(BASE_PACKAGES, exist_ok=True)
    for folder in ("flows", "schemas", "data"):
        link = os.path.join(BASE_PACKAGES, f"instructgen_{folder}")
        if not os.path.lexists(link):
            os.symlink(os.path.join(BASE_TREE, folder), link)
    return dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(BASE_TREE, "src"), BASE_PACKAGES]))


def check_base_env(env: dict) -> None:
    """Stop unless the base environment imports instructgen (and its flows) from the worktree."""
    code = "import instructgen, instructgen_flows; print(instructgen.__file__); print(instructgen_flows.__file__)"
    files = output_of([sys.executable, "-c", code], env).split()
    head = output_of(["git", "-C", BASE_TREE, "rev-parse", "--short", "HEAD"])
    print(f"inmem: worktree {BASE_TREE} at {head}; imports {', '.join(files)}")
    if not all(os.path.realpath(f).startswith(BASE_TREE + os.sep) for f in files):
        sys.exit(f"inmem: the base environment does not import from {BASE_TREE}")


def dedup_command(path: str, src: str, out: str) -> list[str]:
    cmd = [sys.executable, "-m", "instructgen.cli", "dedup", src, "-o", out, "--progress", "never"]
    return cmd + ["--dask"] if path == "dask" else cmd


def parse_counts(stderr: str) -> dict:
    """{'in': n, 'out': n, 'duplicates': n, ...} from the last `dedup: in N = out N + kind N` line."""
    lines = [ln for ln in stderr.splitlines() if re.match(r"dedup: in \d+ = ", ln)]
    if not lines:
        return {}
    counts = {"in": int(re.match(r"dedup: in (\d+)", lines[-1]).group(1))}
    counts.update({k: int(v) for k, v in re.findall(r"(\w+) (\d+)", lines[-1].split("=", 1)[1])})
    return counts


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "(no stderr)"


def run_dedup(kind: str, n: int, path: str, src: str, env: dict | None, args) -> Run:
    out_dir = os.path.join(args.data, "runs", f"{kind}-{n}-{path}")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    out = os.path.join(out_dir, "out.jsonl")
    try:
        m = measure(dedup_command(path, src, out), env, args.rss_limit * GB)
        run = Run(kind, n, path, m["wall_s"], m["peak_rss_bytes"], parse_counts(m["stderr_tail"]))
        if m["killed"]:
            run.note = f"killed: process tree above --rss-limit {args.rss_limit:g} GB"
        elif m["returncode"]:
            run.note = f"failed: {last_line(m['stderr_tail'])}"
        else:
            run.sha256 = sha256_file(out)
    finally:
        if not args.keep_outputs:
            shutil.rmtree(out_dir, ignore_errors=True)
    return run


def inmem_skip_reason(kind: str, n: int, args) -> str | None:
    per_record = INMEM_BYTES_PER_RECORD[kind]
    need = f"would need ~{n * per_record / GB:.0f} GB at {per_record / 1e3:.1f} KB/record"
    if n > args.inmem_max:
        return f"skipped (above --inmem-max; {need})"
    if n * per_record > args.rss_limit * GB:
        return f"skipped ({need}, above --rss-limit {args.rss_limit:g} GB)"
    return None


def measure_size(kind: str, n: int, args, envs: dict) -> list[Run]:
    src = scale_data.cached(kind, n, args.seed, args.data)
    runs = []
    for path in args.paths:
        if path == "dask" and (kind != "alpaca" or n not in args.dask_sizes):
            continue
        skip = inmem_skip_reason(kind, n, args) if path == "inmem" else None
        run = Run(kind, n, path, note=skip) if skip else run_dedup(kind, n, path, src, envs[path], args)
        print(format_progress(run), flush=True)
        runs.append(run)
    return runs


def format_progress(run: Run) -> str:
    if not run.ok:
        return f"{run.kind} {run.n:,} {run.path}: {run.note}"
    return (f"{run.kind} {run.n:,} {run.path}: {run.wall_s:.1f} s, {run.n / run.wall_s:,.0f} records/s, "
            f"peak {run.peak_rss / GB:.2f} GB, {run.counts}")


# ---------------------------------------------------------------------------------------------
# report

def row_cells(run: Run, base: dict) -> list[str]:
    if not run.ok:
        return [run.kind, f"{run.n:,}", run.path] + ["–"] * 7 + [run.note]
    kept, removed = run.counts.get("out"), run.counts.get("duplicates")
    return [run.kind, f"{run.n:,}", run.path, f"{run.wall_s:.1f}", f"{run.n / run.wall_s:,.0f}",
            f"{run.peak_rss / GB:.2f}", f"{run.peak_rss / run.n:,.0f}",
            f"{(run.peak_rss - base[run.path]) / run.n:,.0f}",
            "–" if kept is None else f"{kept:,}", "–" if removed is None else f"{removed:,}", run.note]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    right = ["---:" if h not in ("kind", "path", "note") else "---" for h in header]
    lines = [header, right, *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def identity_lines(runs: list[Run]) -> list[str]:
    by_key = {(r.kind, r.n, r.path): r for r in runs}
    lines = []
    for (kind, n, path), run in by_key.items():
        new = by_key.get((kind, n, "new"))
        if path == "new" or not new:
            continue
        if run.sha256 and new.sha256:
            same = "yes" if run.sha256 == new.sha256 else "no"
            lines.append(f"{kind} {n:,}: new vs {path} output byte-identical: {same}")
        elif path == "dask":
            lines.append(f"{kind} {n:,}: new vs dask output byte-identical: not compared ({run.note or new.note})")
    return lines


def linear_fit(runs: list[Run]) -> dict | None:
    """Least squares over the alpaca `new` runs: slopes, intercepts, largest relative deviation."""
    pts = sorted((r.n, r.wall_s, r.peak_rss) for r in runs if r.kind == "alpaca" and r.path == "new" and r.ok)
    if len({n for n, _, _ in pts}) < 2:
        return None
    n, wall, peak = (np.array(x, dtype=float) for x in zip(*pts))
    fit = {"sizes": len(pts)}
    for name, y in (("time", wall), ("memory", peak)):
        slope, intercept = np.polyfit(n, y, 1)
        fit[name] = {"slope": slope, "intercept": intercept,
                     "deviation": float(np.max(np.abs(y - (slope * n + intercept)) / y))}
    return fit


def fit_lines(fit: dict | None) -> list[str]:
    if not fit:
        return ["linear fit: needs alpaca `new` runs at two sizes or more"]
    t, m = fit["time"], fit["memory"]
    return [f"linear fit over {fit['sizes']} alpaca `new` runs (least squares):",
            f"  time    {t['slope'] * 1e6:.2f} µs per extra record ({t['slope'] * 1e6:.1f} s per extra million), "
            f"intercept {t['intercept']:.1f} s, largest deviation from the line {t['deviation']:.1%}",
            f"  memory  {m['slope']:,.0f} bytes per extra record, intercept {m['intercept'] / GB:.2f} GB, "
            f"largest deviation from the line {m['deviation']:.1%}"]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def extrapolated(fit: dict, what: str, n: int) -> float:
    return fit[what]["slope"] * n + fit[what]["intercept"]


def ten_million_lines(top: Run | None, fit: dict | None) -> list[str]:
    if top and top.ok:
        return [f"{verdict(top.wall_s <= TARGET_SECONDS)}  10M records in <= {TARGET_SECONDS} s: {top.wall_s:.0f} s",
                f"{verdict(top.peak_rss <= TARGET_PEAK)}  10M records peak RSS <= 8 GB: {top.peak_rss / GB:.2f} GB"]
    why = top.note if top else "not measured"
    if fit:
        why += (f"; the line extrapolates {extrapolated(fit, 'time', TARGET_SIZE):.0f} s, "
                f"{extrapolated(fit, 'memory', TARGET_SIZE) / GB:.2f} GB")
    return [f"n/a   10M records in <= {TARGET_SECONDS} s, peak RSS <= 8 GB: {why}"]


def memory_bound_line(measured: list[Run]) -> list[str]:
    def bound(n: int) -> float:
        return TARGET_ALLOWANCE + TARGET_BYTES_PER_RECORD * n

    if not measured:
        return []
    over = [r for r in measured if r.peak_rss > bound(r.n)]
    detail = ", ".join(f"{r.n:,}: {r.peak_rss / GB:.2f} GB > {bound(r.n) / GB:.2f} GB" for r in over)
    return [f"{verdict(not over)}  peak <= 1 GB + 700 bytes x records: {detail or 'at every size'}"]


def linear_line(fit: dict | None) -> list[str]:
    if not fit or fit["sizes"] < 3:
        return ["n/a   linear growth: needs three sizes or more"]
    worst = max(fit["time"]["deviation"], fit["memory"]["deviation"])
    return [f"{verdict(worst <= LINEAR_TOLERANCE)}  time and memory within {LINEAR_TOLERANCE:.0%} of the line "
            f"at every size: worst {worst:.1%}"]


def dask_lines(runs: list[Run], new: dict[int, Run]) -> list[str]:
    lines = []
    for dask in (r for r in runs if r.path == "dask"):
        local = new.get(dask.n)
        if dask.sha256 and local and local.sha256:
            lines.append(f"{verdict(dask.sha256 == local.sha256)}  dask at {dask.n:,} byte-identical to local: "
                         f"dask {dask.wall_s:.1f} s, local {local.wall_s:.1f} s")
        else:
            why = dask.note or (local.note if local else "no local run")
            lines.append(f"FAIL  dask at {dask.n:,} byte-identical to local: {why}")
    return lines or ["n/a   dask byte-identical to local: not run"]


def target_lines(runs: list[Run], fit: dict | None) -> list[str]:
    new = {r.n: r for r in runs if r.kind == "alpaca" and r.path == "new"}
    return [*ten_million_lines(new.get(TARGET_SIZE), fit), *memory_bound_line([r for r in new.values() if r.ok]),
            *linear_line(fit), *dask_lines(runs, new)]


def machine_line() -> str:
    commit = output_of(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
    dirty = output_of(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"])
    changes = " + uncommitted changes" if dirty else ""
    return (f"{datetime.date.today()}, commit {commit}{changes}; {os.cpu_count()} cores, "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}")


def report(runs: list[Run], base: dict, argv: list[str]) -> str:
    header = ["kind", "records", "path", "wall s", "records/s", "peak RSS GB", "peak B/record",
              "(peak-base) B/record", "kept", "removed", "note"]
    fit = linear_fit(runs)
    parts = [
        "# Scale: instructgen dedup, time and peak memory per size",
        "",
        f"`python benchmarks/scale.py {' '.join(argv)}`  ",
        f"{machine_line()}  ",
        "base (peak RSS of `python -c \"import instructgen.cli\"`): "
        + ", ".join(f"{p} {b / 1e6:.0f} MB" for p, b in base.items()),
        "",
        markdown_table(header, [row_cells(r, base) for r in runs]),
        "",
        *(f"- {ln}" for ln in identity_lines(runs)),
        "",
        "```",
        *fit_lines(fit),
        "",
        *target_lines(runs, fit),
        "```",
    ]
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------

def sizes(text: str) -> list[int]:
    return [int(float(s)) for s in text.split(",") if s.strip()]


def parse_args(argv: list[str]):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=sizes, default=sizes("1000000,2000000,5000000,10000000"),
                    help="alpaca record counts, comma list")
    ap.add_argument("--long", type=int, default=1_000_000, help="sharegpt (long) record count; 0: none")
    ap.add_argument("--paths", type=lambda s: s.split(","), default=["new", "inmem", "dask"])
    ap.add_argument("--dask-sizes", type=sizes, default=sizes("2000000"),
                    help="sizes (among --sizes) for the dask path")
    ap.add_argument("--inmem-max", type=int, default=2_000_000, help="largest size for the inmem path")
    ap.add_argument("--data", default="/work/scale-data",
                    help="cached inputs and run outputs (default /work/scale-data)")
    ap.add_argument("--keep-outputs", action="store_true", help="keep DATA/runs/KIND-N-PATH/ after each run")
    ap.add_argument("--rss-limit", type=float, default=16, help="GB: kill a run whose process tree goes above it")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    unknown = set(args.paths) - {"new", "inmem", "dask"}
    if unknown:
        ap.error(f"unknown paths: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    for n in set(args.dask_sizes) - set(args.sizes) if "dask" in args.paths else ():
        print(f"dask: {n:,} is not among --sizes: not run")
    envs = {"new": None, "dask": None}
    if "inmem" in args.paths:
        envs["inmem"] = base_env()
        check_base_env(envs["inmem"])
    base = {path: base_rss(envs[path]) for path in args.paths}
    runs = []
    for kind, ns in (("alpaca", args.sizes), ("sharegpt", [args.long] if args.long else [])):
        for n in ns:
            runs += measure_size(kind, n, args, envs)
    text = report(runs, base, argv)
    print("\n" + text)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w", encoding="utf-8") as fh:
        fh.write(text)
    print(f"written to {os.path.relpath(RESULTS)}")


if __name__ == "__main__":
    main()
