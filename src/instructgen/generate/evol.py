"""Evol-Instruct (WizardLM): evolve seed instructions round by round, answer each evolution, eliminate the failed.

One row is one evolution: (round r, pool slot i). Its chain of requests:

    evolve   one of the six mutations (prompts.evol_instruct), chosen by --seed, r and the slot's instruction
    answer   the evolved instruction, asked as it is                      } sent together
    judge    the paper's equality prompt: parent vs evolution              }

then, in slot order, the four elimination rules (`elimination`), then the ROUGE-L diversity filter against the
seeds and every kept evolution except the row's own ancestors (rule 1 judges the gain over the parent). A kept
evolution replaces its parent in the pool and is written with its lineage in meta["evol"] (id, parent, parent_id,
root, round, mutation); an eliminated or failed one leaves the parent in the pool, to be evolved again in the
next round (as the paper does with failed evolutions). Slot i of round r+1 starts as soon as slot i of round r
is decided, so the concurrency cap stays full across rounds; decisions are taken strictly in (round, slot)
order, so a resumed run (answers replayed from the cache) decides exactly as an uninterrupted one. A row that
--retry-failed recovered is decided after all others and does not replace its parent in the pool: the retry
adds to the earlier run's output and changes nothing in it.

A request that failed for good, a reply that could not be read (an empty evolution, a judge answer that is
neither "Equal" nor "Not Equal") and every elimination go to the rejects file with the reason and the raw reply.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

from ..formats.base import join_instruction
from ..prompts import evol_instruct as prompts
from . import elimination as rules
from .client import ChatResult
from .loops import SURPLUS, GenerationLoop, cancel_all


@dataclass(slots=True)
class Slot:
    """An instruction in the pool, with where it came from."""
    id: str
    text: str
    round: int
    root: str
    mutation: str | None = None
    parent: "Slot | None" = None
    index_ids: tuple[int, ...] = ()  # its own and its ancestors' entries in the diversity index


@dataclass(slots=True)
class Evolution:
    round: int
    slot: int
    parent: Slot
    mutation: str
    evolved: str = ""
    answer: str = ""
    failed: ChatResult | None = None  # a request that failed for good
    skipped: bool = False  # not sent: the run is stopping (or --retry-failed does not send it)
    unreadable: tuple[str, ChatResult] | None = None
    rule: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return f"evolution {self.round}.{self.slot}"


class EvolRun(GenerationLoop):
    mode = "evol"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lang = self.config.lang
        self.pool = [Slot(f"seed {n}", join_instruction(s.instruction, s.instances[0][0] if s.instances else ""),
                          0, f"seed {n}", index_ids=(n,)) for n, s in enumerate(self.seeds)]
        self.eliminated: dict[str, int] = {}

    # -- one row ------------------------------------------------------------------------------------
    async def evolve(self, r: int, i: int, parent: Slot) -> Evolution:
        c = self.config
        rng = random.Random(f"{c.seed}:evol:{r}:{i}:{parent.text}")
        mutation = rng.choice(prompts.MUTATIONS)
        prompt = prompts.evolution_prompt(parent.text, mutation, self.lang, rng.choice(prompts.INPUT_FORMATS))
        row = Evolution(r, i, parent, mutation)
        result = await self.send_plain([{"role": "user", "content": prompt}], ("evolve", r, i, parent.text),
                                       f"evolve {r}.{i}", row.origin)
        if not result.ok:
            return self._not_answered(row, result)
        row.evolved = result.text.strip()
        row.raw = {"parent": parent.text, "mutation": mutation, "evolved": result.text}
        if copied := rules.copies_prompt(row.evolved, self.lang):
            row.rule, row.raw["copied"] = rules.COPIES_PROMPT, copied
            return row
        answer, judged = await asyncio.gather(
            self.send_plain([{"role": "user", "content": row.evolved}], ("answer", r, i, row.evolved),
                            f"answer {r}.{i}", row.origin),
            self.send_plain([{"role": "user", "content": prompts.equality_prompt(parent.text, row.evolved, self.lang)}],
                            ("equality", r, i, row.evolved), f"equality {r}.{i}", row.origin, temperature=0.0))
        for result in (answer, judged):
            if not result.ok:
                return self._not_answered(row, result)
        row.answer = answer.text
        row.raw.update(answer=answer.text, judgement=judged.text)
        equal = rules.parse_equality(judged.text)
        if equal is None:
            row.unreadable = ("unreadable equality judgement (neither Equal nor Not Equal)", judged)
        elif equal:
            row.rule = rules.NO_GAIN
        else:
            row.rule = rules.answer_problem(answer.text)
        return row

    @staticmethod
    def _not_answered(row: Evolution, result: ChatResult) -> Evolution:
        if result.interrupted:
            row.skipped = True
        else:
            row.failed = result
        return row

    # -- deciding, in order ---------------------------------------------------------------------------
    def decide(self, row: Evolution) -> Slot:
        """Take the row into the log; the slot's instruction for the next round."""
        log, parent = self.log, row.parent
        if row.skipped:
            self.skipped_rows += 1
            return parent
        if row.failed is not None:
            self.lost_instructions += 1
            self.failed_request(log, row.origin, row.failed, parent=parent.text)
            return parent
        if row.unreadable is not None:
            reason, result = row.unreadable
            self.unreadable(log, row.origin, reason, result, row.raw)
            return parent
        if not row.evolved:
            self.unreadable(log, row.origin, "empty evolution", None, row.raw)
            return parent
        if row.rule:
            self.eliminated[row.rule] = self.eliminated.get(row.rule, 0) + 1
            self.drop(log, row.origin, f"eliminated: {row.rule}", {**row.raw, "instruction": row.evolved},
                      rule=row.rule, mode=self.mode)
            return parent
        match = self.index.most_similar_above(row.evolved, exclude=parent.index_ids)
        if match is not None:
            self.drop(log, row.origin, f"ROUGE-L > {self.config.similarity_threshold:g} against a kept instruction",
                      {**row.raw, "instruction": row.evolved}, kind="duplicates", similar_to=match.text,
                      rouge_l=round(match.score, 4))
            return parent
        log.took_in()
        if self.kept_instructions >= self.config.num_instructions:
            log.drop(row.origin, SURPLUS, {**row.raw, "instruction": row.evolved}, kind="filtered")
            return parent
        idx = self.index.add(row.evolved)
        self.kept_instructions += 1
        child = Slot(f"r{row.round}.{row.slot}", row.evolved, row.round, parent.root, row.mutation, parent,
                     (*parent.index_ids, idx))
        lineage = {"id": child.id, "parent": parent.text, "parent_id": parent.id, "root": parent.root,
                   "round": row.round, "mutation": row.mutation}
        self.write(row.evolved, "", row.answer, row.origin, meta={"evol": lineage})
        return child

    # -- the loop -------------------------------------------------------------------------------------
    async def run(self) -> None:
        c = self.config
        self.requests_limit = 3 * c.rounds * len(self.pool)
        deferred: list[Evolution] = []
        queue: list[tuple[int, int, asyncio.Task]] = [
            (1, i, asyncio.create_task(self.evolve(1, i, slot))) for i, slot in enumerate(self.pool)]
        try:
            while queue:
                r, i, task = queue.pop(0)
                row = await task
                if self.recovered(row.origin):
                    deferred.append(row)  # decided last: it changes no decision of the run it recovers
                else:
                    self.pool[i] = self.decide(row)
                if self.kept_instructions >= c.num_instructions:
                    break
                if r < c.rounds and not self.client.stopped:
                    queue.append((r + 1, i, asyncio.create_task(self.evolve(r + 1, i, self.pool[i]))))
        except BaseException:
            await cancel_all(task for _, _, task in queue)
            raise
        await self.finish_rows(task for _, _, task in queue)
        for row in deferred:
            self.decide(row)
        self.log.info.update(mode=self.mode, rounds=c.rounds, eliminated=dict(self.eliminated))
