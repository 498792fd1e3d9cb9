"""Rows as they are read: one `Row` per JSONL line or JSON array element, with its origin and raw bytes.

`decode_row` is the one decoder every reader uses (orjson, with the nesting and size limits), so a JSONL
line and an array element refuse the same things. `Source` reads a plain or gzip file whose decompression
errors end the stream (`cut` says why) instead of raising. `io.read_rows` picks the reader per file.
"""

from __future__ import annotations

import gzip
import io as _io
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterable, Iterator

import orjson

MAX_ROW_BYTES = 64 << 20  # a single record larger than this is rejected, not decoded
MAX_NESTING = 100  # deeper records are rejected: orjson cannot write past ~255 levels, and formats wrap values deeper
_BOM = b"\xef\xbb\xbf"
_BLANK = b" \t\r\n"


@dataclass(slots=True)
class Row:
    data: Any  # the decoded JSON value, or None when `error` is set
    origin: str  # "path:line" / "path:row N"
    raw: str | bytes | None = None  # what it was decoded from (bytes for JSONL lines and array elements)
    error: str | None = None  # why it could not be decoded


class Source(_io.RawIOBase):
    """A file (plain or gzip) whose decompression errors end the stream instead of raising.

    `cut` then says why it ended early; everything decompressed before the cut is still read."""

    def __init__(self, name: str):
        self.compressed = name.lower().endswith(".gz")
        self.raw_file = gzip.open(name, "rb") if self.compressed else open(name, "rb")
        self.cut: str | None = None
        self.stream = _io.BufferedReader(self, buffer_size=1 << 16)
        self.line = 0  # complete lines read by complete_lines()
        self.partial: bytes | None = None  # the line a cut went through, as far as it got

    def complete_lines(self, first: int = 1) -> Iterator[bytes]:
        """The lines of the stream, the first being line `first`; at a cut, the line it went
        through is held back for `cut_row` (it is part of the cut, not a record)."""
        self.line = first - 1
        for line in self.stream:
            if self.cut is not None and not line.endswith(b"\n"):
                self.partial = line
                return
            self.line += 1
            yield line

    def cut_row(self, name: str) -> Row | None:
        """After `complete_lines`: one reject for a truncated or corrupt compressed file, or None."""
        if self.cut is None:
            return None
        return Row(None, f"{name}:{self.line + 1}", self.partial, cut_message(self.cut))

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.cut is not None:
            return 0
        try:
            data = self.raw_file.read1(len(buffer))  # one read, so nothing already decompressed is lost
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:
            self.cut = str(e) or type(e).__name__
            return 0
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.raw_file.close()
        super().close()

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_source(name: str) -> Source:
    """A file's bytes through `.stream` (buffered); for .gz, a truncated or corrupt stream ends
    early with the reason in `.cut` instead of raising."""
    return Source(name)


def skip_blank_start(stream: BinaryIO) -> tuple[bytes, int]:
    """Consume a BOM and blank space; (the first other byte or b'' at the end, its line number)."""
    line = 1
    chunk = stream.peek(3)
    if chunk.startswith(_BOM):
        stream.read(3)
    while True:
        chunk = stream.peek(1 << 16)
        if not chunk:
            return b"", line
        blank = len(chunk) - len(chunk.lstrip(_BLANK))
        line += chunk.count(b"\n", 0, blank)
        if blank < len(chunk):
            first = chunk[blank:blank + 1]
            stream.read(blank)
            return first, line
        stream.read(blank)


def read_jsonl_rows(source: Source, name: str, start: int) -> Iterator[Row]:
    lines = source.complete_lines(start) if source.compressed else source.stream  # only a .gz can be cut
    yield from rows_from_lines(lines, name, start)
    cut = source.cut_row(name)
    if cut is not None:
        yield cut


def cut_message(cut: str) -> str:
    return (f"the compressed file ends here ({cut}): it is truncated or corrupt, e.g. a partial download; "
            "the lines before were read, nothing after this point can be")


def rows_from_lines(lines: Iterable[bytes], name: str, start: int) -> Iterator[Row]:
    """Rows of JSONL lines, the first of which is line `start` of file `name`."""
    for lineno, line in enumerate(lines, start):
        if lineno == 1 and line.startswith(_BOM):
            line = line[3:]
        if line.isspace():
            continue
        line = line.rstrip(b"\r\n")
        if len(line) <= MAX_ROW_BYTES:  # the common case inline; decode_row says what is wrong with the others
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                pass
            else:
                if line.count(b"[") + line.count(b"{") <= MAX_NESTING:
                    yield Row(value, f"{name}:{lineno}", line)
                    continue
        yield decode_row(line, f"{name}:{lineno}")


def decode_row(raw: bytes, origin: str) -> Row:
    """One record from its JSON text: a Row with the value, or with `error` saying why not."""
    if len(raw) > MAX_ROW_BYTES:
        return Row(None, origin, raw[:200] + b"...",
                   f"record is {len(raw) >> 20} MiB, over the {MAX_ROW_BYTES >> 20} MiB limit for one record")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return Row(None, origin, raw, _decode_error(raw, e))
    if raw.count(b"[") + raw.count(b"{") > MAX_NESTING and _depth(value) > MAX_NESTING:
        return Row(None, origin, raw, _too_deep())
    return Row(value, origin, raw)


def _decode_error(raw: bytes, e: orjson.JSONDecodeError) -> str:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as u:
        return f"invalid UTF-8 at byte {u.start} of the record"
    if "surrogate" in e.msg:
        return "a lone UTF-16 surrogate escape (\\ud800-\\udfff) in a string: not valid Unicode"
    if "depth" in e.msg:
        return _too_deep()
    return f"malformed JSON: {e}"


def _too_deep() -> str:
    return f"nested deeper than {MAX_NESTING} levels"


def _depth(value: Any) -> int:
    deepest = 0
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            v = v.values()
        elif not isinstance(v, list):
            continue
        deepest = max(deepest, d)
        if deepest > MAX_NESTING:
            return deepest
        stack.extend((child, d + 1) for child in v)
    return deepest
