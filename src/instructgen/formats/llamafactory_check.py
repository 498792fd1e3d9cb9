"""LLaMA-Factory's own rules, applied to a row before it gets there: `validate --for llamafactory`.

LLaMA-Factory 0.9.5 reads a dataset through its `dataset_info.json` entry (`attributes` resolves it
as its parser does: an entry that names `columns` or `tags` leaves every one it does not name unset),
aligns each row with its converter (data/converter.py) and then drops, in preprocessing, every row
whose prompt is not an odd number of turns or whose response is not one answer (two for pairs and
KTO). Its converter skips a row whose turns do not alternate per its tags ("Invalid role tag") or
whose count is wrong ("Invalid message count"), and crashes on a row whose role is none of its tags.
`skip_reason` says which of these happens to a row, in words, or None when the row is trained on.
"""

from __future__ import annotations

import json
from typing import Any

LF_DEFAULTS: dict[str, Any] = {
    "formatting": "alpaca", "ranking": False,
    "system": None, "tools": None, "images": None, "videos": None, "audios": None,
    "chosen": None, "rejected": None, "kto_tag": None,
    "prompt": "instruction", "query": "input", "response": "output", "history": None, "messages": "conversations",
    "role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
    "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system",
}
COLUMNS = ("prompt", "query", "response", "history", "messages", "system", "tools", "images", "videos", "audios",
           "chosen", "rejected", "kto_tag")
TAGS = ("role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag", "function_tag", "system_tag")


