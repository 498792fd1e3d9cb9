"""What near-dedup reads in a record's texts, beyond text.py's tokens: numbers however written, tool calls
written in text, content words, and the part of a text that is asked or answered (its focus).

    MESSAGE_BREAK                 joins the messages of one compared part ("\\n\\x1e"); display() shows it as "\\n"
    tokens(texts) -> Tokens       text.token_ids' tokens with number words read as numbers ("three", "三" -> 3),
                                  plus each record's content words (not among its language's most frequent
                                  words, read up to a swap of letters: "recieve" is "receive")
    focus(text, passages) -> str  an answer part's last message (the final answer); a prompt without the
                                  long passages it quotes (a paragraph of >= PASSAGE_TOKENS tokens holding
                                  >= PASSAGE_SHARE of them)
    numbers_as_digits(texts)      number words written as digits (before tokens and identifiers are read)
    identifiers_batch(texts)      text.identifiers plus number words as numbers and tool calls written in
                                  text (`Calculator(2*3)`, `python('[2, 3]')`; tool_calls, tool_argument: code
                                  as written up to case and spacing, a query in words by its content words)

Why content words: MinHash over words and word pairs scores a one-word change in a ten-word record 0.73,
whether the word is "the" or "grass" -> "hay". Comparing the content words alone as well (here a changed one
weighs a whole word of five or six) keeps such records apart, while a typo (letters swapped), a dropped
article or an added "please" changes no content word. The frequent-word lists come from wordfreq
(English top 150 and "please", Chinese single characters among the top 120), numbers left out.

Number words: English zero..billion and tens-units ("twenty-one"), Chinese numerals before a classifier
or after 第 ("三个", "第十五"). "one" and a lone "一" are not counted as identifiers: "which one", "一起"
are no numbers (as tokens they still read as 1, which only makes "one" and "1" the same word).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Sequence

import numpy as np

from .text import TOKEN_PATTERN, identifiers_batch as literal_identifiers, raw_tokens

MESSAGE_BREAK = "\n\x1e"
PASSAGE_TOKENS = 40
PASSAGE_SHARE = 0.4
POLITENESS = ("please", "kindly", "请")  # asking nicely asks nothing else (ranked ~200 by wordfreq)
SKELETON_LETTERS = 5  # words this long are read up to the order of their letters (a swap typo)
_TOKEN = re.compile(TOKEN_PATTERN.replace(r"\p{Han}\p{Hiragana}\p{Katakana}", r"\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff"))

_EN_UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
             "sixteen seventeen eighteen nineteen").split()
_EN_TENS = {w: 10 * k for k, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if k > 1}
_EN_LARGE = {"hundred": 100, "thousand": 1000, "million": 1_000_000, "billion": 1_000_000_000}
EN_NUMBERS: dict[str, int] = {**{w: k for k, w in enumerate(_EN_UNITS)}, **_EN_TENS, **_EN_LARGE}
ZH_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
ZH_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10_000}
ZH_CLASSIFIERS = "个条种点步句首篇天年次本位名项件段章节页行岁只张道题份组周倍层部场"
_ZH_NUMERAL = "[零〇一二两三四五六七八九十百千万]"
# (polars regex) an English number word (tens-units joined), or a Chinese numeral before a classifier / after 第
# (ASCII word boundaries: English number words are ASCII, and Unicode ones make polars 20x slower)
NUMBER_WORDS = (r"(?i)(?-u:\b)(?:(?:" + "|".join(_EN_TENS) + r")(?:[- ](?:" + "|".join(_EN_UNITS[1:10]) + r"))?|"
                + "|".join(w for w in [*_EN_UNITS, *_EN_LARGE] if w != "one") + r")(?-u:\b)"
                + rf"|第{_ZH_NUMERAL}+|{_ZH_NUMERAL}+[{ZH_CLASSIFIERS}]")
# (the lookahead lets the engine skip most positions at once: 3x faster)
_NUMBER_WORDS = re.compile(r"(?=[tfsenzhbm第零〇一二两三四五六七八九十百千万])(?:"
                           + NUMBER_WORDS.removeprefix("(?i)").replace("(?-u:\\b)", r"\b") + ")", re.IGNORECASE | re.ASCII)
# a call written in text: a name glued to parentheses, one level of nested parentheses inside
TOOL_CALL = re.compile(r"(?<![\w.])([A-Za-z_][\w.]*)\(((?:[^()\n]|\([^()\n]*\)){0,200})\)")
TOOL_CALL_HINT = r"[\p{L}\p{N}_]\("  # (polars regex) worth a look


def display(text: str) -> str:
    return text.replace(MESSAGE_BREAK, "\n")


def zh_number(numeral: str) -> int:
    """十五 -> 15, 二十 -> 20, 一百零五 -> 105, 两千 -> 2000."""
    total, section, digit = 0, 0, None
    for ch in numeral:
        if ch in ZH_DIGITS:
            digit = ZH_DIGITS[ch]
        elif ch == "万":
            total += (section + (digit or 0)) * 10_000
            section, digit = 0, None
        else:
            section += (1 if digit is None else digit) * ZH_UNITS[ch]
            digit = None
    return total + section + (digit or 0)


def number_value(word: str) -> int | None:
    """The number an English number word or a Chinese numeral (with its classifier or 第) stands for."""
    word = word.strip().casefold()
    if word[:1] == "第":
        word = word[1:]
    elif word[-1:] in ZH_CLASSIFIERS:
        word = word[:-1]
    if word in EN_NUMBERS:
        return EN_NUMBERS[word]
    tens, _, unit = word.replace(" ", "-").partition("-")
    if tens in _EN_TENS and unit in EN_NUMBERS:
        return _EN_TENS[tens] + EN_NUMBERS[unit]
    if word and all(ch in ZH_DIGITS or ch in ZH_UNITS for ch in word):
        return None if word == "一" else zh_number(word)
    return None


_SPACE = re.compile(r"\s+")


# an argument with one of these (a sign at a digit, a command-line flag) is code or a formula, compared as written up
# to case and spacing; any other argument is a query in words, compared on its content words in order
_CODE_ARGUMENT = re.compile(r"[()\[\]{}=*/+<>%^&|;\\$`\"#@~]|\d\s*[-:]|[-:]\s*\d|(?:^|\s)-+\w|://")
_INNER_QUOTE = re.compile(r"[\"“”]|(?<![^\W\d_])'|'(?![^\W\d_])")  # a quote, not an apostrophe (what's)
_QUOTED_ARGUMENT = re.compile(r"""\s*(['"‘“])(.*)(['"’”])\s*""", re.DOTALL)


def tool_argument(args: str) -> str:
    """How a call's argument is compared. Code or a formula (`2*3`, `len("hi")`, a URL, `df -h`): as written,
    up to case and spacing. A query in words (`'What is the weather in Paris?'`): its content words in order,
    number words as digits, so `weather('What is the current weather in Paris?')` is
    `weather('current weather in Paris')` while `weather('weather in Lyon')` is another call."""
    quoted = _QUOTED_ARGUMENT.fullmatch(args)
    inner = quoted.group(2) if quoted and "'\"".find(quoted.group(1)) == "'\"".find(quoted.group(3)) else args
    if _CODE_ARGUMENT.search(inner) or _INNER_QUOTE.search(inner):  # (several quoted arguments: code)
        return _SPACE.sub("", args).casefold()
    words = [canonical(t) for t in _TOKEN.findall(inner)]
    content = [w for w in words if w not in function_words()]
    return "q:" + " ".join(content or words)


def tool_calls(text: str) -> list[str]:
    """The calls written in a text, as compared: `c:name(argument as tool_argument reads it)`."""
    return [f"c:{name.casefold()}({tool_argument(args)})" for name, args in TOOL_CALL.findall(text)]


def _digits(match: re.Match) -> str:
    return _as_digits(match.group())


@lru_cache(maxsize=4096)
def _as_digits(word: str) -> str:
    value = number_value(word)
    if value is None:
        return word
    return ("第" if word[0] == "第" else "") + str(value) + (word[-1] if word[-1] in ZH_CLASSIFIERS else "")


def numbers_as_digits(texts: Sequence[str]) -> list[str]:
    """The texts with their number words written as digits ("twenty-one" -> "21", "三个" -> "3个")."""
    import polars as pl

    if not texts:
        return []
    has_words = pl.Series(list(texts), dtype=pl.String).str.contains(NUMBER_WORDS).fill_null(False).to_list()
    return [_NUMBER_WORDS.sub(_digits, t) if w else t for t, w in zip(texts, has_words)]


def identifiers_batch(texts: Sequence[str], digits: bool = False) -> list[str]:
    """text.identifiers_batch of the texts with number words written as digits (`digits`: they are already),
    then the tool calls written in text (sorted, after a NUL)."""
    import polars as pl

    if not texts:
        return []
    as_digits = list(texts) if digits else numbers_as_digits(texts)
    has_calls = np.flatnonzero(pl.Series(as_digits, dtype=pl.String).str.contains(TOOL_CALL_HINT).fill_null(False)
                               .to_numpy()).tolist()
    calls: list[list[str]] = [[]] * len(as_digits)
    plain = as_digits if not has_calls else list(as_digits)
    for k in has_calls:
        calls[k] = tool_calls(as_digits[k])
        if calls[k]:  # a call's argument is read by tool_calls alone (a query's wording is no literal to match)
            plain[k] = TOOL_CALL.sub(" ", as_digits[k])
    found = literal_identifiers(plain)
    return [f + "\x00" + " ".join(sorted(c)) if c else f for f, c in zip(found, calls)]


# not content words: wordfreq's top_n_list("en", 150) and the single characters of top_n_list("zh", 120),
# numbers left out (written out here: importing wordfreq costs 0.5-1 s a process; a test checks they agree)
FREQUENT_WORDS = """
    the to and of a in i is for that you it on with this was be as are have at he not by but from my or we an
    your all so his they me if can will just like about up out what has when more do no were who had it's
    their there her which time get been would she new people how don't some also them now other i'm its our
    than good only after first him into know see make over think any then could back these us want because go
    well said way most much very where even should may here need really did right work year years being day
    too going before off why made still take got many never those life say world down great through you're
    last s that's while best such love man home long 的 是 在 了 我 和 有 不 人 也 你 为 他 这 中 与 年 对 就 都 上 说 吗 会 到 要 来 月 被
    还 而 个 后 等 但 于 日 将 并 能 很 让 从 以 好 大 她 着 多 时 给 把 去 看 又 或 下 之 过 新 里 做 及 地 由 没 用 更 得 所 想 最 它 那 可 吧 其 该 只 向
""".split()


@cache
def function_words() -> frozenset[str]:
    return frozenset(FREQUENT_WORDS + list(POLITENESS))


def frequent_words_from_wordfreq() -> list[str]:
    """FREQUENT_WORDS as wordfreq gives them today."""
    import wordfreq

    en = wordfreq.top_n_list("en", 150)
    zh = [w for w in wordfreq.top_n_list("zh", 120) if len(w) == 1]
    return [w for w in en + zh if not w.isdigit() and w not in EN_NUMBERS and w not in ZH_DIGITS and w not in ZH_UNITS]


def canonical(token: str) -> str:
    """A token as compared: NFKC, case-folded, a number word as its digits."""
    token = unicodedata.normalize("NFKC", token).casefold()
    if token in EN_NUMBERS:
        return str(EN_NUMBERS[token])
    if token in ZH_DIGITS:
        return str(ZH_DIGITS[token])
    if token in ZH_UNITS:
        return str(ZH_UNITS[token])
    return token


def _hash64(texts: list[str]) -> np.ndarray:
    out = np.empty(len(texts), dtype=np.uint64)
    for i, t in enumerate(texts):
        out[i] = int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little")
    return out


@dataclass(slots=True)
class Tokens:
    ids: np.ndarray  # uint64[T] every token's id
    lens: np.ndarray  # int64[n]
    content: np.ndarray  # bool[T]: the token is a content word
    polite: np.ndarray  # bool[T]: the token only asks nicely (POLITENESS)
    skeleton: np.ndarray  # uint64[T] word id up to the order of a long word's letters (a swap typo)


def tokens(texts: Sequence[str]) -> Tokens:
    import polars as pl

    if not texts:
        return Tokens(np.empty(0, np.uint64), np.empty(0, np.int64), np.empty(0, bool), np.empty(0, bool),
                      np.empty(0, np.uint64))
    flat, lens = raw_tokens(texts)  # each distinct token is normalised once below
    if len(flat) == 0:
        return Tokens(np.empty(0, np.uint64), lens, np.empty(0, bool), np.empty(0, bool), np.empty(0, np.uint64))
    uniq = flat.unique(maintain_order=True)
    canon = [canonical(t) for t in uniq.to_list()]
    stop = function_words()
    content = [c not in stop for c in canon]
    skeleton = ["\x02" + ("".join(sorted(c)) if len(c) >= SKELETON_LETTERS and c.isalpha() else c) for c in canon]
    at = flat.cast(pl.Enum(uniq)).to_physical().to_numpy()  # each token's place in uniq (4x replace_strict)
    polite = np.asarray([c in POLITENESS for c in canon], dtype=bool)
    return Tokens(_hash64(canon)[at], lens, np.asarray(content, dtype=bool)[at], polite[at], _hash64(skeleton)[at])


def focused(texts: Sequence[str], passages: bool = True) -> list[tuple[int, str]]:
    """(position, focus) of the texts whose focus is not the whole text (see focus); the others are looked
    at in one vectorised pass: an answer without a second message, a prompt too short or of one line."""
    import polars as pl

    series = pl.Series(list(texts), dtype=pl.String)
    if passages:
        maybe = (series.str.len_chars() >= PASSAGE_TOKENS * 2) & series.str.contains("\n", literal=True)
    else:
        maybe = series.str.contains(MESSAGE_BREAK, literal=True)
    out = []
    for k in np.flatnonzero(maybe.fill_null(False).to_numpy()).tolist():
        f = focus(texts[k], passages)
        if len(f) != len(texts[k]):
            out.append((k, f))
    return out


def focus(text: str, passages: bool = True) -> str:
    """What a part asks or answers: without `passages` (an answer part), its last message (see MESSAGE_BREAK);
    with them (a prompt), its lines but the long passages (a line of >= PASSAGE_TOKENS tokens holding
    >= PASSAGE_SHARE of them: a reading passage, a document, a tool description), when other lines remain."""
    if not passages:
        return text.rsplit(MESSAGE_BREAK, 1)[-1]
    if len(text) < PASSAGE_TOKENS * 2:
        return text
    lines = text.split("\n")
    if len(lines) < 2:
        return text
    counts = [len(_TOKEN.findall(line)) for line in lines]
    total = sum(counts)
    rest = [line for line, c in zip(lines, counts) if not (c >= PASSAGE_TOKENS and c >= PASSAGE_SHARE * total)]
    if len(rest) == len(lines) or not any(_TOKEN.search(line) for line in rest):
        return text
    return "\n".join(rest)
