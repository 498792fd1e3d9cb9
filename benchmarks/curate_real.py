"""Curation on real public data, judged by reading: the filter's drops per set and rule, and how many were wrong.

Sets (read from ../shared/data, or $INSTRUCTGEN_SHARED/data; never copied into the repo): GSM8K and GPTeacher
Toolformer (real/), LLaMA-Factory's alpaca en/zh demos, glaive tool calls and DPO en/zh demos (the chosen
conversation), MOSS-003 (the sample and the plugin files), FastChat's ShareGPT dummy set, Firefly, AdvertiseGen,
Dolly, BELLE and the OpenAI sample; held out (not read while the rules were written): the Self-Instruct seed
tasks (en) and BELLE's Chinese seed tasks (first instance each). Each set is filtered with the default rules and `--lang` = its language(s).

Records are loaded here, by format, and named `<file>#<n>` (n = 1-based record number in the file), so the
judgements do not depend on how the reader numbers lines.

The filter has two tiers (issue 18): junk rules drop (a dialogue is cut before a junk turn), signals only flag
(meta.flags). Each set runs with the default rules and `--lang` = its language(s), nothing in `--drop`.

Judgements: benchmarks/judgements/filter.jsonl, one JSON object a line, written by reading the records:
    {"set", "origin", "rule", "verdict", "why"}
    verdict tp | fp   a drop (or a cut, rule = "truncated:<rule>") by `rule` that is right | wrong
    verdict ok | fn   a KEPT record read for misses (a fixed-seed sample per set): right to keep | should have gone
                      (rule = the rule that should have caught it, or "-" when no rule could); a read counts while
                      the record is still kept whole
    (judgements of the one-tier filter before issue 18 stay in the file: a rule that now only flags has no drops
    to score, so they no longer count)
Judging standard (what a curator of SFT data wants gone): tp when the turn is junk on any data: empty, corrupted,
a loop, token salad, an unfilled template slot, an echo of the prompt; fp when a real answer goes (structure such as
parallel steps, lists, tables, code, requested repeats; a weak but real answer is not junk).
Per set the benchmark prints: in, out, dropped per rule, cut, judged drops, false positives, flags per signal, and
the drops nobody has judged yet (judge them: `--dump DIR` writes every drop, the flagged records and a sample of
kept records with their text, for reading). Per rule over all sets: drops, judged, wrong, precision by reading,
flags. Junk recall: on the sets whose answers are junk (JUNK_SETS), the share of records dropped. Targets (issue
18): si_davinci >= 95 % dropped, si_text-davinci-003 <= 1 %, the clean and hand-curated sets <= 0.5 % each.

The dedup evaluation: `dedup_report()` below (the dedup engineer's
benchmarks/curate_real_dedup.py, plugged in by the lead).

Usage: python benchmarks/curate_real.py [--sets gsm8k,alpaca_zh] [--dump DIR] [--kept-sample 40] [--seed 0]
                                        [--save-drops FILE] [--before FILE]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
# the scripts here are named after what they measure: one may shadow a standard module ("select"), so this folder
# goes to the end of the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]
sys.path.insert(0, str(HERE.parent / "src"))

from instructgen import formats  # noqa: E402
from instructgen.curate.filter import FilterConfig, filter_records  # noqa: E402
from instructgen.record import Conversation  # noqa: E402
from instructgen.runlog import RunLog  # noqa: E402

JUDGEMENTS = HERE / "judgements" / "filter.jsonl"


def shared_root() -> Path:
    """$INSTRUCTGEN_SHARED, else ../shared beside the repo (the same rule as tests/conftest.py)."""
    return Path(os.environ.get("INSTRUCTGEN_SHARED", HERE.parent.parent / "shared"))


@dataclass(frozen=True)
class RealSet:
    name: str
    files: tuple[str, ...]  # globs under data/
    fmt: str  # the format to parse with ("dpo": sharegpt conversation + chosen; "seed": Self-Instruct seed task)
    lang: tuple[str, ...]


SETS = [
    RealSet("gsm8k", ("real/gsm8k_train_alpaca.json",), "alpaca", ("en",)),
    RealSet("toolformer", ("real/gpteacher_toolformer_dedupe_only.json",), "alpaca", ("en",)),
    RealSet("alpaca_en", ("formats/llamafactory_alpaca_en_demo.json",), "alpaca", ("en",)),
    RealSet("alpaca_zh", ("formats/llamafactory_alpaca_zh_demo.json",), "alpaca", ("zh",)),
    RealSet("glaive", ("formats/llamafactory_glaive_toolcall_en_demo.json",), "sharegpt", ("en",)),
    RealSet("dpo_en", ("real/llamafactory_dpo_en_demo.json",), "dpo", ("en",)),
    RealSet("dpo_zh", ("real/llamafactory_dpo_zh_demo.json",), "dpo", ("zh",)),
    RealSet("moss", ("formats/moss_003_sample.jsonl",), "moss", ("zh", "en")),
    RealSet("moss_plugins", ("real/moss_003_plugin_files/*.json",), "moss", ("zh", "en")),
    RealSet("sharegpt_dummy", ("formats/fastchat_sharegpt_dummy_conversation.json",), "sharegpt", ("en",)),
    RealSet("firefly", ("formats/firefly_dummy_data.jsonl",), "firefly", ("zh", "en")),
    RealSet("advertisegen", ("formats/chatglm_advertisegen_dev_sample.jsonl",), "chatglm", ("zh",)),
    RealSet("dolly", ("formats/dolly_15k_head.jsonl",), "dolly", ("en",)),
    RealSet("belle", ("formats/belle_instruction_readme_examples.jsonl",), "alpaca", ("zh",)),
    RealSet("belle_conv", ("formats/belle_conversations_readme_examples.jsonl",), "sharegpt", ("zh",)),
    RealSet("openai", ("formats/openai_finetuning_messages_sample.jsonl",), "openai", ("en",)),
    # held out: never looked at while the rules were written; read afterwards
    RealSet("seeds_en", ("seeds/self_instruct_seed_tasks.jsonl",), "seed", ("en",)),
    RealSet("seeds_zh", ("seeds/belle_zh_seed_tasks.jsonl",), "seed", ("zh",)),
    # added for issue 18 (the two-tier filter): hand-curated sets, dialogues, preference and multimodal data
    RealSet("lima", ("real/lima.json",), "history", ("en",)),
    RealSet("oaast_zh", ("real/chatglm_efficient_tuning_oaast_sft_zh_history.json",), "history", ("zh",)),
    RealSet("glaive_zh", ("real/llamafactory_glaive_toolcall_zh_demo.json",), "sharegpt", ("zh",)),
    RealSet("kto_en", ("real/llamafactory_kto_en_demo.json",), "openai", ("en",)),
    RealSet("identity", ("real/llamafactory_identity.json",), "alpaca", ("en", "zh")),
    RealSet("mllm", ("real/llamafactory_mllm_demo.json",), "openai", ("en", "zh")),
    RealSet("moss_more", ("real/moss_003_sample_more.jsonl",), "moss", ("zh", "en")),
    RealSet("moss_t2i", ("real/moss_003_text2img_all.jsonl",), "moss", ("zh", "en")),
    RealSet("moss_plugin_sample", ("real/moss_003_plugin_sample.jsonl",), "moss", ("zh", "en")),
    RealSet("moss_files", ("real/moss_003_files/*.json",), "moss", ("zh", "en")),
    RealSet("chatglm6b", ("real/chatglm6b_prompt_response_sample.jsonl",), "chatglm", ("zh",)),
    # Self-Instruct's 252 expert tasks (first instance) and eight models' answers to them: vanilla davinci is junk
    RealSet("si_tasks", ("real/self_instruct/user_oriented_instructions.jsonl",), "seed", ("en",)),
    *(RealSet(f"si_{model}", (f"real/self_instruct/{model}_predictions.jsonl",), "prediction", ("en",))
      for model in ("davinci", "davinci-self-instruct", "davinci-superni-ft", "davinci-self-instruct-and-superni-ft",
                    "davinci-t0-ft", "text-davinci-001", "text-davinci-002", "text-davinci-003")),
]
# the sets whose answers are junk (recall is measured on them: every record should be dropped)
JUNK_SETS = {"si_davinci"}


# -- loading ------------------------------------------------------------------------------------------

def _rows(path: Path) -> list:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]  # JSONL
    return data if isinstance(data, list) else [data]  # one pretty-printed object per file (MOSS plugins)


def _dpo_chosen(row: dict) -> dict:
    return {"conversations": [*row["conversations"], row["chosen"]]}


def _seed_task(row: dict) -> dict:
    """A Self-Instruct seed task as an alpaca row: its instruction and first instance."""
    first = row["instances"][0]
    return {"instruction": row["instruction"], "input": first["input"], "output": first["output"]}


def _prediction(row: dict) -> dict:
    """A Self-Instruct human-eval prediction as an alpaca row: the task, its input, the model's answer."""
    return {"instruction": row["instruction"].strip(), "input": row["input"], "output": row["response"]}


