"""Parquet without surprises: one schema from every row, and every value read back as it was written.

How a top-level column is stored, decided over ALL rows (never from the first one):

- natively, when Arrow holds every value of it exactly (strings, ints, lists of strings,
  lists of objects that all have the same keys, ...);
- as JSON text in a plain string column otherwise: mixed types (MOSS `conversation_id` is an int in some records and a string in others),
  objects whose keys vary between rows (tool JSON schemas, `meta`, MOSS `chat`: Arrow would pad
  every object with the keys of all the others), empty objects, integers over 64 bits, ints mixed
  with floats. Each such column is named, with the reason and its number of values, in `notes()`
  and in the file's metadata (key `instructgen`, `json_columns`).

Plain strings, not Arrow's `arrow.json` extension type: `datasets` before 5.0 (LLaMA-Factory pins
4.0) refuses that type ("does not have a datasets dtype equivalent"), and polars and pandas read a
string column everywhere; such a column is parsed with `json.loads` by whoever needs its value.

`read_rows` decodes JSON columns back, so our own files round-trip exactly. One documented
exception: at the top level a null value and a missing field are the same thing (Parquet cannot
tell them apart), and read back as a missing field.

`ColumnPlan` is the one place that decides; `RowWriter` (batches spilled as part files, unified
at the end) and the Hub publisher (two passes over a spool) both use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import orjson

PARQUET_OPTIONS = dict(compression="snappy", use_dictionary=True, write_statistics=True, version="2.6",
                       store_schema=True)
ROW_GROUP_ROWS = 10_000
METADATA_KEY = b"instructgen"
_ROWS_ONLY = "__instructgen_rows_without_fields__"


@dataclass(slots=True)
class _Column:
    types: list[Any] = field(default_factory=list)  # distinct native Arrow types seen (never null)
    kinds: set[str] = field(default_factory=set)  # JSON kinds seen: string, integer, number, boolean, object, array
    json_reason: str | None = None  # why the column is stored as JSON text
    values: int = 0  # non-null values seen


class ColumnPlan:
    """How each top-level column is stored, decided over every batch of rows shown to `observe`."""

    def __init__(self) -> None:
        self.columns: dict[str, _Column] = {}

    # -- pass 1 -----------------------------------------------------------------------------------
    def observe(self, rows: list[dict[str, Any]]):
        """Record the columns of one batch; returns the batch as a table in its own exact types
        (JSON text where Arrow would change a value), which `conform` later turns into the final schema."""
        import pyarrow as pa

        for row in rows:
            for key in row:
                if key not in self.columns:
                    self.columns[key] = _Column()
        arrays, names = [], []
        for name, col in self.columns.items():
            values = [row.get(name) for row in rows]
            arrays.append(self._observe_column(col, values))
            names.append(name)
        if not names:  # rows without fields so far: keep their count (conform fills them with nulls)
            return pa.table({_ROWS_ONLY: pa.nulls(len(rows))})
        return pa.Table.from_arrays(arrays, names=names)

    def _observe_column(self, col: _Column, values: list[Any]):
        import pyarrow as pa

        col.values += len(values) - values.count(None)
        if col.json_reason is not None:
            return _marked_json_array(values)
        arr = exact_array(values)
        if arr is None:
            col.kinds |= {_kind(v) for v in values if v is not None}
            col.json_reason = _reason(col.kinds)
            return _marked_json_array(values)
        if not pa.types.is_null(arr.type) and arr.type not in col.types:
            col.kinds |= _kinds_of_type(arr.type)
            col.types.append(arr.type)
            if _unified(col.types) is None:  # earlier batches stay native in their part; conform() converts them
                col.json_reason = _reason(col.kinds) if len(col.kinds) > 1 else \
                    "objects or lists whose shape varies between rows"
        return arr

    # -- the result -------------------------------------------------------------------------------
    def schema(self):
        import pyarrow as pa

        fields = []
        for name, col in self.columns.items():
            if col.json_reason is not None:
                fields.append(pa.field(name, pa.string()))
            else:
                fields.append(pa.field(name, _unified(col.types) if col.types else pa.null()))
        meta = {"json_columns": {n: c.json_reason for n, c in self.columns.items() if c.json_reason}}
        return pa.schema(fields, metadata={METADATA_KEY: orjson.dumps(meta)})

    def json_columns(self) -> dict[str, str]:
        """Column -> why it is stored as JSON text."""
        return {n: c.json_reason for n, c in self.columns.items() if c.json_reason}

    def notes(self) -> list[str]:
        """One line per column stored as JSON text, for the user."""
        return [f"parquet column {name!r}: {col.json_reason}; stored as JSON text ({col.values} values, "
                f"read back exactly by instructgen and by datasets as Json)"
                for name, col in self.columns.items() if col.json_reason]

    def conform(self, table):
        """A table returned by `observe` in the final schema (columns it lacks are null)."""
        import pyarrow as pa

        schema = self.schema()
        json_names = self.json_columns()
        arrays = []
        for f in schema:
            if f.name not in table.column_names:
                arrays.append(pa.nulls(table.num_rows, f.type))
                continue
            column = table.column(f.name)
            if f.name in json_names:  # JSON text already (marked by observe), or native values of an earlier batch
                arrays.append(column.cast(pa.string()) if column.type == pa.json_() else json_array(column.to_pylist()))
            elif column.type == f.type:
                arrays.append(column)
            else:  # only null leaves differ (checked by _unified), so the cast changes no value
                arrays.append(column.cast(f.type))
        return pa.Table.from_arrays(arrays, schema=schema)

    def table(self, rows: list[dict[str, Any]]):
        """Rows in the final schema, for a second pass over rows that were all observed before."""
        import pyarrow as pa

        schema = self.schema()
        arrays = []
        for f in schema:
            values = [row.get(f.name) for row in rows]
            json_text = f.name in self.columns and self.columns[f.name].json_reason is not None
            arrays.append(json_array(values) if json_text else pa.array(values, type=f.type))
        return pa.Table.from_arrays(arrays, schema=schema)


def exact_array(values: list[Any]):
    """An Arrow array holding exactly these values, or None when Arrow would change one of them
    (pad an object with another's keys, turn an int into a float) or cannot hold them."""
    import pyarrow as pa

    try:
        arr = pa.array(values)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return None
    if _has_empty_struct(arr.type) or not _holds_exactly(values, arr.type):
        return None
    return arr


def _holds_exactly(values: list[Any], t) -> bool:
    """Whether Arrow type t, inferred from these values, gives them back unchanged. Only two things
    can change: a struct pads an object with the keys of the others (a key missing here comes back
    as null), and a float column turns ints and booleans into floats (checked in a test over every pair
    of JSON kinds). Key order is not kept (JSON objects have none)."""
    import pyarrow as pa

    if pa.types.is_struct(t):
        names = {t.field(i).name for i in range(t.num_fields)}
        present = [v for v in values if v is not None]
        if any(not isinstance(v, dict) or v.keys() != names for v in present):
            return False
        return all(_holds_exactly([v[f.name] for v in present], f.type) for f in t if _may_change_values(f.type))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        if not _may_change_values(t.value_type):
            return True
        return _holds_exactly([x for v in values if v is not None for x in v], t.value_type)
    if pa.types.is_floating(t):  # Arrow turns ints and booleans among floats into floats
        return all(type(v) is float for v in values if v is not None)
    return True


def json_array(values: list[Any]):
    """JSON text of each value, in a string array."""
    import pyarrow as pa

    return pa.array([None if v is None else orjson.dumps(v).decode() for v in values], type=pa.string())


def _marked_json_array(values: list[Any]):
    """JSON text typed as Arrow's `arrow.json` extension: only in the batches `observe` returns, so that
    `conform` tells them from native strings; the file itself gets plain strings."""
    import pyarrow as pa

    return pa.ExtensionArray.from_storage(pa.json_(), json_array(values))


def _may_change_values(t) -> bool:
    """Only structs (padded with missing keys) and floats (ints promoted) can differ from the input."""
    import pyarrow as pa

    if pa.types.is_struct(t):
        return True
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _may_change_values(t.value_type)
    return pa.types.is_floating(t)


def _has_empty_struct(t) -> bool:
    import pyarrow as pa

    if pa.types.is_struct(t):
        return t.num_fields == 0 or any(_has_empty_struct(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _has_empty_struct(t.value_type)
    return False


def _unified(types: list[Any]):
    """The one type all these hold exactly in, or None. Types may differ only where one has nulls
    (an all-null field, a batch of empty lists); Arrow's unification never adds keys here."""
    import pyarrow as pa

    if len(types) == 1:
        return types[0]
    try:
        merged = pa.unify_schemas([pa.schema([pa.field("c", t)]) for t in types]).field("c").type
    except (pa.ArrowException, TypeError, ValueError):
        return None
    return merged if all(_fits(t, merged) for t in types) else None


def _fits(t, u) -> bool:
    """t equals u except that some of t's leaves are null."""
    import pyarrow as pa

    if pa.types.is_null(t):
        return True
    if pa.types.is_struct(t):
        return (pa.types.is_struct(u) and t.num_fields == u.num_fields
                and all(t.field(i).name == u.field(i).name and _fits(t.field(i).type, u.field(i).type)
                        for i in range(t.num_fields)))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return type(t) is type(u) and _fits(t.value_type, u.value_type)
    return t == u


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    return type(value).__name__


def _kinds_of_type(t) -> set[str]:
    import pyarrow as pa

    for test, kind in ((pa.types.is_boolean, "boolean"), (pa.types.is_integer, "integer"),
                       (pa.types.is_floating, "number"), (pa.types.is_string, "string"),
                       (pa.types.is_large_string, "string"), (pa.types.is_struct, "object"),
                       (pa.types.is_list, "array"), (pa.types.is_large_list, "array")):
        if test(t):
            return {kind}
    return {str(t)}


def _reason(kinds: set[str]) -> str:
    if len(kinds) > 1:
        return f"mixed types ({', '.join(sorted(kinds))})"
    if kinds <= {"object", "array"}:
        return "free-form objects (keys or shapes vary between rows, or an empty object)"
    return "values Arrow cannot hold exactly (e.g. integers over 64 bits)"


# -- reading -----------------------------------------------------------------------------------------

def iter_parquet(name: str, batch_rows: int = 8192) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(row number, row, error) for each row; JSON-text columns decoded; null top-level fields left out."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(name)
    json_cols = {f.name for f in pf.schema_arrow if f.type == pa.json_()}
    meta = (pf.schema_arrow.metadata or {}).get(METADATA_KEY)
    if meta:  # also when a reader lacks the extension type and sees plain strings
        try:
            json_cols |= set(orjson.loads(meta).get("json_columns", {}))
        except (orjson.JSONDecodeError, AttributeError):
            pass
    index = 0
    for batch in pf.iter_batches(batch_size=batch_rows):
        for row in batch.to_pylist():
            index += 1
            try:
                yield index, {k: (orjson.loads(v) if k in json_cols and isinstance(v, str) else v)
                              for k, v in row.items() if v is not None}, None
            except orjson.JSONDecodeError as e:
                yield index, None, f"a JSON column holds invalid JSON ({e})"
