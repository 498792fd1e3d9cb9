"""Fidelity figures: every real file in ../shared/data converted to every target format.

    python benchmarks/convert_real.py                  # table on stdout
    python benchmarks/convert_real.py --json out.json  # also every count as JSON

For each (file, target): records in, out, rejected, every loss counted, what `validate` finds
wrong in the output (schema and meaning; when the version has it), and for targets LLaMA-Factory
reads (alpaca, history, sharegpt, openai) how many records of our output its own converter aligns
(tests/lf_reader.py, over ../shared/tools/lf_client.py; preference outputs are read with its
`ranking`/`kto_tag` layouts). The MOSS plugin files are also converted as one folder. A file that
aborts the run is reported with its error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("INSTRUCTGEN_SHARED", REPO.parent / "shared"))
sys.path.insert(0, str(REPO / "tests"))


def real_inputs() -> list[Path]:
    data = SHARED / "data"
    files = sorted(p for p in (data / "formats").iterdir() if p.suffix in (".json", ".jsonl"))
    files += sorted(p for p in (data / "real").iterdir() if p.is_file())
    files += sorted((data / "real" / "moss_003_plugin_files").glob("*.json"))
    return files + [data / "real" / "moss_003_plugin_files"]


def expand(path: Path) -> list[str]:
    if not path.is_dir():
        return [str(path)]
    try:
        from instructgen.inputs import expand_inputs
    except ImportError:  # a version that reads no folders
        from instructgen.errors import InstructgenError
        raise InstructgenError(f"{path}: a folder, and this version reads files only") from None
    return expand_inputs([str(path)])


def run_one(path: Path, to: str, out: Path) -> dict:
    from instructgen.convert import ReadOptions, convert
    from instructgen.errors import InstructgenError
    from instructgen.runlog import RunLog

    log = RunLog("convert", out.with_suffix(".rejects.jsonl"))
    try:
        convert(expand(path), str(out), to, log, ReadOptions(announce=lambda _: None))
    except InstructgenError as e:
        return {"error": str(e).replace(str(SHARED), "shared")}
    finally:
        log.close()
    counts = {"in": log.n_in, "out": log.n_out, "rejected": log.dropped["rejected"], "losses": dict(log.losses)}
    notes = log.info.get("notes")
    if notes:
        counts["notes"] = dict(notes)
    invalid = invalid_rows(out, to)
    if invalid is not None:
        counts["invalid"] = invalid
    return counts


def invalid_rows(path: Path, fmt: str) -> int | None:
    """Rows of our output that `validate` rejects (schema, reader, meaning); None without meaning checks."""
    from instructgen import formats, schemas
    from instructgen.errors import BadRecord
    from instructgen.io import read_rows

    try:
        from instructgen.formats.meaning import meaning_problems
    except ImportError:
        return None
    spec, bad = formats.get(fmt), 0
    for row in read_rows(path):
        problems = [row.error] if row.error else list(schemas.errors(fmt, row.data))
        if not problems:
            try:
                problems = meaning_problems(spec.parse(row.data).check(), spec.alternates)
            except BadRecord as e:
                problems = [e.reason]
        bad += bool(problems)
    return bad


def lf_check(out: Path, to: str) -> str | None:
    from lf_reader import LF_READS, lf_client, lf_read

    if to not in LF_READS or not out.exists() or lf_client() is None:
        return None
    first = out.open(encoding="utf-8").readline()
    row = json.loads(first) if first.strip() else {}
    ranking, kto = "chosen" in row, "label" in row and isinstance(row.get("label"), bool)
    try:
        good, total, _ = lf_read(out, LF_READS[to], ranking=ranking, kto=kto)
    except Exception as e:  # noqa: BLE001 - LLaMA-Factory's reader crashing on our output is a finding
        return f"crashed ({type(e).__name__}: {e})"
    layout = " ranking" if ranking else " kto" if kto else ""
    return f"{good}/{total}{layout}"


def main() -> None:
    from instructgen import formats

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", metavar="PATH", help="write every count to this JSON file")
    ap.add_argument("--to", nargs="*", help="only these targets")
    args = ap.parse_args()
    targets = args.to or formats.names(writable_only=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="convert-real-") as work:
        for path in real_inputs():
            name = str(path.relative_to(SHARED / "data"))
            results[name] = {}
            for to in targets:
                out = Path(work) / f"{path.stem}.{to}.jsonl"
                counts = run_one(path, to, out)
                lf = lf_check(out, to) if "error" not in counts else None
                if lf:
                    counts["lf"] = lf
                results[name][to] = counts
                print(_line(name, to, counts), flush=True)
                for f in Path(work).iterdir():
                    f.unlink()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _line(name: str, to: str, c: dict) -> str:
    if "error" in c:
        return f"{name:<62} {to:<9} ERROR {c['error'][:120]}"
    losses = "; ".join(f"{k} {v}" for k, v in sorted(c["losses"].items()))
    lf = f" lf {c['lf']}" if "lf" in c else ""
    lf += f" invalid {c['invalid']}" if "invalid" in c else ""
    notes = ("; notes: " + "; ".join(f"{k} {v}" for k, v in sorted(c["notes"].items()))) if c.get("notes") else ""
    return f"{name:<62} {to:<9} in {c['in']:>5} out {c['out']:>5} rej {c['rejected']:>4}{lf}  {losses}{notes}"


if __name__ == "__main__":
    main()
