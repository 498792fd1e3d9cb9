"""Reading and writing rows: JSON arrays, JSONL (optionally .gz), Parquet, stdin/stdout.

Readers stream `Row`s, each with the place it came from (`file:line`, or
`file:row N` for Parquet) and its raw bytes, so a bad row can be reported and
kept in a rejects file. A row that cannot be decoded comes back with `error`
set instead of raising: one bad line, one bad array element, or the cut at the
end of a truncated .gz costs one reject, never the file. JSON array elements
and JSONL lines go through the same decoder (orjson), so both refuse the same
things: invalid UTF-8, lone surrogate escapes, NaN/Infinity, numbers out of
range, nesting deeper than `MAX_NESTING`, records over `MAX_ROW_BYTES`.

JSON arrays are streamed in chunks, so memory follows the largest element, not
the file; an element that is still unfinished after `MAX_ARRAY_ELEMENT_CHARS`
characters (or a syntax error that hides where elements end) stops the array
with one reject saying so. An empty or blank file is an error.

Writers are atomic (a temporary file `.NAME.HOST-PID.RANDOM.tmp` renamed into
place on success, removed on failure) and pick the file type from the
extension. Starting to write a file first removes the temporaries that dead
runs (killed, crashed) left beside it. Parquet column typing is in `parquet.py`.
"""

from __future__ import annotations

import errno
import gzip
import os
import sys
from array import array
from typing import Any, BinaryIO, Iterable, Iterator, NoReturn

import orjson

from .errors import InstructgenError
from .rows import MAX_NESTING, MAX_ROW_BYTES, Row, read_jsonl_rows, skip_blank_start, cut_message, \
    decode_row, open_source, rows_from_lines
from .tempfiles import finish_temp, remove_stale_temps, temp_beside, temp_name, unlink_quietly

__all__ = ["Row", "RowWriter", "kind_of", "read_rows", "rows_from_lines", "decode_row", "open_source", "write_rows",
           "write_text_atomic", "temp_beside", "temp_name", "remove_stale_temps", "finish_temp", "MAX_ROW_BYTES",
           "MAX_NESTING"]

STDIO = "-"
PARQUET_BATCH_ROWS = 50_000
# rows a schema-stable writer holds back, so that the keys the first rows show are given to every row as it
# is written (a key first seen later costs a second pass over the file)
HOLD_ROWS = 4096
HOLD_BYTES = 8 << 20


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


def jsonl_safe(data: bytes) -> bytes:
    """JSONL with U+2028 and U+2029 escaped. JSON allows them raw inside strings (orjson writes them so), but
    readers that split lines on them (Python's str.splitlines, LLaMA-Factory's lf_client) would cut a record."""
    if b"\xe2\x80" in data and (b"\xe2\x80\xa8" in data or b"\xe2\x80\xa9" in data):
        data = data.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
    return data


# -- reading -----------------------------------------------------------------------------------

def read_rows(path: str | os.PathLike) -> Iterator[Row]:
    """Stream the rows of one file (or stdin for '-')."""
    name = str(path)
    kind = kind_of(name)
    if kind == "parquet":
        yield from _read_parquet(name)
        return
    if name == STDIO:
        yield from rows_from_lines(sys.stdin.buffer, "<stdin>", 1)
        return
    if not os.path.exists(name):
        raise InstructgenError(f"{name}: no such file")
    with open_source(name) as source:
        head, line = skip_blank_start(source.stream)
        if not head and source.cut is not None:
            yield Row(None, f"{name}:{line}", None, cut_message(source.cut))
            return
        if not head:
            raise InstructgenError(f"{name}: the file is empty (no record in it)" if line == 1
                                   else f"{name}: the file holds only blank lines (no record in it)")
        if head == b"[" and name.lower().endswith((".json", ".json.gz")):
            from .json_array import ArrayReader

            yield from ArrayReader(source, name, line).rows()
        elif head == b"{" and kind == "json" and os.path.getsize(name) <= MAX_ROW_BYTES:
            yield from _read_object_or_lines(source, name, line)
        else:  # JSONL, and also .json files that are really one object per line (BELLE ships those)
            yield from read_jsonl_rows(source, name, line)


