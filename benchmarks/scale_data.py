"""Generated data for benchmarks/scale.py: millions of records written in bounded memory.

Two kinds, half English and half Chinese (by original), built from the templates and word lists of
benchmarks/dedup.py:
  alpaca    instruction-length records, about 430 bytes of JSONL:
            {"instruction": ..., "input": "" or a short sentence, "output": 1-4 sentences}
  sharegpt  long multi-turn records, about 2 KB: {"conversations": [{"from": "human", ...},
            {"from": "gpt", ...}, ...]}: 2-5 exchanges, answers of 3-7 sentences
One record in ten is a copy of an original picked anywhere in the file (earlier or later), the
whole record copied, every text edited at one of the levels of benchmarks/dedup.py in rotation
(exact, casepunct, 3 %, 6 %, 10 %, 20 %); an alpaca record's input is copied as it is.

Nothing is held in memory: original k is made from its own random.Random seeded by (seed, k), so a
copy regenerates its original wherever it sits. Positions come in blocks of ten, nine originals and
one copy at a random slot. The output depends on (kind, n, seed) only; two processes write the two
halves, which are then joined.

Usage: python benchmarks/scale_data.py KIND N OUT.jsonl [--seed 0]
"""

from __future__ import annotations

import argparse
import array
import bisect
import functools
import itertools
import multiprocessing as mp
import os
import random
import shutil
import sys
import time

import orjson

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dedup as bench  # noqa: E402  (benchmarks/dedup.py: word lists, originals, edits)

KINDS = ("alpaca", "sharegpt")
VERSION = 2  # part of the cached file names: bump when the output changes
BLOCK = 10  # positions per block: BLOCK - 1 originals and one copy
BATCH = 20_000  # records per write
ORIGINAL, COPY, EDIT = 0, 1, 2  # random streams: originals by index; copy plans and their edits by block
TABLE_SIZE = 1 << 16


# Words are drawn through 65,536-entry tables indexed by random 16-bit numbers (one randbytes call
# per text): several times faster than random.sample / random.choices one word at a time. The
# Chinese table holds each character in proportion to its weight in benchmarks/dedup.py.
def _table(items: list[str], weights: list[float]) -> list[str]:
    bounds = list(itertools.accumulate(weights))
    step = bounds[-1] / TABLE_SIZE
    return [items[bisect.bisect(bounds, (i + 0.5) * step)] for i in range(TABLE_SIZE)]


EN_TABLE = _table(bench.EN_VOCAB, [1.0] * len(bench.EN_VOCAB))
ZH_TABLE = _table(bench.ZH_CHARS, bench.ZH_WEIGHTS)


def draw(rng: random.Random, table: list[str], n: int) -> list[str]:
    return list(map(table.__getitem__, array.array("H", rng.randbytes(2 * n))))


def _zh_words(rng: random.Random, n_chars: int) -> list[str]:
    text = "".join(draw(rng, ZH_TABLE, n_chars))
    return [text[k:k + 2] for k in range(0, len(text), 2)]


def _content(rng: random.Random, lang: str) -> list[str]:
    if lang == "en":
        return draw(rng, EN_TABLE, rng.randint(5, 11))
    return _zh_words(rng, rng.randint(6, 14))


bench._content = _content  # the faster draw for bench.zh_original, bench.en_original and bench.edit


def rng_for(seed: int, role: int, k: int) -> random.Random:
    return random.Random((seed * 3 + role) << 40 | k)


# ---------------------------------------------------------------------------------------------
# texts as token lists (so a copy can be edited with bench.edit, then bench.join)

def sentence(rng: random.Random, lang: str, lo: int, hi: int) -> list[str]:
    """One sentence of lo..hi words (English) or lo..hi Han characters (Chinese)."""
    if lang == "en":
        words = draw(rng, EN_TABLE, rng.randint(lo, hi))
        return [words[0].capitalize(), *words[1:-1], words[-1] + "."]
    return [*_zh_words(rng, rng.randint(lo, hi)), "。"]


def sentences(rng: random.Random, lang: str, count: int, lo: int, hi: int) -> list[str]:
    return [tok for _ in range(count) for tok in sentence(rng, lang, lo, hi)]


def instruction(rng: random.Random, lang: str) -> list[str]:
    return bench.en_original(rng) if lang == "en" else bench.zh_original(rng)


def question(rng: random.Random, lang: str) -> list[str]:
    if lang == "en":
        tokens = sentence(rng, lang, 5, 10)
        return tokens[:-1] + [tokens[-1][:-1] + "?"]
    return sentence(rng, lang, 8, 16)[:-1] + ["？"]


def sentence_length(lang: str) -> tuple[int, int]:
    return (10, 18) if lang == "en" else (20, 40)  # words, Han characters: about 100 bytes of UTF-8 either way


def alpaca_original(rng: random.Random, lang: str) -> dict:
    short_input = bench.join(sentence(rng, lang, 4, 9), lang) if rng.random() < 0.3 else ""
    return {"instruction": instruction(rng, lang), "input": short_input,
            "output": sentences(rng, lang, rng.randint(1, 4), *sentence_length(lang))}


