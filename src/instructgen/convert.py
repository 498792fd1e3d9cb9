"""The convert stage: rows of any format -> canonical records -> rows of a target format.

`read_records` and `write_records` are plain generators/functions over
streams, so other stages (dedup, filter, the Prefect flows) read and write
through the same code.

The direct path: a row that is a plain conversation (no tools, no preference,
no field its format leaves undefined) of a format with `read_plain`, written to
a format with `write_plain` without loss, goes row -> row without a
Conversation (`formats.direct`; the same bytes as the canonical path, which
the tests check over every such pair). Every other row takes the canonical
path, in order. JSONL written as JSONL is converted in blocks of raw lines
(`convert_block`), by a process pool when the file is large.
"""

from __future__ import annotations

import io
import itertools
import os
import sys
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Iterator

import orjson

from . import convert_parallel, formats
from .errors import Ambiguous, BadRecord, CannotRepresent, InstructgenError
from .formats.moss_plugins import plugin_meta_losses
from .formats.base import DumpOptions, extra_fields_fate
from .formats.meaning import PLACEHOLDER, meaning_problems
from .io import MAX_ROW_BYTES, Row, RowWriter, jsonl_safe, kind_of, read_rows, rows_from_lines
from .io import open_source as open_file
from .record import Conversation
from .progress import bar as progress_bar
from .runlog import RunLog


NOTES = "notes"  # log.info key: what the conversion did that is not a loss (fields moved to meta, ...), counted


class StrictError(InstructgenError):
    pass


@dataclass(slots=True)
class ReadOptions:
    from_format: str | None = None  # None: detect per file
    columns: dict[str, str] | None = None  # format field -> column name in the file
    merge_turns: bool = False  # rows that are a prefix of the next row's conversation are merged into it
    strict: bool = False
    announce: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr)


def parse_columns(spec: str | None) -> dict[str, str] | None:
    """'prompt=content,response=summary' -> {'prompt': 'content', 'response': 'summary'}."""
    if not spec:
        return None
    mapping = {}
    for part in spec.split(","):
        field, sep, column = part.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise InstructgenError(f"--columns: expected FIELD=COLUMN pairs separated by commas, got {part!r}")
        mapping[field.strip()] = column.strip()
    return mapping


def read_records(paths: Iterable[str], log: RunLog, opts: ReadOptions | None = None) -> Iterator[Conversation]:
    """Canonical records from files; every bad row is dropped into `log` with its reason."""
    opts = opts or ReadOptions()
    for path in paths:
        spec, rows = open_source(path, log, opts)
        yield from records_of(rows, spec, log, opts)


def records_of(rows: Iterable[Row], spec: formats.FormatSpec, log: RunLog, opts: ReadOptions) -> Iterator[Conversation]:
    """The records of one file's rows (merged per --merge-turns)."""
    records = parse_rows(rows, spec, log, opts)
    return _merge_turns(records, log) if opts.merge_turns else records


def open_source(path: str, log: RunLog, opts: ReadOptions,
                detected: Callable[[str, str], None] | None = None) -> tuple[formats.FormatSpec, Iterator[Row]]:
    """The format of one file (given, or detected from its first rows and announced, through
    `detected(path, format)` when given) and its rows."""
    rows = read_rows(path)
    if opts.columns:
        rows = rename_rows(rows, opts.columns)
    if opts.from_format:
        return formats.get(opts.from_format), rows
    head = list(itertools.islice(rows, formats.DETECT_SAMPLE))
    good = [r.data for r in head if r.error is None]
    if not good:
        _drop_all(head, log, opts)
        raise InstructgenError(_no_record_message(path, head))
    spec = formats.get(formats.detect_rows(good, path))
    if detected is not None:
        detected(path, spec.name)
    else:
        opts.announce(f"{path}: detected format {spec.name}")
    return spec, itertools.chain(head, rows)


