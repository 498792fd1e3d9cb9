"""Named quality rules for instruction data, judged one turn at a time. Each returns a reason or None.

    Turn                                one exchange of a record: the user message (prompt), and what the
                                        assistant said to it (output), with its place in the dialogue
    turns_of(conv) -> list[Turn]        the exchanges of a record, in order (`Turn.start` = index of its
                                        first message in conv.messages, where a cut goes)
    RULES: dict[str, Rule]              name -> rule, cheapest first (the order they run in)
    JUNK: tuple[str, ...]               the rules whose finding is junk on any data: dropped (a dialogue is cut
                                        before the turn)
    SIGNALS: tuple[str, ...]            the rules whose finding is a doubt: flagged in meta["flags"], dropped
                                        only when FilterConfig.drop names them
    DEFAULT_RULES: tuple[str, ...]      every rule but `safety_refusal`
    Rule = Callable[[Turn, FilterConfig], str | None]

Junk (curate/junk.py holds the measures; each judged by reading on every real set, benchmarks/curate_real.py):
    empty_output      no assistant text and no tool call, or a placeholder ("N/A", "none", "无", ...)
    echo              output equal to the prompt, or to the input unless the task may leave it as it is
                      (sort, order, correct, proofread: "already in order" is a right answer)
    garbled           U+FFFD, control characters, mojibake (ftfy's badness measure; GBK's 锟斤拷), <UNK>
                      placeholders, in prompt or output
    placeholder       an unfilled template slot in the output ({{name}}, [INSERT ...]) the prompt did not ask for
    repetition        a loop of any unit: most of the output re-says n-grams it already said, or is lines said
                      before (Gopher / data-juicer ratios; parallel steps, lists, tables and code stay)
    salad             token salad: half the output's tokens are not words of its language (wordfreq)
Signals:
    length            too long (any turn); too short only for a one-turn record
    merged            several instructions merged into one (### Instruction separators, Instruction: markers,
                      a numbered list of separate tasks)
    needs_media       the prompt points at content the model cannot see (curate/media.py); never when the record
                      carries its images, videos or audio
    refusal           a non-answer: an AI disclaimer or a refusal with nothing else in it (curate/refusal.py)
    safety_refusal    (not in the defaults) a refusal of a harmful request
    language          a turn not in FilterConfig.lang, or answered in another language (curate/language.py)
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Callable

from ..formats.base import split_instruction
from ..record import Conversation
from . import junk
from .language import language
from .langid import writes_han_or_kana
from .media import needs_media
from .refusal import refusal, safety_refusal

if TYPE_CHECKING:
    from .filter import FilterConfig


@dataclass(slots=True)
class Turn:
    prompt: str  # the user message answered ("" when a dialogue opens with the assistant)
    instruction: str  # the prompt less the alpaca/dolly input (the prompt itself otherwise)
    input: str
    output: str  # the assistant's text in this exchange (every assistant message, joined)
    index: int  # 0-based place in the dialogue
    count: int  # exchanges in the record
    start: int  # index in conv.messages of the exchange's first message
    calls_tools: bool  # the assistant called a tool in this exchange
    has_tools: bool  # the record offers tools (definitions, calls or results)
    previous_prompt: str = ""  # the user message of the exchange before
    has_media: bool = False  # the record carries its images, videos or audio

    @property
    def only(self) -> bool:
        return self.count == 1


def turns_of(conv: Conversation) -> list[Turn]:
    messages = conv.messages
    first = 1 if conv.system is not None else 0
    spans: list[tuple[int, str, list[str], bool]] = []  # start, prompt, assistant texts, calls tools
    for i in range(first, len(messages)):
        m = messages[i]
        if m.role == "user" or not spans:
            spans.append((i, m.content if m.role == "user" else "", [], False))
            if m.role == "user":
                continue
        start, prompt, texts, calls = spans[-1]
        if m.role == "assistant":
            if m.content:
                texts.append(m.content)
            if m.tool_calls and not calls:
                spans[-1] = (start, prompt, texts, True)
    has_tools = conv.has_tools()
    has_media = carries_media(conv)
    turns = []
    for k, (start, prompt, texts, calls) in enumerate(spans):
        instruction, inp = split_instruction(conv, prompt) if k == 0 else (prompt, "")
        turns.append(Turn(prompt, instruction, inp, "\n".join(texts), k, len(spans), start, calls, has_tools,
                          spans[k - 1][1] if k else "", has_media))
    return turns


MEDIA_FIELDS = ("images", "image", "videos", "video", "audios", "audio")


def carries_media(conv: Conversation) -> bool:
    """The record has its media attached (LLaMA-Factory's images/videos/audios columns, kept in extra or meta)."""
    return any(conv.extra.get(k) or conv.meta.get(k) for k in MEDIA_FIELDS)


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    return re.sub(r"\s+", " ", text).strip()


# -- empty / echo ---------------------------------------------------------------------------------

PLACEHOLDERS = {"n/a", "na", "none", "null", "nil", "-", "--", "...", "tbd", "todo", "no output", "no answer",
                "<noinput>", "<no input>", "<nooutput>", "<no output>", "无", "暂无", "没有", "空", "无输出", "无答案"}


def empty_output(t: Turn, cfg: FilterConfig) -> str | None:
    if not t.output.strip():
        return None if t.calls_tools else "empty output"
    if len(t.output) < 16 and _norm(t.output).strip(" .。") in PLACEHOLDERS:
        return "placeholder output (N/A)"
    return None


def _lines(text: str) -> str:
    # case, punctuation and line breaks stay: fixing them is what proofreading/formatting tasks do
    text = "\n".join(re.sub(r"[ \t]+", " ", ln).strip() for ln in unicodedata.normalize("NFKC", text).strip().splitlines())
    return text.strip(" .!?。!?…\"'“”「」")  # only the closing mark and quotes around it are ignored


# tasks whose input may already be what was asked for, and tasks that ask for the text back
_MAY_KEEP_INPUT = re.compile(
    r"(?i)\b(?:organi[sz]e|arrange|order|sort|reorder|rearrange|correct|fix|proofread|check|edit|capitali[sz]e"
    r"|punctuate|repeat|copy|echo|return|identify|spell)|排序|整理|纠正|改正|修改|检查|校对|重复|复制")


_ASKS_TO_REPEAT = re.compile(r"(?i)\brepeat\b|\becho\b|\bsay (?:it|this|that) back|重复|复述|跟我说|跟着我说")


def _close(a: str, b: str) -> bool:
    """Could a and b be equal up to spacing, quotes and the closing mark? (a cheap test before _lines)"""
    return abs(len("".join(a.split())) - len("".join(b.split()))) <= 6


def echo(t: Turn, cfg: FilterConfig) -> str | None:
    if not (_close(t.output, t.prompt) or _close(t.output, t.instruction) or (t.input and _close(t.output, t.input))):
        return None
    out = _lines(t.output)
    if not out or (t.index and _ASKS_TO_REPEAT.search(t.previous_prompt)):
        return None  # "from now on, repeat what I say": the next turn's echo is the answer
    if out == _lines(t.instruction) or (t.input and out == _lines(t.instruction + "\n" + t.input)):
        return "output repeats the instruction"
    if t.input and out == _lines(t.input) and not _MAY_KEEP_INPUT.search(t.instruction):
        return "output repeats the input"
    return None


# -- length ---------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W_\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


def text_length(text: str, up_to: int | None = None) -> tuple[int, str]:
    """(count, unit): for CJK text, CJK characters plus the words and numbers among them; else words. With
    `up_to`, counting stops there (enough to tell a minimum)."""
    if text.isascii() or not writes_han_or_kana(text):
        return len(text.split()), "words"
    if up_to is not None:
        return sum(1 for _ in islice(_TOKEN.finditer(text), up_to)), "characters"
    return len(_TOKEN.findall(text)), "characters"


def _too_short(text: str, lo_w: int, lo_c: int) -> str | None:
    n, unit = text_length(text[:200], max(lo_w, lo_c))  # enough to pass any sensible minimum
    lo = lo_c if unit == "characters" else lo_w
    return f"too short (< {lo} {unit})" if n < lo else None


def _too_long(text: str, hi_w: int, hi_c: int) -> str | None:
    if len(text) <= min(hi_w, hi_c):
        return None  # a word or character is at least one character long
    n, unit = text_length(text)
    hi = hi_c if unit == "characters" else hi_w
    return f"too long (> {hi} {unit})" if n > hi else None


def length(t: Turn, cfg: FilterConfig) -> str | None:
    if t.only:  # minima only for one-turn records: in a dialogue a short turn is normal
        found = _too_short(t.instruction, cfg.min_instruction_words, cfg.min_instruction_chars)
        if found:
            return "instruction " + found
        found = t.output.strip() and _too_short(t.output, cfg.min_output_words, cfg.min_output_chars)
        if found:
            return "output " + found
    found = _too_long(t.instruction, cfg.max_instruction_words, cfg.max_instruction_chars)
    if found:
        return "instruction " + found
    found = _too_long(t.output, cfg.max_output_words, cfg.max_output_chars)
    return "output " + found if found else None


# -- merged instructions -----------------------------------------------------------------------------

# a new task starts: "Instruction:" / "指令：" (Input/Output labels alone are how single tasks embed their input)
_MARKER = re.compile(r"(?im)^\s*(?:#+\s*)?(?:\d+\s*[.)、:]\s*)?(?:instruction|指令)\s*[:：]")
_HASH_TASK = re.compile(r"(?i)###\s*(?:instruction|input|response|指令|输入|回答)")
_HASH_SEPARATOR = re.compile(r"(?m)^\s*###(?!#)")  # "####-####" is a masked number, not a separator
_TASK_ITEM = re.compile(
    r"(?im)^\s*\d+\s*[.)、]\s*(?:write|translate|summari[sz]e|explain|describe|list|generate|create|classify|"
    r"give|find|rewrite|name|identify|compose|design|suggest|provide|calculate|answer|edit|convert|"
    r"请|写|翻译|解释|描述|列出|生成|创建|给出|找出|改写|总结|计算|回答)"
)


def merged(t: Turn, cfg: FilterConfig) -> str | None:
    if t.index:
        return None  # a dialogue's later turns often carry pasted material; merging is an instruction-set defect
    if _HASH_TASK.search(t.instruction) or _HASH_SEPARATOR.search(t.instruction) or _HASH_TASK.search(t.output):
        return "merged instructions (### separator)"
    if len(_MARKER.findall(t.instruction)) >= 2 or _MARKER.search(t.output):
        return "merged instructions (Instruction: markers)"
    if len(_TASK_ITEM.findall(t.instruction)) >= 2:
        return "merged instructions (numbered list of tasks)"
    return None


# -- garbled -----------------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_UNK = re.compile(r"<UNK>|\[UNK\]|<\|unk\|>")  # a tokenizer's unknown token left in text: the characters are lost
_MOJIBAKE = re.compile(
    r"[ÃÂâÅÆÐÑ][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]"
    r"|锟斤拷|烫烫烫|屯屯屯|ï¼|ã€"
)


def garbled(t: Turn, cfg: FilterConfig) -> str | None:
    for part, text in (("prompt", t.prompt), ("output", t.output)):
        if "UNK" in text and _UNK.search(text):
            return f"garbled {part} (unknown-token placeholder {_UNK.search(text).group(0)})"
        if text.isascii():
            if _CONTROL.search(text):
                return f"garbled {part} (control character)"
            continue
        if "\ufffd" in text:
            return f"garbled {part} (U+FFFD replacement character)"
        if _CONTROL.search(text):
            return f"garbled {part} (control character)"
        if len(_MOJIBAKE.findall(text)) >= 2 or junk.mojibake(text):
            return f"garbled {part} (mojibake)"
    return None


# -- placeholders, loops, token salad (curate/junk.py) ----------------------------------------------

def placeholder(t: Turn, cfg: FilterConfig) -> str | None:
    found = junk.placeholder(t.output, t.prompt)
    return f"unfilled placeholder {found!r}" if found else None


def repetition(t: Turn, cfg: FilterConfig) -> str | None:
    found = junk.is_loop(t.output, t.instruction)
    return f"repetitive output ({found})" if found else None


def salad(t: Turn, cfg: FilterConfig) -> str | None:
    return junk.is_salad(t.output)


Rule = Callable[[Turn, "FilterConfig"], "str | None"]
RULES: dict[str, Rule] = {
    "empty_output": empty_output,
    "echo": echo,
    "garbled": garbled,
    "placeholder": placeholder,
    "repetition": repetition,
    "salad": salad,
    "length": length,
    "merged": merged,
    "needs_media": needs_media,
    "refusal": refusal,
    "safety_refusal": safety_refusal,
    "language": language,
}
JUNK = ("empty_output", "echo", "garbled", "placeholder", "repetition", "salad")
SIGNALS = tuple(name for name in RULES if name not in JUNK)
DEFAULT_RULES = tuple(name for name in RULES if name != "safety_refusal")
