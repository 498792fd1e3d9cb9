"""Every output loads where people load it: real files converted to every format, read by the real readers.

    bash ../shared/tools/clients/client_venvs.sh      # builds datasets 4.0 + polars (DS4), LLaMA-Factory, FastChat
    python benchmarks/readers.py                      # every real file in ../shared/data, every format
    python benchmarks/readers.py --quick              # three files, for a first look
    python benchmarks/readers.py --env ds3=/path/to/venv/bin/python   # one more environment

For each (real file, target format) it writes `.parquet` and `.jsonl` with `instructgen convert`, and one
Hub folder (`instructgen push --dry-run`, one config per format) of every real file, then reads them in
separate Python environments, each a real install of the reader:

- `datasets` 3.x, 4.0 (the release LLaMA-Factory 0.9.5 pins) and 5.x: `load_dataset("parquet", ...)`,
  `load_dataset("json", ...)` and `load_dataset(HUB_FOLDER, config)`;
- OpenAI's fine-tuning format checks (../shared/tools/clients/openai_check.py, the current API's rules) on
  every real file written with `--to openai --layout strict` (records with no error / records);
- polars: `read_parquet`, and `read_ndjson` twice: as is (types from the first 100 rows: every row carries
  every key, but a key null in all of those cannot be typed) and with `infer_schema_length=None` ("all rows").

A file counts as read when the reader gives every record and every top-level key the file holds. The table
shows records read / expected per reader and layout, and names each file that fell short and why.
Environments come from `$IG_CLIENTS` (default <tempdir>/ig-clients: ds3/, ds4/ as the venv script builds
them) plus this interpreter; one that is missing is named and skipped.
"""

from __future__ import annotations

import sys

if sys.path and sys.path[0] and __file__.startswith(sys.path[0]):  # benchmarks/select.py would shadow the stdlib
    sys.path.pop(0)

import argparse
import json
import os
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("INSTRUCTGEN_SHARED", REPO.parent / "shared"))
CLIENTS = Path(os.environ.get("IG_CLIENTS", Path(tempfile.gettempdir()) / "ig-clients"))

# what runs inside each environment: read every file, report (records, keys) or the error
READER = r'''
import json, sys, warnings
warnings.filterwarnings("ignore")
jobs = json.load(open(sys.argv[1]))
out = []
try:
    import datasets
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
except ImportError:
    datasets = None
try:
    import polars
except ImportError:
    polars = None

def attempt(fn):
    try:
        n, keys = fn()
        return {"read": n, "keys": sorted(keys)}
    except Exception as e:
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"}

for job in jobs:
    path, layout = job["path"], job["layout"]
    res = {}
    if datasets is not None:
        cache = job["cache"]
        if layout == "parquet":
            f = lambda: (lambda d: (len(d), d.column_names))(datasets.load_dataset("parquet", data_files=path, split="train", cache_dir=cache))
        elif layout == "jsonl":
            f = lambda: (lambda d: (len(d), d.column_names))(datasets.load_dataset("json", data_files=path, split="train", cache_dir=cache))
        else:
            f = lambda: (lambda d: (len(d), d.column_names))(datasets.load_dataset(path, job["config"], split="train", cache_dir=cache))
        res["datasets " + datasets.__version__] = attempt(f)
    if polars is not None and layout != "hub":
        if layout == "parquet":
            f = lambda: (lambda d: (d.height, d.columns))(polars.read_parquet(path))
        else:
            f = lambda: (lambda d: (d.height, d.columns))(polars.read_ndjson(path))
            full = lambda: (lambda d: (d.height, d.columns))(polars.read_ndjson(path, infer_schema_length=None))
            res["polars " + polars.__version__ + " all rows"] = attempt(full)
        res["polars " + polars.__version__] = attempt(f)
    out.append(res)
json.dump(out, open(sys.argv[2], "w"))
'''