def _read_object_or_lines(source, name: str, line: int) -> Iterator[Row]:
    """A .json file that starts with an object: one object over several lines (MOSS ships its SFT_data so;
    one row, origin its opening brace), or objects one per line (BELLE ships those)."""
    data = source.stream.read()
    first = data.split(b"\n", 1)[0]
    whole = decode_row(data, f"{name}:{line}")
    if whole.error is None or not _is_json(first):
        yield whole  # one object, or one malformed object (one reject, not an abort)
        return
    yield from rows_from_lines(data.splitlines(keepends=True), name, line)


def _is_json(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def _read_parquet(name: str) -> Iterator[Row]:
    import pyarrow as pa

    from .parquet import iter_parquet

    if not os.path.exists(name):
        raise InstructgenError(f"{name}: no such file")
    index = 0
    try:
        for index, data, error in iter_parquet(name):
            yield Row(data, f"{name}:row {index}", None, error)
    except (OSError, ValueError, pa.ArrowException) as e:  # pyarrow raises several types for a bad file
        if index == 0:
            raise InstructgenError(f"{name}: not a readable Parquet file ({e})") from None
        yield Row(None, f"{name}:row {index + 1}", None, f"unreadable Parquet data ({e}); cannot read the file past it")


# -- writing -----------------------------------------------------------------------------------

class RowWriter:
    """Write rows to a file whose type follows its extension; '-' writes JSONL to stdout.

    Files are written to a temporary name beside the target and renamed on `close()`,
    so a failed run never leaves a half-written output behind; a write that fails (full
    disk, file size limit) removes the partial file and raises a one-line InstructgenError.
    For Parquet, `notes` lists after `close()` the columns stored as JSON text, and why.

    `stable_keys`: every row of a JSON or JSONL file carries the same top-level keys (readers
    that take their schema from the first rows, polars' read_ndjson and datasets' JSON loader, lose a key
    that first appears late). A key some rows lack is added to them as `null`, appended to the row's own
    keys; `filled` counts the rows given each key. The first rows are held back (`HOLD_ROWS`, `HOLD_BYTES`)
    so that the keys they show are added as rows are written; a key first seen after them, or rows
    handed over as JSONL bytes that lack a key, cost a second pass over the file at `close()` (which also
    reads such rows for their keys unless they came with their `row_shapes`).
    `leave_absent(keys)`: keys never added as null (a format whose readers test a key's presence).
    """

    def __init__(self, path: str | os.PathLike, stable_keys: bool = False):
        self.path = str(path)
        self.kind = kind_of(self.path)
        self.count = 0
        self.notes: list[str] = []
        self.filled: dict[str, int] = {}
        self._keys = KeySets() if stable_keys and self.path != STDIO and self.kind != "parquet" else None
        self._held: list[tuple[bytes, frozenset]] | None = [] if self._keys is not None else None
        self._held_bytes = 0
        self._lacking: dict[tuple, int] = {}  # rows given keys as they were written, per the keys given
        self._written = 0  # rows in the file so far (held rows are not)
        self._tmp: str | None = None
        self._parquet_rows: list[Any] = []
        self._parquet_parts: list[str] = []
        self._plan = None
        if self.path == STDIO:
            self._fh: BinaryIO | None = sys.stdout.buffer
            return
        self._tmp = temp_beside(self.path)
        try:
            if self.kind == "parquet":
                from .parquet import ColumnPlan

                self._fh = None
                self._plan = ColumnPlan()
            elif self.kind == "jsonl.gz":
                self._fh = gzip.open(self._tmp, "wb", compresslevel=6)
            else:
                self._fh = open(self._tmp, "wb", buffering=1 << 20)
                if self.kind == "json":
                    self._fh.write(b"[")
        except OSError as e:
            self._fail(e)

    @property
    def takes_jsonl(self) -> bool:
        """Whether rows may be handed over as JSONL bytes (`append_jsonl`) at no cost: not when keys are made
        stable, which must then read every such row back at `close()` to learn its keys."""
        return self.kind in ("jsonl", "jsonl.gz") and self._keys is None

    @property
    def learns_keys(self) -> bool:
        """Whether rows handed over as JSONL bytes should come with their `row_shapes` (keys made stable)."""
        return self._keys is not None

    def leave_absent(self, keys: Iterable[str]) -> None:
        """Never add these keys as null to a row that lacks them."""
        if self._keys is not None:
            self._keys.leave_absent(keys)

    def write(self, row: Any) -> None:
        try:
            if self.kind == "parquet":
                self._parquet_rows.append(row)
                if len(self._parquet_rows) >= PARQUET_BATCH_ROWS:
                    self._spill_parquet()
            elif self._keys is not None:
                self._write_stable(row)
            elif self.kind == "json":
                self._put(orjson.dumps(row))
            else:
                self._fh.write(jsonl_safe(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)))
        except OSError as e:
            self._fail(e)
        self.count += 1

    def _put(self, body: bytes) -> None:
        """One serialised row (JSONL: with its newline) into the file."""
        if self.kind == "json":
            self._fh.write(b",\n  " if self._written else b"\n  ")
            self._fh.write(body)
        else:
            self._fh.write(jsonl_safe(body))
        self._written += 1

    def _write_stable(self, row: Any) -> None:
        keys = frozenset(row) if type(row) is dict else None
        if keys is not None and keys not in self._keys.shapes:
            self._keys.see(row, keys)
        body = orjson.dumps(row) if self.kind == "json" else orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)
        if self._held is None:
            self._put_filled(body, keys)
            return
        self._held.append((body, keys))
        self._held_bytes += len(body)
        if len(self._held) >= HOLD_ROWS or self._held_bytes >= HOLD_BYTES:
            self._release()

    def _put_filled(self, body: bytes, keys: frozenset | None) -> None:
        """A row with the keys seen so far that it lacks added as null; its written keys recorded."""
        if keys is None:
            self._keys.per_row.append(NOT_OBJECT)
            self._put(body)
            return
        lacking, suffix, written = self._keys.fill_for(keys)
        if suffix:
            self._lacking[lacking] = self._lacking.get(lacking, 0) + 1
            end = 1 if self.kind == "json" else 2  # "}" or "}\n"
            body = (body[:-end] + suffix if len(keys) else b"{" + suffix[1:]) + body[-end:]
        self._keys.per_row.append(written)
        self._put(body)

    def _release(self) -> None:
        """Write the rows held back, each with every key seen so far."""
        held, self._held = self._held or [], None
        for body, keys in held:
            self._put_filled(body, keys)

    @property
    def spill_dir(self) -> str | None:
        """A folder beside the output where workers may write parts (None for stdout)."""
        return None if self.path == STDIO else os.path.dirname(os.path.abspath(self.path))

    def positional(self) -> tuple[str, int]:
        """(file, offset) where rows appended from now on go, for workers that write their part in place
        (os.pwrite); `advance` then moves past what they wrote. Plain JSONL files only."""
        assert self.kind == "jsonl" and self.path != STDIO, self.kind
        try:
            if self._held is not None:
                self._release()
            self._fh.flush()
        except OSError as e:
            self._fail(e)
        return self._tmp, self._fh.tell()

    def advance(self, nbytes: int, count: int, shapes: "RowShapes | None" = None) -> None:
        """Count `count` rows that workers wrote in place (`positional`); `shapes`: their keys (`row_shapes`),
        which spares reading them back at `close()`."""
        self._fh.seek(nbytes, os.SEEK_CUR)
        self.count += count
        self._written += count
        if self._keys is not None:
            self._keys.add_rows(count, shapes)

    def append_jsonl(self, data: bytes | str, count: int, shapes: "RowShapes | None" = None) -> None:
        """Append rows already serialised as JSONL by a worker: bytes, or a part file (moved in, then deleted);
        `shapes` as for `advance`."""
        assert self.kind in ("jsonl", "jsonl.gz"), self.kind
        try:
            if self._held is not None:
                self._release()
            if isinstance(data, bytes):
                self._fh.write(jsonl_safe(data))
            else:
                self._fh.flush()
                with open(data, "rb") as part:
                    size = os.fstat(part.fileno()).st_size
                    copied = 0
                    while copied < size:
                        copied += os.sendfile(self._fh.fileno(), part.fileno(), copied, size - copied)
                os.unlink(data)
        except OSError as e:
            self._fail(e)
        self.count += count
        self._written += count
        if self._keys is not None:
            self._keys.add_rows(count, shapes)

    def write_many(self, rows: Iterable[Any]) -> None:
        for row in rows:
            self.write(row)

    def close(self) -> None:
        if self.path == STDIO:
            self._fh.flush()
            return
        try:
            if self.kind == "parquet":
                self._finish_parquet()
            else:
                if self._held is not None:
                    self._release()
                if self.kind == "json":
                    self._fh.write(b"\n]\n" if self.count else b"]\n")
                self._fh.close()
                for lacking, n in self._lacking.items():
                    for k in lacking:
                        self.filled[k] = self.filled.get(k, 0) + n
                if self._keys is not None and self._keys.differ():
                    for k, n in fill_missing_keys(self._tmp, self.kind, self._keys).items():
                        self.filled[k] = self.filled.get(k, 0) + n
            finish_temp(self._tmp, self.path)
        except OSError as e:
            self._fail(e)
        except BaseException:
            self.abort()
            raise
        self._tmp = None

    def abort(self) -> None:
        """Remove whatever this writer wrote (the temporary file and Parquet parts); the target is untouched."""
        if self._fh is not None and self.path != STDIO:
            try:
                self._fh.close()
            except OSError:  # flushing into a full disk fails again; the file goes anyway
                pass
        for part in [self._tmp, *self._parquet_parts]:
            if part:
                unlink_quietly(part)
        self._tmp, self._parquet_parts = None, []

    def _fail(self, e: OSError) -> NoReturn:
        if self.path == STDIO:  # e.g. a closed pipe (`| head`), which the CLI ends quietly
            raise e
        self.abort()
        raise InstructgenError(f"{self.path}: cannot write ({_why(e)}); the partial file was removed, "
                               "nothing was written there") from e

    def __enter__(self) -> "RowWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # Parquet needs one schema for the whole file, decided over every row: batches are spilled
    # as parts in their own exact types, and conformed to the final schema at the end.
    def _spill_parquet(self) -> None:
        import pyarrow.parquet as pq

        part = temp_beside(self.path)
        self._parquet_parts.append(part)
        pq.write_table(self._plan.observe(self._parquet_rows), part)
        self._parquet_rows = []

    def _finish_parquet(self) -> None:
        import pyarrow.parquet as pq

        from .parquet import PARQUET_OPTIONS, ROW_GROUP_ROWS

        if self.count and not any(self._parquet_rows) and not self._parquet_parts and not self._plan.columns:
            raise InstructgenError(f"{self.path}: Parquet cannot store rows that have no field at all "
                                   f"({self.count} rows); write .jsonl instead")
        last = self._plan.observe(self._parquet_rows) if self._parquet_rows or not self._parquet_parts else None
        with pq.ParquetWriter(self._tmp, self._plan.schema(), **PARQUET_OPTIONS) as out:
            for part in self._parquet_parts:
                out.write_table(self._plan.conform(pq.read_table(part)), row_group_size=ROW_GROUP_ROWS)
                os.unlink(part)
            if last is not None:
                out.write_table(self._plan.conform(last), row_group_size=ROW_GROUP_ROWS)
        self._parquet_parts, self._parquet_rows = [], []
        self.notes = self._plan.notes()


