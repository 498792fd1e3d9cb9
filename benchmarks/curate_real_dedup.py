"""Dedup on real public data, judged by reading: precision on judged pairs, recall on known copies.

For every set in ../shared/data (GSM8K and GPTeacher Toolformer in real/, the DPO demos, the MOSS plugin
files, the alpaca en/zh demos, glaive tool calls, MOSS-003, AdvertiseGen, the FastChat identity set,
Firefly, dolly, BELLE, the Self-Instruct and BELLE seed tasks) `instructgen dedup` runs with its
defaults (or the settings given) and every merge (removed record -> the record it duplicates) is
looked up in benchmarks/judgements/dedup_pairs.jsonl, where each pair was judged by reading both
records: `same-task` (a duplicate: removing it loses nothing) or `different-task` (a false merge).

    precision   same-task / judged over the pairs to judge: every merge where a set has at most
                SAMPLE of them, else a fixed sample of SAMPLE (lowest pair hash, so it stays put when
                a rule changes a few merges). Those not judged yet are `unjudged` (--missing FILE
                writes them with both texts, for reading). `all judged` adds the pairs judged for
                other runs that this run also merges (not a uniform sample: a second opinion).
    copies      recall on known copies: up to COPIES records per set (among those the run keeps) get a copy with one small,
                meaning-preserving edit (spacing, punctuation, a filler word, a one-letter typo, a
                dropped article; typos and articles outside URLs, quotes and calls written in text, where
                an edit is another address, literal or call), appended to the set; found = the copy lands
                in its original's cluster.
    read dups   recall on true duplicates found by reading: same-task pairs the run puts in one cluster.

    missed      (--missed FILE) the read duplicates a run leaves apart, each with the rules that hold it
                (a part below the threshold, a focus below its bar, other identifiers or tool calls, a short
                focus with other content words) and the word diff of each part.

Usage: python benchmarks/curate_real_dedup.py [--sets gsm8k,toolformer] [--threshold 0.7] [--fields ...]
       [--shingle ...] [--missing missing.jsonl] [--missed missed.jsonl]
`dedup_section(...)` prints the same table for benchmarks/curate_real.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import sys
import tempfile
from collections import Counter
from copy import deepcopy
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from instructgen import formats  # noqa: E402
from instructgen.convert import ReadOptions, read_records  # noqa: E402
from instructgen.curate.dedup import DedupConfig, dedup_records  # noqa: E402
try:  # where dedup sees a quoted literal (older versions of instructgen: an approximation)
    from instructgen.curate.text import QUOTED  # noqa: E402
except ImportError:
    QUOTED = re.compile(r"(?<!\w)'[^'\n]{1,200}'(?!\w)|\"[^\"\n]{1,200}\"")
try:  # where dedup sees a call written in text (older versions: none)
    from instructgen.curate.dedup_text import TOOL_CALL  # noqa: E402
except ImportError:
    TOOL_CALL = re.compile(r"(?!)()")
from instructgen.formats.base import single_turn  # noqa: E402
from instructgen.record import Conversation  # noqa: E402
from instructgen.runlog import RunLog  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
JUDGEMENTS = Path(__file__).resolve().parent / "judgements" / "dedup_pairs.jsonl"
SAMPLE = 50
COPIES = 100

SETS: dict[str, list[str]] = {
    "gsm8k": ["real/gsm8k_train_alpaca.json"],
    "toolformer": ["real/gpteacher_toolformer_dedupe_only.json"],
    "dpo_en": ["real/llamafactory_dpo_en_demo.json"],
    "dpo_zh": ["real/llamafactory_dpo_zh_demo.json"],
    "moss_plugin": ["real/moss_003_plugin_files"],
    "alpaca_en": ["formats/llamafactory_alpaca_en_demo.json"],
    "alpaca_zh": ["formats/llamafactory_alpaca_zh_demo.json"],
    "glaive": ["formats/llamafactory_glaive_toolcall_en_demo.json"],
    "moss_003": ["formats/moss_003_sample.jsonl"],
    "advertisegen": ["formats/chatglm_advertisegen_dev_sample.jsonl"],
    "identity": ["formats/fastchat_sharegpt_dummy_conversation.json"],
    "firefly": ["formats/firefly_dummy_data.jsonl"],
    "dolly": ["formats/dolly_15k_head.jsonl"],
    "belle": ["formats/belle_instruction_readme_examples.jsonl", "formats/belle_conversations_readme_examples.jsonl"],
    "seeds_en": ["seeds/self_instruct_seed_tasks.jsonl"],
    "seeds_zh": ["seeds/belle_zh_seed_tasks.jsonl"],
    # issue 18's sets (real/judged_by_reading.tsv): multi-turn branches sharing a history, tool calls, identity
    "oaast_zh": ["real/chatglm_efficient_tuning_oaast_sft_zh_history.json"],
    "lima": ["real/lima.json"],
    "glaive_zh": ["real/llamafactory_glaive_toolcall_zh_demo.json"],
    "moss_t2i": ["real/moss_003_text2img_all.jsonl"],
    "chatglm6b": ["real/chatglm6b_prompt_response_sample.jsonl"],
    "kto_en": ["real/llamafactory_kto_en_demo.json"],
    "identity_zh": ["real/llamafactory_identity.json"],
}


def shared_root() -> Path | None:
    """../shared (or $INSTRUCTGEN_SHARED), as tests/conftest.py finds it; None when absent."""
    root = Path(os.environ.get("INSTRUCTGEN_SHARED", REPO.parent / "shared"))
    return root if (root / "data").is_dir() else None


# -- reading ---------------------------------------------------------------------------------------

def _relabel(conv: Conversation, path: Path) -> Conversation:
    """Origins as 'file name:line', so judgements do not depend on where ../shared lives."""
    conv.origin = f"{path.name}:{conv.origin.rsplit(':', 1)[1]}" if ":" in conv.origin else path.name
    return conv


def _seed_tasks(path: Path) -> list[Conversation]:
    """Self-Instruct seed tasks: the instruction and its first instance, as an alpaca record."""
    out = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        task = json.loads(line)
        instance = task["instances"][0]
        conv = single_turn(task["instruction"], instance["input"], instance["output"])
        conv.origin = f"{path.name}:{line_no}"
        out.append(conv)
    return out


def _moss_files(folder: Path) -> list[Conversation]:
    """MOSS plugin files hold one pretty-printed object each (not JSONL): parsed with the moss format."""
    out = []
    for path in sorted(folder.glob("*.json")):
        conv = formats.get("moss").parse(json.loads(path.read_text(encoding="utf-8"))).check()
        conv.origin = path.name
        out.append(conv)
    return out


def load_set(name: str, root: Path) -> list[Conversation]:
    records: list[Conversation] = []
    for rel in SETS[name]:
        path = root / "data" / rel
        if path.is_dir():
            records += _moss_files(path)
        elif rel.startswith("seeds/"):
            records += _seed_tasks(path)
        else:
            records += [_relabel(c, path) for c in read_records([str(path)], RunLog("read"),
                                                                 ReadOptions(announce=lambda _m: None))]
    return records


# -- judgements ------------------------------------------------------------------------------------

def pair_key(set_name: str, a: str, b: str) -> tuple[str, frozenset[str]]:
    return (set_name, frozenset((a, b)))


def load_judgements(path: Path = JUDGEMENTS) -> dict[tuple[str, frozenset[str]], dict[str, Any]]:
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {pair_key(r["set"], r["origin"], r["duplicate_of"]): r for r in rows}


def merges(records: list[Conversation], config: DedupConfig) -> list[dict[str, Any]]:
    """The clusters.jsonl rows of one dedup run (removed record -> the one it duplicates)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "clusters.jsonl")
        dedup_records(list(records), config, RunLog("dedup"), clusters_path=path)
        return [json.loads(line) for line in open(path, encoding="utf-8")]


