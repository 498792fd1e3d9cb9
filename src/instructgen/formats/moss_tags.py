"""MOSS-003 chat values: the tag around each field, and splitting/rendering a tagged value.

Every chat value carries its own tags, e.g. `"<|Human|>: hi<eoh>\\n"`; plugin files put a body on
its own lines (`"<|Results|>:\\n...\\n<eor>\\n"`). A layout is (lead, tail, trail): the text between
the opening tag and the body, a newline before the closing tag, and what follows the closing tag.
"""

from __future__ import annotations

from typing import Any

from ..errors import BadRecord

# field -> (opening tag, closing tag)
TAGS = {
    "Human": ("<|Human|>:", "<eoh>"),
    "Inner Thoughts": ("<|Inner Thoughts|>:", "<eot>"),
    "Commands": ("<|Commands|>:", "<eoc>"),
    "Tool Responses": ("<|Results|>:", "<eor>"),
    "MOSS": ("<|MOSS|>:", "<eom>"),
}
TURN_FIELDS = tuple(TAGS)  # the order MOSS writes them in
PLUGIN_FIELDS = ("Inner Thoughts", "Commands", "Tool Responses")
PLAIN = {f: f"{TAGS[f][0]} None{TAGS[f][1]}\n" for f in PLUGIN_FIELDS}
DEFAULT_LAYOUT = (" ", "", "\n")  # (after the opening tag, before the closing tag, after the closing tag)


def split_tagged(value: Any, field: str, where: str) -> tuple[str, tuple[str, str, str]]:
    """(body, layout) of a tagged chat value such as "<|Human|>: hi<eoh>\\n".

    layout = (lead, tail, trail): the text between the opening tag and the body
    (" ", "\\n" or ""), a newline before the closing tag in the plugin line
    layout "<|Results|>:\\n...\\n<eor>\\n", and the whitespace after the closing tag.
    """
    opening, closing = TAGS[field]
    if not isinstance(value, str):
        raise BadRecord(f"{where}: must be a string, got {type_name(value)}")
    if not value.startswith(opening):
        raise BadRecord(f"{where}: must start with {opening}, found {value[:30]!r}")
    end = value.rfind(closing)
    if end < len(opening):
        raise BadRecord(f"{where}: missing {closing} tag")
    trail = value[end + len(closing):]
    if trail.strip():
        raise BadRecord(f"{where}: text after the {closing} tag: {trail[:30]!r}")
    inner = value[len(opening):end]
    lead = inner[:1] if inner[:1] in (" ", "\n") else ""
    body = inner[len(lead):]
    tail = "\n" if lead == "\n" and body.endswith("\n") else ""
    return body[: len(body) - len(tail)], (lead, tail, trail)


def render(field: str, body: str, layout: tuple[str, str, str] | list[str] = DEFAULT_LAYOUT) -> str:
    opening, closing = TAGS[field]
    lead, tail, trail = layout
    return f"{opening}{lead}{body}{tail}{closing}{trail}"


def type_name(value: Any) -> str:
    return {list: "an array", dict: "an object", str: "a string", int: "a number", float: "a number",
            bool: "a boolean", type(None): "null"}.get(type(value), type(value).__name__)
