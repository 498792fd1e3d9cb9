"""What every format module shares: dump options, the metadata channel, and lossy flattening.

A format module defines:

    NAME: str                 registry key, also the `--to/--from` choice
    DESCRIPTION: str          one line for `instructgen formats`
    EXAMPLE: dict             one row, shown by `instructgen formats` and used in tests
    REFINES: str | None       name of a broader format whose rows this one reads more precisely
                              (e.g. BELLE's Human:/Assistant: text inside alpaca fields)
    WRITABLE: bool            False for read-only forms
    NATIVE_META: frozenset    conv.meta keys the format writes as its own fields
    def detect(row: dict) -> bool
    def parse(row: dict) -> Conversation          raises BadRecord
    def dump(conv, opts, lost) -> list[dict]      raises CannotRepresent; calls lost("...") per loss

Record-level data the target format has no field for (`conv.meta`: the alpaca
instruction/input split, MOSS inner thoughts, an id, ...) travels in one
top-level object, `"meta"`, so alpaca -> sharegpt -> alpaca and
moss -> openai -> moss lose nothing. `--no-meta` leaves it out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import BadRecord, CannotRepresent
from ..record import Conversation, Message

META_KEY = "meta"
Lost = Callable[[str], None]


@dataclass(slots=True)
class DumpOptions:
    meta_instruction: str | None = None  # MOSS: the meta instruction for records from other formats
    explode_turns: bool = False  # chatglm: one row per assistant turn, with a growing history
    columns: dict[str, str] | None = None  # chatglm: canonical field -> column name (prompt=content, ...)
    keep_meta: bool = True  # write the "meta" channel
    extras: bool = True  # write back top-level fields the source format did not define


# -- reading helpers -------------------------------------------------------------------------------

def require_str(row: dict, key: str, *, optional: bool = False, default: str = "") -> str:
    """row[key] as a string, or BadRecord naming the field and what was found."""
    if key not in row or row[key] is None:
        if optional:
            return default
        raise BadRecord(f"missing field {key!r}")
    value = row[key]
    if not isinstance(value, str):
        raise BadRecord(f"field {key!r} must be a string, got {type(value).__name__}")
    return value


def require_list(row: dict, key: str, *, optional: bool = False) -> list:
    if key not in row or row[key] is None:
        if optional:
            return []
        raise BadRecord(f"missing field {key!r}")
    value = row[key]
    if not isinstance(value, list):
        raise BadRecord(f"field {key!r} must be a list, got {type(value).__name__}")
    return value


def parse_pairs(value: list, where: str) -> list[tuple[str, str]]:
    """A `history` value: [[question, answer], ...]."""
    pairs = []
    for i, pair in enumerate(value):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise BadRecord(f"{where}[{i}] must be a [question, answer] pair of strings")
        pairs.append((pair[0], pair[1]))
    return pairs


def split_known(row: dict, known: frozenset[str] | set[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(meta carried in the row's "meta" channel, extra top-level fields) of a row."""
    meta = row.get(META_KEY)
    carried = dict(meta) if isinstance(meta, dict) and META_KEY not in known else {}
    extra = {k: v for k, v in row.items() if k not in known and not (k == META_KEY and carried)}
    return carried, extra


# -- writing helpers -------------------------------------------------------------------------------

def finish_row(row: dict[str, Any], conv: Conversation, opts: DumpOptions, native: frozenset[str]) -> dict:
    """Add the source's extra fields and the meta channel to a row the format built."""
    if opts.extras:
        for k, v in conv.extra.items():
            row.setdefault(k, v)
    if opts.keep_meta:
        carried = {k: v for k, v in conv.meta.items() if k not in native}
        if carried and META_KEY not in row:
            row[META_KEY] = carried
    return row


def flatten_to_pairs(conv: Conversation, lost: Lost) -> list[tuple[str, str]]:
    """(user, assistant) pairs of any conversation, applying and counting the losses.

    Tool calls and tool results are dropped; an opening assistant turn and a
    closing user turn (no answer) are dropped; consecutive turns of one role are
    joined with a blank line. The system prompt is left to the caller.
    """
    if not conv.tools:  # the common case, a plain alternation, costs one pass and no loss
        turns = conv.turns
        if turns and not len(turns) % 2 and all(
            u.role == "user" and a.role == "assistant" and not a.tool_calls for u, a in zip(turns[::2], turns[1::2])
        ):
            return [(u.content, a.content) for u, a in zip(turns[::2], turns[1::2])]
    turns = []
    tools_dropped = bool(conv.tools)
    for m in conv.turns:
        if m.role == "tool" or (m.role == "assistant" and m.tool_calls and not m.content):
            tools_dropped = True
            continue
        if m.tool_calls:
            tools_dropped = True
        if turns and turns[-1].role == m.role:
            turns[-1] = Message(m.role, turns[-1].content + "\n\n" + m.content)
            lost("consecutive same-role turns joined")
            continue
        turns.append(m)
    if tools_dropped:
        lost("tools dropped")
    if turns and turns[0].role == "assistant":
        turns.pop(0)
        lost("opening assistant turn dropped")
    if turns and turns[-1].role == "user":
        turns.pop()
        lost("trailing user turn dropped")
    if not turns:
        raise CannotRepresent("no user turn answered by the assistant")
    return [(turns[i].content, turns[i + 1].content) for i in range(0, len(turns), 2)]


def drop_system(conv: Conversation, lost: Lost) -> None:
    if conv.system:
        lost("system prompt dropped")


def first_pair(conv: Conversation, lost: Lost) -> tuple[str, str]:
    """The first (user, assistant) pair for single-turn formats; later turns are counted as lost."""
    pairs = flatten_to_pairs(conv, lost)
    if len(pairs) > 1:
        lost("history dropped (kept the first turn)")
    return pairs[0]


def split_instruction(conv: Conversation, user: str) -> tuple[str, str]:
    """(instruction, input) of the first user message, using the split alpaca/dolly recorded if it still fits."""
    split = conv.meta.get("split")
    if isinstance(split, dict):
        instruction, inp = split.get("instruction"), split.get("input")
        if isinstance(instruction, str) and isinstance(inp, str) and join_instruction(instruction, inp) == user:
            return instruction, inp
    return user, ""


def join_instruction(instruction: str, inp: str) -> str:
    """The user message of an alpaca-style row (LLaMA-Factory joins with a newline)."""
    return f"{instruction}\n{inp}" if inp else instruction


def single_turn(instruction: str, inp: str, output: str, *, meta: dict | None = None, **kwargs: Any) -> Conversation:
    """The conversation of an alpaca-style row, remembering the instruction/input split."""
    meta = dict(meta or {})
    if inp:
        meta["split"] = {"instruction": instruction, "input": inp}
    return Conversation(
        [Message("user", join_instruction(instruction, inp)), Message("assistant", output)], meta=meta, **kwargs
    )


@dataclass(slots=True)
class FormatSpec:
    """A registered format: the module's functions and constants, gathered."""

    name: str
    description: str
    example: dict
    detect: Callable[[dict], bool]
    parse: Callable[[dict], Conversation]
    dump: Callable[[Conversation, DumpOptions, Lost], list[dict]] | None
    refines: str | None = None
    native_meta: frozenset[str] = field(default_factory=frozenset)

    @property
    def writable(self) -> bool:
        return self.dump is not None
