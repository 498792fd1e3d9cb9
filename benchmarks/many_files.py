"""Benchmark: a folder of many one-record files (MOSS ships SFT_data so) through `convert` and `dedup`.

    python benchmarks/many_files.py                          # 100,000 files; the base commit on 500 and 1,000
    python benchmarks/many_files.py --files 20000 --base-files 300,600 --dir /dev/shm
    python benchmarks/many_files.py --base-files ''          # no base-commit runs

Writes N pretty-printed MOSS objects, one a file, in folders of 1,000 (`conversation_1.json` ...; one in
20 repeats an earlier conversation, so dedup has work), then times, each in a fresh process as a user
runs it:
  convert   instructgen convert DIR --to openai -o out.jsonl
  dedup     instructgen dedup DIR -o out.jsonl (the base commit takes no folder: its files are named)
The issue's baseline (24d2370) checked every output against every input and sketched each file on its
own: quadratic (1,000 files 12 s, 5,000 nothing in 300 s). Its code is taken from git (`git archive`) and
run on the smaller --base-files counts beside this tree's code on the same files, so the growth shows:
doubling the files quadruples its time and doubles this one's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASE = "24d2370"
WORDS = ("explain describe summarize write list compare translate the a of model data language learning quick "
         "brown fox river mountain city history science music poem story function code python answer").split()


def moss_row(k: int, rng: random.Random) -> dict:
    def text(n: int) -> str:
        return " ".join(rng.choices(WORDS, k=n))

    return {"conversation_id": k, "meta_instruction": "You are an AI assistant whose name is MOSS.\n", "num_turns": 1,
            "chat": {"turn_1": {"Human": f"<|Human|>: {text(12)}?<eoh>\n", "Inner Thoughts": "<|Inner Thoughts|>: None<eot>\n",
                                "Commands": "<|Commands|>: None<eoc>\n", "Tool Responses": "<|Results|>: None<eor>\n",
                                "MOSS": f"<|MOSS|>: {text(40)}.<eom>\n"}}}


def make_files(folder: Path, n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    rows: list[dict] = []
    paths = []
    for k in range(1, n + 1):
        row = dict(rows[rng.randrange(len(rows))], conversation_id=k) if rows and rng.random() < 0.05 else moss_row(k, rng)
        rows.append(row) if len(rows) < 5000 else None
        path = folder / f"part_{(k - 1) // 1000:03d}" / f"conversation_{k}.json"
        if (k - 1) % 1000 == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(row, ensure_ascii=False, indent=4) + "\n", encoding="utf-8")
        paths.append(str(path))
    return paths


def base_tree(where: Path) -> Path:
    """The base commit's src/ (from git, not checked out over this tree)."""
    archive = where / "base.tar"
    with open(archive, "wb") as fh:
        subprocess.run(["git", "archive", BASE, "src"], cwd=REPO, stdout=fh, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(where / "base", filter="data")
    return where / "base" / "src"


def timed(args: list[str], cwd: Path, src: Path | None, timeout: float) -> tuple[float, float] | None:
    """(wall seconds, CPU seconds) of `instructgen ARGS` in a fresh process (None: past the timeout). On a
    shared machine the CPU time is the steadier figure."""
    env = dict(os.environ, PYTHONPATH=str(src)) if src is not None else dict(os.environ)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "instructgen.cli", *args], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"instructgen {' '.join(args[:3])} ... failed:\n{done.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run_both(folder: Path, paths: list[str], work: Path, src: Path | None, timeout: float) -> dict[str, float | None]:
    for name in ("out.openai.jsonl", "out.openai.rejects.jsonl", "out.dedup.jsonl", "out.dedup.rejects.jsonl",
                 "out.dedup.stats.json"):
        (work / name).unlink(missing_ok=True)
    seconds = {"convert": timed(["convert", str(folder), "--to", "openai", "-o", str(work / "out.openai.jsonl")],
                                work, src, timeout)}
    named = paths if src is not None else [str(folder)]  # the base commit's dedup takes files, not folders
    seconds["dedup"] = timed(["dedup", *named, "-o", str(work / "out.dedup.jsonl")], work, src, timeout)
    return seconds


def show(seconds: tuple[float, float] | None, timeout: float) -> str:
    return f"> {timeout:.0f}" if seconds is None else f"{seconds[0]:.1f} ({seconds[1]:.1f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=100_000, help="files of one record each (default 100,000)")
    ap.add_argument("--base-files", default="500,1000", help="counts run with the base commit too ('' for none)")
    ap.add_argument("--dir", help="where to write the files (default: a temporary folder)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds a run may take (default 600)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="many-files.", dir=args.dir))
    try:
        base_counts = [int(x) for x in args.base_files.split(",") if x.strip()]
        src = base_tree(root) if base_counts else None
        rows = []
        for n in [*base_counts, args.files]:
            folder = root / f"SFT_data_{n}"
            started = time.perf_counter()
            paths = make_files(folder, n)
            print(f"{n} files written in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
            now = run_both(folder, paths, root, None, args.timeout)
            before = run_both(folder, paths, root, src, args.timeout) if n in base_counts else {}
            for command in ("convert", "dedup"):
                rows.append((n, command, before.get(command, "-"), now[command]))
                print(rows[-1], file=sys.stderr, flush=True)
            shutil.rmtree(folder)
        print(f"\none record a file, 2 cores; seconds of a fresh `instructgen` process "
              f"(base: {BASE}, the issue's 1,000 files: 12 s convert, 23 s dedup; 5,000: > 300 s convert)")
        print("wall seconds (CPU seconds of the process and its workers); load average at the end: "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"{'files':>8}  {'command':<8}  {BASE:>16}  {'now':>16}  {'base / now':>10}")
        for n, command, before, now in rows:
            ratio = f"{before[0] / now[0]:.1f}x" if isinstance(before, tuple) and now else "-"
            base_text = "-" if before == "-" else show(before, args.timeout)
            print(f"{n:>8}  {command:<8}  {base_text:>16}  {show(now, args.timeout):>16}  {ratio:>10}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
