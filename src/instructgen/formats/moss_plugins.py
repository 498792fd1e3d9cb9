"""MOSS-003 plugin turns as tool calls, and back.

A plugin turn of MOSS-003 SFT data::

    "Inner Thoughts": "<|Inner Thoughts|>: I should search for it.<eot>\\n"
    "Commands":       "<|Commands|>: Search(\\"Kilimanjaro height\\"), Calculate(\\"5895*2\\")<eoc>\\n"
    "Tool Responses": "<|Results|>:\\nSearch(\\"Kilimanjaro height\\") =>\\n<|1|>: '5,895 m'\\nCalculate(\\"5895*2\\") => 11790\\n<eor>\\n"

is, in the canonical record, an assistant message whose content is the inner
thought ("" for `None`) and whose tool calls are the commands (the plugin API is
the tool: `Search` with {"query": ...}, `Calculate` {"expression"}, `Solve`
{"equation"}, `Text2Image` {"description"}; another API takes the parameter its
`API: Name(param)` line in the meta instruction names, else "input"), followed
by one tool message per command holding its result, in command order. The
record's `tools` are the plugins the meta instruction enables (and any other
one a command calls).

`render_plugin` writes the three fields back in MOSS's usual layout; where a
file's bytes differ from it (another separator between commands, results in
another order, no `Cmd(...) =>` heads), moss.py keeps the raw field in
meta["moss_plugins"] and writes it back only while it still reads as the same
calls and results.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..record import Message, ToolCall

# API name -> (the plugin's name in the meta instruction, its parameter, what follows "Cmd(...) =>" in Results;
# None: the result is written bare, without the command)
PLUGINS = {
    "Search": ("Web search", "query", "\n"),
    "Calculate": ("Calculator", "expression", " "),
    "Solve": ("Equation solver", "equation", "\n"),
    "Text2Image": ("Text-to-image", "description", None),
}
GENERIC_PARAM = "input"
NONE = "None"
BLOCKS_LAYOUT = ("\n", "\n", "\n")  # "<|Results|>:\n...\n<eor>\n"
_API_LINE = re.compile(r"^- (?P<label>[^:\n]+): enabled\. API: (?P<name>[A-Za-z_]\w*)\((?P<param>\w+)\)", re.M)
_CALL = re.compile(r'([A-Za-z_]\w*)\("(.*?)"\)(?=\s*,|\s*\n|\s*\Z)', re.S)
_SEP = re.compile(r"\s*,\s*|\s*\n\s*")


def enabled_apis(meta_instruction: str | None) -> dict[str, tuple[str, str]]:
    """API name -> (plugin name, parameter) for each "- Plugin: enabled. API: Name(param)" line."""
    if not meta_instruction or "API:" not in meta_instruction:
        return {}
    return {m["name"]: (m["label"].strip(), m["param"]) for m in _API_LINE.finditer(meta_instruction)}


def param_of(name: str, apis: dict[str, tuple[str, str]]) -> str:
    if name in apis:
        return apis[name][1]
    return PLUGINS[name][1] if name in PLUGINS else GENERIC_PARAM


def tools_for(meta_instruction: str | None, calls: list[ToolCall]) -> list[dict[str, Any]]:
    """Tool definitions: the enabled plugins, then any other API the calls use."""
    apis = enabled_apis(meta_instruction)
    names = list(apis) + [c.name for c in calls if c.name not in apis]
    out, seen = [], set()
    for name in names:
        if name in seen:
            continue
        seen.add(name)
        label = apis[name][0] if name in apis else PLUGINS.get(name, (name, "", None))[0]
        param = param_of(name, apis)
        out.append({"name": name, "description": label,
                    "parameters": {"type": "object", "properties": {param: {"type": "string"}}, "required": [param]}})
    return out


# -- reading ---------------------------------------------------------------------------------------

def parse_commands(body: str) -> list[tuple[str, str]] | None:
    """[(API, argument text)] of a Commands body such as 'Search("a"), Calculate("1+1")'; None if it is not one."""
    calls, pos = [], 0
    while True:
        m = _CALL.match(body, pos)
        if not m:
            return None
        calls.append((m.group(1), m.group(2)))
        pos = m.end()
        if pos == len(body):
            return calls
        sep = _SEP.match(body, pos)
        if not sep or sep.end() == len(body):
            return None
        pos = sep.end()


def command_text(name: str, arg: str) -> str:
    return f'{name}("{arg}")'


def split_results(body: str, commands: list[str]) -> list[tuple[str, str]] | None:
    """(separator, result) per command of a Results body made of "Cmd(...) =>" blocks (any order);
    None when the body is not made of exactly one block per command."""
    starts: list[tuple[int, int, int]] = []  # (position, command index, length of its head)
    taken: set[int] = set()
    for i, cmd in enumerate(commands):
        head, pos = cmd + " =>", 0
        while True:
            p = body.find(head, pos)
            if p < 0:
                return None
            if (p == 0 or body[p - 1] == "\n") and p not in taken:
                break
            pos = p + 1
        taken.add(p)
        starts.append((p, i, len(head)))
    starts.sort()
    if starts[0][0] != 0:
        return None
    out: list[tuple[str, str]] = [("", "")] * len(commands)
    for k, (p, i, head_len) in enumerate(starts):
        end = starts[k + 1][0] - 1 if k + 1 < len(starts) else len(body)  # the "\n" before the next block
        chunk = body[p + head_len:end]
        sep = chunk[:1] if chunk[:1] in (" ", "\n") else ""
        out[i] = (sep, chunk[len(sep):])
    return out


def plugin_messages(thought: str, commands: str, results: str, apis: dict[str, tuple[str, str]]) -> list[Message] | None:
    """The assistant call message and tool messages of a turn's plugin bodies; None when Commands
    is `None` or not a list of calls (the raw fields then travel as they are)."""
    parsed = parse_commands(commands) if commands != NONE else None
    if not parsed:
        return None
    calls = [ToolCall(name, json.dumps({param_of(name, apis): arg}, ensure_ascii=False)) for name, arg in parsed]
    out = [Message("assistant", "" if thought == NONE else thought, tool_calls=calls)]
    if results == NONE:
        return out
    blocks = split_results(results, [command_text(n, a) for n, a in parsed])
    if blocks is None:
        out.append(Message("tool", results))  # one result for the turn, answering the first call
    else:
        out += [Message("tool", result) for _, result in blocks]
    return out


# -- writing ---------------------------------------------------------------------------------------

def renderable(calls: list[ToolCall], apis: dict[str, tuple[str, str]]) -> list[tuple[str, str]] | None:
    """(API, argument text) of calls MOSS can write as commands: a one-string-argument call whose
    parameter is the one reading it back would give; None if any call is not."""
    out = []
    for c in calls:
        try:
            args = json.loads(c.arguments)
        except ValueError:
            return None
        param = param_of(c.name, apis)
        if not (isinstance(args, dict) and list(args) == [param] and isinstance(args[param], str)):
            return None
        out.append((c.name, args[param]))
    if parse_commands(", ".join(command_text(n, a) for n, a in out)) != out:
        return None
    return out


def render_plugin(call: Message, results: list[Message], commands: list[tuple[str, str]]):
    """The (Inner Thoughts, Commands, Tool Responses) bodies and layouts MOSS usually writes."""
    texts = [command_text(n, a) for n, a in commands]
    thought = (call.content or NONE, None)
    command = (", ".join(texts), None)
    if not results:
        return thought, command, (NONE, None)
    seps = [PLUGINS.get(n, (None, None, "\n"))[2] for n, _ in commands]
    if len(results) != len(commands) or (len(results) == 1 and seps[0] is None):
        return thought, command, ("\n".join(r.content for r in results), None)
    blocks = [f"{cmd} =>{sep or chr(10)}{r.content}" for cmd, sep, r in zip(texts, seps, results)]
    return thought, command, ("\n".join(blocks), BLOCKS_LAYOUT)


def same_plugin(a: list[Message], b: list[Message]) -> bool:
    """Two renderings of a plugin turn say the same: thought, calls and results."""
    return len(a) == len(b) and all(
        x.role == y.role and x.content == y.content
        and [(c.name, c.arguments) for c in x.tool_calls] == [(c.name, c.arguments) for c in y.tool_calls]
        for x, y in zip(a, b))