def parse_rows(rows: Iterable[Row], spec: formats.FormatSpec, log: RunLog, opts: ReadOptions) -> Iterator[Conversation]:
    for row in rows:
        log.took_in()
        if row.error is not None:
            _reject(log, opts, row.origin, row.error, row.raw)
            continue
        if not isinstance(row.data, dict):
            _reject(log, opts, row.origin, f"expected a JSON object, got {_json_type(row.data)}", row.raw or row.data)
            continue
        try:
            conv = spec.parse(row.data).check()
        except BadRecord as e:
            _reject(log, opts, row.origin, f"not a valid {spec.name} record: {e.reason}", row.raw or row.data)
            continue
        conv.origin = row.origin
        conv.source_format = spec.name
        if opts.columns:
            conv.hints["columns"] = opts.columns
        yield conv


def _merge_turns(records: Iterator[Conversation], log: RunLog) -> Iterator[Conversation]:
    """Join per-turn rows (each repeating the earlier turns as history) into one conversation."""
    pending: Conversation | None = None
    for conv in records:
        if pending is not None:
            n = len(pending.messages)
            if len(conv.messages) > n and _same_messages(conv.messages[:n], pending.messages):
                log.drop(pending.origin, "earlier turns of the next record (merged into it)", None, kind="duplicates",
                         merged_into=conv.origin)
                pending = conv
                continue
            yield pending
        pending = conv
    if pending is not None:
        yield pending


def _same_messages(a, b) -> bool:
    return all(x.role == y.role and x.content == y.content for x, y in zip(a, b))


def write_records(
    records: Iterable[Conversation], writer: RowWriter, to_format: str, log: RunLog,
    opts: DumpOptions | None = None, strict: bool = False,
) -> None:
    """Dump records in `to_format` into `writer`; losses are counted, unrepresentable records dropped
    (in a format that writes the conversation whole, also those `validate` would call invalid)."""
    spec = writable(to_format)
    if spec.keep_absent and hasattr(writer, "leave_absent"):
        writer.leave_absent(spec.keep_absent)
    opts = opts or DumpOptions()
    notes = log.info.setdefault(NOTES, Counter())
    growth = ExplodeGrowth(opts.max_explode_growth, log) if explodes(opts) else None
    for conv in records:
        losses: set[str] = set()
        try:
            if spec.whole and (problems := meaning_problems(conv, spec.alternates, spec.answers_calls)):
                raise CannotRepresent(problems[0])
            rows = spec.dump(conv, opts, losses.add)
            if conv.extra and (problem := _media_mismatch(rows)):
                raise CannotRepresent(problem)
        except CannotRepresent as e:
            if strict:
                raise StrictError(f"{conv.origin}: cannot write as {to_format}: {e.reason}") from None
            log.drop(conv.origin, f"cannot write as {to_format}: {e.reason}", formats.source_row(conv))
            continue
        if not opts.keep_meta and conv.meta.get("moss_plugins") and "moss_plugins" not in spec.native_meta:
            losses.update(plugin_meta_losses(conv))  # they travel only in the meta channel
        fate, fields = extra_fields_fate(conv, to_format, opts)
        for name in fields:
            if fate == "dropped":
                losses.add(f"field {name!r} dropped (--no-meta)")
            elif fate == "meta":
                notes[f"field {name!r} carried in meta"] += 1
        if losses and strict:
            raise StrictError(f"{conv.origin}: writing as {to_format} would lose information: {', '.join(sorted(losses))}")
        for what in losses:
            log.lost(what)
        if spec.notes is not None:
            notes.update(spec.notes(conv, opts))
        if len(rows) > 1:
            notes["records written as several rows (--turns explode)"] += 1
        if growth is not None:
            growth.add(conv, rows)
        columns = opts.columns or (conv.hints.get("columns") if conv.source_format == to_format else None)
        for row in rows:
            writer.write(_rename_out(row, columns) if columns else row)
        log.emitted()


EXPLODE_FLOOR = 1 << 20  # characters: an exploded output smaller than this is never refused


def explodes(opts: DumpOptions) -> bool:
    return opts.turns == "explode" or opts.explode_turns