UNSEEN, NOT_OBJECT = -1, -2  # KeySets' ids of rows written as bytes (keys not known yet), and of non-objects


class KeySets:
    """The top-level keys of each row written: one small id per row into the distinct key sets written
    (UNSEEN for rows written as bytes by workers, whose keys the fill pass reads), and every key seen so far."""

    def __init__(self) -> None:
        self.ids: dict[frozenset, int] = {}
        self.first_keys: list[tuple] = []  # per id, the keys of its first row, in that row's order
        self.per_row = array("i")
        self.unseen = False
        self.order: dict[str, None] = {}  # every key seen so far, in order of first appearance
        self.shapes: set[frozenset] = set()  # the key sets of the rows seen (as they came)
        self.absent: frozenset[str] = frozenset()  # keys never filled
        self._fills: dict[frozenset, tuple[tuple, bytes, int]] = {}  # per key set, for the keys seen so far

    def leave_absent(self, keys: Iterable[str]) -> None:
        self.absent |= frozenset(keys)
        self._fills.clear()

    def see(self, row: dict, keys: frozenset) -> None:
        """Learn the keys of a row of a new shape (before it is written)."""
        self.shapes.add(keys)
        for k in row:
            if k not in self.order:
                self.order[k] = None
                self._fills.clear()

    def fill_for(self, keys: frozenset) -> tuple[tuple, bytes, int]:
        """For a row with `keys`: the keys seen so far it lacks, their `,"k":null` JSON, and the id of the key
        set it is written with."""
        known = self._fills.get(keys)
        if known is None:
            lacking = tuple(k for k in self.order if k not in keys and k not in self.absent)
            suffix = b"".join(b"," + orjson.dumps(k) + b":null" for k in lacking)
            written = tuple(k for k in self.order if k in keys) + lacking  # the order every_key follows
            known = self._fills[keys] = (lacking, suffix, self.lookup_keys(written))
        return known

    def lookup(self, row: Any) -> int:
        """The id of the row's key set (a row that is not an object has none: it is never filled)."""
        return self.lookup_keys(tuple(row)) if type(row) is dict else NOT_OBJECT

    def lookup_keys(self, keys: tuple) -> int:
        key_set = frozenset(keys)
        known = self.ids.get(key_set)
        if known is None:
            known = self.ids[key_set] = len(self.ids)
            self.first_keys.append(keys)
        return known

    def add_rows(self, count: int, shapes: "RowShapes | None") -> None:
        """`count` rows written as bytes: with their shapes known, recorded as if written here; else unseen."""
        if shapes is None or len(shapes[1]) != count:
            self.add_unseen(count)
            return
        first_keys, local = shapes
        ids = [self.lookup_keys(keys) for keys in first_keys]  # in the rows' order: as a reading pass would
        self.per_row.extend(array("i", [ids[i] if i >= 0 else i for i in local]))

    def add_unseen(self, count: int) -> None:
        self.unseen = True
        if count == 1:
            self.per_row.append(UNSEEN)
        else:
            self.per_row.extend(array("i", [UNSEEN]) * count)

    def differ(self) -> bool:
        return self.unseen or len(self.ids) > 1

    def every_key(self) -> list[str]:
        """Every key of the file in order of first appearance (the same whichever path wrote the rows)."""
        order: dict[str, None] = {}
        for known in dict.fromkeys(self.per_row):
            if known >= 0:
                order.update(dict.fromkeys(self.first_keys[known]))
        return list(order)


