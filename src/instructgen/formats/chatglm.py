"""ChatGLM-6B / ChatGLM2 p-tuning: {prompt, response, history?: [[q, a], ...]}.

Column names are configurable upstream; AdvertiseGen's {content, summary} is
read natively and written back with those names (`columns` hint), and
DumpOptions.columns maps fields to other names. There is no system prompt.
A dialogue is one row by default (earlier turns in `history`);
`explode_turns` (`--turns explode`) writes one row per assistant turn with a growing
history, the form ChatGLM's p-tuning README shows (ReadOptions.merge_turns joins it
back); a preference record stays one row (the turn it judges).

`render_chatglm6b` / `render_chatglm2` give the prompt text each model is trained on.
"""

from __future__ import annotations

from ..errors import BadRecord
from ..record import Conversation, Message
from .base import (DumpOptions, Lost, as_sft, drop_system, finish_row, flatten_to_pairs, parse_pairs, require_str,
                   split_known)

NAME = "chatglm"
DESCRIPTION = "ChatGLM-6B/ChatGLM2 p-tuning: prompt, response, history [[q, a], ...] (also AdvertiseGen content/summary)"
EXAMPLE = {
    "prompt": "那水温呢？",
    "response": "水温正常，大约 90 度。",
    "history": [["发动机风扇不转是什么原因？", "先检查继电器和保险丝。"]],
}
FIELDS = frozenset({"prompt", "response", "history"})
NATIVE_META: frozenset[str] = frozenset()
ADVERTISEGEN = {"prompt": "content", "response": "summary"}
TURNS = ("explode",)


def detect(row: dict) -> bool:
    if "prompt" in row or "response" in row:
        return isinstance(row.get("prompt"), str) and isinstance(row.get("response"), str) and "instruction" not in row
    return isinstance(row.get("content"), str) and isinstance(row.get("summary"), str) and "role" not in row


def parse(row: dict) -> Conversation:
    hints: dict = {}
    if "prompt" not in row and "response" not in row and "content" in row and "summary" in row:
        hints["columns"] = dict(ADVERTISEGEN)
        row = {("prompt" if k == "content" else "response" if k == "summary" else k): v for k, v in row.items()}
    prompt = require_str(row, "prompt")
    response = require_str(row, "response")
    history = row.get("history")
    if history is not None and not isinstance(history, list):
        raise BadRecord(f"field 'history' must be a list of [question, answer] pairs, got {type(history).__name__}")
    pairs = parse_pairs(history or [], "history") + [(prompt, response)]
    if "history" not in row:
        hints["no_history"] = True
    elif history is None:
        hints["history_null"] = True
    meta, extra = split_known(row, FIELDS)
    messages = [Message(role, text) for q, a in pairs for role, text in (("user", q), ("assistant", a))]
    return Conversation(messages, meta=meta, extra=extra, hints=hints, source_format=NAME).check()


def dump(conv: Conversation, opts: DumpOptions, lost: Lost) -> list[dict]:
    drop_system(conv, lost)
    explode = (opts.explode_turns or opts.turns == "explode") and not conv.preference  # a preference judges one turn
    conv = as_sft(conv, opts, lost)
    pairs = flatten_to_pairs(conv, lost)
    if explode:
        return [finish_row(_row(pairs[: k + 1], conv), conv, opts, NATIVE_META, NAME) for k in range(len(pairs))]
    return [finish_row(_row(pairs, conv), conv, opts, NATIVE_META, NAME)]


def _row(pairs: list[tuple[str, str]], conv: Conversation) -> dict:
    q, a = pairs[-1]
    row: dict = {"prompt": q, "response": a, "history": [[x, y] for x, y in pairs[:-1]]}
    if len(pairs) == 1 and conv.source_format == NAME:
        if conv.hints.get("no_history"):
            del row["history"]
        elif conv.hints.get("history_null"):
            row["history"] = None
    return row


def render_chatglm6b(history: list[tuple[str, str]], query: str | None = None) -> str:
    """ChatGLM-6B's prompt: `[Round 0]\\n问：{q}\\n答：{a}\\n` per turn (0-based); with `query`, its open round.

    (ChatGLM-6B's chat() sends a bare query when there is no history; p-tuning always uses rounds.)
    """
    text = "".join(f"[Round {i}]\n问：{q}\n答：{a}\n" for i, (q, a) in enumerate(history))
    if query is not None:
        text += f"[Round {len(history)}]\n问：{query}\n答："
    return text


def render_chatglm2(history: list[tuple[str, str]], query: str | None = None) -> str:
    """ChatGLM2-6B's prompt: `[Round 1]\\n\\n问：{q}\\n\\n答：{a}\\n\\n` per turn (1-based); with `query`, its open round."""
    text = "".join(f"[Round {i}]\n\n问：{q}\n\n答：{a}\n\n" for i, (q, a) in enumerate(history, 1))
    if query is not None:
        text += f"[Round {len(history) + 1}]\n\n问：{query}\n\n答："
    return text