_ADAPT = {"dpo": ("sharegpt", _dpo_chosen), "seed": ("alpaca", _seed_task), "prediction": ("alpaca", _prediction)}


def load_set(s: RealSet, root: Path) -> list[Conversation]:
    paths = sorted(p for pattern in s.files for p in glob.glob(str(root / "data" / pattern)))
    fmt, adapt = _ADAPT.get(s.fmt, (s.fmt, lambda row: row))
    parse = formats.get(fmt).parse
    out = []
    for path in map(Path, paths):
        for n, row in enumerate(_rows(path), 1):
            conv = parse(adapt(row))
            conv.origin = f"{path.name}#{n}"
            out.append(conv)
    return out


def _copy(conv: Conversation) -> Conversation:
    return replace(conv, messages=list(conv.messages))


# -- running the filter -------------------------------------------------------------------------------

@dataclass
class FilterRun:
    n_in: int
    kept: list[Conversation]
    drops: list[tuple[str, str, str]]  # origin, rule, detail
    truncated: list[tuple[str, str, str]]  # origin, "truncated:<rule>", detail
    seconds: float
    sizes: dict[str, int]  # origin -> messages in the record as read
    flags: list[tuple[str, str, str]]  # origin, signal, reason (one per flagged turn)


def run_filter(records: list[Conversation], config: FilterConfig) -> FilterRun:
    sizes = {c.origin: len(c.messages) for c in records}
    log = RunLog("filter", keep_entries=True)
    log.took_in(len(records))
    start = time.perf_counter()
    kept = list(filter_records(records, config, log))
    seconds = time.perf_counter() - start
    entries = log.entries or []
    drops = [(e["origin"], e["reason"], str(e.get("detail", ""))) for e in entries if e["kind"] == "filtered"]
    truncated = [(e["origin"], f"truncated:{e['reason']}", str(e.get("detail", ""))) for e in entries
                 if e["kind"] == "cut"]
    flags = [(c.origin, f["rule"], f["reason"]) for c in kept for f in c.meta.get("flags", [])]
    return FilterRun(len(records), kept, drops, truncated, seconds, sizes, flags)


