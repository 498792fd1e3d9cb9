"""A judge's reply -> a number on the judge's scale, in every shape judges write it.

    parse_score(reply, low, high) -> ParsedScore | None

Shapes, tried in this order (the first that holds a number wins): `[[8]]` (MT-Bench), a JSON object with a
`score`/`rating` key, `Score: 4` / `Rating: 4.5` / `评分：4分` / `I would rate it 3 out of 5` (the last such
label: verdicts come at the end), a reply whose first line is only a number (as AlpaGasus asks), a bare
fraction `4/5` (mapped onto the judge's scale), and `4分`. The reply is NFKC-normalised first, so full-width digits and
colons (`评分：４`) read as ASCII. A number above the scale with no denominator is read on the smallest common
scale that holds it (10, then 100) and mapped; one below it is raised to `low`; both are said (`note`).
None means the reply holds no score: the caller retries with a stricter instruction, then records it unscored.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import orjson

NUM = r"(\d+(?:\.\d+)?)"
_CN_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
LABELS = r"(?<![a-z])(?:score|rating|rate|rated|grade|评分|得分|分数|打分|评级|总分)"
OUT_OF = r"(?:\s*(?:/|out\s+of|分?\s*[(（]?\s*满分)\s*" + NUM + r")?"

_BRACKETS = re.compile(r"\[\[\s*" + NUM + r"\s*(?:/\s*" + NUM + r")?\s*\]\]")
_JSON = re.compile(r"\{[^{}]*\}", re.S)
_FRACTION = re.compile(NUM + r"\s*(?:/|out\s+of|of\s+a\s+possible|分?\s*[(（]?\s*满分)\s*" + NUM, re.I)
_LABELLED = re.compile(r"(?i)" + LABELS + r"[^\d\n]{0,30}?" + NUM + OUT_OF)
_FEN = re.compile(NUM + r"\s*分")
_CN_FEN = re.compile(r"([零一二两三四五六七八九十])\s*分")
_BARE = re.compile(r"^\W{0,3}" + NUM + r"\W{0,3}$")
_JSON_KEYS = ("score", "rating", "grade", "评分", "得分", "分数")


@dataclass(frozen=True, slots=True)
class ParsedScore:
    value: float  # on the judge's scale
    written: float  # the number as the judge wrote it
    shape: str  # which shape held it: brackets, json, fraction, label, fen, bare
    note: str = ""  # set when `written` was not on the judge's scale: how it was mapped

    @property
    def normalised(self) -> bool:
        return bool(self.note)


def parse_score(reply: str, low: float, high: float) -> ParsedScore | None:
    text = unicodedata.normalize("NFKC", reply or "")
    for shape, find in _SHAPES:
        found = find(text)
        if found is not None:
            number, out_of = found
            return _on_scale(number, out_of, low, high, shape)
    return None


def _brackets(text: str) -> tuple[float, float | None] | None:
    m = _last(_BRACKETS, text)
    return (float(m.group(1)), float(m.group(2)) if m.group(2) else None) if m else None


def _json(text: str) -> tuple[float, float | None] | None:
    for block in reversed(_JSON.findall(text)):
        try:
            doc = orjson.loads(block)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(doc, dict):
            continue
        for key, value in doc.items():
            if str(key).strip().lower() in _JSON_KEYS:
                number = _number(value)
                if number is not None:
                    return number, None
    return None


def _fraction(text: str) -> tuple[float, float | None] | None:
    m = _last(_FRACTION, text)
    if not m:
        return None
    a, b = float(m.group(1)), float(m.group(2))
    if "满分" in m.group(0):  # "4分（满分5分）": the score first, the full mark second
        return a, b
    return (a, b) if b > 0 and a <= b else None  # "3/2" or a date "12/5" is no score


def _label(text: str) -> tuple[float, float | None] | None:
    m = _last(_LABELLED, text)
    if not m:
        return None
    a, b = float(m.group(1)), float(m.group(2)) if m.group(2) else None
    return (a, b) if b is None or (b > 0 and a <= b) else (a, None)


def _fen(text: str) -> tuple[float, float | None] | None:
    m = _last(_FEN, text)
    if m:
        return float(m.group(1)), None
    m = _last(_CN_FEN, text)
    return (float(_CN_DIGITS[m.group(1)]), None) if m else None


def _bare(text: str) -> tuple[float, float | None] | None:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    m = _BARE.match(lines[0])
    return (float(m.group(1)), None) if m else None


_SHAPES = (("brackets", _brackets), ("json", _json), ("label", _label), ("bare", _bare), ("fraction", _fraction),
           ("fen", _fen))


def _last(pattern: re.Pattern, text: str) -> re.Match | None:
    last = None
    for last in pattern.finditer(text):
        pass
    return last


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*" + NUM + r"\s*(?:/\s*\d+(?:\.\d+)?)?\s*", value)
        return float(m.group(1)) if m else None
    return None


def _on_scale(number: float, out_of: float | None, low: float, high: float, shape: str) -> ParsedScore:
    if out_of is not None and out_of != high:
        value = number / out_of * high
        return ParsedScore(_clamp(value, low, high), number, shape, f"{number:g}/{out_of:g} read as {value:g} of {high:g}")
    if number > high:
        scale = next(s for s in (10.0, 100.0, 10.0 ** len(str(int(number)))) if number <= s)
        value = number / scale * high
        return ParsedScore(_clamp(value, low, high), number, shape, f"{number:g} above {high:g}: read on a "
                           f"0-{scale:g} scale as {value:g}")
    if number < low:
        return ParsedScore(low, number, shape, f"{number:g} below {low:g}: raised to {low:g}")
    return ParsedScore(number, number, shape)


def _clamp(value: float, low: float, high: float) -> float:
    return round(min(high, max(low, value)), 4)