class ExplodeGrowth:
    """How much `--turns explode` grows the text: each row repeats the turns before it, so a record of
    n turns writes about n²/2 turns. Past `cap` times the records' own text (and EXPLODE_FLOOR) the
    conversion stops before anything is written; the final ratio goes to log.info["explode_growth"]."""

    def __init__(self, cap: float, log: RunLog | None = None) -> None:
        self.cap, self.log = cap, log
        self.text_in = self.text_out = 0

    def add(self, conv: Conversation, rows: list[dict]) -> None:
        self.text_in += sum(len(m.content) for m in conv.messages) + sum(
            len(m.content) for m in (conv.chosen, conv.rejected) if m is not None)
        self.text_out += text_size(rows)
        if self.log is not None:
            self.log.info["explode_growth"] = round(self.ratio, 1)
        if self.cap and self.text_out > EXPLODE_FLOOR and self.ratio > self.cap:
            raise InstructgenError(too_much_growth(self.ratio, self.cap, "the rows written so far hold"))

    @property
    def ratio(self) -> float:
        return self.text_out / max(self.text_in, 1)


def too_much_growth(ratio: float, cap: float, what: str) -> str:
    return (f"--turns explode: {what} {ratio:.0f}x the text of the records they come from (every row repeats "
            f"the turns before it), past the cap of {cap:g}x; nothing was written. Pass --max-explode-growth 0 "
            "(or a higher cap) to write it anyway, or --turns last for one row per record")