def real_inputs(quick: bool) -> list[Path]:
    data = SHARED / "data"
    files = sorted(p for p in (data / "formats").iterdir() if p.suffix in (".json", ".jsonl"))
    files += sorted(p for p in (data / "real").iterdir() if p.is_file() and p.suffix in (".json", ".jsonl"))
    if quick:
        keep = ("llamafactory_glaive_toolcall_zh_demo", "moss_003_plugin_sample", "llamafactory_kto_en_demo")
        files = [p for p in files if p.stem in keep]
    return files


def convert_all(inputs: list[Path], targets: list[str], out: Path) -> list[dict]:
    """Every (input, target) as .parquet and .jsonl; jobs with the records and keys each file holds."""
    from instructgen.convert import ReadOptions, convert
    from instructgen.errors import InstructgenError
    from instructgen.io import read_rows
    from instructgen.runlog import RunLog

    jobs = []
    for src in inputs:
        for to in targets:
            written = []
            for suffix in ("jsonl", "parquet"):
                path = out / f"{src.stem}.{to}.{suffix}"
                log = RunLog("convert", out / f"{src.stem}.{to}.{suffix}.rejects.jsonl")
                try:
                    convert([str(src)], str(path), to, log, ReadOptions(announce=lambda _m: None))
                except InstructgenError as e:
                    print(f"  {src.name} -> {to}: {e}", file=sys.stderr)
                    continue
                finally:
                    log.close()
                if log.n_out:
                    written.append({"path": str(path), "layout": suffix, "expected": log.n_out,
                                    "name": f"{src.name} -> {to}", "format": to})
            keys = sorted({k for row in read_rows(str(out / f"{src.stem}.{to}.jsonl")) for k in row.data}) \
                if written else []
            jobs += [{**job, "keys": keys} for job in written]
    return jobs


OPENAI_CHECK = SHARED / "tools" / "clients" / "openai_check.py"


def openai_checks(inputs: list[Path], out: Path) -> list[tuple[str, int, int, dict]]:
    """OpenAI's fine-tuning format checks (the Cookbook's and the current API's, ../shared/tools/clients/
    openai_check.py) on every real file written with --to openai --layout strict: (name, clean, records, errors)."""
    import importlib.util
    from collections import defaultdict

    from instructgen.convert import ReadOptions, convert
    from instructgen.errors import InstructgenError
    from instructgen.formats.base import DumpOptions
    from instructgen.io import read_rows
    from instructgen.runlog import RunLog

    if not OPENAI_CHECK.exists():
        print(f"  OpenAI's checks not found ({OPENAI_CHECK}); skipped", file=sys.stderr)
        return []
    spec = importlib.util.spec_from_file_location("openai_check", OPENAI_CHECK)
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    results = []
    for src in inputs:
        path = out / f"{src.stem}.openai-strict.jsonl"
        log = RunLog("convert", out / f"{src.stem}.openai-strict.rejects.jsonl")
        try:
            convert([str(src)], str(path), "openai", log, ReadOptions(announce=lambda _m: None),
                    DumpOptions(layout="strict"))
        except InstructgenError as e:
            print(f"  {src.name} -> openai strict: {e}", file=sys.stderr)
            continue
        finally:
            log.close()
        errors: defaultdict = defaultdict(int)
        clean = total = 0
        for row in read_rows(str(path)):
            before = sum(errors.values())
            check.current(row.data, errors)
            total += 1
            clean += sum(errors.values()) == before
        results.append((f"{src.name} -> openai --layout strict", clean, total, dict(errors)))
    return results


