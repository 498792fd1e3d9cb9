"""MOSS-003 plugin turns as tool calls, and back.

A plugin turn of MOSS-003 SFT data::

    "Inner Thoughts": "<|Inner Thoughts|>: I should search for it.<eot>\\n"
    "Commands":       "<|Commands|>: Search(\\"Kilimanjaro height\\"), Calculate(\\"5895*2\\")<eoc>\\n"
    "Tool Responses": "<|Results|>:\\nSearch(\\"Kilimanjaro height\\") =>\\n<|1|>: '5,895 m'\\n"
                      "Calculate(\\"5895*2\\") => 11790\\n<eor>\\n"

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

from ..errors import BadRecord
from ..record import Conversation, Message, ToolCall
from .base import Lost
from .moss_tags import DEFAULT_LAYOUT, PLAIN, PLUGIN_FIELDS, render, split_tagged

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


def plugin_messages(thought: str, commands: str, results: str,
                    apis: dict[str, tuple[str, str]]) -> list[Message] | None:
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


# -- plugin turns of a record ------------------------------------------------------------------------

def plugin_fields(plugin: list[Message], apis: dict) -> dict[str, str]:
    """The three plugin fields MOSS usually writes for a call message and its results."""
    bodies = render_plugin(plugin[0], plugin[1:], renderable(plugin[0].tool_calls, apis))
    return {f: render(f, body, layout or DEFAULT_LAYOUT) for f, (body, layout) in zip(PLUGIN_FIELDS, bodies)}


def plugin_turns(conv: Conversation, apis: dict) -> list[tuple[str, list[Message], str]] | None:
    """(user, [call message, results...] or [], answer) per MOSS turn; None if the conversation is not
    user -> (call -> results ->) answer turns whose calls MOSS can write as commands."""
    turns, out, i = conv.turns, [], 0
    while i < len(turns):
        user = turns[i]
        if user.role != "user":
            return None
        i += 1
        plugin: list[Message] = []
        if i < len(turns) and turns[i].role == "assistant" and turns[i].tool_calls:
            call = turns[i]
            if renderable(call.tool_calls, apis) is None:
                return None
            i += 1
            while i < len(turns) and turns[i].role == "tool":
                plugin.append(turns[i])
                i += 1
            if not _answers_in_order(call, plugin):
                return None
            plugin.insert(0, call)
        if i >= len(turns) or turns[i].role != "assistant" or turns[i].tool_calls:
            return None
        out.append((user.content, plugin, turns[i].content))
        i += 1
    return out


def _answers_in_order(call: Message, results: list[Message]) -> bool:
    """Results MOSS can write: none, one for the turn, or one per command in command order."""
    if len(results) not in (0, 1, len(call.tool_calls)):
        return False
    return all(r.tool_call_id is None or c.id is None or r.tool_call_id == c.id
               for c, r in zip(call.tool_calls, results))


def turn_plugins(plugin: list[Message], kept: dict[str, str] | None, apis: dict, lost: Lost) -> dict[str, str]:
    """A turn's three plugin fields: the raw ones kept in meta while they still say what the messages say."""
    if not plugin:
        if not kept:
            return PLAIN
        fields = {f: kept.get(f, PLAIN[f]) for f in PLUGIN_FIELDS}
        if _reads_as_calls(fields, apis):  # kept layout of tool calls the record no longer has
            lost("MOSS plugin fields dropped (their tool calls are gone)")
            return PLAIN
        return fields
    usual = plugin_fields(plugin, apis)
    if kept:
        fields = {f: kept.get(f, usual[f]) for f in PLUGIN_FIELDS}
        again = plugin_messages(*(split_tagged(fields[f], f, f)[0] for f in PLUGIN_FIELDS), apis)
        if again is not None and same_plugin(again, plugin):
            return fields
    return usual


def _reads_as_calls(fields: dict[str, str], apis: dict) -> bool:
    return plugin_messages(*(split_tagged(fields[f], f, f)[0] for f in PLUGIN_FIELDS), apis) is not None


def plugin_meta_losses(conv: Conversation) -> list[str]:
    """What leaving out meta["moss_plugins"] loses: plugin fields no message holds, or only their layout."""
    entries = conv.meta.get("moss_plugins")
    if not isinstance(entries, list):
        return []
    calls = any(m.tool_calls for m in conv.messages)
    losses = set()
    for entry in entries:
        fields = {f: entry.get(f, PLAIN[f]) for f in PLUGIN_FIELDS} if isinstance(entry, dict) else None
        try:
            as_calls = calls and fields is not None and _reads_as_calls(fields, enabled_apis(conv.system))
        except BadRecord:
            as_calls = False
        losses.add("MOSS plugin text layout dropped" if as_calls else "MOSS inner thoughts/commands/results dropped")
    return sorted(losses)


def plugins_by_turn(value: Any, n_turns: int, lost: Lost) -> dict[int, dict[str, str]]:
    """moss_plugins from meta, checked: each entry's values must still be tagged MOSS plugin values."""
    if not value:
        return {}
    out: dict[int, dict[str, str]] = {}
    for entry in value if isinstance(value, list) else [None]:
        try:
            n = entry["turn"]
            fields = {f: entry[f] for f in PLUGIN_FIELDS if f in entry}
            for f, raw in fields.items():
                split_tagged(raw, f, f)
            if isinstance(n, bool) or not isinstance(n, int) or not fields:
                raise TypeError
        except (BadRecord, KeyError, TypeError):
            lost("MOSS plugin fields dropped (malformed meta.moss_plugins)")
            continue
        if 1 <= n <= n_turns:
            out[n] = fields
        else:
            lost("MOSS plugin fields dropped (their turn is gone)")
    return out
