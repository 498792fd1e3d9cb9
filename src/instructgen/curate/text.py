"""Text normalisation and tokenisation to integer ids, over whole batches.

    normalize_batch(texts: Sequence[str]) -> list[str]
        NFKC, lower case, every run of punctuation/symbols/whitespace -> one space, stripped.
        Two texts are exact duplicates when their normalised forms are equal.
    token_ids(texts: Sequence[str]) -> (ids: uint64[T], lens: int64[n])
        Tokens of NFKC-normalised, lower-cased texts: each Han/kana character is a token, every
        other run of letters/digits (Latin, Cyrillic, Hangul words, ...) is a token; punctuation and
        spacing are not tokens. ids are stable 64-bit hashes of the token text (blake2b), so they
        do not depend on the batch or the process.
    sequence_keys(ids, lens) -> uint64[n]
        Exact-duplicate key: a polynomial hash of the token sequence, i.e. of the text up to NFKC,
        case, whitespace and punctuation.
    char_ids(normed) -> (ids: uint64[T], lens: int64[n])
        Every character (spaces included) as a token: its code point, spread by a 64-bit mixer.

    identifiers(text) -> str, identifiers_batch(texts) -> list[str]
        What a text names literally, which near duplicates must share: its numbers (with the sign
        written before them; not digits inside a word like "mp3"), URLs and quoted literals
        ('ls -lt', "good morning", 《红楼梦》), sorted, as one string ('' when there are none).
    compact_diff(a, b, context=4) -> str
        What changes from a to b, word by word (each Han/kana character a word): "… kept words
        [-removed-]{+added+} kept words …"; "" when the texts are identical. For review files.

The work happens in C/Rust over the batch (one NFKC call on the joined batch, polars regexes),
never token by token in Python, except hashing each *distinct* token once.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import unicodedata
from typing import Sequence

import numpy as np

SEP = "\x00"
# Han (incl. extensions and compatibility), hiragana, katakana: one token per character
CJK_CLASS = r"\p{Han}\p{Hiragana}\p{Katakana}"
TOKEN_PATTERN = rf"[{CJK_CLASS}]|[^\W_{CJK_CLASS}]+"
NON_WORD = r"[^\p{L}\p{N}\p{M}]+"

_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_POLY = np.uint64(0xD6E8FEB86659FD93)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads small integers (code points) over 64 bits."""
    x = x.astype(np.uint64, copy=True)
    x ^= x >> np.uint64(30)
    x *= _MIX1
    x ^= x >> np.uint64(27)
    x *= _MIX2
    x ^= x >> np.uint64(31)
    return x


def nfkc_batch(texts: Sequence[str]) -> list[str]:
    joined = SEP.join(t.replace(SEP, " ") for t in texts)
    if not unicodedata.is_normalized("NFKC", joined):
        joined = unicodedata.normalize("NFKC", joined)
    return joined.split(SEP) if texts else []


def normalize_batch(texts: Sequence[str]) -> list[str]:
    import polars as pl

    if not texts:
        return []
    s = pl.Series(nfkc_batch(texts), dtype=pl.String)
    return s.str.to_lowercase().str.replace_all(NON_WORD, " ").str.strip_chars().to_list()


def normalize(text: str) -> str:
    return normalize_batch([text])[0]


def _stable_ids(tokens: list[str]) -> np.ndarray:
    out = np.empty(len(tokens), dtype=np.uint64)
    for i, tok in enumerate(tokens):
        out[i] = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little")
    return out


def raw_tokens(texts: Sequence[str]):
    """(every token of every text in order, as a polars Series; tokens per text). NFKC and case folding never
    merge or split letters across punctuation/space, so tokens are cut from the raw text and each distinct
    token is normalised once later (thousands of calls instead of a pass over every character: NFKC of the
    whole batch cost more than all the rest together)."""
    import polars as pl

    toks = pl.Series(list(texts), dtype=pl.String).str.extract_all(TOKEN_PATTERN)
    lens = toks.list.len().fill_null(0).to_numpy().astype(np.int64)
    flat = toks.explode().drop_nulls()
    if len(flat) != int(lens.sum()):  # polars versions differ on exploding empty lists
        raise AssertionError("token count mismatch")
    return flat, lens