def hub_folder(inputs: list[Path], targets: list[str], out: Path) -> list[dict]:
    """One Hub folder (`push --dry-run`) of every input, one config per target."""
    import pyarrow.parquet as pq

    folder = out / "hub"
    cmd = [sys.executable, "-m", "instructgen.cli", "push", *map(str, inputs), "--repo", "me/readers",
           "--formats", ",".join(targets), "--dry-run", str(folder), "--rejects-dir", str(out / "hub-rejects")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        print(f"  push --dry-run failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return []
    jobs = []
    for config in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        n = sum(pq.read_metadata(f).num_rows for f in config.glob("*.parquet"))
        jobs.append({"path": str(folder), "layout": "hub", "config": config.name, "expected": n,
                     "name": f"hub folder, config {config.name}", "format": config.name, "keys": []})
    return jobs


def environments(extra: list[str]) -> dict[str, str]:
    envs = {"this": sys.executable}
    for name in ("ds3", "ds4"):
        python = CLIENTS / name / "bin" / "python"
        if python.exists():
            envs[name] = str(python)
        else:
            print(f"  environment {name}: not built ({python}); skipped", file=sys.stderr)
    for spec in extra:
        name, _, python = spec.partition("=")
        envs[name] = python
    return envs


def read_in(python: str, jobs: list[dict], work: Path) -> list[dict]:
    script, jobs_file, results = work / "reader.py", work / "jobs.json", work / "results.json"
    script.write_text(READER)
    for job in jobs:
        job["cache"] = str(work / "cache")
    jobs_file.write_text(json.dumps(jobs))
    proc = subprocess.run([python, str(script), str(jobs_file), str(results)], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{python}: the reader failed: {proc.stderr.strip()[-500:]}")
    return json.loads(results.read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="three real files instead of all")
    ap.add_argument("--formats", help="comma-separated targets (default: every writable format)")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=PYTHON", help="one more environment")
    ap.add_argument("--json", metavar="PATH", help="also write every result as JSON")
    args = ap.parse_args()
    if not (SHARED / "data").is_dir():
        print(f"no real data at {SHARED / 'data'}; nothing to measure")
        return 0
    from instructgen import formats

    targets = args.formats.split(",") if args.formats else formats.names(writable_only=True)
    inputs = real_inputs(args.quick)
    with tempfile.TemporaryDirectory(prefix="readers-") as tmp:
        out = Path(tmp)
        print(f"converting {len(inputs)} real files to {len(targets)} formats ...", file=sys.stderr)
        jobs = convert_all(inputs, targets, out) + hub_folder(inputs, targets, out)
        table: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # read, expected, files ok, files
        short: list[str] = []
        everything = []
        for env, python in environments(args.env).items():
            work = out / f"env-{env}"
            work.mkdir()
            print(f"reading in {env} ({python}) ...", file=sys.stderr)
            for job, res in zip(jobs, read_in(python, jobs, work)):
                for reader, r in res.items():
                    cell = table[(reader, job["layout"])]
                    ok = "error" not in r and r["read"] == job["expected"] and set(job["keys"]) <= set(r["keys"])
                    cell[0] += r.get("read", 0) if "error" not in r else 0
                    cell[1] += job["expected"]
                    cell[2] += ok
                    cell[3] += 1
                    if not ok:
                        why = r.get("error") or (f"{r['read']} of {job['expected']} records" if r["read"] != job["expected"]
                                                 else f"keys lost: {sorted(set(job['keys']) - set(r['keys']))}")
                        short.append(f"{reader:<16} {job['layout']:<8} {job['name']}: {why}")
                    everything.append({"env": env, "reader": reader, **{k: v for k, v in job.items() if k != "cache"},
                                       **r, "ok": ok})
    print(f"\n{'reader':<16} {'layout':<8} {'records read / expected':>26} {'files fully read':>18}")
    for (reader, layout), (read, expected, ok, n) in sorted(table.items()):
        pct = 100 * read / expected if expected else 100
        print(f"{reader:<16} {layout:<8} {read:>11} / {expected:<8} {pct:5.1f}% {ok:>8} / {n:<6}")
    checks = openai_checks(inputs, Path(tempfile.mkdtemp(prefix="readers-openai-")))
    if checks:
        clean, total = sum(c for _, c, _, _ in checks), sum(t for _, _, t, _ in checks)
        fully = sum(c == t for _, c, t, _ in checks)
        print(f"{'OpenAI checks':<16} {'jsonl':<8} {clean:>11} / {total:<8} {100 * clean / max(total, 1):5.1f}%"
              f" {fully:>8} / {len(checks):<6}")
        short += [f"OpenAI checks    jsonl    {name}: {c} of {t} clean, {errs}" for name, c, t, errs in checks if c != t]
    print(f"\n{len(short)} file(s) not fully read" + (":" if short else ""))
    for line in short:
        print("  " + line)
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
