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

- FastChat 0.2.36 (`fc` venv, ../shared/tools/clients/fastchat_client.py) on every real file written with
  `--to sharegpt -o X.json` (the JSON array `fastchat.train.train` json.load()s): its `preprocess` (vicuna
  template, exact masking arithmetic with a stub tokenizer) and its `fastchat.data` scripts;
- ChatGLM3's finetune code (chatglm3_client.py's stub tokenizer and loaders, run in the `ds4` venv) on every
  real file written with `--to chatglm3 -o X.json`: the current `finetune_demo/finetune_hf.py` (`datasets`
  loading, `process_batch`) and the older `finetune_chatmodel_demo/preprocess_utils.py` (json.load, then
  `format_conversation`, which reads tools). Their source files are not shipped with the client script: put
  them in `$CHATGLM3_DEMO` (default <ig-clients>/chatglm3/: `finetune_hf.py`, `preprocess_utils.py` from
  THUDM/ChatGLM3), and `astunparse` (which preprocess_utils imports) in <ig-clients>/glm3-site
  (`pip install --target <ig-clients>/glm3-site astunparse six`);
- LLaMA-Factory 0.9.5's whole data path (`lf` venv, ../shared/tools/clients/lf_full.py: `get_dataset`,
  `datasets` 4.0 loading, alignment, template encoding) on every real file written with
  `--to alpaca|sharegpt|openai -o X.json --dataset-info dataset_info.json`, through the entry instructgen
  wrote: stage `rm` for pairs (`ranking`), `kto` for `kto_tag`, `sft` otherwise.

A file counts as read when the reader gives every record and every top-level key the file holds. The table
shows records read / expected per reader and layout, and names each file that fell short and why. For the
clients, a record counts when the client turns it into training data with trained tokens; records a client
cannot represent at all (FastChat: tool turns, a system turn, preference pairs; ChatGLM3's current demo:
tools) are counted apart and named, so the table shows what it reads of what it could.
Environments come from `$IG_CLIENTS` (default <tempdir>/ig-clients: ds3/, ds4/, fc/, lf/ as the venv script
builds them) plus this interpreter; one that is missing is named and skipped.
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
READERS = ("datasets", "openai", "fastchat", "chatglm3", "llamafactory")
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


CLIENT_SCRIPTS = SHARED / "tools" / "clients"
GLM3_DEMO = Path(os.environ.get("CHATGLM3_DEMO", CLIENTS / "chatglm3"))
GLM3_SITE = CLIENTS / "glm3-site"  # astunparse, which ChatGLM3's preprocess_utils imports
OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}  # no Hub look-ups for local files

# FastChat, in the fc venv: fastchat_client.py's stub tokenizer and checks, one verdict per record
FASTCHAT_READER = r"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("fastchat_client", sys.argv[1])
fc = importlib.util.module_from_spec(spec); spec.loader.exec_module(fc)
T, clean = fc.T, fc.clean_sharegpt
def why(e): return f"{type(e).__name__}: {str(e).splitlines()[0][:80] if str(e) else ''}"
out = []
for job in json.load(open(sys.argv[2])):
    data = json.load(open(job["path"], "r"))  # as fastchat.train.train.make_supervised_data_module
    verdicts = []
    for ex in data:
        conv = ex["conversations"]
        # room for every turn and the vicuna template (fastchat_client.py's 50 a turn + 64 is less than its
        # system prompt: a short record's answer was cut off)
        n = sum(len(m.get("value") or "") for m in conv) + 50 * len(conv) + 1024
        fc.MISMATCH.clear()
        try:
            got = T.preprocess([conv], fc.Tok(n))
            verdicts.append("tokenization mismatch" if fc.MISMATCH else
                            "ok" if (got["labels"][0] != T.IGNORE_TOKEN_ID).any() else "no trained tokens")
        except KeyError as e:
            verdicts.append(f"KeyError role {e}")
        except AssertionError:
            verdicts.append("roles do not alternate")
        except Exception as e:
            verdicts.append(why(e))
    kept = []  # clean_sharegpt's codes: 0 kept, 1 too short, 2 wrong roles, 3 blocked word (a content filter), 4 html
    for ex in data:
        try:
            code = clean.clean_html_one_sample(json.loads(json.dumps(ex)))[1]
            kept.append("ok" if code in (0, 3) else {1: "too short", 2: "wrong roles", 4: "html"}.get(code, str(code)))
        except Exception as e:
            kept.append(why(e))
    out.append({"verdicts": verdicts, "clean_sharegpt": kept,
                "string_ids": sum(isinstance(ex.get("id"), str) for ex in data)})
