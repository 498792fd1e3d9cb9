"""Measures of junk: what no answer on any data should look like.

    loop_shares(text) -> (duplicate n-gram share, duplicate line share)
        Gopher / data-juicer style ratios: the share of tokens that repeat an n-gram already said
        (LOOP_N tokens; a token is a word, a CJK character or one symbol such as an emoji), and the
        share of characters in lines that repeat an earlier line. A loop of any unit (one token,
        one line, one sentence) drives them up; parallel steps, lists and tables differ in a word
        or a number and stay low. Code blocks and table rows are left out.
    salad_share(text) -> (share, counted)
        The share of an answer's tokens that are not words of its language: wordfreq's word lists
        (English first, then the Latin-script language that fits best), Han characters against the
        characters of wordfreq's Chinese list (its own Chinese tokenizer needs jieba: a character
        check needs no segmenter). Code (fenced, inline, lines that look like code), numbers, URLs,
        e-mail addresses, names (capitalised or all-caps words) and other scripts count neither
        way; stray brackets count against the answer. `counted` = the tokens judged.
    placeholder(text) -> str | None       an unfilled template slot: {{name}}, [INSERT ...]
    mojibake(text) -> bool                ftfy's badness measure says the text was decoded wrongly
"""

from __future__ import annotations

import re
from functools import lru_cache

from .langid import HAN_CLASS, HAN_RANGES, count_han

LOOP_N = 16  # tokens in the n-grams a loop repeats (long enough that parallel list items, which differ in a word, do not repeat one)
LOOP_MIN_TOKENS = 16  # shorter answers have too little to measure
LOOP_NGRAM_SHARE = 0.6  # most of the answer re-says what it already said: a loop (a sentence
# repeated in each item of a real list reaches about 0.5)
LOOP_LINE_SHARE = 0.5  # half the answer's characters are lines said before
LOOP_LINE_MIN_REPEATS = 3  # ... with one line said at least this often
SALAD_SHARE = 0.5  # half the judged tokens are not words
SALAD_MIN_TOKENS = 8