def _rank(set_name: str, row: dict[str, Any]) -> bytes:
    pair = "|".join(sorted((row["origin"], row["duplicate_of"])))
    return hashlib.blake2b(f"{set_name}|{pair}".encode(), digest_size=8).digest()


def to_judge(set_name: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every merge where there are at most SAMPLE, else the SAMPLE merges of lowest pair hash: a fixed
    sample that keeps its judged pairs when a rule change adds or removes a few merges."""
    if len(rows) <= SAMPLE:
        return rows
    return sorted(rows, key=lambda r: _rank(set_name, r))[:SAMPLE]


# -- known copies ----------------------------------------------------------------------------------

CJK = re.compile(r"[\u3400-\u9fff]")
ARTICLE = re.compile(r"\b(the|a|an) ", re.IGNORECASE)
TYPO_WORD = re.compile(r"\b[A-Za-z]{6,}\b")
URL = re.compile(r"(?:https?://|www\.)\S+")



def _edit_spacing(text: str, rng: random.Random) -> str | None:
    spaces = [m.start() for m in re.finditer(r" ", text)]
    if not spaces:
        return text + "  "
    k = rng.choice(spaces)
    return text[:k] + "  " + text[k + 1:] + "\n"


def _edit_punctuation(text: str, rng: random.Random) -> str | None:
    stripped = text.rstrip()
    if stripped[-1:] in ".!?。！？":
        return stripped[:-1]
    return stripped + ("。" if CJK.search(stripped) else ".")


def _edit_filler(text: str, rng: random.Random) -> str | None:
    if CJK.search(text):
        return "请" + text if not text.startswith("请") else text[1:]
    return "Please " + text[:1].lower() + text[1:] if not text.lower().startswith("please") else text[7:]


def _literal_spans(text: str) -> list[tuple[int, int]]:
    """Where an edit would change what the task is about, as dedup sees it: URLs, quoted literals, calls
    written in text (an edit there is another address, literal or call, not a copy)."""
    return [m.span() for pattern in (URL, QUOTED, TOOL_CALL) for m in pattern.finditer(text)]


def _outside(spans: list[tuple[int, int]], at: int) -> bool:
    return not any(a <= at < b for a, b in spans)


def _edit_typo(text: str, rng: random.Random) -> str | None:
    """Two letters swapped in a word of 6+ letters, outside URLs, quotes and calls (_literal_spans)."""
    spans = _literal_spans(text)
    words = [m for m in TYPO_WORD.finditer(text) if _outside(spans, m.start())]
    if not words:
        return None
    m = rng.choice(words)
    w = m.group()
    k = rng.randrange(1, len(w) - 2)
    return text[:m.start()] + w[:k] + w[k + 1] + w[k] + w[k + 2:] + text[m.end():]


def _edit_article(text: str, rng: random.Random) -> str | None:
    """An article (的 in Chinese) dropped, outside URLs, quotes and calls (_literal_spans)."""
    spans = _literal_spans(text)
    if CJK.search(text):
        spots = [m.start() for m in re.finditer("的", text) if _outside(spans, m.start())]
        if not spots:
            return None
        k = rng.choice(spots)
        return text[:k] + text[k + 1:]
    found = [m for m in ARTICLE.finditer(text) if _outside(spans, m.start())]
    if not found:
        return None
    m = rng.choice(found)
    return text[:m.start()] + text[m.end():]


EDITS: dict[str, Callable[[str, random.Random], str | None]] = {
    "spacing": _edit_spacing, "punctuation": _edit_punctuation, "filler": _edit_filler,
    "typo": _edit_typo, "article": _edit_article,
}


def _copy_with_edit(conv: Conversation, kind: str, rng: random.Random) -> Conversation | None:
    """A copy with one edit in its first user message (filler) or a random user/assistant message."""
    idx = [k for k, m in enumerate(conv.messages) if m.role in ("user", "assistant") and m.content.strip()]
    if kind == "filler":
        idx = [k for k in idx if conv.messages[k].role == "user"][:1]
    rng.shuffle(idx)
    for k in idx:
        edited = EDITS[kind](conv.messages[k].content, rng)
        if edited is not None and edited != conv.messages[k].content:
            copy = deepcopy(conv)
            copy.origin = f"copy:{kind}:{conv.origin}"
            copy.messages[k].content = edited
            copy.meta.pop("split", None)  # the alpaca split no longer matches the edited message
            return copy
    return None


def known_copies(set_name: str, records: list[Conversation], removed: set[str] = frozenset()
                 ) -> list[tuple[int, str, Conversation]]:
    """(index of the original, edit kind, copy) for up to COPIES records the plain run keeps, fixed seed.
    (A copy of a removed record need not go: it duplicates nothing that stays unless it is near the
    record that removed its original, and keep-first clustering does not chain.)"""
    rng = random.Random(f"copies:{set_name}")
    kept = [k for k, c in enumerate(records) if c.origin not in removed]
    picks = rng.sample(kept, min(COPIES, len(kept)))
    kinds = list(EDITS)
    out = []
    for n, k in enumerate(picks):
        kind = kinds[n % len(kinds)]
        copy = _copy_with_edit(records[k], kind, rng)
        if copy is not None:
            out.append((k, kind, copy))
    return out


def _roots(rows: list[dict[str, Any]]) -> Callable[[str], str]:
    """origin -> the kept record of its cluster, following removed -> duplicate_of links."""
    parent = {r["origin"]: r["duplicate_of"] for r in rows}

    def root(origin: str) -> str:
        while origin in parent:
            origin = parent[origin]
        return origin

    return root


def copy_recall(records: list[Conversation], copies: list[tuple[int, str, Conversation]], config: DedupConfig
                ) -> tuple[int, Counter, Counter]:
    """(copies found, made per edit kind, found per edit kind): found = in the original's cluster."""
    root = _roots(merges(records + [c for _, _, c in copies], config))
    made, found = Counter(), Counter()
    for k, kind, copy in copies:
        made[kind] += 1
        found[kind] += root(copy.origin) == root(records[k].origin)
    return sum(found.values()), made, found


# -- what keeps a read duplicate apart ---------------------------------------------------------------

def blocked_by(records: list[Conversation], a: int, b: int, config: DedupConfig, sk, anchors: list[str]) -> list[str]:
    """The rules that keep records a and b (sketched in `sk`, anchor texts `anchors`) from merging."""
    import numpy as np

    from instructgen.curate import lsh
    from instructgen.curate.dedup import FOCUS_BAR, SHORT_CONTENT, parse_fields, whole_columns

    parts, split = parse_fields(config.fields), whole_columns(sk)
    i, j = np.array([a]), np.array([b])
    whole = lsh.verify_parts(sk.sigs, i, j, split=split)[0]
    found = [f"{p} {whole[k]:.2f} < {config.threshold}" for k, p in enumerate(parts) if whole[k] < config.threshold]
    for k, p in enumerate(parts):
        gate = float(lsh.estimated_jaccard(sk.sigs[:, k, split:], i, j)[0])
        if gate < FOCUS_BAR * config.threshold:
            found.append(f"{p} focus {gate:.2f} < {FOCUS_BAR * config.threshold:.2f}")
    if anchors[a] != anchors[b]:
        found.append("identifiers or tool calls differ")
    elif sk.anchors[a] != sk.anchors[b]:
        found.append(f"a short focus (<= {SHORT_CONTENT} content words) with other content words")
    return found or ["keep-first: its original went to another cluster (no chaining)"]


def missed_read_dups(set_name: str, records: list[Conversation], config: DedupConfig, judgements: dict,
                     rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same-task pairs read by hand that this run leaves in two clusters, with what keeps each apart
    and the word diff of each part (written by --missed, for reading)."""
    from instructgen.curate.dedup import anchor_texts, dedup_parts, parse_fields, sketch_records
    from instructgen.curate.dedup_text import display
    from instructgen.curate.text import compact_diff

    root, at = _roots(rows), {c.origin: k for k, c in enumerate(records)}
    known = [j for key, j in sorted(judgements.items(), key=lambda kv: sorted(kv[0][1]))
             if key[0] == set_name and j["verdict"] == "same-task" and root(j["origin"]) != root(j["duplicate_of"])]
    if not known:
        return []
    sk, anchors, parts = sketch_records(records, config), anchor_texts(records, config), parse_fields(config.fields)
    out = []
    for j in known:
        a, b = at[j["duplicate_of"]], at[j["origin"]]
        texts = zip(parts, dedup_parts(records[a], parts), dedup_parts(records[b], parts))
        out.append({"set": set_name, "origin": j["origin"], "duplicate_of": j["duplicate_of"],
                    "blocked_by": blocked_by(records, a, b, config, sk, anchors),
                    "diff": {p: compact_diff(display(x), display(y))[:300] for p, x, y in texts}, "read_as": j["why"]})
    return out


# -- the section -------------------------------------------------------------------------------------

def evaluate(set_name: str, records: list[Conversation], config: DedupConfig, judgements: dict,
             want_missed: bool = False) -> dict[str, Any]:
    rows = merges(records, config)
    want = to_judge(set_name, rows)
    verdicts = [judgements[key]["verdict"] for r in want
                if (key := pair_key(set_name, r["origin"], r["duplicate_of"])) in judgements]
    every = [judgements[key]["verdict"] for r in rows
             if (key := pair_key(set_name, r["origin"], r["duplicate_of"])) in judgements]
    root = _roots(rows)
    known = [j for key, j in judgements.items() if key[0] == set_name and j["verdict"] == "same-task"]
    copies = known_copies(set_name, records, {r["origin"] for r in rows})
    found, made, found_by = copy_recall(records, copies, config)
    return {
        "set": set_name, "records": len(records),
        "exact": sum(r["stage"] == "exact" for r in rows), "near": sum(r["stage"] == "near" for r in rows),
        "judged": len(verdicts), "same": verdicts.count("same-task"), "to_judge": len(want),
        "judged_any": len(every), "same_any": every.count("same-task"),
        "unjudged": [r for r in want if pair_key(set_name, r["origin"], r["duplicate_of"]) not in judgements],
        "sampled": len(rows) > SAMPLE,
        "copies": len(copies), "copies_found": found, "copies_made_by": made, "copies_found_by": found_by,
        "read_dups": len(known), "read_dups_found": sum(root(j["origin"]) == root(j["duplicate_of"]) for j in known),
        "missed": missed_read_dups(set_name, records, config, judgements, rows) if want_missed else [],
    }


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.3f}" if b else "-"


def print_table(results: list[dict[str, Any]], out: Callable[[str], None] = print) -> None:
    out(f"{'set':<13}{'records':>8}{'exact':>7}{'near':>6}{'judged':>9}{'precision':>10}{'unjudged':>9}"
        f"{'all judged':>15}{'copies':>10}{'recall':>8}{'read dups':>10}{'recall':>8}")
    for r in results:
        judged = f"{r['judged']}{'*' if r['sampled'] else ''}"
        every = f"{_ratio(r['same_any'], r['judged_any'])} ({r['judged_any']})" if r["judged_any"] else "-"
        out(f"{r['set']:<13}{r['records']:>8}{r['exact']:>7}{r['near']:>6}{judged:>9}"
            f"{_ratio(r['same'], r['judged']):>10}{len(r['unjudged']):>9}{every:>15}"
            f"{r['copies_found']:>5}/{r['copies']:<4}{_ratio(r['copies_found'], r['copies']):>8}"
            f"{r['read_dups_found']:>5}/{r['read_dups']:<4}{_ratio(r['read_dups_found'], r['read_dups']):>8}")
    made, found = Counter(), Counter()
    for r in results:
        made.update(r["copies_made_by"])
        found.update(r["copies_found_by"])
    out(f"  * more than {SAMPLE} merges: a fixed sample of {SAMPLE} is judged (all merges otherwise); "
        "precision = same-task / judged; all judged = over every judged pair this run merges (n)")
    out("  known copies found per edit: " + ", ".join(f"{k} {found[k]}/{made[k]}" for k in EDITS if made[k]))


def dedup_section(sets: list[str] | None = None, config: DedupConfig | None = None,
                  judgements_path: Path = JUDGEMENTS, out: Callable[[str], None] = print,
                  missing_path: str | None = None, missed_path: str | None = None) -> list[dict[str, Any]]:
    """Print the dedup table for the real sets (skipped, with a line, when ../shared is absent); return its rows."""
    root = shared_root()
    if root is None:
        out("dedup on real data: skipped (../shared/data not found; set INSTRUCTGEN_SHARED)")
        return []
    config = config or DedupConfig()
    judgements = load_judgements(judgements_path)
    out(f"dedup on real data (threshold {config.threshold}, fields {config.fields}, shingle {config.shingle}; "
        f"judgements: {judgements_path.name}, {len(judgements)} pairs)")
    results = [evaluate(name, load_set(name, root), config, judgements, missed_path is not None)
               for name in (sets or list(SETS))]
    print_table(results, out)
    if missed_path:
        missed = [row for r in results for row in r["missed"]]
        with open(missed_path, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in missed)
        reasons = Counter(row["blocked_by"][-1].split(" 0.")[0].split(" <")[0] for row in missed)
        out("read duplicates left apart, by the last rule that holds them: "
            + ", ".join(f"{k} {v}" for k, v in reasons.most_common()) + f" ({missed_path})")
    if missing_path:
        with open(missing_path, "w", encoding="utf-8") as fh:
            for r in results:
                for row in r["unjudged"]:
                    fh.write(json.dumps({"set": r["set"], **row}, ensure_ascii=False) + "\n")
        out(f"unjudged merges with both texts: {missing_path}")
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", help=f"comma list of {', '.join(SETS)} (default: all)")
    ap.add_argument("--threshold", type=float)
    ap.add_argument("--fields")
    ap.add_argument("--shingle")
    ap.add_argument("--judgements", type=Path, default=JUDGEMENTS)
    ap.add_argument("--missing", help="write the merges that still need a judgement here (JSONL)")
    ap.add_argument("--missed", help="write the read duplicates this run leaves apart, with the rules that hold "
                    "them, here (JSONL; benchmarks/judgements/dedup_missed.jsonl is the default run's)")
    args = ap.parse_args()
    settings = {k: v for k in ("threshold", "fields", "shingle") if (v := getattr(args, k)) is not None}
    dedup_section(args.sets.split(",") if args.sets else None, DedupConfig(**settings), args.judgements,
                  missing_path=args.missing, missed_path=args.missed)


if __name__ == "__main__":
    main()