def text_size(value: Any) -> int:
    """The characters of every string in a JSON value."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(text_size(v) for v in value.values())
    if isinstance(value, list):
        return sum(text_size(v) for v in value)
    return 0


def estimate_explode_growth(inputs: list[str], to_format: str, read_opts: ReadOptions, dump_opts: DumpOptions,
                            sample: int = 1000) -> float | None:
    """The growth `--turns explode` gives the first `sample` records of the inputs (None: nothing to sample,
    e.g. stdin), said before converting so that a quadratic output is no surprise."""
    spec = writable(to_format)
    growth = ExplodeGrowth(0)
    quiet = replace(read_opts, announce=lambda _msg: None, strict=False)
    files = [p for p in inputs if p != "-"]
    for conv in itertools.islice(read_records(files, RunLog("estimate"), quiet), sample):
        try:
            growth.add(conv, spec.dump(conv, dump_opts, lambda _what: None))
        except CannotRepresent:
            continue
    return growth.ratio if growth.text_in else None


def _media_mismatch(rows: list[dict]) -> str | None:
    """Why a written row's media files no longer match the placeholders its turns keep (the turns that
    held some were dropped), or None. LLaMA-Factory refuses such a row."""
    for row in rows:
        for key, mark in PLACEHOLDER.items():
            files = row.get(key)
            if isinstance(files, list):
                marks = sum(_count(v, mark) for k, v in row.items() if k not in (key, "meta"))
                if marks != len(files):
                    return (f"the turns written keep {marks} {mark} placeholder{'s' if marks != 1 else ''} for "
                            f"{len(files)} {key} (write a format that keeps the whole conversation)")
    return None


def _count(value: Any, mark: str) -> int:
    if isinstance(value, str):
        return value.count(mark)
    if isinstance(value, dict):
        return sum(_count(v, mark) for v in value.values())
    if isinstance(value, list):
        return sum(_count(v, mark) for v in value)
    return 0


def writable(to_format: str) -> formats.FormatSpec:
    spec = formats.get(to_format)
    if not spec.writable:
        names = ", ".join(formats.names(writable_only=True))
        raise InstructgenError(f"{to_format} can be read but not written; write one of: {names}")
    return spec


def convert(
    inputs: list[str], output: str, to_format: str, log: RunLog,
    read_opts: ReadOptions | None = None, dump_opts: DumpOptions | None = None, progress: bool = False,
    workers: int = 1,
) -> None:
    """The whole stage: read every input, write one output, count everything in `log`.

    With workers > 1, large JSONL inputs written to JSONL are converted by a process pool
    (convert_parallel: same output, same order, same counts).
    """
    read_opts = read_opts or ReadOptions()
    dump_opts = dump_opts or DumpOptions()
    writable(to_format)
    bar = progress_bar(desc="convert") if progress else None
    detected = DetectedFormats(read_opts.announce)
    # OpenAI's own layouts hold only the keys OpenAI defines, and its checks refuse `"tools": null`
    stable_keys = not (to_format == "openai" and dump_opts.layout in ("strict", "preference"))
    with RowWriter(output, stable_keys=stable_keys) as writer:
        writer.leave_absent(formats.get(to_format).keep_absent)
        for path in inputs:
            spec, rows = open_in_folder(path, log, read_opts, detected)
            if _by_lines(path, read_opts):
                next(iter(rows), None)  # an empty or blank file is an error (read_rows says so) before anything
                del rows  # read again as raw lines
                config = (spec.name, to_format, read_opts.columns, read_opts.strict, dump_opts)
                if workers > 1 and convert_parallel.worth_parallel(path, writer, read_opts.merge_turns):
                    convert_parallel.convert_file(path, writer, log, convert_block, convert_range, config,
                                                  workers, bar)
                else:
                    with open_file(path) as source:  # a truncated .gz ends the lines instead of raising
                        convert_lines(source.complete_lines(), path, 1, writer, log, config, bar)
                        if (cut := source.cut_row(path)) is not None:  # the lines before it were converted
                            log.took_in()
                            _reject(log, read_opts, cut.origin, cut.error, cut.raw)
                continue
            direct = None if read_opts.merge_turns else formats.direct(spec.name, to_format, dump_opts)
            if direct is not None:
                _write_rows_direct(rows, spec, direct, writer, to_format, log, read_opts, dump_opts, bar)
                continue
            records = records_of(rows, spec, log, read_opts)
            if bar is not None:
                records = _counting(records, bar)
            write_records(records, writer, to_format, log, dump_opts, strict=read_opts.strict)
    detected.finish()
    for key, n in writer.filled.items():
        log.info.setdefault(NOTES, Counter())[f"key {key!r} written as null (every row carries the same keys)"] += n
    if bar is not None:
        bar.close()
    if log.n_in and log.n_out == 0 and log.dropped["rejected"] == log.n_in:
        named = inputs[0] if len(inputs) == 1 else f"{inputs[0]} and {len(inputs) - 1} more files"
        raise InstructgenError(f"no record could be read from {named}; see {log.rejects_path}")


def open_in_folder(path: str, log: RunLog, read_opts: ReadOptions, detected: "DetectedFormats"):
    """open_source, except that a file no format fits on its own (one odd record, say) is read in the
    format detected for the files before it in its folder: its bad rows are then rejected with reasons."""
    try:
        return open_source(path, log, read_opts, detected)
    except Ambiguous:
        folder_format = detected.formats.get(os.path.dirname(path))
        if read_opts.from_format or folder_format is None:
            raise
    read_opts.announce(f"{path}: no format fits it on its own; read as {folder_format}, like the files before it "
                       "in its folder")
    return open_source(path, log, replace(read_opts, from_format=folder_format))


class DetectedFormats:
    """Announces the format detected per file; files of one folder detected alike are announced once."""

    def __init__(self, announce: Callable[[str], None]) -> None:
        self.announce = announce
        self.last: tuple[str, str] | None = None
        self.quiet: Counter[tuple[str, str]] = Counter()
        self.formats: dict[str, str] = {}  # folder -> the format last detected there

    def __call__(self, path: str, name: str) -> None:
        key = (os.path.dirname(path), name)
        self.formats[key[0]] = name
        if key == self.last:
            self.quiet[key] += 1
            return
        self.last = key
        self.announce(f"{path}: detected format {name}")

    def finish(self) -> None:
        for (folder, name), n in self.quiet.items():
            self.announce(f"{folder or '.'}: {n} more file{'s' if n != 1 else ''} detected as {name}")


def _by_lines(path: str, read_opts: ReadOptions) -> bool:
    """A JSONL file: converted from its raw lines."""
    return path != "-" and kind_of(path) in ("jsonl", "jsonl.gz") and not read_opts.merge_turns


def _write_rows_direct(rows: Iterable[Row], spec: formats.FormatSpec, direct, writer, to_format: str, log: RunLog,
                       read_opts: ReadOptions, dump_opts: DumpOptions, bar) -> None:
    """Rows through the direct path, the others (kept in order) through the canonical one."""
    notes = log.info.setdefault(NOTES, Counter())
    row_note = getattr(direct, "row_note", None)
    pending: list[Row] = []
    for row in rows:
        out = direct(row.data, row.origin, notes) if row.error is None and type(row.data) is dict else None
        if out is None:
            pending.append(row)
            continue
        if pending:
            write_records(parse_rows(pending, spec, log, read_opts), writer, to_format, log, dump_opts,
                          strict=read_opts.strict)
            pending = []
        writer.write(out)
        log.took_in()
        log.emitted()
        if row_note:
            notes[row_note] += 1
        if bar is not None:
            bar.update()
    if pending:
        write_records(parse_rows(pending, spec, log, read_opts), writer, to_format, log, dump_opts,
                      strict=read_opts.strict)


def convert_range(name: str, start_byte: int, end_byte: int, start: int, log: RunLog, config) -> bytes:
    """The JSONL of the lines of file `name` from byte `start_byte` (the start of line `start`) to `end_byte`:
    what each worker of `convert_parallel` runs on a range."""
    out = io.BytesIO()
    with open(name, "rb") as fh:
        fh.seek(start_byte)
        convert_lines(lines_until(fh, end_byte - start_byte), name, start, PartFile(out), log, config)
    return out.getvalue()


def lines_until(fh, size: int) -> Iterator[bytes]:
    for line in fh:
        yield line
        size -= len(line)
        if size <= 0:
            return


class PartFile:
    """A part file as `convert_lines` writes it: rows or JSONL lines."""

    def __init__(self, fh) -> None:
        self.write_bytes = fh.write

    def write(self, row: Any) -> None:
        self.write_bytes(jsonl_safe(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)))

    def append_jsonl(self, data: bytes, count: int) -> None:
        self.write_bytes(jsonl_safe(data))


def convert_block(lines: list[bytes], name: str, start: int, log: RunLog, config) -> bytes:
    """The JSONL of a block of JSONL lines (line `start` of file `name` first), counted in `log`:
    what each worker of `convert_parallel` runs."""
    out = JsonlBlob()
    convert_lines(lines, name, start, out, log, config)
    return b"".join(out.parts)


def convert_lines(lines: Iterable[bytes], name: str, start: int, out, log: RunLog, config, bar=None,
                  skip: Callable[[int, bytes], bool] | None = None) -> None:
    """Convert JSONL lines (line `start` of file `name` first) into `out` (anything with `write(row)`):
    a line that is a plain record takes the direct path, the others the canonical one, in order.
    `skip(line number, line)`: lines it says True to are left out (it accounts for them itself)."""
    spec_name, to_format, columns, strict, dump_opts = config
    opts = ReadOptions(from_format=spec_name, columns=columns, strict=strict)
    spec = formats.get(spec_name)
    jsonl = _takes_jsonl(out)  # the direct path then hands over JSONL lines
    direct = None if columns else formats.direct(spec_name, to_format, dump_opts, jsonl=jsonl)
    if direct is None:
        for run_start, run in _runs(lines, start, skip):
            _canonical_lines(run, name, run_start, spec, out, to_format, log, opts, dump_opts)
        return
    notes = log.info.setdefault(NOTES, Counter())
    needs_origin, row_note = getattr(direct, "needs_origin", True), getattr(direct, "row_note", None)
    write, loads = (out.append_jsonl if jsonl else out.write), orjson.loads
    pending: list[bytes] = []
    pending_start = n = 0
    for lineno, line in enumerate(lines, start):
        if skip is not None and skip(lineno, line):
            if pending:  # converted now, so that their line numbers stay theirs
                _canonical_lines(pending, name, pending_start, spec, out, to_format, log, opts, dump_opts)
                pending = []
            continue
        row = None
        if len(line) <= MAX_ROW_BYTES:
            try:
                data = loads(line)
            except orjson.JSONDecodeError:
                data = None
            if type(data) is dict:
                row = direct(data, f"{name}:{lineno}" if needs_origin else "", notes)
        if row is None:  # the canonical path reads it (and says why, if it cannot)
            if not pending:
                pending_start = lineno
            pending.append(line)
            continue
        if pending:
            _canonical_lines(pending, name, pending_start, spec, out, to_format, log, opts, dump_opts)
            pending = []
        if jsonl:
            write(row, 1)
        else:
            write(row)
        n += 1
        if bar is not None and not n % 1024:
            bar.update(1024)
    if pending:
        _canonical_lines(pending, name, pending_start, spec, out, to_format, log, opts, dump_opts)
    log.took_in(n)
    log.emitted(n)
    if row_note and n:
        notes[row_note] += n


RUN_LINES = 10_000


def _runs(lines: Iterable[bytes], start: int, skip) -> Iterator[tuple[int, Iterable[bytes]]]:
    """(number of the first line, lines) of the stretches of consecutive lines `skip` keeps, at most
    RUN_LINES each (all of `lines` at once, unread, without `skip`)."""
    if skip is None:
        yield start, lines
        return
    run: list[bytes] = []
    run_start = start
    for lineno, line in enumerate(lines, start):
        skipped = skip(lineno, line)  # once: it accounts for the line
        if skipped or len(run) >= RUN_LINES:
            if run:
                yield run_start, run
            run = []
            if skipped:
                continue
        if not run:
            run_start = lineno
        run.append(line)
    if run:
        yield run_start, run


def _takes_jsonl(out) -> bool:
    """`out` takes rows already serialised as JSONL lines (`append_jsonl`)."""
    return isinstance(out, (JsonlBlob, PartFile)) or (isinstance(out, RowWriter) and out.takes_jsonl)


def _canonical_lines(lines: list[bytes], name: str, start: int, spec: formats.FormatSpec, out, to_format: str,
                     log: RunLog, opts: ReadOptions, dump_opts: DumpOptions) -> None:
    rows = rows_from_lines(lines, name, start)
    if opts.columns:
        rows = rename_rows(rows, opts.columns)
    write_records(parse_rows(rows, spec, log, opts), out, to_format, log, dump_opts, strict=opts.strict)


class JsonlBlob:
    """A writer that serialises rows to JSONL bytes."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, row: Any) -> None:
        self.parts.append(jsonl_safe(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)))

    def append_jsonl(self, data: bytes, count: int) -> None:
        self.parts.append(jsonl_safe(data))