def sharegpt_original(rng: random.Random, lang: str) -> list[tuple[str, list[str]]]:
    turns = [("human", instruction(rng, lang))]
    for exchange in range(rng.randint(2, 5)):
        if exchange:
            turns.append(("human", question(rng, lang)))
        turns.append(("gpt", sentences(rng, lang, rng.randint(3, 7), *sentence_length(lang))))
    return turns


def original(kind: str, seed: int, k: int) -> tuple[str, object]:
    """(lang, token structure) of original k: even k English, odd k Chinese."""
    lang = "en" if k % 2 == 0 else "zh"
    rng = rng_for(seed, ORIGINAL, k)
    return lang, alpaca_original(rng, lang) if kind == "alpaca" else sharegpt_original(rng, lang)


def edited(kind: str, rec, rng: random.Random, lang: str, level: str):
    if kind == "alpaca":
        return {"instruction": bench.edit(rng, rec["instruction"], lang, level), "input": rec["input"],
                "output": bench.edit(rng, rec["output"], lang, level)}
    return [(who, bench.edit(rng, tokens, lang, level)) for who, tokens in rec]


def to_json(kind: str, rec, lang: str) -> bytes:
    if kind == "alpaca":
        row = {"instruction": bench.join(rec["instruction"], lang), "input": rec["input"],
               "output": bench.join(rec["output"], lang)}
    else:
        row = {"conversations": [{"from": who, "value": bench.join(tokens, lang)} for who, tokens in rec]}
    return orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)


# ---------------------------------------------------------------------------------------------
# layout: which position holds which record

def n_originals(n: int) -> int:
    return n - n // BLOCK


@functools.lru_cache(maxsize=4)  # asked once per position, made once per block
def copy_plan(seed: int, block: int, n: int) -> tuple[int, int, str]:
    """(slot in the block, source original, edit level) of the copy in a full block."""
    rng = rng_for(seed, COPY, block)
    return rng.randrange(BLOCK), rng.randrange(n_originals(n)), bench.LEVELS[block % len(bench.LEVELS)]


def describe(n: int, seed: int, position: int) -> tuple:
    """("original", k) or ("copy", source original, level) for one position (for checks)."""
    block, slot = divmod(position, BLOCK)
    if block >= n // BLOCK:  # the tail after the last full block: originals only
        return ("original", (BLOCK - 1) * block + slot)
    copy_slot, source, level = copy_plan(seed, block, n)
    if slot == copy_slot:
        return ("copy", source, level)
    return ("original", (BLOCK - 1) * block + slot - (slot > copy_slot))


def record_at(kind: str, n: int, seed: int, position: int) -> bytes:
    what = describe(n, seed, position)
    lang, rec = original(kind, seed, what[1])
    if what[0] == "copy":
        rec = edited(kind, rec, rng_for(seed, EDIT, position // BLOCK), lang, what[2])
    return to_json(kind, rec, lang)


def write_range(kind: str, n: int, seed: int, start: int, stop: int, path: str) -> None:
    with open(path, "wb") as fh:
        for lo in range(start, stop, BATCH):
            fh.write(b"".join(record_at(kind, n, seed, p) for p in range(lo, min(stop, lo + BATCH))))


# ---------------------------------------------------------------------------------------------

def generate(kind: str, n: int, seed: int, path: str, processes: int = 2) -> None:
    """Write n records to path (through a temporary name, so a cut-off run never looks finished)."""
    assert kind in KINDS, kind
    tmp = f"{path}.part"
    bounds = [round(n * i / processes / BLOCK) * BLOCK for i in range(processes)] + [n]
    parts = [f"{tmp}{i}" for i in range(processes)]
    ctx = mp.get_context("fork")  # the children share the loaded word lists
    procs = [ctx.Process(target=write_range, args=(kind, n, seed, bounds[i], bounds[i + 1], parts[i]))
             for i in range(processes)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode:
            raise RuntimeError(f"generator process failed (exit {p.exitcode})")
    with open(parts[0], "ab") as out:
        for part in parts[1:]:
            with open(part, "rb") as fh:
                shutil.copyfileobj(fh, out, 1 << 24)
            os.remove(part)
    os.replace(parts[0], path)


def cached(kind: str, n: int, seed: int, folder: str) -> str:
    """The path of the (kind, n, seed) file in folder, generated first if it is not there."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{kind}-{n}-seed{seed}-v{VERSION}.jsonl")
    if not os.path.exists(path):
        t0 = time.perf_counter()
        generate(kind, n, seed, path)
        dt = time.perf_counter() - t0
        print(f"generated {path}: {os.path.getsize(path) / n:.0f} bytes/record, {dt:.1f} s "
              f"({n / dt:,.0f} records/s)", flush=True)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=KINDS)
    ap.add_argument("n", type=int)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    generate(args.kind, args.n, args.seed, args.out)
    print(f"{args.n:,} records in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
