"""The canonical record every format reads into and writes from.

A `Conversation` is a list of typed `Message`s plus record-level data:
`tools` (function definitions), `meta` (things a format knows about the
record: id, category, the alpaca instruction/input split, MOSS plugin
fields, ...) and `extra` (top-level fields of the source row that its format
does not define, written back untouched so a file round-trips), and
`hints` (format-private details for writing back to the source format).

Preference data (LLaMA-Factory's `ranking` and `kto_tag` layouts):
- pairwise (DPO, ORPO, reward modelling): `messages` is the prompt and ends with
  the user (or tool) turn that `chosen` and `rejected`, two assistant messages, answer;
- KTO: `label` says whether the final assistant message of `messages` is a
  desirable (True) or undesirable (False) answer.

Invariants (checked by `Conversation.check`, the only place they live):
- roles are system / user / assistant / tool;
- a system message, if any, is the first message and appears once;
- there is at least one non-system message;
- contents are strings (possibly empty), never None;
- `chosen` and `rejected` come together, are assistant messages, and follow a prompt that
  ends with a user or tool turn; a `label` comes without them and follows an assistant turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Literal

from .errors import BadRecord

Role = Literal["system", "user", "assistant", "tool"]
ROLES: frozenset[str] = frozenset({"system", "user", "assistant", "tool"})


@dataclass(slots=True)
class ToolCall:
    """One function call made by the assistant. `arguments` is a JSON string, as in the OpenAI API."""

    name: str
    arguments: str
    id: str | None = None


@dataclass(slots=True)
class Message:
    role: Role
    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    # tool results: which call they answer and the tool's name
    tool_call_id: str | None = None
    name: str | None = None
    # training weight of an assistant message (OpenAI `weight`, ChatGLM3 `loss`); None = unspecified
    weight: int | None = None
    # per-message data a format needs to round-trip (e.g. MOSS inner thoughts); never interpreted by stages
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Conversation:
    messages: list[Message]
    tools: list[dict[str, Any]] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    origin: str = ""  # "file:line" of the row it was read from
    # the format it was read from, and details only that format uses when writing it back
    # (a field that was absent rather than empty, column names, an int id): never carried elsewhere
    source_format: str = ""
    hints: dict[str, Any] = field(default_factory=dict)
    # preference data: the two answers to the prompt (pairwise), or the verdict on the last answer (KTO)
    chosen: Message | None = None
    rejected: Message | None = None
    label: bool | None = None

    # -- views -----------------------------------------------------------------
    @property
    def system(self) -> str | None:
        if self.messages and self.messages[0].role == "system":
            return self.messages[0].content
        return None

    @property
    def turns(self) -> list[Message]:
        """The messages without the leading system message."""
        return self.messages[1:] if self.system is not None else list(self.messages)

    def pairs(self) -> list[tuple[str, str]]:
        """(user, assistant) pairs of a plain alternating conversation; raises BadRecord otherwise."""
        turns = self.turns
        if len(turns) % 2 or any(
            m.role != ("user" if i % 2 == 0 else "assistant") or m.tool_calls for i, m in enumerate(turns)
        ):
            raise BadRecord("not a plain user/assistant alternation")
        return [(turns[i].content, turns[i + 1].content) for i in range(0, len(turns), 2)]

    def is_plain_alternation(self) -> bool:
        try:
            self.pairs()
        except BadRecord:
            return False
        return True

    @property
    def pairwise(self) -> bool:
        """A preference pair: `messages` is the prompt, `chosen`/`rejected` its two answers."""
        return self.chosen is not None

    @property
    def preference(self) -> bool:
        """Preference data of either kind (pairwise or KTO)."""
        return self.chosen is not None or self.label is not None

    def has_tools(self) -> bool:
        answers = [m for m in (self.chosen, self.rejected) if m is not None]
        return bool(self.tools) or any(m.role == "tool" or m.tool_calls for m in (*self.messages, *answers))

    def texts(self, roles: tuple[str, ...] = ("system", "user", "assistant", "tool")) -> Iterator[str]:
        return (m.content for m in self.messages if m.role in roles)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view of the record (for rejects files and debugging); built directly because
        dataclasses.asdict deep-copies every value, which is slow when many records are dropped."""
        return {
            "messages": [_message_dict(m) for m in self.messages],
            "tools": self.tools, "meta": self.meta, "extra": self.extra, "origin": self.origin,
            "source_format": self.source_format, "hints": self.hints,
            "chosen": _message_dict(self.chosen) if self.chosen is not None else None,
            "rejected": _message_dict(self.rejected) if self.rejected is not None else None,
            "label": self.label,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Conversation":
        """The record back from its `to_dict()` view (e.g. a spool file's line)."""
        return cls([_message(m) for m in d["messages"]], d["tools"], d["meta"], d["extra"], d["origin"],
                   d["source_format"], d["hints"], _message(d["chosen"]) if d["chosen"] is not None else None,
                   _message(d["rejected"]) if d["rejected"] is not None else None, d["label"])

    # -- invariants --------------------------------------------------------------
    def check(self) -> "Conversation":
        if not self.messages:
            raise BadRecord("conversation has no messages")
        for i, m in enumerate(self.messages):
            if m.role not in ROLES:
                raise BadRecord(f"message {i}: unknown role {m.role!r}")
            if not isinstance(m.content, str):
                raise BadRecord(f"message {i}: content must be a string, got {type(m.content).__name__}")
            if m.role == "system" and i != 0:
                raise BadRecord(f"message {i}: a system message may only come first")
        if all(m.role == "system" for m in self.messages):
            raise BadRecord("conversation has only a system message")
        if self.chosen is not None or self.rejected is not None:
            self._check_pair()
        if self.label is not None:
            if not isinstance(self.label, bool):
                raise BadRecord(f"a KTO label must be true or false, got {self.label!r}")
            if self.messages[-1].role != "assistant":
                raise BadRecord("a KTO record must end with the assistant answer its label judges")
        return self

    def _check_pair(self) -> None:
        if self.chosen is None or self.rejected is None:
            raise BadRecord(f"a preference pair needs both answers; {'chosen' if self.chosen is None else 'rejected'} "
                            "is missing")
        for name, m in (("chosen", self.chosen), ("rejected", self.rejected)):
            if m.role != "assistant":
                raise BadRecord(f"{name} must be an assistant answer, got role {m.role!r}")
            if not isinstance(m.content, str):
                raise BadRecord(f"{name}: content must be a string, got {type(m.content).__name__}")
        if self.label is not None:
            raise BadRecord("a record is either a preference pair (chosen/rejected) or KTO (label), not both")
        if self.messages[-1].role not in ("user", "tool"):
            raise BadRecord("a preference prompt must end with the user turn that chosen and rejected answer; "
                            f"it ends with a {self.messages[-1].role} turn")


def _message_dict(m: Message) -> dict[str, Any]:
    return {"role": m.role, "content": m.content,
            "tool_calls": [{"name": t.name, "arguments": t.arguments, "id": t.id} for t in m.tool_calls],
            "tool_call_id": m.tool_call_id, "name": m.name, "weight": m.weight, "meta": m.meta}


def _message(d: dict[str, Any]) -> Message:
    return Message(d["role"], d["content"], [ToolCall(t["name"], t["arguments"], t["id"]) for t in d["tool_calls"]],
                   d["tool_call_id"], d["name"], d["weight"], d["meta"])


def from_pairs(
    pairs: list[tuple[str, str]], system: str | None = None, **kwargs: Any
) -> Conversation:
    """A plain conversation from (user, assistant) pairs; kwargs go to Conversation."""
    messages = [Message("system", system)] if system else []
    for user, assistant in pairs:
        messages.append(Message("user", user))
        messages.append(Message("assistant", assistant))
    return Conversation(messages, **kwargs)