def _counting(records: Iterator[Conversation], bar) -> Iterator[Conversation]:
    for conv in records:
        bar.update()
        yield conv


# -- helpers -------------------------------------------------------------------------------------

def _reject(log: RunLog, opts: ReadOptions, origin: str, reason: str, raw: object) -> None:
    if opts.strict:
        raise StrictError(f"{origin}: {reason}")
    log.drop(origin, reason, raw)


def _drop_all(rows: list[Row], log: RunLog, opts: ReadOptions) -> None:
    for row in rows:
        log.took_in()
        log.drop(row.origin, row.error or "unreadable", row.raw)


def _no_record_message(path: str, head: list[Row]) -> str:
    if not head:
        return f"{path}: the file is empty; nothing to convert"
    first = head[0]
    return f"{first.origin}: {first.error}; no record in {path} could be read"


def rename_rows(rows: Iterable[Row], columns: dict[str, str]) -> Iterator[Row]:
    """Rows with the file's column names mapped back to the format's field names (`--columns`)."""
    back = {column: field for field, column in columns.items()}
    for row in rows:
        if isinstance(row.data, dict):
            row.data = {back.get(k, k): v for k, v in row.data.items()}
        yield row


def _rename_out(row: dict, columns: dict[str, str]) -> dict:
    return {columns.get(k, k): v for k, v in row.items()}


def _json_type(value: object) -> str:
    return {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
            type(None): "null"}.get(type(value), type(value).__name__)
