"""JudgeDouble: the LLM test double (tests/llm_double.py, same server, faults and latency) answering JUDGE prompts.

It reads the scale the prompt asks for ("scale of 0 to 5", "from 1 (simplest) to 6", "one number from 1 to 10";
1-10 when none is named), picks a score, and writes it in one of the shapes judges use:

    4 | 4.5 | Score: 4/5 | Rating: [[8]] | {"score": 3} | 评分：4分 | I would rate it 3 out of 5 |
    4 then an explanation (AlpaGasus) | an explanation then Rating: [[8]] (MT-Bench) | Score: 8/10 on a 0-5 scale

The score is a function of the request only: `QUALITY=0.8` written anywhere in the prompt (e.g. in a
record's answer) fixes it at low + 0.8 x (high - low), rounded to a half point, so two judges of the same
record agree; otherwise it comes from a hash of the prompt. `noscore` (a share of requests, by hash) answers
without any number; `never` makes those requests' stricter retry fail too. `truth[key]` keeps, for every
answer that holds a score, the score on the judge's scale: what a parser must read back.
Run standalone: `python tests/judge_double.py --latency 0.05` prints `PORT <n>`.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from llm_double import LLMDouble, request_key  # noqa: E402

SHAPES = ("bare", "decimal", "fraction", "brackets", "json", "chinese", "out_of", "first_line", "mt_bench",
          "other_scale")
STRICTER_MARK = "Answer with the score only"
NO_SCORE_REPLIES = ("I am not able to evaluate this response without more context.",
                    "The answer is fine overall but could be more detailed.", "这个回答基本正确，但不够详细。")


class JudgeDouble(LLMDouble):
    def __init__(self, *args, noscore: float = 0.0, never: bool = False, shapes: tuple[str, ...] = SHAPES, **kw):
        super().__init__(*args, **kw)
        self.noscore = noscore
        self.never = never
        self.shapes = shapes
        self.truth: dict[str, float] = {}  # request key -> the score the reply holds (judge's scale)
        self.replies: dict[str, str] = {}
        self.scales: dict[str, tuple[float, float]] = {}

    def compose(self, body: dict, rng: random.Random) -> str:
        text = "\n".join(m.get("content", "") for m in body.get("messages", []))
        last = body["messages"][-1]["content"]
        low, high = scale_in(text)
        key = request_key(body)
        value = self.score_for(text, low, high, rng)
        if STRICTER_MARK in last:
            if self.never:
                reply = "I still cannot give a number for this."
            else:
                reply, value = f"{value:g}", value
        elif rng.random() < self.noscore:
            reply = rng.choice(NO_SCORE_REPLIES)
        else:
            reply = self.shaped(value, low, high, rng)
        if re.search(r"\d", reply):
            self.truth[key] = value
        self.replies[key], self.scales[key] = reply, (low, high)
        return reply

    @staticmethod
    def score_for(text: str, low: float, high: float, rng: random.Random) -> float:
        m = re.search(r"QUALITY=([01](?:\.\d+)?)", text)
        q = float(m.group(1)) if m else rng.random()
        return round((low + q * (high - low)) * 2) / 2

    def shaped(self, value: float, low: float, high: float, rng: random.Random) -> str:
        shape = rng.choice(self.shapes)
        if shape == "bare":
            return f"{value:g}"
        if shape == "decimal":
            return f"{value:.1f}"
        if shape == "fraction":
            return f"Score: {value:g}/{high:g}"
        if shape == "brackets":
            return f"Rating: [[{value:g}]]"
        if shape == "json":
            return json.dumps({"score": value, "reason": "clear and correct"})
        if shape == "chinese":
            return f"评分：{value:g}分"
        if shape == "out_of":
            return f"I would rate it {value:g} out of {high:g}"
        if shape == "first_line":
            return f"{value:g}\nThe response follows the instruction; a few details (1/2 of them) are missing."
        if shape == "mt_bench":
            return (f"The answer is relevant and mostly accurate, with 2 minor slips in 3 steps. "
                    f"Rating: [[{value:g}]]")
        # other_scale: twice the judge's scale, as a fraction (the parser maps it back)
        return f"Score: {value * 2:g}/{high * 2:g}"


def scale_in(text: str) -> tuple[float, float]:
    for pattern in (r"scale of (\d+) to (\d+)", r"from (\d+) \(\w+\) to (\d+)", r"one number from (\d+) to (\d+)",
                    r"scale (\d+)-(\d+)"):
        m = re.search(pattern, text)
        if m:
            return float(m.group(1)), float(m.group(2))
    return 1.0, 10.0


def main() -> None:
    ap = argparse.ArgumentParser(description="Run the judge test double until killed.")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--noscore", type=float, default=0.0)
    args = ap.parse_args()
    double = JudgeDouble(latency=args.latency, port=args.port, noscore=args.noscore)
    print(f"PORT {double.port}", flush=True)
    try:
        double.server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
