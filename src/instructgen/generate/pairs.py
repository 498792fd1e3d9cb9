"""Preference pairs: k answers to each prompt, judged pairwise in both orders, written as chosen/rejected.

One row is one prompt (a seed instruction with its input). Its requests:

    answer j     the prompt as it is, at --pair-temperatures[j] (cycled), j = 0..k-1
    judge        for every two answers x < y: MT-bench's pairwise prompt (prompts.mt_bench) with x as A and y as B,
                 and again with y as A and x as B

A comparison makes a pair only when both orders name the same winner: a tie, a disagreement (position bias) or
two identical answers make none, and go to the rejects file with both raw judgements; an unreadable verdict
goes there too, as an unreadable reply. Each agreed comparison is one record: the prompt, chosen and rejected
(the canonical preference record: alpaca/history write LLaMA-Factory's ranking layout, openai its preference
layout), with meta["pairs"] holding the temperatures, the verdicts and the prompt's origin.
Rows are decided strictly in prompt order (resume-safe, as the other modes); -n caps the pairs written.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from ..convert import write_records
from ..formats.base import join_instruction, single_turn
from ..prompts import mt_bench
from ..quality.judges import get_judge
from ..quality.parse import ParsedScore, parse_score
from ..record import Conversation, Message
from .client import ChatResult
from .loops import SURPLUS, GenerationLoop, cancel_all

DISAGREE = "judges disagree across orders (position bias): no pair"
TIE = "judged a tie: no pair"
IDENTICAL = "identical answers: no pair"
UNREADABLE_VERDICT = "unreadable verdict (no [[A]], [[B]] or [[C]])"
UNSCORED = "unscored answer: the judge's reply holds no score"
PAIRWISE = "pairwise"


@dataclass(slots=True)
class Comparison:
    x: int
    y: int
    verdicts: tuple[str | None, str | None] = (None, None)  # x as A, then y as A
    raw: tuple[str, str] = ("", "")
    results: tuple[ChatResult | None, ChatResult | None] = (None, None)

    def winner(self) -> int | None:
        """The answer both orders prefer, or None (tie, disagreement)."""
        first, second = self.verdicts
        by_first = {"A": self.x, "B": self.y}.get(first or "")
        by_second = {"A": self.y, "B": self.x}.get(second or "")
        return by_first if by_first is not None and by_first == by_second else None


@dataclass(slots=True)
class PromptRow:
    index: int
    prompt: str
    answers: list[str] = field(default_factory=list)
    temperatures: list[float] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    failed: ChatResult | None = None
    skipped: bool = False
    scores: list[ParsedScore | None] = field(default_factory=list)  # --judge <score judge>: one per answer
    score_results: list[ChatResult] = field(default_factory=list)

    @property
    def origin(self) -> str:
        return f"prompt {self.index}"


class PairsRun(GenerationLoop):
    mode = "pairs"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        endpoints = self.config.answer_endpoint_list()
        self.answer_clients = [self.endpoint_client(url, model) for url, model in endpoints] or [self.client]
        self.score_judge = get_judge(self.config.judge) if self.config.judge != PAIRWISE else None

    def answer_source(self, j: int) -> dict[str, Any]:
        """Where answer j came from (no credentials): its temperature, and its endpoint when not the run's."""
        c = self.config
        source: dict[str, Any] = {"temperature": c.pair_temperatures[j % len(c.pair_temperatures)]}
        if c.answer_endpoints:
            client = self.answer_clients[j % len(self.answer_clients)]
            source.update(model=client.config.model, endpoint=client.config.redacted_base_url)
        return source

    async def row(self, i: int, prompt: str) -> PromptRow:
        c = self.config
        row = PromptRow(i, prompt)
        row.temperatures = [c.pair_temperatures[j % len(c.pair_temperatures)] for j in range(c.answers_per_prompt)]
        answers = await asyncio.gather(*(
            self.send_plain([{"role": "user", "content": prompt}], ("pair-answer", i, j, prompt), f"answer {i}.{j}",
                            row.origin, temperature=t, client=self.answer_clients[j % len(self.answer_clients)])
            for j, t in enumerate(row.temperatures)))
        if not self._all_ok(row, answers):
            return row
        row.answers = [a.text for a in answers]
        if self.score_judge is not None:
            return await self.score_row(row)
        pairs = [(x, y) for x, y in combinations(range(len(row.answers)), 2)
                 if row.answers[x].strip() != row.answers[y].strip()]
        row.comparisons = [Comparison(x, y) for x, y in combinations(range(len(row.answers)), 2)]
        judged = await asyncio.gather(*(
            self.send_plain(mt_bench.pairwise_messages(prompt, row.answers[a], row.answers[b]),
                            ("pair-judge", i, a, b, prompt), f"judge {i}: {a} vs {b}", row.origin, temperature=0.0)
            for x, y in pairs for a, b in ((x, y), (y, x))))
        if not self._all_ok(row, judged):
            return row
        verdicts = iter(judged)
        for comparison in row.comparisons:
            if (comparison.x, comparison.y) in pairs:
                first, second = next(verdicts), next(verdicts)
                comparison.results = (first, second)
                comparison.raw = (first.text, second.text)
                comparison.verdicts = (mt_bench.parse_verdict(first.text), mt_bench.parse_verdict(second.text))
        return row

    async def score_row(self, row: PromptRow) -> PromptRow:
        """--judge alpagasus | deita-quality | mt-bench: every answer scored once by `score`'s judge prompt."""
        judge = self.score_judge
        scored = await asyncio.gather(*(
            self.send_plain(judge.messages(single_turn(row.prompt, "", answer)),
                            ("pair-score", judge.name, row.index, j, row.prompt), f"score {row.index}.{j}",
                            row.origin, temperature=0.0)
            for j, answer in enumerate(row.answers)))
        if self._all_ok(row, scored):
            row.scores = [parse_score(r.text, judge.low, judge.high) for r in scored]
            row.score_results = list(scored)
        return row

    def _all_ok(self, row: PromptRow, results: list[ChatResult]) -> bool:
        bad = next((r for r in results if not r.ok), None)
        if bad is None:
            return True
        if bad.interrupted:
            row.skipped = True
        else:
            row.failed = bad
        return False

    # -- deciding, in order -------------------------------------------------------------------------
    def decide(self, row: PromptRow) -> None:
        log = self.log
        if row.skipped:
            self.skipped_rows += 1
            return
        if row.failed is not None:
            self.lost_instructions += 1
            self.failed_request(log, row.origin, row.failed, prompt=row.prompt)
            return
        if self.score_judge is not None:
            self.decide_by_scores(row)
            return
        for comp in row.comparisons:
            where = f"{row.origin} answers {comp.x} vs {comp.y}"
            raw = {"prompt": row.prompt, "answer_a": row.answers[comp.x], "answer_b": row.answers[comp.y],
                   "judgement_ab": comp.raw[0], "judgement_ba": comp.raw[1]}
            if comp.results == (None, None):
                self.drop(log, where, IDENTICAL, raw, mode=self.mode)
                continue
            unreadable = next((r for r, v in zip(comp.results, comp.verdicts) if v is None), None)
            if unreadable is not None:
                self.unreadable(log, where, UNREADABLE_VERDICT, unreadable, raw, row=row.origin)
                continue
            winner = comp.winner()
            if winner is None:
                reason = TIE if comp.verdicts == ("C", "C") else DISAGREE
                self.drop(log, where, reason, raw, mode=self.mode, verdicts=list(comp.verdicts))
                continue
            loser = comp.y if winner == comp.x else comp.x
            self.write_pair(row, where, winner, loser, raw, verdicts=list(comp.verdicts),
                            judge="mt-bench pair-v2, both orders")

    def decide_by_scores(self, row: PromptRow) -> None:
        """Chosen: the best-scored answer, rejected: the worst; an unscored answer or a tie makes no pair."""
        log, judge = self.log, self.score_judge
        where = f"{row.origin} answers " + " vs ".join(map(str, range(len(row.answers))))
        raw = {"prompt": row.prompt, "answers": row.answers, "judgements": [r.text for r in row.score_results]}
        unscored = next((j for j, s in enumerate(row.scores) if s is None), None)
        if unscored is not None:
            self.unreadable(log, where, UNSCORED, row.score_results[unscored], {**raw, "unscored_answer": unscored},
                            row=row.origin)
            return
        values = [s.value for s in row.scores]
        best, worst = values.index(max(values)), values.index(min(values))
        if values[best] == values[worst]:
            self.drop(log, where, TIE, raw, mode=self.mode, scores=values, judge=judge.name)
            return
        self.write_pair(row, where, best, worst, raw, scores=[values[best], values[worst]],
                        judge=f"{judge.name} ({judge.low:g}-{judge.high:g}), highest vs lowest")

    def write_pair(self, row: PromptRow, where: str, winner: int, loser: int, raw: dict, **judged: Any) -> None:
        log = self.log
        log.took_in()
        if self.kept_instructions >= self.config.num_instructions:
            log.drop(where, SURPLUS, raw, kind="filtered")
            return
        self.kept_instructions += 1
        meta = {"pairs": {"temperatures": [row.temperatures[winner], row.temperatures[loser]], **judged}}
        if self.config.answer_endpoints:
            meta["pairs"]["sources"] = [self.answer_source(winner), self.answer_source(loser)]
        conv = Conversation([Message("user", row.prompt)], meta=meta, origin=where,
                            chosen=Message("assistant", row.answers[winner]),
                            rejected=Message("assistant", row.answers[loser]))
        write_records([conv], self.writer, self.config.format, log, self.dump_options)

    async def run(self) -> None:
        c = self.config
        prompts = [join_instruction(s.instruction, s.instances[0][0] if s.instances else "") for s in self.seeds]
        k = c.answers_per_prompt
        self.requests_limit = len(prompts) * (k + (k if self.score_judge else k * (k - 1)))
        pending: dict[int, asyncio.Task] = {}
        nxt = 0
        try:
            for i in range(len(prompts)):
                if self.kept_instructions >= c.num_instructions or self.client.stopped:
                    break
                while nxt < len(prompts) and nxt < i + self.row_window():
                    pending[nxt] = asyncio.create_task(self.row(nxt, prompts[nxt]))
                    nxt += 1
                self.decide(await pending.pop(i))
        except BaseException:
            await cancel_all(pending.values())
            raise
        await self.finish_rows(pending.values())
        self.log.info.update(mode=self.mode, prompts=len(prompts), answers_per_prompt=k)