# -- judgements ---------------------------------------------------------------------------------------

def load_judgements(path: Path = JUDGEMENTS) -> tuple[dict, dict]:
    """(drops, reads): drop judgements by (set, origin, rule) and kept-record reads by (set, origin)."""
    drops: dict[tuple[str, str, str], dict] = {}
    reads: dict[tuple[str, str], dict] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                j = json.loads(line)
                if j["verdict"] in ("tp", "fp"):
                    drops[(j["set"], j["origin"], j["rule"])] = j
                else:
                    reads[(j["set"], j["origin"])] = j
    return drops, reads


def score(set_name: str, run: FilterRun, judged: tuple[dict, dict]) -> dict:
    """Per rule: dropped, judged, false positives; the unjudged drops; kept records read and missed."""
    drops, reads = judged
    by_rule: dict[str, Counter] = defaultdict(Counter)
    unjudged = []
    for origin, rule, _ in run.drops + run.truncated:
        c = by_rule[rule]
        c["dropped"] += 1
        j = drops.get((set_name, origin, rule))
        if j is None:
            unjudged.append((origin, rule))
            continue
        c["judged"] += 1
        c["fp"] += j["verdict"] == "fp"
    kept_origins = {c.origin for c in run.kept if len(c.messages) == run.sizes[c.origin]}  # kept whole
    read = [j for (s, o), j in reads.items() if s == set_name and o in kept_origins]
    return {"rules": by_rule, "unjudged": unjudged, "kept_read": len(read), "fn": [j for j in read if j["verdict"] == "fn"]}


# -- reading aids -------------------------------------------------------------------------------------

def as_text(conv: Conversation) -> list[dict]:
    msgs = [{"role": m.role, "content": m.content,
             **({"tool_calls": [f"{t.name}({t.arguments})" for t in m.tool_calls]} if m.tool_calls else {})}
            for m in conv.messages if m.role != "system"]
    return msgs


