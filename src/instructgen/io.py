"""Reading and writing rows: JSON arrays, JSONL (optionally .gz), Parquet, stdin/stdout.

Readers stream `Row`s, each with the place it came from (`file:line`, or
`file:row N` for Parquet) and its raw text, so a bad row can be reported and
kept in a rejects file. A row that cannot even be decoded comes back with
`error` set instead of raising: one bad line never stops a file.

Writers are atomic (a temporary file renamed into place on success) and
pick the file type from the extension.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

import orjson

from .errors import InstructgenError

STDIO = "-"
_UMASK = os.umask(0o022)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK  # mkstemp creates 0600 files; outputs get the mode any new file would
MAX_ROW_BYTES = 64 << 20  # a single record larger than this is rejected, not decoded
PARQUET_BATCH_ROWS = 50_000


@dataclass(slots=True)
class Row:
    data: Any  # the decoded JSON value, or None when `error` is set
    origin: str  # "path:line" / "path:row N"
    raw: str | bytes | None = None  # what it was decoded from (bytes for JSONL lines, decoded only if needed)
    error: str | None = None  # why it could not be decoded


def kind_of(path: str | os.PathLike) -> str:
    """'jsonl', 'jsonl.gz', 'json' or 'parquet' from the file name; '-' is JSONL."""
    name = str(path).lower()
    if name == STDIO:
        return "jsonl"
    for suffix, kind in ((".jsonl.gz", "jsonl.gz"), (".json.gz", "jsonl.gz"), (".jsonl", "jsonl"),
                         (".ndjson", "jsonl"), (".json", "json"), (".parquet", "parquet")):
        if name.endswith(suffix):
            return kind
    raise InstructgenError(
        f"{path}: unknown file type; use .json, .jsonl, .jsonl.gz, .parquet or '-' for stdin/stdout"
    )


# -- reading -----------------------------------------------------------------------------------

def read_rows(path: str | os.PathLike) -> Iterator[Row]:
    """Stream the rows of one file (or stdin for '-')."""
    name = str(path)
    kind = kind_of(name)
    if kind == "parquet":
        yield from _read_parquet(name)
        return
    if name == STDIO:
        yield from _read_lines(sys.stdin.buffer, "<stdin>")
        return
    if not os.path.exists(name):
        raise InstructgenError(f"{name}: no such file")
    opener = gzip.open if kind == "jsonl.gz" else open
    with opener(name, "rb") as fh:
        head = _peek_first_char(fh)
        if kind == "json" and head == b"[":
            yield from _read_json_array(fh.read(), name)
        elif kind == "json" and head == b"{" and not _first_line_is_json(fh):
            yield _read_json_object(fh.read(), name)  # one pretty-printed object (MOSS ships SFT_data so)
        else:  # JSONL, and also .json files that are really one object per line (BELLE ships those)
            yield from _read_lines(fh, name)


def _peek_first_char(fh: BinaryIO) -> bytes:
    pos = fh.tell()
    chunk = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    fh.seek(pos)
    return chunk[:1]


def _first_line_is_json(fh: BinaryIO) -> bool:
    pos = fh.tell()
    line = fh.readline(MAX_ROW_BYTES)
    fh.seek(pos)
    try:
        orjson.loads(line.removeprefix(b"\xef\xbb\xbf"))
    except orjson.JSONDecodeError:
        return False
    return True


def _read_json_object(data: bytes, name: str) -> Row:
    """The one row of a file holding one JSON object over several lines."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    line = data.count(b"\n", 0, data.find(b"{")) + 1
    origin = f"{name}:{line}"
    try:
        return Row(orjson.loads(data), origin, data)
    except orjson.JSONDecodeError as e:
        return Row(None, origin, data[:200].decode("utf-8", "replace"), _decode_error(data, e))


def _read_lines(fh: BinaryIO, name: str) -> Iterator[Row]:
    return rows_from_lines(fh, name, 1)


def rows_from_lines(lines: Iterable[bytes], name: str, start: int) -> Iterator[Row]:
    """Rows of JSONL lines, the first of which is line `start` of file `name`."""
    for lineno, line in enumerate(lines, start):
        if lineno == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        if line.isspace():
            continue
        origin = f"{name}:{lineno}"
        if len(line) > MAX_ROW_BYTES:
            yield Row(None, origin, line[:200].decode("utf-8", "replace") + "…",
                      f"record is {len(line) >> 20} MiB, over the {MAX_ROW_BYTES >> 20} MiB limit for one record")
            continue
        line = line.rstrip(b"\r\n")
        try:
            yield Row(orjson.loads(line), origin, line)
        except orjson.JSONDecodeError as e:
            yield Row(None, origin, line.decode("utf-8", "replace"), _decode_error(line, e))


def _decode_error(line: bytes, e: orjson.JSONDecodeError) -> str:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as u:
        return f"invalid UTF-8 at byte {u.start} of the line"
    return f"malformed JSON: {e}"


def _read_json_array(data: bytes, name: str) -> Iterator[Row]:
    """Decode a JSON array element by element, keeping each element's line number and raw text."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        yield Row(None, f"{name}:{line}", None, f"invalid UTF-8 at byte {e.start}; cannot read the array past it")
        return
    decoder = json.JSONDecoder(parse_constant=_reject_constant)
    pos = text.index("[") + 1
    line = text.count("\n", 0, pos) + 1
    end = len(text)
    while True:
        start = _skip(text, pos)
        if start < end and text[start] == "]":
            return
        line += text.count("\n", pos, start)
        try:
            value, stop = decoder.raw_decode(text, start)
        except (json.JSONDecodeError, ValueError) as e:
            yield Row(None, f"{name}:{line}", text[start:start + 200],
                      f"malformed JSON: {e}; cannot read the array past it")
            return
        yield Row(value, f"{name}:{line}", text[start:stop])
        line += text.count("\n", start, stop)
        pos = _skip(text, stop)
        if pos < end and text[pos] == ",":
            pos += 1
        elif pos < end and text[pos] == "]":
            return
        else:
            yield Row(None, f"{name}:{line + text.count(chr(10), stop, pos)}", text[pos:pos + 200],
                      "malformed JSON: expected ',' or ']' between array elements")
            return


def _skip(text: str, pos: int) -> int:
    n = len(text)
    while pos < n and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _read_parquet(name: str) -> Iterator[Row]:
    import pyarrow.parquet as pq

    if not os.path.exists(name):
        raise InstructgenError(f"{name}: no such file")
    try:
        pf = pq.ParquetFile(name)
    except Exception as e:  # pyarrow raises several types for a file that is not Parquet
        raise InstructgenError(f"{name}: not a readable Parquet file ({e})") from None
    index = 0
    for batch in pf.iter_batches(batch_size=8192):
        for row in batch.to_pylist():
            index += 1
            # Parquet cannot tell a missing field from a null one; absent is the common meaning
            yield Row({k: v for k, v in row.items() if v is not None}, f"{name}:row {index}")


# -- writing -----------------------------------------------------------------------------------

def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


class RowWriter:
    """Write rows to a file whose type follows its extension; '-' writes JSONL to stdout.

    Files are written to a temporary name beside the target and renamed on `close()`,
    so a failed run never leaves a half-written output behind.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        self.kind = kind_of(self.path)
        self.count = 0
        self._tmp: str | None = None
        self._parquet_rows: list[Any] = []
        self._parquet_parts: list[str] = []
        if self.path == STDIO:
            self._fh: BinaryIO | None = sys.stdout.buffer
            return
        self._tmp = temp_beside(self.path)
        if self.kind == "parquet":
            self._fh = None
        elif self.kind == "jsonl.gz":
            self._fh = gzip.open(self._tmp, "wb", compresslevel=6)
        else:
            self._fh = open(self._tmp, "wb", buffering=1 << 20)
            if self.kind == "json":
                self._fh.write(b"[")

    def write(self, row: Any) -> None:
        if self.kind == "parquet":
            self._parquet_rows.append(row)
            if len(self._parquet_rows) >= PARQUET_BATCH_ROWS:
                self._spill_parquet()
        elif self.kind == "json":
            self._fh.write(b"\n  " if self.count == 0 else b",\n  ")
            self._fh.write(orjson.dumps(row))
        else:
            self._fh.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
        self.count += 1

    @property
    def spill_dir(self) -> str | None:
        """A folder beside the output where workers may write parts (None for stdout)."""
        return None if self.path == STDIO else os.path.dirname(os.path.abspath(self.path))

    def append_jsonl(self, data: bytes | str, count: int) -> None:
        """Append rows already serialised as JSONL by a worker: bytes, or a part file (moved in, then deleted)."""
        assert self.kind in ("jsonl", "jsonl.gz"), self.kind
        if isinstance(data, bytes):
            self._fh.write(data)
        else:
            self._fh.flush()
            with open(data, "rb") as part:
                size = os.fstat(part.fileno()).st_size
                copied = 0
                while copied < size:
                    copied += os.sendfile(self._fh.fileno(), part.fileno(), copied, size - copied)
            os.unlink(data)
        self.count += count

    def write_many(self, rows: Iterable[Any]) -> None:
        for row in rows:
            self.write(row)

    def close(self) -> None:
        if self.path == STDIO:
            self._fh.flush()
            return
        if self.kind == "parquet":
            self._finish_parquet()
        else:
            if self.kind == "json":
                self._fh.write(b"\n]\n" if self.count else b"]\n")
            self._fh.close()
        finish_temp(self._tmp, self.path)
        self._tmp = None

    def abort(self) -> None:
        if self._fh is not None and self.path != STDIO:
            self._fh.close()
        for part in [self._tmp, *self._parquet_parts]:
            if part and os.path.exists(part):
                os.unlink(part)

    def __enter__(self) -> "RowWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # Parquet needs one schema for the whole file, and rows of one dataset may differ in
    # optional fields: batches are spilled as parts and unified at the end.
    def _spill_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        part = f"{self._tmp}.part{len(self._parquet_parts)}"
        pq.write_table(pa.Table.from_pylist(self._parquet_rows), part)
        self._parquet_parts.append(part)
        self._parquet_rows = []

    def _finish_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        tables = [pq.read_table(p) for p in self._parquet_parts]
        if self._parquet_rows or not tables:
            tables.append(pa.Table.from_pylist(self._parquet_rows))
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")
        pq.write_table(table, self._tmp)
        for p in self._parquet_parts:
            os.unlink(p)
        self._parquet_parts = []


def write_rows(path: str | os.PathLike, rows: Iterable[Any]) -> int:
    with RowWriter(path) as w:
        w.write_many(rows)
    return w.count


def temp_beside(path: str | os.PathLike) -> str:
    """A new empty temporary file beside `path` (same folder, so the final rename is atomic)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    return tmp


def finish_temp(tmp: str, path: str | os.PathLike) -> None:
    """Give a finished temporary file the mode a new file would have and move it to `path`."""
    os.chmod(tmp, _FILE_MODE)
    os.replace(tmp, path)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    tmp = temp_beside(path)
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        finish_temp(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
