"""Language ID accuracy and filter throughput, on a labelled en / zh / mixed set generated here.

Detectors compared (same texts, one process): script+langdetect (the default: script check,
English function words, then seeded langdetect), langdetect alone (seeded), lingua restricted to
{en, zh}, script+lingua, lingua over all languages. fastText lid.176 is not measured: its model is
a download, which this machine does not make.

Throughput: `filter_records` with the default rules and --lang en,zh, against the baseline of
calling `langdetect.detect` on every record (instruction and output, what a plain language filter
does), on the same records.

Usage: python benchmarks/filter.py [--n 20000] [--baseline-n 2000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import dedup as gen  # noqa: E402  (the generator of benchmarks/dedup.py)

from instructgen.curate.filter import FilterConfig, filter_records  # noqa: E402
from instructgen.curate.langid import get_detector  # noqa: E402
from instructgen.formats.base import single_turn  # noqa: E402
from instructgen.runlog import RunLog  # noqa: E402

EN_TERMS = ["machine learning", "Python", "API", "GPU", "JSON", "Docker", "Excel", "iPhone", "GitHub", "SQL",
            "deep learning", "Transformer", "ChatGPT", "Linux", "HTTP"]
ZH_TERMS = ["你好", "谢谢", "加油", "面子", "关系", "功夫", "饺子", "春节", "风水", "太极"]
ZH_SHORT = ["你好", "谢谢你", "早上好", "今天天气怎么样", "帮我写首诗", "讲个笑话", "翻译一下", "你是谁", "推荐一本书",
            "解释一下量子力学", "写一个故事", "给我一些建议", "这是什么意思", "怎么学英语", "明天会下雨吗"]
EN_SHORT = ["Hello there", "Tell me a joke", "Write a poem", "Who are you?", "Recommend a book", "Explain gravity",
            "Give me advice", "What is love?", "Summarize this", "Translate to French", "Fix my code", "Thanks a lot"]


def labelled_set(n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """(text, true language, subset) triples: en, zh, mixed (code-switched and short texts)."""
    rng = random.Random(seed)
    rows = []
    for k in range(n):
        kind = k % 4
        if kind == 0:
            t = rng.choice(gen.EN_TEMPLATES)
            rows.append((t.format(**gen._fill(rng, gen.EN, t)), "en", "en"))
        elif kind == 1:
            t = rng.choice(gen.ZH_TEMPLATES)
            rows.append((t.format(**gen._fill(rng, gen.ZH, t)), "zh", "zh"))
        elif kind == 2:
            term = rng.choice(EN_TERMS)
            rows.append((rng.choice([f"请解释一下{term}的基本原理。", f"怎么用{term}处理数据？", f"{term}和传统方法有什么区别？",
                                     f"给初学者推荐学习{term}的方法"]), "zh", "mixed"))
        else:
            r = rng.random()
            if r < 0.4:
                word = rng.choice(ZH_TERMS)
                rows.append((rng.choice([f"What does the Chinese word {word} mean?", f"How do you pronounce {word} in Mandarin?",
                                         f"Use {word} in an English sentence."]), "en", "mixed"))
            elif r < 0.7:
                rows.append((rng.choice(ZH_SHORT), "zh", "mixed"))
            else:
                rows.append((rng.choice(EN_SHORT), "en", "mixed"))
    return rows


def accuracy(detector, rows):
    t = time.perf_counter()
    got = [detector.detect(text) for text, _, _ in rows]
    dt = time.perf_counter() - t
    by = {}
    for (_, truth, subset), g in zip(rows, got):
        for key in (subset, "all"):
            ok, n = by.get(key, (0, 0))
            by[key] = (ok + (g == truth), n + 1)
    out = {k: ok / n for k, (ok, n) in by.items()}
    out["undecided"] = sum(g is None for g in got) / len(got)
    decided = [(g, truth) for g, (_, truth, _) in zip(got, rows) if g is not None]
    out["wrong"] = sum(g != t for g, t in decided) / len(got)
    return out, dt / len(rows) * 1e6


def records(n: int, seed: int = 1):
    rng = random.Random(seed)
    out = []
    for k, (text, lang, _) in enumerate(labelled_set(n, seed)):
        answer = (rng.choice(["Here is a clear answer with a short example for you.", "The main idea is simple, and it is explained below."])
                  if lang == "en" else rng.choice(["好的，下面是一个简单清楚的回答和例子。", "主要的想法很简单，下面逐条说明。"]))
        conv = single_turn(text, "", answer)
        conv.origin = f"gen:{k}"
        out.append(conv)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000, help="labelled texts / filter records (default 20000)")
    ap.add_argument("--baseline-n", type=int, default=2000, help="records for the slow langdetect-only runs (default 2000)")
    args = ap.parse_args()

    rows = labelled_set(args.n)
    slow_rows = rows[: args.baseline_n]
    print(f"labelled set: {len(rows)} texts (en, zh, mixed = code-switched and short); "
          f"langdetect-only detectors on the first {len(slow_rows)}")
    print("\naccuracy = share labelled right; undecided = no opinion (too short to tell: the filter keeps those);")
    print("wrong = share labelled as another language (what makes a language filter drop good records)")
    print(f"{'detector':<22}{'en':>8}{'zh':>8}{'mixed':>8}{'all':>8}{'undecided':>10}{'wrong':>8}{'us/text':>10}")
    for name, langs, sample in (("script+langdetect", (), rows), ("langdetect", (), slow_rows),
                                ("lingua", ("en", "zh"), rows), ("script+lingua", ("en", "zh"), rows),
                                ("lingua", (), slow_rows)):
        det = get_detector(name, langs)
        det.detect("warm up the model")
        acc, us = accuracy(det, sample)
        label = name + (" {en,zh}" if langs else " (all)" if name == "lingua" else "")
        print(f"{label:<22}" + "".join(f"{acc.get(k, float('nan')):>8.3f}" for k in ("en", "zh", "mixed", "all"))
              + f"{acc['undecided']:>10.3f}{acc['wrong']:>8.3f}{us:>10.1f}")
    # the same labels twice: seeded langdetect must not change its mind
    det = get_detector("langdetect")
    short = [t for t, _, s in slow_rows if s == "mixed"][:300]
    first = [det.detect(t) for t in short]
    print(f"langdetect seeded: {sum(a != b for a, b in zip(first, [det.detect(t) for t in short]))} of {len(short)} "
          "short-text labels changed between two runs")

    recs = records(args.n)
    cfg = FilterConfig(lang=("en", "zh"))
    log = RunLog("filter")
    t = time.perf_counter()
    kept = sum(1 for _ in filter_records(recs, cfg, log))
    t_ours = (time.perf_counter() - t) / len(recs)
    from langdetect import DetectorFactory, detect

    DetectorFactory.seed = 0
    base = recs[: args.baseline_n]
    t = time.perf_counter()
    for conv in base:
        detect(conv.messages[0].content)
        detect(conv.messages[1].content)
    t_base = (time.perf_counter() - t) / len(base)
    print(f"\nfilter throughput ({len(recs)} records, default rules, --lang en,zh): {1 / t_ours:,.0f} records/s "
          f"({kept} kept, {log.dropped['filtered']} filtered: {dict(log.info['filter_rules'])})")
    print(f"baseline langdetect.detect on instruction and output of every record: {1 / t_base:,.0f} records/s")
    print(f"ratio: {t_base / t_ours:.1f}x faster than the langdetect baseline")


if __name__ == "__main__":
    main()
