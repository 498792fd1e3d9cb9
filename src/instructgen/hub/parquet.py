"""Parquet shards in and out, and the languages a card names.

Parquet columns: a column is stored natively when Arrow holds every value exactly (checked by
comparing the JSON of the values before and after); otherwise (dicts whose keys vary between rows,
like MOSS's `chat`, mixed types, empty objects) it is stored as Arrow's JSON type, which
`datasets` shows as `Json()` and decodes back into the same objects. Writer options are fixed and
nothing time-dependent is written, so the same rows give the same bytes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import orjson

PARQUET_OPTIONS = dict(compression="snappy", use_dictionary=True, write_statistics=True, version="2.6",
                       store_schema=True, row_group_size=10_000)


def _iter_batches(spool: Path, size: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    with open(spool, "rb") as fh:
        for line in fh:
            batch.append(orjson.loads(line))
            if len(batch) >= size:
                yield batch
                batch = []
    if batch:
        yield batch


def _exact_array(values: list):
    """An Arrow array holding exactly these values, or None when Arrow would change them."""
    import pyarrow as pa

    try:
        arr = pa.array(values)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return None
    if _has_empty_struct(arr.type) or orjson.dumps(arr.to_pylist()) != orjson.dumps(values):
        return None
    return arr


def _has_empty_struct(t) -> bool:
    import pyarrow as pa

    if pa.types.is_struct(t):
        return t.num_fields == 0 or any(_has_empty_struct(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _has_empty_struct(t.value_type)
    return False


def spool_to_parquet(spool: Path, config_dir: Path, split: str, shard_rows: int
                     ) -> tuple[list[str], list[tuple[str, str]], list[dict]]:
    """Rows of a JSONL spool -> <split>-0000i-of-0000n.parquet shards; returns (file names, schema, 2 examples)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, None] = {}
    native: dict[str, bool] = {}
    types: dict[str, set] = {}
    n_batches, examples = 0, []
    for batch in _iter_batches(spool, shard_rows):  # pass 1: the schema that holds every value exactly
        n_batches += 1
        examples += batch[: 2 - len(examples)]
        for row in batch:
            for k in row:
                columns.setdefault(k)
        for col in columns:
            values = [row.get(col) for row in batch]
            arr = _exact_array(values) if native.get(col, True) else None
            native[col] = arr is not None
            if arr is not None and not pa.types.is_null(arr.type):
                types.setdefault(col, set()).add(arr.type)
    schema = pa.schema([
        pa.field(col, next(iter(types[col])) if len(types.get(col, ())) == 1 else pa.null())
        if native[col] and len(types.get(col, ())) <= 1 else pa.field(col, pa.json_())
        for col in columns
    ])
    config_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for i, batch in enumerate(_iter_batches(spool, shard_rows)):  # pass 2: write the shards
        arrays = []
        for f in schema:
            values = [row.get(f.name) for row in batch]
            if f.type == pa.json_():
                values = [None if v is None else orjson.dumps(v).decode() for v in values]
            arrays.append(pa.array(values, type=f.type))
        name = f"{split}-{i:05d}-of-{n_batches:05d}.parquet"
        tmp = config_dir / f".{name}.tmp"
        pq.write_table(pa.Table.from_arrays(arrays, schema=schema), tmp, **PARQUET_OPTIONS)
        tmp.replace(config_dir / name)
        names.append(name)
    described = [(f.name, "json" if f.type == pa.json_() else str(f.type)) for f in schema]
    return names, described, examples


def read_parquet_rows(path: str | Path) -> Iterator[dict[str, Any]]:
    """Rows of a Parquet file, JSON-typed columns decoded; missing (null) top-level fields left out."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    json_cols = {f.name for f in pf.schema_arrow if f.type == pa.json_()}
    for batch in pf.iter_batches(batch_size=8192):
        for row in batch.to_pylist():
            yield {k: (orjson.loads(v) if k in json_cols else v) for k, v in row.items() if v is not None}


def detect_languages(spool: Path, sample: int = 2000) -> list[str]:
    """Languages for the card, from the script of the text (Han -> zh, kana -> ja, hangul -> ko, Latin -> en)."""
    counts = {"zh": 0, "ja": 0, "ko": 0, "en": 0}
    seen = 0
    for batch in _iter_batches(spool, sample):
        for row in batch:
            text = orjson.dumps(row).decode("utf-8")
            han = len(re.findall(r"[\u4e00-\u9fff]", text))
            kana = len(re.findall(r"[\u3040-\u30ff]", text))
            hangul = len(re.findall(r"[\uac00-\ud7af]", text))
            latin = len(re.findall(r"[A-Za-z]", text))
            script = max((("ja", kana * 3), ("ko", hangul), ("zh", han * 2), ("en", latin / 4)), key=lambda x: x[1])
            counts[script[0]] += 1
            seen += 1
        break
    return [lang for lang, n in counts.items() if seen and n / seen >= 0.1]