json.dump(out, open(sys.argv[3], "w"))
"""

# ChatGLM3, in a datasets venv: chatglm3_client.py's stub tokenizer and loaders, one verdict per record
CHATGLM3_READER = r"""
import importlib.util, json, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("chatglm3_client", sys.argv[1])
client = importlib.util.module_from_spec(spec); spec.loader.exec_module(client)
client.HERE = Path(sys.argv[2])
import datasets
from datasets import Split
datasets.disable_progress_bars()
head = client.load_head()
stubbed = ("transformers", "torch", "torch.utils", "torch.utils.data")
before = {name: sys.modules.get(name) for name in stubbed}
old = client.load_old()
for name, module in before.items():  # load_old stubs torch to exec the file; datasets must not see the stub
    if module is None:
        sys.modules.pop(name, None)
    else:
        sys.modules[name] = module
tok = client.StubTok()
def why(e): return f"{type(e).__name__}: {str(e).splitlines()[0][:80] if str(e) else ''}"
out = []
for job in json.load(open(sys.argv[3])):
    path, res = job["path"], {}
    # the current demo: datasets.load_dataset("json") of the .json file, then process_batch (a row at a time)
    try:
        ds = head["_load_datasets"](Path(path).parent, Path(path).suffix, {Split.TRAIN: path}, None)["train"]
        verdicts = []
        for i in range(len(ds)):
            try:
                got = head["process_batch"](ds[i:i + 1], tok, 10**6, 10**6)
                verdicts.append("ok" if any(l != -100 for l in got["labels"][0]) else "no trained tokens")
            except NotImplementedError:
                verdicts.append("NotImplementedError: tools")
            except Exception as e:
                verdicts.append(why(e))
        res["head"] = {"verdicts": verdicts}
    except Exception as e:
        res["head"] = {"error": why(e)}
    # the older demo: finetune.py json.load()s a .json file; MultiTurnDataset -> format_conversation
    verdicts = []
    for row in json.load(open(path, encoding="utf-8")):
        try:
            tokens, masks = old["format_conversation"](row, tok, "conversations", "tools")
            if "tools" in row and not row["tools"]:
                verdicts.append(f"tools prompt made of {json.dumps(row['tools'])} (the key is there)")
            else:
                verdicts.append("ok" if any(masks) else "no trained tokens")
        except Exception as e:
            verdicts.append(why(e))
    res["old"] = {"verdicts": verdicts}
    out.append(res)
json.dump(out, open(sys.argv[4], "w"))
"""


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


def _cli_quietly(args: list[str]) -> int:
    """instructgen's command line in this process, its summary lines kept out of the report."""
    import contextlib
    import io as _io

    from instructgen.cli import main as cli

    with contextlib.redirect_stderr(_io.StringIO()), contextlib.redirect_stdout(_io.StringIO()):
        return cli(args)


def client_files(inputs: list[Path], out: Path) -> dict[str, list[dict]]:
    """Every input as the clients take it, written by the README's commands: sharegpt and chatglm3 JSON arrays
    (FastChat, ChatGLM3), and alpaca/sharegpt/openai JSON arrays with their LLaMA-Factory entry in
    out/lf/dataset_info.json (`--dataset-info`)."""
    files: dict[str, list[dict]] = {"sharegpt": [], "chatglm3": [], "llamafactory": []}
    lf_dir = out / "lf"
    lf_dir.mkdir()
    for src in inputs:
        for to in ("sharegpt", "chatglm3"):
            path = out / f"{src.stem}.{to}.json"
            if _cli_quietly(["convert", str(src), "--to", to, "-o", str(path)]) == 0 and path.exists():
                rows = json.loads(path.read_text(encoding="utf-8"))
                if rows:
                    files[to].append({"path": str(path), "name": f"{src.name} -> {to}", "rows": rows})
        for to in ("alpaca", "sharegpt", "openai"):
            path = lf_dir / f"{src.stem}.{to}.json"
            args = ["convert", str(src), "--to", to, "-o", str(path), "--dataset-info", str(lf_dir / "dataset_info.json")]
            if _cli_quietly(args) == 0 and path.exists() and json.loads(path.read_text(encoding="utf-8")):
                files["llamafactory"].append({"path": str(path), "name": f"{src.name} -> {to}", "entry": path.stem})
    return files


