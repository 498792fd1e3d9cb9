"""language: a turn in a language not asked for (FilterConfig.lang), or answered in another language.

    language(turn, cfg) -> str | None
    natural_text(text) -> str           the natural-language part: code, math, tables, URLs taken out
    candidates(langs) -> tuple[str, ...] the requested languages plus the ones a detector confuses them with

Judged on the natural-language part only: code (fenced, inline or line by line), equations, table rows,
URLs and e-mail addresses say nothing about the language, and text too short to tell gets no opinion
(langid's rules). Tasks about languages (translate, "which language is this?", 翻译) are judged by their
instruction, never by the text to translate or the output. A prompt that quotes material in another
script ("用“opulent”造句", "What does 你好 mean?") may be answered in the material's language. A prompt
made of several paragraphs passes when one of them is in an allowed language (a passage to work on is
material), and an output passes when a good share of its lines is (a Chinese answer listing English
names is a Chinese answer). The detector runs only when the script and English function words cannot
decide, on at most langid.MAX_CHARS characters.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .langid import MAX_CHARS, PLAUSIBLE, get_detector, script_counts

if TYPE_CHECKING:
    from .filter import FilterConfig
    from .langid import Detector
    from .rules import Turn

CJK_LANGS = ("zh", "ja", "ko")
# what detectors mistake a language for: the candidate set is the requested languages plus these
CONFUSABLE = {
    "en": ("fr", "de", "es", "it", "pt", "nl"), "fr": ("en", "es", "it", "pt"), "de": ("en", "nl"),
    "es": ("pt", "it", "fr", "en"), "pt": ("es", "it"), "it": ("es", "pt", "fr"), "nl": ("de", "en"),
    "zh": ("ja", "ko"), "ja": ("zh",), "ko": ("zh", "ja"), "ru": ("uk", "bg"),
}
MIN_ALLOWED_SHARE = 0.3  # of an output's decided lines (by characters) in an allowed language

_FENCE = re.compile(r"```.*?(?:```|$)", re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_URL = re.compile(r"https?://\S+|www\.\S+|\S+@\S+\.\w+")
_CALL = re.compile(r"\b[A-Za-z_][\w.]*\([^()\n]*\)")  # wikipedia('Albert Einstein'), f(x)
# what every _CALL match holds: "(" after a name's character; a pattern that opens with "(" is found by a fast
# scan for that character, where _CALL itself is tried at every position
_CALL_OPENS = re.compile(r"\((?<=[\w.]\()")
# a line of code: how it starts (matched at its start), or what it holds anywhere. Two patterns, not one: a
# pattern whose branches all start with a known character lets the regex engine skip to those characters
_CODE_LINE_START = re.compile(
    r"^(?: {4}|\t)|^\s*(?:def |class |import |from \S+ import |return\b|raise |#include|function\b|var |let |const |public "
    r"|private |static |(?:if|elif|else|for|while|try|except|with)\b.*[:：]\s*(?:#.*)?$|if\s*\(|for\s*\(|while\s*\(|print\("
    r"|console\.|System\.|SELECT |INSERT |UPDATE |<[/!?]?\w+[^>]*>|[{}\[\]]|//|/\*)"
    r"|^\s*[\w.\[\]\"']+\s*[-+*/]?=\s*\S"
)
_CODE_LINE_ANYWHERE = re.compile(r"[;{}]\s*$|\)\s*(?:\{|;\s*$)|\(\)|=>|->|::|==|!=|&&|\|\|")
_WORDLIKE = re.compile(r"(?<!\S)[\"'(\[“‘]?[^\W\d_]+(?:[-'’][^\W\d_]+)*[.,;:!?\"')\]”’：，。]*(?!\S)")
_TABLE_LINE = re.compile(r"^\s*\|")
_SPECIAL = re.compile(r"[{}\[\]();=<>/|#*:：]")  # a line without any (nor indented, nor a keyword) is prose
_DIGIT = re.compile(r"\d")
_CODE_STARTS = ("def ", "class ", "return", "import ", "from ", "if ", "elif ", "else", "for ", "while ", "try", "except",
                "with ", "raise ", "print", "var ", "let ", "const ", "function", "public ", "private ", "#include")
_LETTER = re.compile(r"[^\W\d_]")
_TRANSLATION = re.compile(
    r"(?i)translat|\blanguages?\b|\b(?:in|into|to|using) (?:english|chinese|mandarin|cantonese|french|german|spanish|japanese"
    r"|korean|italian|portuguese|russian|arabic|hindi|dutch)\b|\b(?:english|chinese|french|german|spanish|japanese|korean"
    r"|italian|portuguese|russian|arabic|hindi|dutch|lao|thai|vietnamese) (?:sentence|text|word|phrase|version|translation)"
)
_TRANSLATION_ZH = re.compile(r"翻译|译成|译为|译文|语言|英文|英语|中文|汉语|日语|日文|法语|德语|韩语|俄语|西班牙语|老挝语|印地语|拼音")
_QUOTED = re.compile(r"[\"“”'‘’「」『』《》]([^\"“”‘’「」『』《》\n]{2,200})[\"“”'‘’「」『』《》]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


def candidates(langs: tuple[str, ...]) -> tuple[str, ...]:
    found = list(langs)
    for code in langs:
        found += [c for c in CONFUSABLE.get(code, ()) if c not in found]
    return tuple(found)


def _code_line(line: str) -> bool:
    return bool(_CODE_LINE_START.match(line) or _CODE_LINE_ANYWHERE.search(line))


def _mostly_words(line: str) -> bool:
    tokens = line.split()
    if sum(map(str.isalpha, tokens)) * 2 >= len(tokens):
        return True  # a token of letters alone is one _WORDLIKE finds, and prose is mostly those
    return len(_WORDLIKE.findall(line)) * 2 >= len(tokens)


def natural_text(text: str, limit: int = 0) -> str:
    """The text less code, equations, table rows, URLs and e-mail addresses (line by line); with a limit,
    only about that many characters of it (what a detector reads)."""
    if "\u00a0" in text:
        text = text.replace("\u00a0", " ")  # no-break spaces (code pasted from the web)
    if "```" in text:
        text = _FENCE.sub("\n", text)
    if "`" in text:
        text = _INLINE_CODE.sub(" ", text)
    if "http" in text or "www." in text or "@" in text:
        text = _URL.sub(" ", text)
    if "(" in text and _CALL_OPENS.search(text):
        text = _CALL.sub(" ", text)
    if not _SPECIAL.search(text) and "    " not in text and "\t" not in text and not _DIGIT.search(text):
        return text[:limit] if limit else text  # plain prose: nothing to take out
    keep, size = [], 0
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if "=" in line and not _HAN.search(line) and len(_LETTER.findall(line)) < 40:
            continue  # an equation with a few words around it ("Let H = Hezekiah's age")
        if line.startswith(("    ", "\t")) or stripped.startswith(_CODE_STARTS) or (
                _SPECIAL.search(line) and (_TABLE_LINE.match(line) or _code_line(line))):
            continue
        if not _HAN.search(line) and not _mostly_words(line):
            continue  # data: a FEN position, identifiers, :type annotations, number lists
        keep.append(line)
        size += len(line)
        if limit and size >= limit:
            break
    return "\n".join(keep)


def _allowed(ranked: list[tuple[str, float]], allowed: tuple[str, ...]) -> bool:
    return any(code in allowed and p >= PLAUSIBLE for code, p in ranked)


_TRANSLATION_KEYS = ("translat", "language", "english", "chinese", "mandarin", "cantonese", "french", "german", "spanish",
                     "japanese", "korean", "italian", "portuguese", "russian", "arabic", "hindi", "dutch", "lao", "thai",
                     "vietnamese")


def _task_language(t: Turn) -> str | None:
    """For a task about languages: the language its own keywords are in (en / zh); None for other tasks."""
    lower = t.instruction.lower()
    if any(k in lower for k in _TRANSLATION_KEYS) and _TRANSLATION.search(t.instruction):
        return "en"
    if not t.instruction.isascii() and _TRANSLATION_ZH.search(t.instruction):
        return "zh"
    return None


def _quotes_other_script(prompt: str) -> str | None:
    """'latin' when a CJK prompt quotes Latin-script material, 'cjk' for the reverse, else None."""
    han = bool(_HAN.search(prompt))
    for m in _QUOTED.finditer(prompt):
        inner = m.group(1)
        if han and not _HAN.search(inner) and _LETTER.search(inner):
            return "latin"
        if not han and _HAN.search(inner):
            return "cjk"
    if not han and _HAN.search(prompt):
        return "cjk"  # "What does 你好 mean?" with no quotes
    return None


def _share_allowed(text: str, allowed: tuple[str, ...], det: Detector) -> float:
    decided = ok = 0
    for line in text.splitlines():
        ranked = det.ranked(line)
        if ranked:
            decided += len(line)
            ok += len(line) if _allowed(ranked, allowed) else 0
    return ok / decided if decided else 1.0


def _prompt_not_allowed(instruction: str, ranked: list, allowed: tuple[str, ...], det: Detector) -> str | None:
    if not ranked or _allowed(ranked, allowed):
        return None
    text = natural_text(instruction)
    paragraphs = [p for p in re.split(r"\n\s*\n|\n(?=\S)", text) if p.strip()]
    if len(paragraphs) > 1 and any(_allowed(det.ranked(p), allowed) for p in paragraphs):
        return None  # a passage or example in another language, with the task in an allowed one
    return ranked[0][0]


def _output_not_allowed(text: str, ranked: list, allowed: tuple[str, ...], det: Detector) -> str | None:
    if not ranked or _allowed(ranked, allowed):
        return None
    if "\n" in text and _share_allowed(text, allowed, det) >= MIN_ALLOWED_SHARE:
        return None
    return ranked[0][0]


def _script_of(lang: str) -> str:
    return "cjk" if lang in CJK_LANGS else "latin"


def language(t: Turn, cfg: FilterConfig) -> str | None:
    if not t.output.strip():
        return None
    task_lang = _task_language(t)
    if task_lang and (not cfg.lang or task_lang in cfg.lang):
        return None  # translation and language tasks: the instruction's own words decide
    det = get_detector(cfg.detector, candidates(cfg.lang))
    prompt = natural_text(t.instruction, MAX_CHARS)
    ranked_in = det.ranked(prompt)
    if cfg.lang:
        found = _prompt_not_allowed(t.instruction, ranked_in, cfg.lang, det)
        if found:
            return f"instruction language not allowed ({found})"
    if task_lang:
        return None
    output = natural_text(t.output, MAX_CHARS)
    ranked_out = det.ranked(output)
    if cfg.lang:
        found = _output_not_allowed(output, ranked_out, cfg.lang, det)
        if found and _quotes_other_script(t.prompt) != _script_of(found):
            return f"output language not allowed ({found})"
    return _mismatch(t, ranked_in, ranked_out, output)


def _cjk_share(text: str) -> float:
    han, kana, hangul, words = script_counts(text)
    cjk = han + kana + hangul
    return cjk / (cjk + words) if cjk + words else 0.0


def _mismatch(t: Turn, ranked_in: list, ranked_out: list, output: str) -> str | None:
    if not ranked_in or not ranked_out:
        return None
    lang_in, lang_out = ranked_in[0][0], ranked_out[0][0]
    if lang_in == lang_out or _allowed(ranked_out, (lang_in,)) or _allowed(ranked_in, (lang_out,)):
        return None
    if _quotes_other_script(t.prompt) == _script_of(lang_out):
        return None  # a question about words of another script is answered in it
    if lang_in in CJK_LANGS and _cjk_share(output) >= 0.2:
        return None  # a Chinese answer full of English names or terms is still a Chinese answer
    if lang_in in CJK_LANGS and lang_out in CJK_LANGS:
        return None  # zh/ja confusions on short CJK text are the detector's, not the data's
    return f"language mismatch (instruction {lang_in}, output {lang_out})"
