"""`instructgen score` against the judge test double: throughput at the concurrency cap, and the parse rate.

1. Throughput: the double runs as its own process (tests/judge_double.py) answering every request after
   --latency seconds; N records are scored by one judge with --concurrency C. The ideal is C requests in flight
   all the time: N x latency / C seconds; the ratio ideal / measured must be >= 0.9. Run again with 429 and
   500 faults (10 % each, answered at once, retried with --retry-backoff 0): the ideal then counts every HTTP
   request the client sent (retries included).
2. Parse rate: the double in this process, every reply shape (bare, decimal, fractions, [[x]], JSON, 评分：x分,
   "x out of y", a first line then an explanation, another scale) on every built-in judge, 20 % of first
   replies with no score (asked again for the number alone): of the replies holding a score, the share the
   parser read back as the score the double meant; and every record scored with the value the double meant.

Usage: python benchmarks/score.py [--n 480] [--latency 1.0] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent / "src"))

from instructgen.quality.judges import BUILT_IN  # noqa: E402
from instructgen.quality.parse import parse_score  # noqa: E402
from instructgen.quality.score import ScoreConfig, ScoreLog, score_records  # noqa: E402
from instructgen.record import Conversation, Message  # noqa: E402


def records(n: int) -> list[Conversation]:
    out = []
    for i in range(n):
        q = (i * 7 % 11) / 10
        prompt = f"解释第{i}个关于城市园艺的话题" if i % 3 == 0 else f"Explain topic {i} about urban gardening"
        conv = Conversation([Message("user", prompt), Message("assistant", f"Answer {i}. QUALITY={q}")])
        conv.origin, conv.source_format = f"bench:{i + 1}", "alpaca"
        out.append(conv)
    return out


def run(base_url: str, judges: tuple[str, ...], n: int, concurrency: int, cache: str) -> tuple[float, object, list]:
    config = ScoreConfig(base_url=base_url, judge=judges, concurrency=concurrency, retry_backoff=0.0)
    kept: list = []
    t = time.perf_counter()
    report = score_records(records(n), config, ScoreLog("score"), kept.append, cache_dir=cache)
    return time.perf_counter() - t, report, kept


def bare_sdk(base_url: str, n: int, concurrency: int) -> float:
    """The floor: the bare openai SDK sending the same judge prompts, `concurrency` at a time, nothing else."""
    import asyncio

    from openai import AsyncOpenAI

    from instructgen.quality.judges import get_judge

    judge = get_judge("mt-bench")
    bodies = [judge.messages(conv) for conv in records(n)]

    async def go() -> None:
        client = AsyncOpenAI(api_key="not-needed", base_url=base_url, max_retries=0)
        slots = asyncio.Semaphore(concurrency)

        async def one(messages):
            async with slots:
                await client.chat.completions.create(model="bare", messages=messages, temperature=0.0,
                                                     max_tokens=512, seed=1)
        await asyncio.gather(*(one(m) for m in bodies))
        await client.close()
    t = time.perf_counter()
    asyncio.run(go())
    return time.perf_counter() - t


def throughput(n: int, latency: float, concurrency: int) -> None:
    double = subprocess.Popen([sys.executable, str(HERE.parent / "tests" / "judge_double.py"), "--latency",
                               str(latency)], stdout=subprocess.PIPE, text=True)
    faulty = subprocess.Popen([sys.executable, "-c", FAULTY, str(latency)], stdout=subprocess.PIPE, text=True)
    try:
        for label, proc in (("no faults", double), ("429 + 500 faults, 10 % each", faulty)):
            port = proc.stdout.readline().split()[1]
            with tempfile.TemporaryDirectory() as warm:  # imports, connections: not part of the figure
                run(f"http://127.0.0.1:{port}/v1", ("alpagasus",), concurrency, concurrency, warm)
            with tempfile.TemporaryDirectory() as cache:
                seconds, report, kept = run(f"http://127.0.0.1:{port}/v1", ("mt-bench",), n, concurrency, cache)
            sent = report.usage["requests_sent"]
            ideal = sent * latency / concurrency
            bare = f"; the bare openai SDK, same prompts: {bare_sdk(f'http://127.0.0.1:{port}/v1', n, concurrency):.2f} s" \
                if proc is double else ""
            print(f"{label}: {n} records, {sent} HTTP requests, concurrency {concurrency}, latency {latency:g} s: "
                  f"{seconds:.2f} s, ideal {ideal:.2f} s, ratio {ideal / seconds:.3f} (need >= 0.9); "
                  f"{len(kept)} scored, retries {report.usage['retries']}{bare}")
    finally:
        for proc in (double, faulty):
            proc.terminate()
            proc.wait()


FAULTY = """
import sys
sys.path.insert(0, %r)
from judge_double import JudgeDouble
d = JudgeDouble(latency=float(sys.argv[1]), faults={"429": 0.1, "500": 0.1})
print("PORT", d.port, flush=True)
d.server.serve_forever()
""" % str(HERE.parent / "tests")


def parse_rate(n: int) -> None:
    from judge_double import JudgeDouble

    with JudgeDouble(noscore=0.2) as double, tempfile.TemporaryDirectory() as cache:
        _, report, kept = run(double.base_url, tuple(BUILT_IN), n, 16, cache)
        holding = list(double.truth)
        right = sum(1 for k in holding if (p := parse_score(double.replies[k], *double.scales[k])) is not None
                    and abs(p.value - double.truth[k]) < 1e-9)
        without = sum(1 for k in double.replies if k not in double.truth)
    wrong_records = 0
    for conv in kept:
        q = float(conv.messages[-1].content.rsplit("QUALITY=", 1)[1])
        for name, (low, high, _) in BUILT_IN.items():
            if name == "deita-complexity":  # its prompt shows only the instruction: the double's score is a hash
                continue
            wrong_records += conv.meta["scores"][name] != round((low + q * (high - low)) * 2) / 2
    shapes = {name: tally.shapes for name, tally in report.judges.items()}
    print(f"parse rate: {right}/{len(holding)} replies holding a score read back exactly = "
          f"{right / len(holding):.4f} (need 1.0); {without} replies without a score, each asked again")
    print(f"records: {len(kept)}/{n} scored by all {len(BUILT_IN)} judges, {wrong_records} scores not what the "
          f"double meant; shapes seen: {dict(sum((s for s in shapes.values()), start=__import__('collections').Counter()))}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=480)
    ap.add_argument("--latency", type=float, default=1.0)  # a judge reply takes seconds; at 0.2 s the client's CPU shows
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    throughput(args.n, args.latency, args.concurrency)
    parse_rate(min(args.n, 400))


if __name__ == "__main__":
    os.environ.setdefault("OPENAI_API_KEY", "")
    main()