def token_ids(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    import polars as pl

    if not texts:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    flat, lens = raw_tokens(texts)
    if len(flat) == 0:
        return np.empty(0, np.uint64), lens
    uniq = flat.unique(maintain_order=True)
    ids = pl.Series(_stable_ids([unicodedata.normalize("NFKC", t).casefold() for t in uniq.to_list()]),
                    dtype=pl.UInt64)
    mapped = flat.replace_strict(uniq, ids, return_dtype=pl.UInt64)
    return mapped.to_numpy(), lens


def sequence_keys(ids: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """A 64-bit key per record from its token-id sequence (order matters); 0 for empty records."""
    lens = np.asarray(lens, dtype=np.int64)
    out = np.zeros(len(lens), dtype=np.uint64)
    nonempty = lens > 0
    if not nonempty.any():
        return out
    starts = np.cumsum(lens) - lens
    local = np.arange(len(ids), dtype=np.int64) - np.repeat(starts, lens)
    pows = np.cumprod(np.full(int(lens.max()), _POLY, dtype=np.uint64))
    terms = ids * pows[local]  # ids are already uniform 64-bit hashes
    out[nonempty] = np.add.reduceat(terms, starts[nonempty])
    return mix64(out ^ lens.astype(np.uint64))


def char_ids(normed: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    if not normed:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    lens = np.fromiter((len(t) for t in normed), dtype=np.int64, count=len(normed))
    codes = np.frombuffer("".join(normed).encode("utf-32-le"), dtype=np.uint32)
    return mix64(codes), lens


_DIFF_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]|[^\W\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]+|\s+|.",
                         re.DOTALL)


def compact_diff(a: str, b: str, context: int = 4) -> str:
    if a == b:
        return ""
    ta, tb = _DIFF_TOKEN.findall(a), _DIFF_TOKEN.findall(b)
    out: list[str] = []
    ops = difflib.SequenceMatcher(None, ta, tb, autojunk=False).get_opcodes()
    for k, (tag, i1, i2, j1, j2) in enumerate(ops):
        if tag == "equal":
            same = ta[i1:i2]
            head = same[:context * 2] if k else []  # context after the previous change
            tail = same[-context * 2:] if k < len(ops) - 1 else []  # context before the next one
            if len(same) > len(head) + len(tail):
                out += [*head, " … " if k and k < len(ops) - 1 else "… " if not k else " …", *tail]
            else:
                out += same
            continue
        if i2 > i1:
            out.append("[-" + "".join(ta[i1:i2]) + "-]")
        if j2 > j1:
            out.append("{+" + "".join(tb[j1:j2]) + "+}")
    return "".join(out)


# identifiers: what a task is about, literally. A number not glued to a letter ("w12", "mp3" are words),
# with the sign written before it ("x - 1" and "x + 1" differ; so do 256 and 625); a URL; a quoted literal.
# (polars regex) a run of digits with the sign before it, or one glued to a letter (matched to be dropped)
# (a number right after a Han or kana character is a number: 给我3个, 第3章)
NUMBER_OR_WORD = rf"[-+\u2212]?\s*\d+|[\p{{L}}--[{CJK_CLASS}]]\d+"
URL = re.compile(r"(?:https?://|www\.)[^\s'\"<>()\[\]{}]*[^\s'\"<>()\[\]{}.,;:!?]")
# straight or curly quotes not glued to a letter on the outside (so "Einstein's" holds no quote), CJK brackets
# (the lookahead lets the engine skip every other position quickly: 4x faster on tool-call text)
QUOTED = re.compile(r"(?=['\"\u201c\u2018\u300c\u300e\u300a])(?:"
                    r"(?<!\w)'([^'\n]{1,200})'(?!\w)|\"([^\"\n]{1,200})\"|\u201c([^\u201d\n]{1,200})\u201d"
                    r"|(?<!\w)\u2018([^\u2019\n]{1,200})\u2019(?!\w)|\u300c([^\u300d\n]{1,200})\u300d"
                    r"|\u300e([^\u300f\n]{1,200})\u300f|\u300a([^\u300b\n]{1,200})\u300b)")
URL_OR_QUOTE = r"https?://|www\.|['\"\u201c\u2018\u300c\u300e\u300a]"  # (polars regex) worth a look
LITERAL_NOISE = re.compile(r"[\W_]+")


def _literals(text: str) -> list[str]:
    urls = [u.rstrip("/") for u in URL.findall(text)]  # https://x.org/ is https://x.org
    return urls + ["q:" + LITERAL_NOISE.sub(" ", "".join(m)).strip().casefold() for m in QUOTED.findall(text)]


# (polars regex) a text of these characters alone has the same identifiers with or without NFKC: ASCII, CJK
# ideographs, kana, Hangul syllables and curly quotes are their own NFKC form; ideographic space and the
# full-width sentence marks (，。：；！？（）…) become spacing or ASCII punctuation, which no number reads (a URL
# does: a text with a URL and any of them is normalised)
NFKC_NEUTRAL = (r"^[\x00-\x7F\u3400-\u4DBF\u4E00-\u9FFF\u3041-\u3096\u30A1-\u30FA\uAC00-\uD7A3\u3000-\u3002"
                r"\u3008-\u3011\u3014-\u301B\u2014\u2018-\u201D\u2026\uFF01\uFF08\uFF09\uFF0C\uFF1A\uFF1B\uFF1F]*$")


def _nfkc_where_it_matters(texts):
    """The texts NFKC-normalised where that can change what identifiers_batch finds (NFKC of every text
    cost a third of finding the identifiers; most texts need none)."""
    import polars as pl

    need = ~texts.str.contains(NFKC_NEUTRAL) | (texts.str.contains(r"https?://|www\.")
                                                 & texts.str.contains(r"[^\x00-\x7F]"))
    if not need.any():
        return texts
    return pl.select(pl.when(need).then(texts.str.normalize("NFKC")).otherwise(texts)).to_series()


def identifiers_batch(texts: Sequence[str]) -> list[str]:
    """The identifiers of each text: its numbers (with the + or - written before them, spaces
    skipped, every occurrence), URLs and quoted literals, sorted, as one string ('' when none).
    Near duplicates must have the same. Numbers are found in one vectorised pass; URLs and quotes
    in Python, only in the texts that hold a quote or a URL."""
    import polars as pl

    if not texts:
        return []
    normed = _nfkc_where_it_matters(pl.Series(list(texts), dtype=pl.String))
    numbers = normed.str.extract_all(NUMBER_OR_WORD).list.eval(
        pl.element().filter(~pl.element().str.contains(r"^\p{L}")).str.replace_all(r"\s", "")
        .str.replace("\u2212", "-"))
    found = numbers.to_list()  # (sorted in Python: polars' list.sort costs 15x as much on short lists)
    for k in np.flatnonzero(normed.str.contains(URL_OR_QUOTE).fill_null(False).to_numpy()).tolist():
        found[k] = (found[k] or []) + _literals(normed[k])
    return [" ".join(sorted(f)) if f else "" for f in found]


def identifiers(text: str) -> str:
    return identifiers_batch([text])[0]