# the distinct key tuples of some JSONL rows, in first-seen order, and each row's index among them
# (NOT_OBJECT for a row that is not an object)
RowShapes = tuple[list[tuple], array]


def row_shapes(data: bytes) -> RowShapes:
    """The keys of each row of JSONL `data`, for a worker to hand over with its rows (`RowWriter.advance`,
    `append_jsonl`), so that the writer need not read them back: the reading moves to the workers."""
    index: dict[tuple, int] = {}
    local = array("i")
    for line in data.split(b"\n"):
        if line:
            row = orjson.loads(line)
            if type(row) is dict:
                keys = tuple(row)
                local.append(index.setdefault(keys, len(index)))
            else:
                local.append(NOT_OBJECT)
    return list(index), local


def _row_lines(fh: BinaryIO, kind: str) -> Iterator[tuple[bytes, bytes, bytes]]:
    """(before, row JSON, after) of each line of a file this writer wrote: JSONL, or its JSON array
    (one element a line, between '[' and ']')."""
    for line in fh:
        if kind != "json":
            yield b"", line.rstrip(b"\n"), b"\n"
            continue
        body = line.strip()
        if body in (b"[", b"]", b"[]"):
            yield line, b"", b""
            continue
        comma = body.endswith(b",")
        yield b"  ", body[:-1] if comma else body, b",\n" if comma else b"\n"