def fastchat_can(row: dict) -> str | None:
    """Why FastChat's ShareGPT layout (human/gpt turns only) cannot represent a sharegpt row (None: it can)."""
    if row.get("chosen") is not None or row.get("rejected") is not None:
        return "preference pair (no answer turn)"
    tags = {t.get("from") for t in row["conversations"]}
    if tags & {"function_call", "observation"}:
        return "tool turns"
    if "system" in tags:
        return "system turn"
    return None


def fastchat_cleans(row: dict) -> str | None:
    """fastchat_can, and what fastchat.data.clean_sharegpt drops whatever the layout."""
    if (why := fastchat_can(row)) is not None:
        return why
    if sum(len(t["value"]) for t in row["conversations"]) < 16:
        return "under 16 characters (clean_sharegpt's length filter)"
    return None


def fastchat_trains(row: dict) -> str | None:
    """fastchat_can, and what its vicuna preprocessing cannot train on whatever the layout."""
    if (why := fastchat_can(row)) is not None:
        return why
    if any("</s>" in t["value"] for t in row["conversations"]):
        return "'</s>' inside a turn (the vicuna separator)"
    return None


def chatglm3_head_can(row: dict) -> str | None:
    """Why ChatGLM3's current finetune demo cannot represent a chatglm3 row (it raises NotImplementedError)."""
    if row.get("tools") is not None or any(t.get("role") == "tool" for t in row["conversations"]):
        return "tools (the current demo refuses them)"
    return None


def run_client(python: str, script: str, args: list[str], work: Path, name: str, env: dict | None = None) -> list:
    """Run a reader script in its environment; its JSON results (the last argument it is given)."""
    driver, results = work / f"read_with_{name}.py", work / f"read_with_{name}.results.json"
    driver.write_text(script)
    proc = subprocess.run([python, str(driver), *args, str(results)], capture_output=True, text=True,
                          env={**os.environ, **OFFLINE, **(env or {})})
    if proc.returncode:
        raise SystemExit(f"{name} ({python}) failed: {proc.stderr.strip()[-800:]}")
    return json.loads(results.read_text())


def tally(cells: dict, short: list[str], reader: str, name: str, verdicts: list[str], can: list[str | None]) -> None:
    """One file's per-record verdicts into the table: read / representable, what it cannot represent apart."""
    read = sum(v == "ok" and c is None for v, c in zip(verdicts, can))
    expected = sum(c is None for c in can)
    cell = cells.setdefault(reader, [0, 0, 0, 0, defaultdict(int)])
    cell[0] += read
    cell[1] += expected
    cell[2] += read == expected
    cell[3] += 1
    for c in can:
        if c is not None:
            cell[4][c] += 1
    failed = defaultdict(int)
    for v, c in zip(verdicts, can):
        if c is None and v != "ok":
            failed[v] += 1
    if failed:
        short.append(f"{reader}: {name}: {read} of {expected} read; " +
                     ", ".join(f"{why} x{n}" for why, n in sorted(failed.items(), key=lambda x: -x[1])))


def fastchat_reads(files: list[dict], work: Path, cells: dict, short: list[str]) -> None:
    python = CLIENTS / "fc" / "bin" / "python"
    if not python.exists():
        print(f"  FastChat: environment fc not built ({python}); skipped", file=sys.stderr)
        return
    jobs = work / "fastchat.jobs.json"
    jobs.write_text(json.dumps([{"path": f["path"]} for f in files]))
    print(f"reading {len(files)} sharegpt files with FastChat 0.2.36 ...", file=sys.stderr)
    results = run_client(str(python), FASTCHAT_READER, [str(CLIENT_SCRIPTS / "fastchat_client.py"), str(jobs)],
                         work, "fastchat")
    for f, res in zip(files, results):
        n = len(f["rows"])
        tally(cells, short, "FastChat train.preprocess", f["name"], res["verdicts"], [fastchat_trains(r) for r in f["rows"]])
        tally(cells, short, "FastChat clean_sharegpt", f["name"], res["clean_sharegpt"],
              [fastchat_cleans(r) for r in f["rows"]])
        tally(cells, short, "FastChat string id", f["name"],
              ["ok"] * res["string_ids"] + ["no string id"] * (n - res["string_ids"]), [None] * n)


