"""The judges: a prompt (package data, `instructgen/prompts/judge_<name>.txt`), its scale, and where it comes from.

    get_judge(name) -> Judge                       alpagasus, deita-complexity, deita-quality, mt-bench
    custom_judge(path, low, high) -> Judge         a template file of one's own (--judge-prompt FILE)
    judge.messages(conv) -> list[dict]             the chat request for one record
    stricter(messages, reply, judge) -> list[dict] the retry when a reply held no score

A prompt file has `=== system ===` and `=== user ===` sections (system optional). Placeholders, filled from
the record: {instruction} (the user's request; for a dialogue, every turn before the last answer, labelled),
{input} (an Alpaca input, or empty), {response} (the last assistant answer), {conversation} (the whole
dialogue, labelled), {low} and {high} (the judge's scale). Other braces are left as they are.

The built-in prompts are in English, as their authors wrote them; records in Chinese (or any language) are
judged with them unchanged: the judge model reads the record in its language and answers with a number.

Sources (the prompt texts are theirs, with the placeholders renamed; what was changed is said here):
- alpagasus: Chen et al., "AlpaGasus: Training a Better Alpaca with Fewer Data" (ICLR 2024), Figure 3, the
  rating prompt (system + user), scale 0-5. https://arxiv.org/abs/2307.08701
- deita-complexity, deita-quality: Liu et al., "What Makes Good Data for Alignment?" (ICLR 2024); the
  prompts of Deita's complexity and quality scorers, hkust-nlp/deita, src/deita/selection/scorer/
  (llama_scorer.py / mistral_scorer.py: "Please identify the complexity score of the following user
  query" / "... the quality score of the Response corresponding to the Question"). Those scorers are
  fine-tuned models reading a 1-6 score off the next token; for a general chat model one sentence asking
  for one integer from 1 to 6 is added. https://github.com/hkust-nlp/deita
- mt-bench: Zheng et al., "Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena" (NeurIPS 2023), the
  single-answer grading prompt `single-v1` of FastChat's llm_judge/data/judge_prompts.jsonl, scale 1-10.
  https://github.com/lm-sys/FastChat/tree/main/fastchat/llm_judge
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import InstructgenError
from ..record import Conversation

PLACEHOLDER = re.compile(r"\{(instruction|input|response|conversation|low|high)\}")
RECORD_FIELDS = ("instruction", "input", "response", "conversation")
SIGNALS = "signals"  # the judge that needs no model (quality.signals)


@dataclass(frozen=True)
class Judge:
    name: str
    system: str | None
    user: str
    low: float
    high: float
    source: str

    def messages(self, conv: Conversation) -> list[dict[str, str]]:
        fields = record_fields(conv)
        fields.update(low=f"{self.low:g}", high=f"{self.high:g}")
        fill = lambda template: PLACEHOLDER.sub(lambda m: fields[m.group(1)], template)  # noqa: E731
        messages = [{"role": "system", "content": fill(self.system)}] if self.system else []
        return messages + [{"role": "user", "content": fill(self.user)}]


BUILT_IN = {  # name -> (low, high, source)
    "alpagasus": (0.0, 5.0, "AlpaGasus (Chen et al. 2024), Figure 3 rating prompt"),
    "deita-complexity": (1.0, 6.0, "Deita (Liu et al. 2024) complexity scorer prompt"),
    "deita-quality": (1.0, 6.0, "Deita (Liu et al. 2024) quality scorer prompt"),
    "mt-bench": (1.0, 10.0, "MT-Bench single-answer grading (FastChat single-v1)"),
}


def get_judge(name: str) -> Judge:
    if name not in BUILT_IN:
        raise InstructgenError(f"unknown judge {name!r}; choose one of: {', '.join([*BUILT_IN, SIGNALS])}, or "
                               "give your own prompt with --judge-prompt FILE")
    low, high, source = BUILT_IN[name]
    text = resources.files("instructgen").joinpath(f"prompts/judge_{name}.txt").read_text(encoding="utf-8")
    system, user = _sections(text, f"judge_{name}.txt")
    return Judge(name, system, user, low, high, source)


def custom_judge(path: str | Path, low: float, high: float, name: str | None = None) -> Judge:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InstructgenError(f"--judge-prompt {path}: cannot read it: {e}") from None
    system, user = _sections(text, str(path))
    used = set(PLACEHOLDER.findall((system or "") + user))
    if not used & set(RECORD_FIELDS):
        raise InstructgenError(f"--judge-prompt {path}: the template names no field of the record; write at "
                               f"least one of {{{'}, {'.join(RECORD_FIELDS)}}} where the record goes")
    if not low < high:
        raise InstructgenError(f"--judge-scale: the low end ({low:g}) must be below the high end ({high:g})")
    return Judge(name or Path(path).stem, system, user, low, high, f"your prompt {path}")


def _sections(text: str, where: str) -> tuple[str | None, str]:
    if "=== user ===" not in text:  # a plain file is the user message
        return None, text.strip("\n")
    head, _, user = text.partition("=== user ===")
    system = head.split("=== system ===", 1)[1] if "=== system ===" in head else ""
    if not user.strip():
        raise InstructgenError(f"{where}: the === user === section is empty")
    return (system.strip("\n") or None), user.strip("\n")


def record_fields(conv: Conversation) -> dict[str, str]:
    """instruction, input, response, conversation: what a judge template can show of a record."""
    messages = [m for m in conv.messages if m.role != "system"]
    if conv.chosen is not None:  # a preference pair is judged on its chosen answer
        messages = [*messages, conv.chosen]
    last_answer = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=len(messages))
    before = messages[:last_answer]
    response = messages[last_answer].content if last_answer < len(messages) else ""
    split = conv.meta.get("split") if isinstance(conv.meta.get("split"), dict) else {}
    alpaca_input = split.get("input") if isinstance(split.get("input"), str) else ""
    if len(before) == 1 and before[0].role == "user":
        instruction = split["instruction"] if alpaca_input and isinstance(split.get("instruction"), str) \
            else before[0].content
    else:
        instruction = _labelled(before)
    return {"instruction": instruction, "input": alpaca_input, "response": response,
            "conversation": _labelled(messages)}


def _labelled(messages) -> str:
    return "\n\n".join(f"{m.role.capitalize()}: {m.content}" for m in messages)


def stricter(messages: list[dict[str, str]], reply: str, judge: Judge) -> list[dict[str, str]]:
    """The retry for a reply with no score in it: the same conversation, then a request for the number alone."""
    ask = (f"Your reply did not contain a score I can read. Answer with the score only: one number from "
           f"{judge.low:g} to {judge.high:g}, and nothing else.")
    return [*messages, {"role": "assistant", "content": reply}, {"role": "user", "content": ask}]
