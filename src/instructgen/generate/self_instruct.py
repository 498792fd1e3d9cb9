"""Pure prompt building and response parsing for Self-Instruct and Alpaca generation (no I/O, no network).

Prompts live in package data, `instructgen/prompts/generate_<mode>_<lang>.txt`,
one file per mode and language, split into sections by `=== name ===` lines;
`<<name>>` marks a slot. Each prompt exists in two forms: `json` (for
endpoints that accept `response_format`) and `text` (the numbered form
Alpaca's prompt elicits, for endpoints that answer 400 to it).

Parsers never raise: they return what they could read plus a list of
`(reason, raw text)` problems, and a response nothing could be read from
comes back with no items, so the caller keeps its raw text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

TRUNCATED = "truncated last item (finish_reason=length)"

_WORDS = {
    "en": {"instruction": "Instruction", "input": "Input", "output": "Output", "noinput": "<noinput>",
           "task": "Task", "example": "Example", "label": "Class label", "question": "Is it classification?",
           "yes": "Yes", "no": "No", "colon": ": "},
    "zh": {"instruction": "指令", "input": "输入", "output": "输出", "noinput": "<无输入>",
           "task": "任务", "example": "示例", "label": "类别标签", "question": "是否分类任务？",
           "yes": "是", "no": "否", "colon": "："},
}
_NO_INPUT = {"<noinput>", "<no input>", "<无输入>", "无输入", "<none>", "none", "n/a", "<空>", "无"}


@dataclass(slots=True)
class SeedTask:
    instruction: str
    instances: list[tuple[str, str]]  # (input, output)
    is_classification: bool = False
    id: str = ""


@dataclass(slots=True)
class Task:
    instruction: str
    input: str = ""
    output: str = ""
    raw: str = ""


@dataclass(slots=True)
class Parsed:
    items: list[Any] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (reason, raw piece)


# -- prompts -------------------------------------------------------------------------------------

@cache
def prompt_sections(mode: str, lang: str) -> dict[str, str]:
    text = resources.files("instructgen").joinpath("prompts", f"generate_{mode}_{lang}.txt").read_text("utf-8")
    sections: dict[str, str] = {}
    pieces = re.split(r"(?m)^=== (\S+) ===\n", text)
    for name, body in zip(pieces[1::2], pieces[2::2]):
        sections[name] = body.strip("\n")
    return sections


def _fill(template: str, **slots: Any) -> str:
    for name, value in slots.items():
        template = template.replace(f"<<{name}>>", str(value))
    return template


def user_message(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def alpaca_prompt(examples: list[SeedTask], lang: str, form: str, count: int = 20) -> str:
    """One request for `count` tasks, showing the seed tasks as examples (their first instance)."""
    w = _WORDS[lang]
    if form == "json":
        shown = "\n".join(json.dumps({"instruction": s.instruction, "input": s.instances[0][0] if s.instances else "",
                                      "output": s.instances[0][1] if s.instances else ""}, ensure_ascii=False)
                          for s in examples)
    else:
        blocks = []
        for n, s in enumerate(examples, 1):
            inp, out = s.instances[0] if s.instances else ("", "")
            c = w["colon"].rstrip()
            blocks.append(f"{n}. {w['instruction']}{w['colon']}{s.instruction}\n{n}. {w['input']}{c}\n"
                          f"{inp or w['noinput']}\n{n}. {w['output']}{c}\n{out}")
        shown = "###\n" + "\n###\n".join(blocks)
    return _fill(prompt_sections("alpaca", lang)[form], count=count, examples=shown)


def bootstrap_prompt(instructions: list[str], lang: str, form: str, count: int = 8) -> str:
    """Self-Instruct step 1: in-context instructions (6 seeds + 2 generated), ask for more."""
    w = _WORDS[lang]
    if form == "json":
        shown = "\n".join(f"- {i}" for i in instructions)
    else:
        shown = "\n".join(f"{w['task']} {n}{w['colon']}{_one_line(i)}" for n, i in enumerate(instructions, 1))
    return _fill(prompt_sections("self-instruct", lang)[f"bootstrap_{form}"], count=count, examples=shown)


def classify_prompt(instruction: str, examples: list[SeedTask], lang: str, form: str) -> str:
    """Self-Instruct step 2: few-shot yes/no — is this a classification task?"""
    w = _WORDS[lang]
    lines = []
    for s in examples:
        answer = w["yes"] if s.is_classification else w["no"]
        if form == "json":
            lines.append(f"{w['task']}{w['colon']}{_one_line(s.instruction)}\n"
                         f"{json.dumps({'is_classification': s.is_classification})}")
        else:
            lines.append(f"{w['task']}{w['colon']}{_one_line(s.instruction)}\n{w['question']} {answer}")
    return _fill(prompt_sections("self-instruct", lang)[f"classify_{form}"],
                 examples="\n\n".join(lines), instruction=_one_line(instruction))


def instances_prompt(instruction: str, examples: list[SeedTask], classification: bool, lang: str, form: str,
                     count: int = 5) -> str:
    """Self-Instruct step 3: instances, output-first for classification tasks, input-first otherwise."""
    w = _WORDS[lang]
    shown = []
    for s in examples:
        if form == "json":
            rows = [({"output": o, "input": i} if classification else {"input": i, "output": o}) for i, o in s.instances]
            shown.append(f"{w['task']}{w['colon']}{s.instruction}\n"
                         f"{json.dumps({'instances': rows}, ensure_ascii=False)}")
            continue
        parts = [f"{w['task']}{w['colon']}{s.instruction}"]
        for n, (inp, out) in enumerate(s.instances, 1):
            if classification:
                parts.append(f"{w['example']} {n}\n{w['label']}{w['colon']}{out}\n{w['input']}{w['colon']}"
                             f"{inp or w['noinput']}")
            else:
                parts.append(f"{w['example']} {n}\n{w['input']}{w['colon']}{inp or w['noinput']}\n"
                             f"{w['output']}{w['colon']}{out}")
        shown.append("\n".join(parts))
    kind = "output_first" if classification else "input_first"
    return _fill(prompt_sections("self-instruct", lang)[f"instances_{kind}_{form}"], count=count,
                 examples="\n\n".join(shown), instruction=instruction)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# -- parsing -------------------------------------------------------------------------------------

_ALPACA_LABEL = re.compile(
    r"(?m)^[ \t#*]*(?:(\d+)[ \t]*[.．、)）][ \t]*)?(Instruction|Input|Output|指令|输入|输出)[ \t*]*[:：][ \t]*")
_LABEL_NAME = {"Instruction": "instruction", "Input": "input", "Output": "output",
               "指令": "instruction", "输入": "input", "输出": "output"}


def parse_alpaca_text(text: str, finish_reason: str | None = None) -> Parsed:
    """`###`-separated `N. Instruction:` / `N. Input:` / `N. Output:` blocks (Chinese labels and `：` too)."""
    marks = list(_ALPACA_LABEL.finditer(text))
    starts = [i for i, m in enumerate(marks) if _LABEL_NAME[m.group(2)] == "instruction"]
    parsed = Parsed()
    for k, first in enumerate(starts):
        last = starts[k + 1] if k + 1 < len(starts) else len(marks)
        end = marks[last].start() if last < len(marks) else len(text)
        raw = text[marks[first].start():end]
        fields: dict[str, str] = {}
        for j in range(first, last):
            stop = marks[j + 1].start() if j + 1 < len(marks) else len(text)
            fields.setdefault(_LABEL_NAME[marks[j].group(2)], _clean(text[marks[j].end():stop]))
        if finish_reason == "length" and k == len(starts) - 1:
            parsed.problems.append((TRUNCATED, raw.strip()))
            continue
        if "output" not in fields:
            parsed.problems.append(("unparsable item (no output)", raw.strip()))
            continue
        parsed.items.append(Task(fields["instruction"], _no_input(fields.get("input", "")), fields["output"], raw.strip()))
    return parsed


def _clean(piece: str) -> str:
    piece = re.sub(r"(?s)\n[ \t]*#{3,}.*$", "", piece)  # the ### separator and anything after it
    return piece.strip().strip("#").strip()


def _no_input(value: str) -> str:
    return "" if value.strip().lower() in _NO_INPUT else value


def parse_alpaca_json(text: str, finish_reason: str | None = None) -> Parsed:
    """{"tasks": [{instruction, input, output}, ...]} (or a bare list); complete items of a truncated answer are kept."""
    parsed = Parsed()
    objects, truncated = _json_objects(text, "tasks")
    for obj in objects:
        raw = json.dumps(obj, ensure_ascii=False)
        if not isinstance(obj, dict) or not isinstance(obj.get("instruction"), str) \
                or not isinstance(obj.get("output"), str):
            parsed.problems.append(("unparsable item (needs string instruction and output)", raw))
            continue
        inp = obj.get("input") or ""
        parsed.items.append(Task(obj["instruction"].strip(), _no_input(str(inp).strip()), obj["output"].strip(), raw))
    if truncated:
        parsed.problems.append((TRUNCATED, truncated))
    return parsed


def _json_objects(text: str, key: str) -> tuple[list[Any], str]:
    """The items of `{key: [...]}` or of a bare list, and the raw tail of an item cut short ("" if none)."""
    body = _strip_fences(text)
    try:
        doc = json.loads(body)
    except json.JSONDecodeError:
        return _salvage(body)
    if isinstance(doc, dict):
        doc = doc.get(key, next((v for v in doc.values() if isinstance(v, list)), None))
    return (doc, "") if isinstance(doc, list) else ([], "")


def _salvage(body: str) -> tuple[list[Any], str]:
    """Complete objects of a JSON array cut off mid-way (a `length` finish in JSON mode)."""
    start = body.find("[")
    if start < 0:
        return [], ""
    decoder = json.JSONDecoder()
    items, pos = [], start + 1
    while True:
        nxt = body.find("{", pos)
        if nxt < 0:
            return items, ""
        try:
            obj, pos = decoder.raw_decode(body, nxt)
        except json.JSONDecodeError:
            return items, body[nxt:].strip()
        items.append(obj)


def _strip_fences(text: str) -> str:
    m = re.search(r"```(?:json)?\s*(.*?)(?:```|$)", text, re.S)
    return (m.group(1) if m else text).strip()


_TASK_LINE = re.compile(r"^[ \t]*(?:(?:Task|任务)[ \t]*\d+[ \t]*[:：.．]|\d+[ \t]*[.．、)）:：])[ \t]*(.*)$")


def parse_instructions_text(text: str, finish_reason: str | None = None) -> Parsed:
    """`Task N: instruction` (or `N. instruction`) lines; continuation lines join the item before them."""
    parsed = Parsed()
    items: list[str] = []
    for line in text.splitlines():
        m = _TASK_LINE.match(line)
        if m:
            items.append(m.group(1).strip())
        elif items and line.strip():
            items[-1] = f"{items[-1]}\n{line.strip()}"
    if finish_reason == "length" and items:
        parsed.problems.append((TRUNCATED, items.pop()))
    for item in items:
        if item:
            parsed.items.append(item)
        else:
            parsed.problems.append(("unparsable item (empty)", item))
    return parsed


def parse_instructions_json(text: str, finish_reason: str | None = None) -> Parsed:
    parsed = Parsed()
    body = _strip_fences(text)
    try:
        doc = json.loads(body)
    except json.JSONDecodeError:
        doc = None
        m = re.search(r"\[(.*)", body, re.S)
        if m:  # salvage the complete strings of a cut-off list
            strings = re.findall(r'"((?:[^"\\]|\\.)*)"\s*[,\]]', m.group(1))
            doc = [json.loads(f'"{s}"') for s in strings]
            parsed.problems.append((TRUNCATED, m.group(1)[-200:]))
    if isinstance(doc, dict):
        doc = doc.get("instructions", next((v for v in doc.values() if isinstance(v, list)), None))
    for item in doc if isinstance(doc, list) else []:
        if isinstance(item, dict):
            item = item.get("instruction")
        if isinstance(item, str) and item.strip():
            parsed.items.append(item.strip())
        else:
            parsed.problems.append(("unparsable item (not a string)", json.dumps(item, ensure_ascii=False)))
    return parsed


def parse_classification(text: str) -> bool | None:
    """True / False from a Yes/No (是/否) or {"is_classification": ...} answer; None if neither."""
    body = _strip_fences(text)
    try:
        doc = json.loads(body)
        if isinstance(doc, dict) and isinstance(doc.get("is_classification"), bool):
            return doc["is_classification"]
    except json.JSONDecodeError:
        pass
    head = body.strip().lstrip("*# ").lower()
    head = re.sub(r"^(is it classification\?|是否分类任务[？?])\s*", "", head)
    if head.startswith(("yes", "是", "true")):
        return True
    if head.startswith(("no", "否", "不是", "false")):
        return False
    return None


_INSTANCE_LABEL = re.compile(
    r"(?m)^[ \t#*]*(Example[ \t]*\d+|示例[ \t]*\d+|Class label|类别标签|Input|Output|输入|输出)[ \t*]*[:：]?[ \t]*")


def parse_instances_text(text: str, finish_reason: str | None = None, limit: int = 5) -> Parsed:
    """`Example N` blocks with `Input:`/`Output:` (or `Class label:` for output-first); up to `limit`."""
    marks = [m for m in _INSTANCE_LABEL.finditer(text)]
    blocks: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for j, m in enumerate(marks):
        label = m.group(1)
        stop = marks[j + 1].start() if j + 1 < len(marks) else len(text)
        value = text[m.end():stop].strip()
        name = {"Input": "input", "输入": "input", "Output": "output", "输出": "output",
                "Class label": "output", "类别标签": "output"}.get(label)
        if name is None or current is None or name in current:
            current = {}
            blocks.append(current)
        if name:
            current[name] = value
    parsed = Parsed()
    blocks = [b for b in blocks if b]
    if finish_reason == "length" and blocks:
        parsed.problems.append((TRUNCATED, json.dumps(blocks.pop(), ensure_ascii=False)))
    for b in blocks:
        if "output" not in b:
            parsed.problems.append(("unparsable instance (no output)", json.dumps(b, ensure_ascii=False)))
        else:
            parsed.items.append((_no_input(b.get("input", "")), b["output"]))
    _limit(parsed, limit)
    return parsed


def parse_instances_json(text: str, finish_reason: str | None = None, limit: int = 5) -> Parsed:
    parsed = Parsed()
    objects, truncated = _json_objects(text, "instances")
    for obj in objects:
        if isinstance(obj, dict) and isinstance(obj.get("output"), str):
            parsed.items.append((_no_input(str(obj.get("input") or "").strip()), obj["output"].strip()))
        else:
            parsed.problems.append(("unparsable instance (needs a string output)", json.dumps(obj, ensure_ascii=False)))
    if truncated:
        parsed.problems.append((TRUNCATED, truncated))
    _limit(parsed, limit)
    return parsed


def _limit(parsed: Parsed, limit: int) -> None:
    for extra in parsed.items[limit:]:
        parsed.problems.append((f"more than {limit} instances", json.dumps(extra, ensure_ascii=False)))
    del parsed.items[limit:]


def clean_instances(instances: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[tuple[str, str, tuple]]]:
    """Self-Instruct's post-processing: (kept, [(kind, reason, instance)]) with kind filtered|duplicates.

    Invalid instances go first (empty output, input == output, cut off at a colon); among the rest,
    every instance whose non-empty input appears with different outputs is dropped, then exact repeats.
    """
    dropped: list[tuple[str, str, tuple]] = []
    valid: list[tuple[str, str]] = []
    for inst in instances:
        inp, out = inst
        if not out.strip():
            dropped.append(("filtered", "empty output", inst))
        elif inp.strip() == out.strip():
            dropped.append(("filtered", "input equals output", inst))
        elif inp.rstrip().endswith((":", "：")) or out.rstrip().endswith((":", "：")):
            dropped.append(("filtered", "incomplete instance (ends with a colon)", inst))
        else:
            valid.append(inst)
    outputs_by_input: dict[str, set[str]] = {}
    for inp, out in valid:
        if inp:
            outputs_by_input.setdefault(inp, set()).add(out)
    kept: list[tuple[str, str]] = []
    for inst in valid:
        if inst[0] and len(outputs_by_input[inst[0]]) > 1:
            dropped.append(("filtered", "same input with different outputs", inst))
        elif inst in kept:
            dropped.append(("duplicates", "duplicate instance", inst))
        else:
            kept.append(inst)
    return kept, dropped