def fill_missing_keys(path: str, kind: str, keys: KeySets) -> dict[str, int]:
    """Rewrite `path` so every row has every key some row has (`null` where missing), appending missing
    keys to the row's own; rows that have them all are copied byte for byte. {key: rows given it}."""
    opener = gzip.open if kind == "jsonl.gz" else open
    if keys.unseen:  # rows written by workers: read their keys
        with opener(path, "rb") as fh:
            bodies = (body for _, body, _ in _row_lines(fh, kind) if body)
            for i, body in enumerate(bodies):
                if keys.per_row[i] == UNSEEN:
                    row = orjson.loads(body)
                    keys.per_row[i] = keys.lookup(row)
    every = [k for k in keys.every_key() if k not in keys.absent]
    missing = {i: [k for k in every if k not in s] for s, i in keys.ids.items()}
    if not any(missing.values()):
        return {}
    suffix = {i: b"".join(b"," + orjson.dumps(k) + b":null" for k in ks) for i, ks in missing.items()}
    filled: dict[str, int] = {}
    out_path = temp_beside(path)
    try:
        with opener(path, "rb") as src, (gzip.open(out_path, "wb", compresslevel=6) if kind == "jsonl.gz"
                                         else open(out_path, "wb", buffering=1 << 20)) as out:
            i = 0
            for before, body, after in _row_lines(src, kind):
                if body[:1] == b"{" and missing[keys.per_row[i]]:
                    for k in missing[keys.per_row[i]]:
                        filled[k] = filled.get(k, 0) + 1
                    body = body[:-1] + suffix[keys.per_row[i]] + b"}" if body != b"{}" else \
                        b"{" + suffix[keys.per_row[i]][1:] + b"}"
                if body:
                    i += 1
                out.write(before + body + after)
        os.replace(out_path, path)
    except BaseException:
        unlink_quietly(out_path)
        raise
    return filled


def _why(e: OSError) -> str:
    if e.errno == errno.ENOSPC or "No space left" in str(e):
        return "no space left on the device"
    if e.errno == errno.EFBIG or "File too large" in str(e):
        return "file too large for a file size limit, e.g. ulimit -f, or for the file system"
    return e.strerror or str(e)


def write_rows(path: str | os.PathLike, rows: Iterable[Any]) -> int:
    with RowWriter(path) as w:
        w.write_many(rows)
    return w.count


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    tmp = temp_beside(path)
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        finish_temp(tmp, path)
    except OSError as e:
        unlink_quietly(tmp)
        raise InstructgenError(f"{path}: cannot write ({_why(e)}); the partial file was removed") from e
    except BaseException:
        unlink_quietly(tmp)
        raise
