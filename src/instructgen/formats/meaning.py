"""What `validate` checks beyond the schema: whether a record means a trainable conversation.

- tool results follow calls: every tool message answers a call of an assistant message before it
  (by id when both have one, else the oldest unanswered call), and no call is answered twice;
- in formats whose readers need it (OpenAI's: the Chat API refuses an assistant message whose
  `tool_calls` are not followed by a result for each), every call is answered before the conversation
  goes on; only the final message may be a call left open, the call training teaches;
- roles alternate where the format requires it (ShareGPT and OpenAI rows as LLaMA-Factory reads
  them: user or tool results, then an assistant turn, in turn; the results of one message's calls
  count as one turn);
- media: a record with `images` (`videos`, `audios`) has as many `<image>` (`<video>`, `<audio>`)
  placeholders in its turns as files (LLaMA-Factory refuses it otherwise);
- the conversation ends with the assistant turn training learns from (a preference pair ends with
  the user turn its two answers reply to, which `Conversation.check` already requires).
"""

from __future__ import annotations

from ..record import Conversation


def meaning_problems(conv: Conversation, alternates: bool, answers_calls: bool = False) -> list[str]:
    """One line per problem; [] for a record that means what training needs."""
    problems = _tool_results(conv, answers_calls) + _media(conv)
    if alternates:
        problems += _alternation(conv)
    last = conv.messages[-1]
    if not conv.pairwise and last.role != "assistant":
        problems.append(f"the conversation ends with a {last.role} turn: there is no assistant answer to train on")
    return problems


def _tool_results(conv: Conversation, answers_calls: bool) -> list[str]:
    problems, pending = [], []  # pending: ids (or None) of calls not answered yet
    caller = 0  # the message that made the pending calls
    for i, m in enumerate(conv.messages):
        if pending and m.role != "tool":
            if answers_calls:
                problems.append(_unanswered(caller, pending))
            pending = []
        if m.tool_calls:
            pending, caller = [c.id for c in m.tool_calls], i
        elif m.role == "tool":
            if not pending:
                problems.append(f"message {i}: a tool result that answers no call")
                continue
            k = pending.index(m.tool_call_id) if m.tool_call_id in pending else 0
            if m.tool_call_id is not None and pending[k] is not None and pending[k] != m.tool_call_id:
                problems.append(f"message {i}: a tool result for call {m.tool_call_id!r}, which is not pending")
            pending.pop(k)
    if answers_calls and pending and len(pending) < len(conv.messages[caller].tool_calls):  # a final call may stay open, not half
        problems.append(_unanswered(caller, pending))
    return problems


def _unanswered(caller: int, pending: list) -> str:
    ids = ", ".join(repr(c) for c in pending if c is not None)
    n = len(pending)
    return (f"message {caller}: {n} tool call{'s' if n != 1 else ''}{f' ({ids})' if ids else ''} never answered "
            "by a tool result (the Chat API refuses it)")


PLACEHOLDER = {"images": "<image>", "videos": "<video>", "audios": "<audio>"}


def _media(conv: Conversation) -> list[str]:
    problems = []
    for key, mark in PLACEHOLDER.items():
        files = conv.extra.get(key)
        if not isinstance(files, list):
            continue
        marks = sum(m.content.count(mark) for m in conv.messages)
        if marks != len(files):
            problems.append(f"{len(files)} {key} but {marks} {mark} placeholder{'s' if marks != 1 else ''} in the turns")
    return problems


def _alternation(conv: Conversation) -> list[str]:
    side = "user"
    prev_role = None
    for i, m in enumerate(conv.turns):
        role = "user" if m.role in ("user", "tool") else "assistant"
        if m.role == "tool" and prev_role == "tool":
            continue  # the results of one message's calls are one turn
        if role != side:
            wanted = "a user or tool" if side == "user" else "an assistant"
            return [f"turn {i}: a {m.role} turn where {wanted} turn belongs: roles must alternate "
                    "(LLaMA-Factory skips the record)"]
        side = "assistant" if side == "user" else "user"
        prev_role = m.role
        if m.role == "assistant" and m.tool_calls and m.meta.get("sharegpt", {}).get("text_turn"):
            return [f"turn {i}: a gpt turn directly followed by its function_call turn: roles must alternate "
                    "(LLaMA-Factory skips the record)"]
    return []
