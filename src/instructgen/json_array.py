"""Reading a JSON array element by element, in chunks, so that one bad element is one reject.

Python's C scanner (`raw_decode`) finds where each element ends; orjson then decodes the
element's text exactly as it decodes a JSONL line (`io.decode_row`), so arrays and JSONL
refuse the same things. Bytes that are not UTF-8 survive as surrogate escapes until the
reject is written. Only what hides where elements end (a syntax error outside strings, an
unclosed array, an element unfinished after `MAX_ARRAY_ELEMENT_CHARS`) stops the array, with
one reject saying how many elements were read before it.
"""

from __future__ import annotations

import codecs
import json
import re
import sys
from typing import Iterator

import orjson

from .rows import MAX_NESTING, MAX_ROW_BYTES, Row, Source, cut_message, decode_row

MAX_ARRAY_ELEMENT_CHARS = 4 * MAX_ROW_BYTES  # an array element unfinished after this stops the array
ARRAY_CHUNK_BYTES = 8 << 20
_NEAR_END = 32  # an element or error this close to the end of the text read so far may go on in the next chunk

_FIND_END = json.JSONDecoder(strict=False).raw_decode  # finds where an element ends; orjson decodes it
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|["\[\]{}]')
_NOT_BLANK = re.compile(r"[^ \t\r\n]")
_SEPARATOR = re.compile(r"[ \t\r\n]*,[ \t\r\n]*")
# Python's scanner recurses in C, guarded by the recursion limit; a program that raised the limit far
# (some libraries do) would let a deeply nested element overflow the C stack: match brackets instead.
_SAFE_RECURSION_LIMIT = 3000


class ArrayReader:
    """The elements of a JSON array, read in chunks; each element decoded on its own (`decode_row`)."""

    def __init__(self, source: Source, name: str, line: int):
        self.source, self.name, self.line = source, name, line
        self.decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")  # bad bytes survive to the reject
        self.text, self.pos, self.eof = "", 0, False
        self.count = 0
        self.scanner_safe = sys.getrecursionlimit() <= _SAFE_RECURSION_LIMIT

    def rows(self) -> Iterator[Row]:
        self.next_char()
        self.pos += 1  # the "[" that read_rows saw
        c = self.next_char()
        while c and c != "]":
            row = self.quick_element()
            if row is None:  # at a chunk border, deep, or bad: the careful way
                row, readable = self.element()
                if not readable:
                    yield row
                    return
            yield row
            self.count += 1
            m = _SEPARATOR.match(self.text, self.pos)
            if m is not None and m.end() < len(self.text) and self.text[m.end()] != "]":  # the common case
                self.line += self.text.count("\n", self.pos, m.end())
                self.pos = m.end()
                continue
            c = self.next_char()
            if c == ",":
                self.pos += 1
                c = self.next_char()  # "]" here is a trailing comma: harmless, accepted
            elif c != "]":
                yield self.stop("malformed JSON: expected ',' or ']' after an array element" if c
                                else "the array is not closed: the file ends after it")
                return
        if c == "]":
            yield from self.after_end()
        else:
            yield self.stop("the array is not closed: the file ends here")

    def quick_element(self) -> Row | None:
        """The element at pos when it is well inside the text read so far and decodes cleanly (most
        elements; this path is the reader's speed), else None."""
        text, pos = self.text, self.pos
        if not self.scanner_safe and text[pos] in "[{":
            return None
        try:
            stop = _FIND_END(text, pos)[1]
        except (json.JSONDecodeError, RecursionError):
            return None
        if stop > len(text) - _NEAR_END:
            return None
        piece = text[pos:stop]
        if len(piece) > MAX_ROW_BYTES // 4 or piece.count("[") + piece.count("{") > MAX_NESTING:
            return None
        try:
            value = orjson.loads(piece)
        except orjson.JSONDecodeError:
            return None
        row = Row(value, f"{self.name}:{self.line}", piece)
        self.line += text.count("\n", pos, stop)
        self.pos = stop
        return row

    def element(self) -> tuple[Row, bool]:
        """(the row of the element at pos, which is not blank; whether reading can go on after it)."""
        origin = f"{self.name}:{self.line}"
        while True:
            try:
                stop = self.find_end()
                if stop is None:
                    if self.more():
                        continue
                    return self.stop("malformed JSON: an unfinished, deeply nested element"), False
                if stop > len(self.text) - _NEAR_END and self.more():  # "3.1" may be "3.14e-5" in the next chunk
                    continue
            except json.JSONDecodeError as e:
                if self.maybe_unfinished(e) and self.more():
                    continue
                return self.stop(f"malformed JSON: {e.msg}"), False
            break
        piece = self.text[self.pos:stop]
        self.line += self.text.count("\n", self.pos, stop)
        self.pos = stop
        return _decode_piece(piece, origin), True

    def find_end(self) -> int | None:
        """Where the element at pos ends (None: not within the text read so far)."""
        if self.text[self.pos] in "[{" and not self.scanner_safe:
            return _end_of_value(self.text, self.pos)  # Python's C scanner could overflow the C stack
        try:
            return _FIND_END(self.text, self.pos)[1]
        except RecursionError:  # nested too deep for Python's scanner: find the end by tokens
            return _end_of_value(self.text, self.pos)

    def maybe_unfinished(self, e: json.JSONDecodeError) -> bool:
        return e.msg.startswith("Unterminated string") or e.pos > len(self.text) - _NEAR_END

    def more(self) -> bool:
        """Read the next chunk into the buffer; False at the end, or when one element grows past the limit."""
        if self.eof or len(self.text) - self.pos > MAX_ARRAY_ELEMENT_CHARS:
            return False
        chunk = self.source.stream.read(ARRAY_CHUNK_BYTES)
        self.eof = not chunk
        self.text = self.text[self.pos:] + self.decoder.decode(chunk, final=self.eof)
        self.pos = 0
        return True

    def next_char(self) -> str:
        """The next non-blank character ('' at the end), counting the lines skipped."""
        while True:
            m = _NOT_BLANK.search(self.text, self.pos)
            end = m.start() if m else len(self.text)
            self.line += self.text.count("\n", self.pos, end)
            self.pos = end
            if m:
                return self.text[end]
            if not self.more():
                return ""

    def stop(self, why: str) -> Row:
        if self.source.cut is not None:
            why = cut_message(self.source.cut)
        elif len(self.text) - self.pos > MAX_ARRAY_ELEMENT_CHARS:
            why = (f"an array element over {MAX_ARRAY_ELEMENT_CHARS >> 20} MiB, or unreadable JSON that hides "
                   "where it ends")
        raw = self.text[self.pos:self.pos + 200].encode("utf-8", "surrogateescape")
        return Row(None, f"{self.name}:{self.line}", raw,
                   f"{why}; cannot read the array past it ({self.count} elements before it were read)")

    def after_end(self) -> Iterator[Row]:
        self.pos += 1  # the "]"
        if self.next_char() or self.source.cut is not None:
            yield self.stop("malformed JSON: more data after the closing ']' of the array")


def _decode_piece(piece: str, origin: str) -> Row:
    """decode_row for an array element's text (faster on the common case: no re-encoding)."""
    if len(piece) <= MAX_ROW_BYTES // 4:
        try:
            value = orjson.loads(piece)
        except orjson.JSONDecodeError:
            pass
        else:
            if piece.count("[") + piece.count("{") <= MAX_NESTING:
                return Row(value, origin, piece)
    return decode_row(piece.encode("utf-8", "surrogateescape"), origin)  # invalid bytes come back as they were


def _end_of_value(text: str, pos: int) -> int | None:
    """Where the array or object starting at pos ends, by matching brackets outside strings (None: not in text)."""
    depth = 0
    for m in _TOKEN.finditer(text, pos):
        c = text[m.start()]
        if c == '"':
            if m.end() - m.start() == 1:  # an unterminated string
                return None
        elif c in "[{":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return m.end()
    return None