def chatglm3_reads(files: list[dict], work: Path, cells: dict, short: list[str]) -> None:
    python = CLIENTS / "ds4" / "bin" / "python"
    missing = [p for p in (python, GLM3_DEMO / "finetune_hf.py", GLM3_DEMO / "preprocess_utils.py", GLM3_SITE) if
               not p.exists()]
    if missing:
        print(f"  ChatGLM3: {', '.join(map(str, missing))} missing (see this script's docstring); skipped",
              file=sys.stderr)
        return
    jobs = work / "chatglm3.jobs.json"
    jobs.write_text(json.dumps([{"path": f["path"]} for f in files]))
    print(f"reading {len(files)} chatglm3 files with ChatGLM3's finetune code ...", file=sys.stderr)
    results = run_client(str(python), CHATGLM3_READER,
                         [str(CLIENT_SCRIPTS / "chatglm3_client.py"), str(GLM3_DEMO), str(jobs)], work, "chatglm3",
                         {"PYTHONPATH": str(GLM3_SITE)})
    for f, res in zip(files, results):
        n = len(f["rows"])
        head = res["head"].get("verdicts") or [f"load failed: {res['head'].get('error')}"] * n
        tally(cells, short, "ChatGLM3 finetune_hf", f["name"], head, [chatglm3_head_can(r) for r in f["rows"]])
        tally(cells, short, "ChatGLM3 preprocess_utils", f["name"], res["old"]["verdicts"], [None] * n)


MEDIA_NEEDS_TEMPLATE = "media (lf_full.py encodes with the text-only qwen template)"


def llamafactory_reads(files: list[dict], work: Path, cells: dict, short: list[str]) -> None:
    """LLaMA-Factory's get_dataset through the dataset_info.json entries instructgen wrote, each at its stage."""
    python = CLIENTS / "lf" / "bin" / "python"
    if not python.exists() or not files:
        print(f"  LLaMA-Factory: environment lf not built ({python}); skipped", file=sys.stderr)
        return
    lf_dir = Path(files[0]["path"]).parent
    info = json.loads((lf_dir / "dataset_info.json").read_text())
    stage_of = {name: "rm" if e.get("ranking") else "kto" if e.get("columns", {}).get("kto_tag") else "sft"
                for name, e in info.items()}
    args = [x for f in files for x in (f["entry"], stage_of[f["entry"]])]
    print(f"reading {len(files)} files with LLaMA-Factory 0.9.5's get_dataset ...", file=sys.stderr)
    proc = subprocess.run([str(python), str(CLIENT_SCRIPTS / "lf_full.py"), str(lf_dir), *args],
                          capture_output=True, text=True, env={**os.environ, **OFFLINE, "ECO": str(work / "lf-eco")})
    results = {}
    for line in proc.stdout.splitlines():  # LLaMA-Factory prints its examples on stdout too
        try:
            res = json.loads(line)
        except ValueError:
            continue
        if isinstance(res, dict) and "dataset" in res:
            results[res["dataset"]] = res
    for f in files:
        res = results.get(f["entry"], {"error": f"no result (lf_full.py exit {proc.returncode})", "records_in": 0})
        stage = stage_of[f["entry"]]
        n = res.get("records_in") or len(json.loads(Path(f["path"]).read_text(encoding="utf-8")))
        good = res.get({"sft": "with_trained_tokens", "rm": "pairs_distinct", "kto": "records_encoded"}[stage], 0)
        why = res.get("error") or "not encoded"
        rows = json.loads(Path(f["path"]).read_text(encoding="utf-8"))
        can = [MEDIA_NEEDS_TEMPLATE if any(r.get(m) for m in ("images", "videos", "audios")) else None for r in rows]
        if any(can):  # get_dataset stops at the first such row: the file reads nothing
            good = 0
        tally(cells, short, f"LLaMA-Factory {stage}", f["name"], ["ok"] * good + [why] * (n - good), can)