def _failing_turn(conv: Conversation, config: FilterConfig) -> int:
    from instructgen.curate.filter import judge_record

    return judge_record(conv, config).turn + 1


def dump(out_dir: Path, s: RealSet, records: list[Conversation], run: FilterRun, sample: int, seed: int,
         config: FilterConfig) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    by_origin = {c.origin: c for c in records}
    with open(out_dir / f"{s.name}.drops.jsonl", "w", encoding="utf-8") as fh:
        for origin, rule, detail in run.drops + run.truncated:
            fh.write(json.dumps({"set": s.name, "origin": origin, "rule": rule, "detail": detail,
                                 "turn": _failing_turn(by_origin[origin], config),
                                 "messages": as_text(by_origin[origin])}, ensure_ascii=False) + "\n")
    by_flag = defaultdict(list)
    for origin, rule, reason in run.flags:
        by_flag[origin].append({"rule": rule, "reason": reason})
    with open(out_dir / f"{s.name}.flags.jsonl", "w", encoding="utf-8") as fh:
        for origin, found in by_flag.items():
            fh.write(json.dumps({"set": s.name, "origin": origin, "flags": found,
                                 "messages": as_text(by_origin[origin])}, ensure_ascii=False) + "\n")
    kept = random.Random(seed).sample(run.kept, min(sample, len(run.kept)))
    with open(out_dir / f"{s.name}.kept.jsonl", "w", encoding="utf-8") as fh:
        for conv in kept:
            fh.write(json.dumps({"set": s.name, "origin": conv.origin, "messages": as_text(conv)},
                                ensure_ascii=False) + "\n")


# -- the dedup section --------------------------------------------------------------------------------

def dedup_report() -> None:
    """The dedup half of the evaluation: benchmarks/curate_real_dedup.py (it loads the real sets its own way,
    pairs judged in judgements/dedup_pairs.jsonl)."""
    from curate_real_dedup import dedup_section

    print()
    dedup_section()


# -- report -------------------------------------------------------------------------------------------

def _rate(fp: int, judged: int) -> str:
    return f"{100 * fp / judged:5.1f} %" if judged else "    -  "


CLEAN_SETS = ("gsm8k", "lima", "moss", "moss_more", "oaast_zh", "seeds_en", "seeds_zh", "si_tasks")
TARGETS = {"si_davinci": (">=", 95.0), "si_text-davinci-003": ("<=", 1.0), **{name: ("<=", 0.5) for name in CLEAN_SETS}}


def _target(name: str, share: float) -> str:
    if name not in TARGETS:
        return ""
    op, limit = TARGETS[name]
    met = share >= limit if op == ">=" else share <= limit
    return f"  target {op} {limit:g} %: {'met' if met else 'MISSED'}"


def report(results: list[tuple[RealSet, FilterRun, dict]]) -> None:
    rules = sorted({r for _, _, sc in results for r in sc["rules"]})
    print("\nper set: in, out, records dropped as junk (d) / judged (j) / wrong (fp) per rule; a cut dialogue counts as "
          "rule 'truncated:<rule>' (it still goes out); flags: records flagged per signal (kept)")
    total: dict[str, Counter] = defaultdict(Counter)
    flag_total: Counter[str] = Counter()
    for s, run, sc in results:
        cells = []
        for rule in rules:
            c = sc["rules"].get(rule)
            if c:
                total[rule].update(c)
                cells.append(f"{rule} {c['dropped']}/{c['judged']}/{c['fp']}")
        judged = sum(c["judged"] for c in sc["rules"].values())
        fp = sum(c["fp"] for c in sc["rules"].values())
        n_drop = len(run.drops)
        share = 100 * n_drop / run.n_in if run.n_in else 0.0
        flagged = Counter()
        for rule, origins in _flagged_records(run).items():
            flagged[rule] = len(origins)
        flag_total.update(flagged)
        print(f"  {s.name:<24} in {run.n_in:>5}  out {len(run.kept):>5}  dropped {n_drop:>4} ({share:5.1f} %)"
              f"  cut {len(run.truncated):>3}  judged {judged:>4}  fp {fp:>3}  kept read {sc['kept_read']:>3}, "
              f"missed {len(sc['fn'])}  [lang {','.join(s.lang)}]{_target(s.name, share)}")
        if cells:
            print(f"  {'':<24} d/j/fp: " + "; ".join(cells))
        if flagged:
            print(f"  {'':<24} flags: " + ", ".join(f"{k} {v}" for k, v in sorted(flagged.items())))
        if sc["unjudged"]:
            print(f"  {'':<24} UNJUDGED {len(sc['unjudged'])}: " + ", ".join(f"{o} {r}" for o, r in sc["unjudged"][:6])
                  + (" ..." if len(sc["unjudged"]) > 6 else ""))
    print("\nper junk rule over all sets: dropped (records and cuts), judged, wrong, precision by reading (target >= 0.98)")
    for rule in rules:
        c = total[rule]
        precision = f"{(c['judged'] - c['fp']) / c['judged']:.3f}" if c["judged"] else "  -  "
        print(f"  {rule:<24} {c['dropped']:>5} {c['judged']:>5} {c['fp']:>4}   {precision}")
    print("\nper signal over all sets: records flagged (kept, meta.flags; dropped only with --drop)")
    for rule, n in sorted(flag_total.items(), key=lambda kv: -kv[1]):
        print(f"  {rule:<24} {n:>5}")
    junk = [(s, run) for s, run, _ in results if s.name in JUNK_SETS]
    if junk:
        print("\njunk recall (sets whose answers are junk: every record should be dropped)")
        for s, run in junk:
            print(f"  {s.name:<24} {len(run.drops)}/{run.n_in} = {100 * len(run.drops) / run.n_in:.1f} %")