_LOOP_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W_\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[^\w\s.,;:!?'\"()\[\]{}\-、，。：；！？]")
_FENCE = re.compile(r"```.*?(?:```|$)", re.S)
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$|^\s*[-=+|: ]{3,}$")


def _without_code(text: str) -> str:
    return _FENCE.sub("\n", text) if "```" in text else text


def dup_ngram_share(tokens: list[str], n: int = LOOP_N) -> float:
    """Share of tokens inside an n-gram that occurred earlier in the text (1 - period / length for a loop)."""
    if len(tokens) < n + 1:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    covered_until = -1
    covered = 0
    for i, gram in enumerate(zip(*(tokens[k:] for k in range(n)))):
        if gram in seen:
            end = i + n - 1
            covered += end - max(covered_until, i - 1)
            covered_until = end
        else:
            seen.add(gram)
    return covered / len(tokens)


_ENUMERATOR = re.compile(r"^\s*(?:[-*+•>#]+|\(?\d+[.)、:]|\(?[a-zA-Z][.)]|step \d+[.:]?|第[一二三四五六七八九十\d]+[步章节条]?[、.:：]?)\s*", re.I)


def dup_line_share(text: str) -> tuple[float, int]:
    """(share of characters in lines said before, the most copies of one line); list markers and numbers
    in front of a line do not make it another line; table rows are left out."""
    counts: dict[str, int] = {}
    total = dup = 0
    for line in text.splitlines():
        if _TABLE_ROW.match(line):
            continue
        key = " ".join(_ENUMERATOR.sub("", line).split()).casefold()
        if not key or not any(ch.isalnum() for ch in key):
            continue
        total += len(key)
        seen = counts.get(key, 0)
        if seen:
            dup += len(key)
        counts[key] = seen + 1
    return (dup / total if total else 0.0), max(counts.values(), default=0)


_URL = re.compile(r"https?://\S+|www\.\S+")


def loop_tokens(text: str) -> list[str]:
    text = _without_code(text)
    if "|" in text:
        text = "\n".join(ln for ln in text.splitlines() if not _TABLE_ROW.match(ln))
    if "http" in text or "www." in text:
        text = _URL.sub(" ", text)
    return _LOOP_TOKEN.findall(text.casefold())


def loop_shares(text: str, n: int = LOOP_N) -> tuple[float, float, int, int]:
    """(n-gram share, line share, most copies of a line, tokens) of the text less its code blocks."""
    tokens = loop_tokens(text)
    lines, top = dup_line_share(_without_code(text))
    return dup_ngram_share(tokens, n), lines, top, len(tokens)


_LINE_START = re.compile(r"(?m)^[ \t]*(?:[-*+•>#]+|\(?\d+[.)、:]|step \d+[.:]?)?[ \t]*", re.I)


def _may_loop(text: str, tokens: list[str]) -> bool:
    """A cheap necessary condition: a text whose n-gram share reaches LOOP_NGRAM_SHARE repeats earlier tokens at
    that share of its positions, so it has at most (1 - share) * length distinct tokens; a line loop needs one line
    said LOOP_LINE_MIN_REPEATS times (list markers and numbers in front aside)."""
    if len(tokens) >= LOOP_MIN_TOKENS and len(set(tokens)) <= (1 - LOOP_NGRAM_SHARE) * len(tokens):
        return True
    if text.count("\n") < LOOP_LINE_MIN_REPEATS - 1:
        return False
    lines = [ln for ln in _LINE_START.sub("", text).casefold().split("\n") if ln.strip()]
    return len(lines) - len(set(lines)) >= LOOP_LINE_MIN_REPEATS - 1


# the task asks for the same words a number of times ("repeat this sentence 5 times", "把这句话重复3遍"): that many
# copies are the answer. "Repeat after me." asks for one; "tired of repeating ourselves" for none.
_NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
                 "twenty": 20, "fifty": 50, "hundred": 100, "twice": 2, "thrice": 3, "两": 2, "二": 2, "三": 3,
                 "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10, "百": 100}
_REPEAT_COUNT = re.compile(r"(?i)\b(\d+|two|three|four|five|six|seven|eight|nine|ten|twenty|fifty|hundred) times\b"
                           r"|\b(twice|thrice)\b|(\d+|[两二三四五六七八九十百]+)\s*[遍次]")


def asked_copies(prompt: str) -> int:
    """How many copies of something the prompt asks for (0: it asks for none)."""
    best = 0
    for m in _REPEAT_COUNT.finditer(prompt):
        word = next(g for g in m.groups() if g)
        best = max(best, int(word) if word.isdigit() else _NUMBER_WORDS.get(word.lower(), _NUMBER_WORDS.get(word[-1], 0)))
    return best


def is_loop(text: str, prompt: str = "") -> str | None:
    if len(text) < LOOP_MIN_TOKENS and text.count("\n") < LOOP_LINE_MIN_REPEATS - 1:
        return None  # too short for either measure
    text = _without_code(text)
    tokens = loop_tokens(text)
    if not _may_loop(text, tokens):
        return None
    ngrams, n = dup_ngram_share(tokens), len(tokens)
    lines, top = dup_line_share(text)
    if n >= LOOP_MIN_TOKENS and ngrams >= LOOP_NGRAM_SHARE:
        found = f"{ngrams:.0%} of the answer repeats {LOOP_N}-token stretches it already said"
    elif lines >= LOOP_LINE_SHARE and top >= LOOP_LINE_MIN_REPEATS:
        found = f"{lines:.0%} of the answer is lines said before (one line {top} times)"
    else:
        return None
    copies = max(top, round(1 / (1 - ngrams)) if ngrams < 1 else n)
    if prompt and copies <= 2 * asked_copies(prompt):
        return None  # the copies asked for
    return found


# -- token salad --------------------------------------------------------------------------------------

# Latin-script languages wordfreq lists, English first (the usual case costs one look-up per word)
LATIN_LANGS = ("en", "fr", "de", "es", "pt", "it", "nl", "ca", "sv", "nb", "da", "fi", "pl", "cs", "sk", "sl", "ro",
               "hu", "tr", "id", "ms", "vi", "lt", "lv", "sh", "is", "fil")
_LARGE = {"en", "fr", "de", "es", "pt", "it", "nl", "ca", "sv", "nb", "fi", "pl", "cs"}  # wordfreq's 'large' lists
_HAN = re.compile(f"[{HAN_CLASS}]")
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_MATH = re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$|\\\[.*?\\\]|\\\(.*?\\\)", re.S)
_URLISH = re.compile(r"(?:https?://|www\.)[^\s'\"<>()\[\]{}]+|[^\s'\"<>()\[\]{}]+@[\w-]+\.\w+")
_EDGE = "\"'“”‘’«»()[]{}<>.,;:!?*~`|…—–-"
_LOWER_WORD = re.compile(r"[a-zà-öø-ÿā-ž]+(?:['’][a-zà-öø-ÿ]+)*")
# a line that looks like code: how it starts (matched at its start), or what it holds anywhere (two patterns:
# a pattern whose branches all start with a known character lets the regex engine skip to those characters)
_CODE_LINE_START = re.compile(
    r"^\s*(?:def |class |import |from \S+ import |return\b|#include|function\b|var |let |const |public |private |static )"
    r"|^\s*[\w.\[\]\"']+\s*[-+*/]?=\s*\S")
_CODE_LINE_ANYWHERE = re.compile(r"[;{]\s*$|\w\([^()]*\)\s*[;:{]?\s*$|=>|->|::|==|!=|&&|\|\|")


def _code_line(line: str) -> bool:
    return bool(_CODE_LINE_START.match(line) or _CODE_LINE_ANYWHERE.search(line))


MIN_FREQUENCY = 10 ** (1.5 - 9)  # zipf 1.5: rarer entries of the large lists are mostly fragments ("ingr", "ancell")


# a character every line _code_line takes for code contains, or how such a line starts
_CODE_CHAR = re.compile(r"[;{=:&|(>]")  # a regex scan, not a set: it makes no string per character
_CODE_START = re.compile(r"(?m)^(?: {4}|\t|\s*(?:def|class|import|from|return|#include|function|var|let|const|public"
                         r"|private|static)\b)")


_KEYWORD_STARTS = ("def", "class", "import", "from", "return", "#include", "function", "var", "let", "const", "public",
                   "private", "static", "    ", "\t")


def _may_hold_code(text: str) -> bool:
    if _CODE_CHAR.search(text):
        return True
    if "\n" not in text:  # one line: only its start can make it code
        return text.startswith(_KEYWORD_STARTS) or text.lstrip().startswith(_KEYWORD_STARTS)
    return bool(_CODE_START.search(text))


@lru_cache(maxsize=None)
def _words(lang: str) -> frozenset[str]:
    from wordfreq import get_frequency_dict

    freqs = get_frequency_dict(lang, wordlist="large" if lang in _LARGE else "small")
    return frozenset(w for w, f in freqs.items() if f >= MIN_FREQUENCY)


@lru_cache(maxsize=1)
def _han_chars() -> frozenset[str]:
    return frozenset(ch for word in _words("zh") for ch in word if _HAN.match(ch))


@lru_cache(maxsize=1)
def _unknown_han() -> re.Pattern:
    """The Han characters that are in no word of wordfreq's Chinese list, as one character class: an answer
    holds few of them, so counting them costs little (a string per Han character would cost more)."""
    known = _han_chars()
    codes = [c for lo, hi in HAN_RANGES for c in range(lo, hi + 1) if chr(c) not in known]
    runs: list[list[int]] = []
    for c in codes:
        if runs and runs[-1][1] == c - 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return re.compile("[" + "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in runs) + "]")


def _balanced(line: str) -> bool:
    return all(line.count(a) == line.count(b) for a, b in ("()", "[]", "{}"))


def _prose(text: str) -> str:
    """The text less code and math: fenced blocks, inline code, $...$, URLs, lines that look like code (their
    brackets balanced: stray brackets are what salad is made of)."""
    text = _without_code(text)
    if "`" in text:
        text = _INLINE_CODE.sub(" ", text)
    if "$" in text or "\\" in text:
        text = _MATH.sub(" ", text)
    if "/" in text or "@" in text:
        text = _URLISH.sub(" ", text)
    if not _may_hold_code(text):
        return text  # no line of it can look like code
    return "\n".join(ln for ln in text.splitlines()
                     if not (ln.startswith(("    ", "\t")) or (_code_line(ln) and _balanced(ln))))


_BRACKET = re.compile(r"[()\[\]{}]")


def unmatched_brackets(text: str) -> int:
    if not _BRACKET.search(text):
        return 0
    return sum(abs(text.count(a) - text.count(b)) for a, b in ("()", "[]", "{}"))


_EDGE_CLASS = "".join("\\" + ch for ch in _EDGE)
# a whitespace-separated token that is a lower-case word once the punctuation around it is stripped
_LOWER_TOKEN = re.compile(rf"(?<!\S)[{_EDGE_CLASS}]*({_LOWER_WORD.pattern})[{_EDGE_CLASS}]*(?!\S)")


def _lower_words(prose: str) -> list[str]:
    """The plain lower-case words of the prose: names, acronyms, identifiers (camelCase, snake_case, dotted,
    #hashtags, \\commands), numbers and tokens with digits or code symbols inside count neither way."""
    words = _LOWER_TOKEN.findall(prose)
    return [w.replace("’", "'") for w in words] if "’" in prose else words


def _unknown(words: list[str], vocabulary: frozenset[str]) -> int:
    return len(words) - sum(map(vocabulary.__contains__, words))


def salad_share(text: str) -> tuple[float, int]:
    """(share of judged tokens that are not words of the answer's language, tokens judged)."""
    prose = _prose(text)
    words = _lower_words(prose)
    stray = unmatched_brackets(prose)
    han = count_han(prose) if not prose.isascii() else 0
    han_unknown = len(_unknown_han().findall(prose)) if han else 0
    counted = len(words) + stray + han
    if counted < SALAD_MIN_TOKENS:
        return 0.0, counted
    best = 1.0
    for lang in LATIN_LANGS if words else ("en",):
        share = (_unknown(words, _words(lang)) + stray + han_unknown) / counted
        best = min(best, share)
        if best < SALAD_SHARE:
            break  # words of this language (English first): no need to look further
    return best, counted


def is_salad(text: str) -> str | None:
    share, counted = salad_share(text)
    if counted >= SALAD_MIN_TOKENS and share >= SALAD_SHARE:
        return f"token salad ({share:.0%} of {counted} tokens are not words)"
    return None


# -- placeholders, mojibake, template continuation, echo -------------------------------------------

# a template engine's slot, or a capitalised INSERT slot; "[Recipient's Name]" in a letter written for anyone is an answer
_PLACEHOLDER = re.compile(r"\{\{\s*[A-Za-z_][\w .-]{0,40}\}\}|\[\s*INSERT\b[^\]\n]{0,80}\]|<\s*INSERT\b[^>\n]{0,80}>")
_TEMPLATE_WORDS = re.compile(r"(?i)\{\{|template|jinja|handlebars|mustache|vue|angular|django|liquid|placeholder|insert")


def placeholder(text: str, prompt: str) -> str | None:
    if "{{" not in text and "INSERT" not in text:
        return None
    if _TEMPLATE_WORDS.search(prompt):
        return None  # templates were asked for: slots are the answer
    m = _PLACEHOLDER.search(_INLINE_CODE.sub(" ", _without_code(text)))
    return m.group(0) if m else None


_MOJIBAKE_HINT = re.compile(r"[\u00c2-\u00c5\u00d0-\u00d3\u00e2\u00e3\u00e5\u00e6\u00ef][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]")


def mojibake(text: str) -> bool:
    if text.isascii() or not _MOJIBAKE_HINT.search(text):
        return False
    from ftfy.badness import is_bad

    return is_bad(text)