def print_clients(cells: dict) -> None:
    print(f"\n{'client':<28} {'records read / representable':>30} {'files fully read':>18}   cannot represent")
    for reader, (read, expected, ok, n, apart) in cells.items():
        pct = 100 * read / expected if expected else 100
        cannot = ", ".join(f"{why}: {k}" for why, k in sorted(apart.items())) or "-"
        print(f"{reader:<28} {read:>12} / {expected:<9} {pct:5.1f}% {ok:>8} / {n:<6}   {cannot}")


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
    ap.add_argument("--json", metavar="PATH", help="also write every result as JSON (datasets, clients, not_fully_read)")
    ap.add_argument("--readers", default=",".join(READERS),
                    help=f"comma-separated, of {', '.join(READERS)} (default: all)")
    args = ap.parse_args()
    if not (SHARED / "data").is_dir():
        print(f"no real data at {SHARED / 'data'}; nothing to measure")
        return 0
    from instructgen import formats

    targets = args.formats.split(",") if args.formats else formats.names(writable_only=True)
    readers = set(args.readers.split(","))
    if readers - set(READERS):
        ap.error(f"--readers: unknown {', '.join(sorted(readers - set(READERS)))}; choose from {', '.join(READERS)}")
    inputs = real_inputs(args.quick)
    short: list[str] = []
    everything: list[dict] = []
    cells: dict = {}
    with tempfile.TemporaryDirectory(prefix="readers-") as tmp:
        out = Path(tmp)
        if "datasets" in readers:
            datasets_and_polars(inputs, targets, out, args.env, short, everything)
        if "openai" in readers:
            short += openai_table(inputs, out)
        if readers & {"fastchat", "chatglm3", "llamafactory"}:
            print(f"writing {len(inputs)} real files as the clients read them ...", file=sys.stderr)
            files = client_files(inputs, out)
            if "fastchat" in readers:
                fastchat_reads(files["sharegpt"], out, cells, short)
            if "chatglm3" in readers:
                chatglm3_reads(files["chatglm3"], out, cells, short)
            if "llamafactory" in readers:
                llamafactory_reads(files["llamafactory"], out, cells, short)
            print_clients(cells)
    print(f"\n{len(short)} file(s) not fully read" + (":" if short else ""))
    for line in short:
        print("  " + line)
    if args.json:
        clients = {reader: {"read": read, "representable": expected, "files_fully_read": ok, "files": n,
                            "cannot_represent": dict(apart)} for reader, (read, expected, ok, n, apart) in cells.items()}
        Path(args.json).write_text(json.dumps({"datasets": everything, "clients": clients, "not_fully_read": short},
                                              indent=1))
    return 0


def datasets_and_polars(inputs: list[Path], targets: list[str], out: Path, envs: list[str], short: list[str],
                        everything: list) -> None:
    """Every output as Parquet, JSONL and a Hub config, read by datasets and polars in each environment."""
    print(f"converting {len(inputs)} real files to {len(targets)} formats ...", file=sys.stderr)
    jobs = convert_all(inputs, targets, out) + hub_folder(inputs, targets, out)
    table: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # read, expected, files ok, files
    for env, python in environments(envs).items():
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


def openai_table(inputs: list[Path], out: Path) -> list[str]:
    (out / "openai-strict").mkdir()
    checks = openai_checks(inputs, out / "openai-strict")
    if not checks:
        return []
    clean, total = sum(c for _, c, _, _ in checks), sum(t for _, _, t, _ in checks)
    fully = sum(c == t for _, c, t, _ in checks)
    print(f"{'OpenAI checks':<16} {'jsonl':<8} {clean:>11} / {total:<8} {100 * clean / max(total, 1):5.1f}%"
          f" {fully:>8} / {len(checks):<6}")
    return [f"OpenAI checks    jsonl    {name}: {c} of {t} clean, {errs}" for name, c, t, errs in checks if c != t]


if __name__ == "__main__":
    sys.exit(main())