def _flagged_records(run: FilterRun) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for origin, rule, _ in run.flags:
        out[rule].add(origin)
    return out


def before_table(path: Path) -> None:
    """The per-set and per-rule table of saved drop lists, scored against today's judgements."""
    saved = json.loads(path.read_text(encoding="utf-8"))
    judged = load_judgements()
    results = []
    for s in SETS:
        if s.name in saved:
            entry = saved[s.name]
            run = FilterRun(entry["in"], [], [(o, r, "") for o, r in entry["drops"]], [], entry["seconds"], {}, [])
            results.append((s, run, score(s.name, run, judged)))
    print(f"drop lists of {path.name} (kept counts are not saved: 'out' and kept reads read 0)")
    report(results)
    throughput(results)


def throughput(results: list[tuple[RealSet, FilterRun, dict]]) -> None:
    print("\nfilter throughput per set (one process, this machine; noisy, shared cores)")
    for s, run, _ in results:
        print(f"  {s.name:<24} {run.n_in:>5} records  {run.seconds:7.2f} s  {run.n_in / run.seconds:>9,.0f} records/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", help="comma list of set names (default: all): " + ", ".join(s.name for s in SETS))
    ap.add_argument("--dump", type=Path, help="write <set>.drops.jsonl, <set>.flags.jsonl and <set>.kept.jsonl here, "
                    "for reading")
    ap.add_argument("--no-dedup", action="store_true", help="the filter only (skip the dedup section)")
    ap.add_argument("--kept-sample", type=int, default=40, help="kept records per set in the dump (default 40)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kept sample (default 0)")
    ap.add_argument("--save-drops", type=Path, help="write the drop lists (set -> rule -> origins) as JSON")
    ap.add_argument("--before", type=Path, nargs="?", const=HERE / "judgements" / "filter_before.json",
                    help="print the table for drop lists saved by --save-drops (default: the base commit's, "
                         "judgements/filter_before.json) instead of running the filter")
    args = ap.parse_args()
    if args.before:
        before_table(args.before)
        return

    root = shared_root()
    if not (root / "data").is_dir():
        sys.exit(f"shared data not found at {root}/data (set INSTRUCTGEN_SHARED)")
    chosen = [s for s in SETS if not args.sets or s.name in args.sets.split(",")]
    judged = load_judgements()
    results, records_by_set = [], {}
    for s in chosen:
        records = load_set(s, root)
        records_by_set[s.name] = [_copy(c) for c in records]
        config = FilterConfig(lang=s.lang)
        run = run_filter(records, config)
        results.append((s, run, score(s.name, run, judged)))
        if args.dump:
            dump(args.dump, s, records_by_set[s.name], run, args.kept_sample, args.seed, config)
    report(results)
    throughput(results)
    if args.save_drops:
        drops = {s.name: {"in": run.n_in, "seconds": round(run.seconds, 3),
                          "drops": sorted([list(d[:2]) for d in run.drops + run.truncated])} for s, run, _ in results}
        args.save_drops.write_text(json.dumps(drops, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if not args.no_dedup:
        dedup_report()


if __name__ == "__main__":
    main()