def attributes(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry's attributes as LLaMA-Factory's DatasetAttr.join resolves them."""
    attr = dict(LF_DEFAULTS)
    attr["formatting"] = entry.get("formatting", "alpaca")
    attr["ranking"] = entry.get("ranking", False)
    for group, names in (("columns", COLUMNS), ("tags", TAGS)):
        if group in entry:
            attr.update({name: entry[group].get(name) for name in names})
    return attr


class Skip(Exception):
    """Why LLaMA-Factory drops (or fails on) a row."""


def skip_reason(row: Any, attr: dict[str, Any], columns: set[str]) -> str | None:
    """Why LLaMA-Factory would not train on `row` (one of a file whose rows hold `columns`), or None."""
    if not isinstance(row, dict):
        return "not a JSON object: datasets cannot load it as a row"
    for name in COLUMNS:
        column = attr[name]
        if column and column not in columns and name not in ("prompt", "query", "response"):
            return f"the entry's {name} column {column!r} is in no row of the file: datasets fails with KeyError"
    example = {c: row.get(c) for c in columns}  # as datasets fills a column a row lacks with None
    try:
        if attr["formatting"] == "alpaca":
            prompt, response = _alpaca(example, attr)
        else:
            prompt, response = _conversation(example, attr)
    except Skip as e:
        return str(e)
    want = 2 if attr["ranking"] or attr["kto_tag"] else 1
    if attr["kto_tag"] and not isinstance(example.get(attr["kto_tag"]), bool):
        return (f"KTO: {attr['kto_tag']!r} is {example.get(attr['kto_tag'])!r}, not true/false: read as plain "
                "supervised data, which the KTO stage drops")
    if not prompt or len(prompt) % 2 != 1:
        return f"the prompt is {len(prompt)} turns; LLaMA-Factory needs an odd number ending with the user's"
    if len(response) != want:
        what = "a pair of answers (chosen, rejected)" if attr["ranking"] else \
            "a labelled answer" if attr["kto_tag"] else "one answer"
        return f"{len(response)} answers where this entry needs {what}: LLaMA-Factory drops it as invalid"
    for i, m in enumerate(prompt + response, 1):
        if not isinstance(m["content"], str):
            return f"turn {i} has no text ({m['content']!r}): LLaMA-Factory's template fails on it"
    return None


def _alpaca(example: dict, attr: dict) -> tuple[list, list]:
    prompt = []
    history = example.get(attr["history"]) if attr["history"] else None
    if isinstance(history, list):
        for pair in history:
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
                raise Skip(f"{attr['history']} holds {pair!r}, not a [question, answer] pair: LLaMA-Factory "
                           "fails on it (ValueError)")
            prompt += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    query = [example[c] for c in (attr["prompt"], attr["query"]) if c and example.get(c)]
    if not all(isinstance(q, str) for q in query):
        raise Skip(f"{attr['prompt']}/{attr['query']} must be text: LLaMA-Factory fails joining them (TypeError)")
    prompt.append({"role": "user", "content": "\n".join(query)})
    kto, chosen, rejected = (example.get(attr[k]) if attr[k] else None for k in ("kto_tag", "chosen", "rejected"))
    answer = example.get(attr["response"]) if attr["response"] else None
    if attr["kto_tag"] and isinstance(kto, bool):
        return prompt, [{"role": "assistant", "content": answer}, {"role": "assistant", "content": ""}]
    if attr["ranking"] and isinstance(chosen, str) and isinstance(rejected, str):
        return prompt, [{"role": "assistant", "content": chosen}, {"role": "assistant", "content": rejected}]
    if attr["response"] and isinstance(answer, str):
        return prompt, [{"role": "assistant", "content": answer}]
    return prompt, []


def _conversation(example: dict, attr: dict) -> tuple[list, list]:
    """sharegpt and openai: the aligned turns, or Skip with LLaMA-Factory's reason."""
    role_tag, content_tag = attr["role_tag"], attr["content_tag"]
    messages = example.get(attr["messages"])
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise Skip(f"{attr['messages']!r} is not a list of turns: LLaMA-Factory fails on it")
    for i, m in enumerate(messages, 1):
        if role_tag not in m:
            raise Skip(f"turn {i} has no {role_tag!r} key: LLaMA-Factory fails with KeyError (check the entry's tags)")
    if attr["system_tag"] and messages and messages[0][role_tag] == attr["system_tag"]:
        messages = messages[1:]
    names = {attr["user_tag"]: "user", attr["assistant_tag"]: "assistant", attr["observation_tag"]: "observation",
             attr["function_tag"]: "function", attr["system_tag"]: "system"}
    if attr["formatting"] == "openai":
        turns = _openai_turns(messages, attr, names)
    else:
        turns = [(m[role_tag], m.get(content_tag)) for m in messages]
    expected = ((attr["user_tag"], attr["observation_tag"]), (attr["assistant_tag"], attr["function_tag"]))
    for i, (tag, _) in enumerate(turns):
        if tag not in expected[i % 2]:
            if tag not in names:
                raise Skip(f"turn {i + 1} has role {tag!r}, none of the entry's tags ({_tags(attr)}): "
                           "LLaMA-Factory skips it (Invalid role tag)")
            raise Skip(f"turn {i + 1} is {tag!r} where LLaMA-Factory expects {' or '.join(map(repr, expected[i % 2]))}:"
                       " user and assistant turns must alternate (Invalid role tag)")
    if len(turns) % 2 != (1 if attr["ranking"] else 0):
        need = "an odd number (ending with the user's, for a pair)" if attr["ranking"] else \
            "an even number ending with the answer"
        raise Skip(f"{len(turns)} turns after the system prompt where LLaMA-Factory needs {need} "
                   "(Invalid message count)")
    aligned = [{"role": names[tag], "content": content} for tag, content in turns]
    kto = example.get(attr["kto_tag"]) if attr["kto_tag"] else None
    chosen = example.get(attr["chosen"]) if attr["chosen"] else None
    rejected = example.get(attr["rejected"]) if attr["rejected"] else None
    if attr["kto_tag"] and isinstance(kto, bool):
        return aligned[:-1], aligned[-1:] + [{"role": "assistant", "content": ""}]
    if attr["ranking"] and isinstance(chosen, dict) and isinstance(rejected, dict):
        for name, answer in (("chosen", chosen), ("rejected", rejected)):
            if answer.get(role_tag) not in expected[1]:
                raise Skip(f"{name} is {answer.get(role_tag)!r} where LLaMA-Factory expects "
                           f"{' or '.join(map(repr, expected[1]))} (Invalid role tag)")
        return aligned, [{"role": "assistant", "content": a.get(content_tag)} for a in (chosen, rejected)]
    return aligned[:-1], aligned[-1:]


def _openai_turns(messages: list[dict], attr: dict, names: dict) -> list[tuple[str, Any]]:
    """OpenAI messages as LLaMA-Factory's OpenAI converter aligns them: a call is a function turn,
    consecutive tool results one observation turn."""
    turns, results = [], []
    for m in messages:
        tag, content = m[attr["role_tag"]], m.get(attr["content_tag"])
        if tag in (attr["assistant_tag"], attr["function_tag"]) and m.get("tool_calls"):
            calls = m["tool_calls"]
            if not all(isinstance(c, dict) and "function" in c for c in calls):
                raise Skip("a tool call without 'function': LLaMA-Factory fails on it (KeyError)")
            tag, content = attr["function_tag"], json.dumps([c["function"] for c in calls], ensure_ascii=False)
        if tag == attr["observation_tag"]:
            results.append(content)
            continue
        if results:
            turns.append((attr["observation_tag"], "\n".join(map(str, results))))
            results = []
        if tag not in names:
            raise Skip(f"role {tag!r} is none of the entry's tags ({_tags(attr)}): LLaMA-Factory fails with KeyError")
        turns.append((tag, content))
    return turns


def _tags(attr: dict) -> str:
    return ", ".join(f"{attr[t]}" for t in TAGS[2:] if attr[t])
