"""Multi-turn self-chat (Baize / UltraChat style): a user simulator and an assistant, turn by turn.

One row is one topic (`--topics FILE`: one topic a line in a .txt file, or seed tasks whose instructions are the
topics). Turn t: the user simulator (prompts.self_chat) writes the user's next message, or [END]; the assistant
is asked the conversation so far. The chat stops when the simulator ends it or after --turns turns. The record
is the canonical multi-turn conversation (roles alternate, user first, assistant last), then `turn_filter` judges
it turn by turn: `instructgen generate` passes the filter stage's junk rules (`curate.filter.filter_records`; a
stage does not import another), so a first turn that is junk drops the chat and a later one cuts it before that
turn, each with the rule and the raw text in the rejects file; in a pipeline the filter stage does it. A chat the
simulator ended before the first turn is recorded as such. Rows are decided strictly in topic order.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..convert import write_records
from ..errors import InstructgenError
from ..prompts import self_chat
from ..record import Conversation, Message
from ..runlog import RunLog
from .client import ChatResult
from .loops import SURPLUS, GenerationLoop, cancel_all

EMPTY_CHAT = "the user simulator ended the chat before the first turn"


@dataclass(slots=True)
class ChatRow:
    index: int
    topic: str
    turns: list[tuple[str, str]] = field(default_factory=list)
    ended_by_user: bool = False
    failed: ChatResult | None = None
    skipped: bool = False

    @property
    def origin(self) -> str:
        return f"chat {self.index}"


def load_topics(paths: list[Path]) -> list[str]:
    """Topics: each non-empty line of a .txt file; the instructions of a seed-task file (any format) otherwise."""
    from .seeds import load_seed_tasks

    topics: list[str] = []
    for path in paths:
        if Path(path).suffix.lower() == ".txt":
            try:
                lines = Path(path).read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as e:
                raise InstructgenError(f"--topics: cannot read {path}: {e}") from None
            topics += [line.strip() for line in lines if line.strip()]
        else:
            topics += [s.instruction for s in load_seed_tasks([path])]
    if not topics:
        raise InstructgenError(f"--topics: no topic in {', '.join(map(str, paths))}")
    return topics


class ChatRun(GenerationLoop):
    mode = "chat"
    rows_per_slot = 4

    # (records, log) -> the records that pass, cut or whole; the dropped and cut turns go to `log`
    turn_filter: Callable[[Iterable[Conversation], RunLog], Iterator[Conversation]] | None = None

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.topics = load_topics(self.config.seed_tasks)
        self.ended_by_user = 0
        user = self.config.user_endpoint
        self.user_client = self.endpoint_client(*user) if user else self.client

    async def row(self, i: int, topic: str) -> ChatRow:
        c = self.config
        row = ChatRow(i, topic)
        for t in range(1, c.turns + 1):
            prompt = self_chat.user_simulator_prompt(topic, row.turns, c.lang)
            user = await self.send_plain([{"role": "user", "content": prompt}], ("chat-user", i, t, topic),
                                         f"user {i}.{t}", row.origin, client=self.user_client)
            if not self._ok(row, user):
                return row
            if self_chat.ends_chat(user.text):
                row.ended_by_user = True
                return row
            row.turns.append(("user", user.text.strip()))
            messages = [{"role": role, "content": text} for role, text in row.turns]
            answer = await self.send_plain(messages, ("chat-assistant", i, t, topic), f"assistant {i}.{t}",
                                           row.origin)
            if not self._ok(row, answer):
                return row
            row.turns.append(("assistant", answer.text))
        return row

    @staticmethod
    def _ok(row: ChatRow, result: ChatResult) -> bool:
        if result.ok:
            return True
        if result.interrupted:
            row.skipped = True
        else:
            row.failed = result
        return False

    def decide(self, row: ChatRow) -> None:
        log = self.log
        if row.skipped:
            self.skipped_rows += 1
            return
        if row.failed is not None:
            self.lost_instructions += 1
            self.failed_request(log, row.origin, row.failed, topic=row.topic)
            return
        if not row.turns:
            self.drop(log, row.origin, EMPTY_CHAT, {"topic": row.topic}, mode=self.mode)
            return
        self.ended_by_user += row.ended_by_user
        conv = Conversation([Message(role, text) for role, text in row.turns], origin=row.origin,
                            meta={"chat": {"topic": row.topic, "turns": len(row.turns) // 2,
                                           "ended_by": "user" if row.ended_by_user else "--turns",
                                           **self.user_simulator()}})
        log.took_in()
        if self.kept_instructions >= self.config.num_instructions:
            log.drop(row.origin, SURPLUS, {"topic": row.topic, "turns": row.turns}, kind="filtered")
            return
        for kept in (self.turn_filter([conv], log) if self.turn_filter else [conv]):
            self.kept_instructions += 1
            write_records([kept], self.writer, self.config.format, log, self.dump_options)

    def user_simulator(self) -> dict[str, Any]:
        """The user simulator's model and endpoint (no credentials), when it is not the assistant's."""
        if self.user_client is self.client:
            return {}
        return {"user_model": self.user_client.config.model, "user_endpoint": self.user_client.config.redacted_base_url}

    async def run(self) -> None:
        c = self.config
        self.requests_limit = len(self.topics) * 2 * c.turns
        pending: dict[int, asyncio.Task] = {}
        nxt = 0
        try:
            for i in range(len(self.topics)):
                if self.kept_instructions >= c.num_instructions or self.client.stopped:
                    break
                while nxt < len(self.topics) and nxt < i + self.row_window():
                    pending[nxt] = asyncio.create_task(self.row(nxt, self.topics[nxt]))
                    nxt += 1
                self.decide(await pending.pop(i))
        except BaseException:
            await cancel_all(pending.values())
            raise
        await self.finish_rows(pending.values())
        self.log.info.update(mode=self.mode, topics=len(self.topics), turns=c.turns,
                             ended_by_user=self.ended_by_user)
