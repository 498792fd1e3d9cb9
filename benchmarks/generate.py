"""Benchmarks for `instructgen generate`, each side by side with its baseline, in one process.

1. Diversity filter: mean cost per candidate of `RougeLIndex.most_similar_above` against a pool of
   1K / 10K / 50K kept instructions, vs the Self-Instruct/Alpaca method (rouge_score's LCS of the
   candidate against every pool entry, tokens precomputed as Alpaca does). Both must make the same
   keep/reject decision for every candidate timed. Large pools: brute force is timed on a sample
   of candidates and the per-candidate mean extrapolated (the output says so).
2. Client throughput: 2,000 requests at concurrency 32 against the LLM test double with a fixed
   200 ms latency (run as a separate process): our client (one tenacity retry policy, an overall deadline
   per attempt, answer checks, usage) vs the bare openai SDK behind a semaphore, alternating rounds;
   both also as a ratio to the ideal (32 / 0.2 s).
3. Modes: each generate mode (evol, pairs, chat) end to end through `generate()` against the same double,
   requests per second as a ratio to the ideal at the concurrency cap (issue 21 asks >= 0.9), and to the
   ceiling measured just before on the same machine (independent requests through the same client and double:
   on a loaded machine the double itself falls short of the ideal, and this ratio isolates the mode's loop), and
   the gap split in two: how full the loop kept the cap (mean requests in flight) and how long a request was in
   flight against the double's latency (the client's and the double's per-request overhead).

    python benchmarks/generate.py                 # both
    python benchmarks/generate.py --only filter --sizes 1000,10000
    python benchmarks/generate.py --only modes --modes evol,pairs --concurrency 32 --latency 0.2
    python benchmarks/generate.py --only modes --prompts 1000      # a longer run (1,000 prompts)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED_SEEDS = REPO.parent / "shared" / "data" / "seeds" / "self_instruct_seed_tasks.jsonl"
OWN_SEEDS = REPO / "data" / "seeds" / "seed_tasks_en.jsonl"


def synthetic_instructions(n: int, rng: random.Random) -> list[str]:
    """Instruction-like texts: 6-25 words from the unigram distribution of real seed tasks (all their text),
    starting with a verb seen at the start of a seed instruction. Word frequencies (the, a, of, ...) are real."""
    path = SHARED_SEEDS if SHARED_SEEDS.exists() else OWN_SEEDS
    words: Counter[str] = Counter()
    starts: Counter[str] = Counter()
    for line in path.open(encoding="utf-8"):
        row = json.loads(line)
        text = " ".join([row["instruction"]] + [i["input"] + " " + i["output"] for i in row["instances"]])
        words.update(w.lower() for w in re.findall(r"[A-Za-z]+", text))
        starts[row["instruction"].split()[0]] += 1
    vocab, weights = zip(*words.items())
    first, first_w = zip(*starts.items())
    out = []
    for _ in range(n):
        k = rng.randint(6, 25)
        out.append(" ".join([rng.choices(first, first_w)[0], *rng.choices(vocab, weights, k=k - 1)]) + ".")
    return out, path


def near_copy(text: str, rng: random.Random) -> str:
    words = text.split()
    kept = [w for w in words if rng.random() < 0.85]
    return " ".join(kept or words)


def bench_filter(sizes: list[int], candidates_per_size: int, brute_budget_s: float) -> None:
    from rouge_score import rouge_scorer

    from instructgen.generate.similarity import RougeLIndex

    rng = random.Random(0)
    biggest = max(sizes)
    pool, source = synthetic_instructions(biggest, rng)
    print(f"[filter] pool: synthetic instructions sampled from the word distribution of {source.name}; "
          f"threshold 0.7; baseline: rouge_score _score_lcs against every pool entry (tokens precomputed)")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    print(f"{'pool':>7} {'index µs/cand':>14} {'LCS/cand':>9} {'brute ms/cand':>14} {'timed brute':>12} "
          f"{'speed-up':>9} {'same decisions':>15} {'rejected':>9}")
    for size in sorted(sizes):
        index = RougeLIndex(0.7)
        t0 = time.perf_counter()
        for text in pool[:size]:
            index.add(text)
        add_us = (time.perf_counter() - t0) / size * 1e6
        fresh, _ = synthetic_instructions(candidates_per_size, random.Random(size))
        cands = [near_copy(rng.choice(pool[:size]), rng) if i % 4 == 0 else fresh[i]
                 for i in range(candidates_per_size)]
        for c in cands[:20]:  # warm-up (numpy's first calls), not timed
            index.most_similar_above(c)
        lcs0 = index.lcs_computed
        t0 = time.perf_counter()
        ours = [index.most_similar_above(c) is None for c in cands]
        index_us = (time.perf_counter() - t0) / len(cands) * 1e6
        lcs_per = (index.lcs_computed - lcs0) / len(cands)

        pool_tokens = [scorer._tokenizer.tokenize(t) for t in pool[:size]]
        brute, timed, spent = [], 0, 0.0
        for c in cands:
            t0 = time.perf_counter()
            tokens = scorer._tokenizer.tokenize(c)
            best = max(rouge_scorer._score_lcs(tokens, p).fmeasure for p in pool_tokens)
            spent += time.perf_counter() - t0
            brute.append(best <= 0.7)
            timed += 1
            if spent > brute_budget_s and timed >= 3:
                break
        brute_ms = spent / timed * 1e3
        same = ours[:timed] == brute
        note = "all" if timed == len(cands) else f"{timed} (extrap.)"
        print(f"{size:>7} {index_us:>14.1f} {lcs_per:>9.1f} {brute_ms:>14.1f} {note:>12} "
              f"{brute_ms * 1e3 / index_us:>8.0f}x {str(same):>15} {ours.count(False):>9}"
              f"   (index insert {add_us:.1f} µs/entry)")
        if not same:
            print("  DECISIONS DIFFER: a bug", file=sys.stderr)


def bench_client(requests: int, concurrency: int, latency: float, rounds: int = 2) -> None:
    """Our client (retry policy, overall deadline, answer checks, usage) vs the bare openai SDK (a semaphore,
    `chat.completions.create`, nothing else), alternating rounds on the same requests and the same server."""
    from openai import AsyncOpenAI

    from instructgen.generate.client import ChatClient, ChatRequest
    from instructgen.generate.config import ClientConfig

    server = subprocess.Popen([sys.executable, str(REPO / "tests" / "llm_double.py"), "--latency", str(latency)],
                              stdout=subprocess.PIPE, text=True)
    messages = [[{"role": "user", "content": f"Task 1: Say something about the number {i}."}] for i in range(requests)]
    params = [{"temperature": 1.0, "seed": i, "max_tokens": 100} for i in range(requests)]

    async def ours(url: str) -> float:
        client = ChatClient(ClientConfig(base_url=url, model="double", concurrency=concurrency, timeout=30),
                            "not-needed")
        reqs = [ChatRequest(m, p) for m, p in zip(messages, params)]
        await asyncio.gather(*(client.complete(r) for r in reqs[:concurrency]))  # warm the connections
        t0 = time.perf_counter()
        results = await asyncio.gather(*(client.complete(r) for r in reqs))
        elapsed = time.perf_counter() - t0
        await client.aclose()
        assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
        return elapsed

    async def bare(url: str) -> float:
        sdk = AsyncOpenAI(api_key="not-needed", base_url=url, timeout=30, max_retries=0)
        slots = asyncio.Semaphore(concurrency)

        async def one(m, p):
            async with slots:
                return (await sdk.chat.completions.create(model="double", messages=m, **p)).choices[0].message.content

        await asyncio.gather(*(one(m, p) for m, p in zip(messages[:concurrency], params)))
        t0 = time.perf_counter()
        texts = await asyncio.gather(*(one(m, p) for m, p in zip(messages, params)))
        elapsed = time.perf_counter() - t0
        await sdk.close()
        assert all(texts)
        return elapsed

    try:
        url = f"http://127.0.0.1:{int(server.stdout.readline().split()[1])}/v1"
        times: dict[str, list[float]] = {"ours": [], "bare": []}
        for _ in range(rounds):
            times["bare"].append(asyncio.run(bare(url)))
            times["ours"].append(asyncio.run(ours(url)))
    finally:
        server.kill()
        server.wait()
    ideal = concurrency / latency
    best = {k: requests / min(v) for k, v in times.items()}  # req/s of the best round (least disturbed)
    print(f"[client] {requests} requests, concurrency {concurrency}, double latency {latency * 1e3:.0f} ms, "
          f"best of {rounds} rounds: ours {best['ours']:.1f} req/s, bare openai SDK {best['bare']:.1f} req/s -> "
          f"ratio {best['ours'] / best['bare']:.3f}; vs ideal {ideal:.1f} req/s: ours {best['ours'] / ideal:.3f}, "
          f"bare {best['bare'] / ideal:.3f}")


def client_ceiling(url: str, concurrency: int, requests: int) -> float:
    """Requests per second of independent requests (no loop, no dependency between them) through ChatClient."""
    from instructgen.generate.client import ChatClient, ChatRequest
    from instructgen.generate.config import ClientConfig

    async def go() -> float:
        client = ChatClient(ClientConfig(base_url=url, model="double", concurrency=concurrency, timeout=60),
                            "not-needed")
        reqs = [ChatRequest([{"role": "user", "content": f"Say something about the number {i}."}],
                            {"temperature": 1.0, "seed": i, "max_tokens": 100}) for i in range(requests)]
        await asyncio.gather(*(client.complete(r) for r in reqs[:concurrency]))  # warm the connections
        t0 = time.perf_counter()
        await asyncio.gather(*(client.complete(r) for r in reqs))
        elapsed = time.perf_counter() - t0
        await client.aclose()
        return requests / elapsed
    return asyncio.run(go())


class InFlight:
    """Samples `usage.in_flight` of every ChatClient made while it is on (a thread, every 5 ms), to split a mode's
    gap to the ideal in two (Little's law, N requests in T seconds at cap C with a double latency of l):
        ratio = N / T / (C / l) = utilisation x l / L
    utilisation = mean requests in flight / C (did the loop keep the cap full?), L = mean time a request is in
    flight (the double's latency plus the client's and the double's own per-request overhead)."""

    def __init__(self) -> None:
        import threading

        from instructgen.generate.client import ChatClient

        self.clients: list = []
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._init = ChatClient.__init__
        clients = self.clients
        original = self._init

        def spying_init(client, *args, **kwargs):
            original(client, *args, **kwargs)
            clients.append(client)
        ChatClient.__init__ = spying_init
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.samples.append(sum(c.usage.in_flight for c in self.clients if c._leader is None))

    def close(self) -> float:
        """The mean number of requests in flight over the run."""
        from instructgen.generate.client import ChatClient

        self._stop.set()
        self._thread.join()
        ChatClient.__init__ = self._init
        return sum(self.samples) / max(1, len(self.samples))


def bench_modes(modes: list[str], concurrency: int, latency: float, rounds: int, prompts: int = 0) -> None:
    """Each generate mode end to end (loop, client, cache, filters, rules, writer) against the double with a fixed
    latency: requests per second vs the ideal at the concurrency cap (concurrency / latency)."""
    import tempfile

    from instructgen.generate.config import GenerateConfig
    from instructgen.generate.run import generate
    from instructgen.runlog import RunLog

    seeds = SHARED_SEEDS if SHARED_SEEDS.exists() else OWN_SEEDS
    server = subprocess.Popen([sys.executable, str(REPO / "tests" / "llm_double.py"), "--latency", str(latency)],
                              stdout=subprocess.PIPE, text=True)
    ideal = concurrency / latency
    try:
        url = f"http://127.0.0.1:{int(server.stdout.readline().split()[1])}/v1"
        # the machine is shared: the ceiling is measured just before and just after each mode, and the mode is
        # compared with their mean (one measure at the start drifted by a factor of 2 over a minute at load 6)
        ceiling = client_ceiling(url, concurrency, requests=20 * concurrency)
        print(f"[modes] ceiling on this machine now: {ceiling:.1f} req/s of independent requests through the same "
              f"client and double ({ceiling / ideal:.3f} of the ideal {ideal:.1f} req/s)")
        for mode in modes:
            before = ceiling
            with tempfile.TemporaryDirectory() as tmp:
                seed_file = more_seeds(seeds, prompts, Path(tmp) / "seeds.jsonl") if prompts else seeds
                config = GenerateConfig(seed_tasks=[seed_file], mode=mode, rounds=rounds, num_instructions=100_000,
                                        base_url=url, model="double", concurrency=concurrency, timeout=60,
                                        response_format="text", cache_dir=Path(tmp) / "cache")
                sampler = InFlight()
                t0 = time.perf_counter()
                try:
                    result = generate(config, Path(tmp) / "out.jsonl", RunLog("generate", Path(tmp) / "rejects.jsonl"))
                finally:
                    elapsed = time.perf_counter() - t0
                    in_flight = sampler.close()
            sent = result.usage["requests_sent"]
            held = in_flight * elapsed / sent  # Little's law: the mean time a request was in flight
            ceiling = client_ceiling(url, concurrency, requests=20 * concurrency)
            around = (before + ceiling) / 2
            print(f"[{mode}] {seeds.name}, {'rounds ' + str(rounds) + ', ' if mode == 'evol' else ''}concurrency "
                  f"{concurrency}, double latency {latency * 1e3:.0f} ms: {sent} requests in {elapsed:.2f} s = "
                  f"{sent / elapsed:.1f} req/s; ideal {ideal:.1f} req/s -> ratio {sent / elapsed / ideal:.3f}; "
                  f"the bare client's ceiling just before/after {before:.1f}/{ceiling:.1f} req/s "
                  f"({around / ideal:.3f} of the ideal) -> mode vs ceiling {sent / elapsed / around:.3f} "
                  f"({result.records_written} records); the gap: {in_flight:.1f} of {concurrency} in flight on "
                  f"average (utilisation {in_flight / concurrency:.3f}) x {latency * 1e3:.0f} ms / {held * 1e3:.1f} ms "
                  f"in flight per request ({latency / held:.3f})")
    finally:
        server.kill()
        server.wait()


def more_seeds(seeds: Path, n: int, out: Path) -> Path:
    """N seed tasks cycled from SEEDS, each told apart by a suffix (a longer run: the ramp-down at its end, when
    the last rows' dependent requests cannot fill the cap, weighs less)."""
    rows = [json.loads(line) for line in seeds.open(encoding="utf-8") if line.strip()]
    with out.open("w", encoding="utf-8") as fh:
        for i in range(n):
            row = dict(rows[i % len(rows)])
            row["instruction"] = f"{row['instruction']} (variant {i // len(rows)})"
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=("filter", "client", "modes"))
    ap.add_argument("--modes", default="evol,pairs,chat", help="generate modes for --only modes")
    ap.add_argument("--rounds", type=int, default=3, help="evol rounds for the modes benchmark")
    ap.add_argument("--prompts", type=int, default=0, help="modes: this many seed prompts, cycled from the seed file "
                    "(default: the seed file as it is)")
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--candidates", type=int, default=400)
    ap.add_argument("--brute-budget", type=float, default=20.0, help="seconds of brute force per pool size")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--latency", type=float, default=0.2)
    args = ap.parse_args()
    if args.only in (None, "filter"):
        bench_filter([int(s) for s in args.sizes.split(",")], args.candidates, args.brute_budget)
    if args.only in (None, "client"):
        bench_client(args.requests, args.concurrency, args.latency)
    if args.only in (None, "modes"):
        bench_modes(args.modes.split(","), args.concurrency, args.latency, args.rounds, args.prompts)


if __name__ == "__main__":
    main()
