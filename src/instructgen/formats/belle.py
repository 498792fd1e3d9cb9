"""BELLE multi-turn text inside alpaca fields (BELLE's multiturn_chat_0.8M).

    {"instruction": "Human:q1\\nAssistant:a1\\nHuman:q2\\nAssistant:", "input": "", "output": "a2"}

The earlier turns and the last question are in `instruction`; `output` is the
last answer. It refines alpaca: detection picks it when every sampled row has
this shape, while alpaca still claims such rows. Splitting only happens on
"\\nAssistant:" / "\\nHuman:" at line starts, in alternation, so a message that
mentions "Human:" mid-line stays whole. Writable: a record whose messages
would not split back the same way (a line starting with "Assistant:" inside a
question, say) cannot be written and is reported.
"""

from __future__ import annotations

from ..errors import BadRecord, CannotRepresent
from ..record import Conversation, Message
from .base import DumpOptions, Lost, as_sft, drop_system, finish_row, flatten_to_pairs, require_str, split_known

NAME = "belle"
DESCRIPTION = "BELLE multi-turn: 'Human:…\\nAssistant:…' text in alpaca's instruction, last answer in output"
EXAMPLE = {
    "instruction": "Human:推荐一本科幻小说。\nAssistant:《三体》。\nHuman:作者是谁？\nAssistant:",
    "input": "",
    "output": "刘慈欣。",
}
REFINES = "alpaca"
WRITABLE = True
FIELDS = frozenset({"instruction", "input", "output"})
NATIVE_META: frozenset[str] = frozenset()
HUMAN, ASSISTANT = "Human:", "Assistant:"
NEXT = {HUMAN: "\n" + ASSISTANT, ASSISTANT: "\n" + HUMAN}


def detect(row: dict) -> bool:
    text = row.get("instruction")
    return (
        isinstance(text, str)
        and text.startswith(HUMAN)
        and text.endswith("\n" + ASSISTANT)
        and isinstance(row.get("output"), str)
        and not row.get("input")
        and not any(k in row for k in ("history", "system", "context", "response"))
    )


def split_turns(text: str) -> list[str]:
    """The messages of 'Human:q\\nAssistant:a\\n...Human:q\\nAssistant:' (the last, empty answer excluded)."""
    if not text.startswith(HUMAN):
        raise BadRecord("field 'instruction' must start with 'Human:' in BELLE's multi-turn form")
    if not text.endswith("\n" + ASSISTANT):
        raise BadRecord("field 'instruction' must end with '\\nAssistant:' in BELLE's multi-turn form")
    body = text[len(HUMAN): -len("\n" + ASSISTANT)]
    messages, speaker, pos = [], HUMAN, 0
    while True:
        cut = body.find(NEXT[speaker], pos)
        if cut < 0:
            messages.append(body[pos:])
            break
        messages.append(body[pos:cut])
        pos = cut + len(NEXT[speaker])
        speaker = ASSISTANT if speaker == HUMAN else HUMAN
    if len(messages) % 2 == 0:
        raise BadRecord("field 'instruction' must end with a 'Human:' turn before the final 'Assistant:'")
    return messages


def join_turns(messages: list[str]) -> str:
    parts = [f"{HUMAN if i % 2 == 0 else ASSISTANT}{m}" for i, m in enumerate(messages)]
    return "\n".join(parts) + "\n" + ASSISTANT


def parse(row: dict) -> Conversation:
    texts = split_turns(require_str(row, "instruction"))
    output = require_str(row, "output")
    if require_str(row, "input", optional=True):
        raise BadRecord("field 'input' must be empty in BELLE's multi-turn form")
    meta, extra = split_known(row, FIELDS)
    hints = {} if "input" in row else {"no_input_field": True}
    if "input" in row and row["input"] is None:
        hints["input_null"] = True
    messages = [Message("user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(texts)]
    messages.append(Message("assistant", output))
    return Conversation(messages, meta=meta, extra=extra, hints=hints, source_format=NAME).check()


def dump(conv: Conversation, opts: DumpOptions, lost: Lost) -> list[dict]:
    drop_system(conv, lost)
    conv = as_sft(conv, opts, lost)
    pairs = flatten_to_pairs(conv, lost)
    texts = [t for pair in pairs for t in pair]
    instruction = join_turns(texts[:-1])
    try:
        same = split_turns(instruction) == texts[:-1]
    except BadRecord:
        same = False
    if not same:
        raise CannotRepresent("a message has a line starting with 'Human:' or 'Assistant:'; "
                              "BELLE's text form would split it differently")
    row: dict = {"instruction": instruction, "input": "", "output": texts[-1]}
    if conv.source_format == NAME:
        if conv.hints.get("no_input_field"):
            del row["input"]
        elif conv.hints.get("input_null"):
            row["input"] = None
    return [finish_row(row, conv, opts, NATIVE_META, NAME)]
