"""The filter's counting shortcuts equal the plain counts they replace (ARCHITECTURE.md's fast-path table)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from instructgen.curate import junk, langid, language

# the edges of each Han range and characters of other scripts around them
EDGES = [chr(c) for lo, hi in langid.HAN_RANGES for c in (lo - 1, lo, lo + 1, hi - 1, hi, hi + 1)]
MIXED = st.text(st.sampled_from([*EDGES, "a", "Z", " ", "\n", "7", "。", "あ", "한", "的", "鑫", "𠀀", "é"]), max_size=60)


@given(MIXED)
def test_count_han_is_the_number_of_han_characters(text):
    assert langid.count_han(text) == len(langid._HAN.findall(text))


@settings(max_examples=60, deadline=None)  # the first example loads the word list
@given(st.data())
def test_unknown_han_class_counts_what_the_word_list_lacks(data):
    known = sorted(junk._han_chars())
    unknown = [chr(c) for lo, hi in langid.HAN_RANGES for c in range(lo, hi + 1, 101) if chr(c) not in junk._han_chars()]
    pool = [*known[:: max(1, len(known) // 200)], *unknown, "鿿", "a", " ", "。"]
    text = data.draw(st.text(st.sampled_from(pool), max_size=80))
    plain = sum(1 for ch in text if langid._HAN.match(ch) and ch not in junk._han_chars())
    assert len(junk._unknown_han().findall(text)) == plain


@given(st.lists(st.sampled_from(list("ab ()[]{};:=<>-!&|/*#\t.'\"x1") + ["def ", "if ", "for ", "print(", "return",
                                                                          "SELECT ", "import ", "    "]), max_size=12))
def test_code_line_in_two_patterns_is_the_one_pattern(parts):
    line = "".join(parts)
    for module in (language, junk):
        one = re.compile(f"{module._CODE_LINE_START.pattern}|{module._CODE_LINE_ANYWHERE.pattern}")
        assert module._code_line(line) == bool(one.search(line)), (module.__name__, line)


@given(st.text(st.sampled_from(["a", "Z", "的", "é", "1", "²", "_", " ", "-", "ǅ", "ʰ"]), max_size=12), st.integers(1, 6))
def test_has_letters_shortcut_is_the_letter_count(text, minimum):
    letters = sum(map(len, re.findall(r"[^\W\d_]+", text[:langid.MAX_CHARS])))
    assert langid.has_letters(text, minimum) == (letters >= minimum)


@given(st.lists(st.sampled_from(["word", "Wörter", "的", "x1", "(a)", "don't", "--", "3", "é", "_", "a_b", "“quoted”", "end.",
                                 "ǅ", "²"]), max_size=10), st.sampled_from([" ", "  ", "\t", "\u3000"]))
def test_mostly_words_shortcut_is_the_wordlike_count(tokens, space):
    line = space.join(tokens)
    assert language._mostly_words(line) == (len(language._WORDLIKE.findall(line)) * 2 >= len(line.split()))


@given(st.lists(st.sampled_from(["f", "(", ")", "x", ".", "_", " ", "1", "\n", "'a'", "é", "的"]), max_size=14).map("".join))
def test_a_call_is_only_where_its_opening_bracket_follows_a_name(text):
    if language._CALL.search(text):
        assert language._CALL_OPENS.search(text)
