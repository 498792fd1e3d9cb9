"""Parquet shards of a Hub config, and the languages a card names.

How each column is stored (natively when Arrow holds every value exactly, else as JSON text in a
string column, which every `datasets` version loads) is decided by `instructgen.parquet.ColumnPlan` over every row, the same
rules as any Parquet file instructgen writes. Writer options are fixed and nothing time-dependent is
written, so the same rows give the same bytes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import orjson

from ..parquet import PARQUET_OPTIONS, ROW_GROUP_ROWS, ColumnPlan, iter_parquet


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


def spool_to_parquet(spool: Path, config_dir: Path, split: str, shard_rows: int
                     ) -> tuple[list[str], list[tuple[str, str]], list[dict]]:
    """Rows of a JSONL spool -> <split>-0000i-of-0000n.parquet shards; returns (file names, schema, 2 examples)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    plan = ColumnPlan()
    n_batches, examples = 0, []
    for batch in _iter_batches(spool, shard_rows):  # pass 1: the schema that holds every value exactly
        n_batches += 1
        examples += batch[: 2 - len(examples)]
        plan.observe(batch)
    schema = plan.schema()
    config_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for i, batch in enumerate(_iter_batches(spool, shard_rows)):  # pass 2: write the shards
        name = f"{split}-{i:05d}-of-{n_batches:05d}.parquet"
        tmp = config_dir / f".{name}.tmp"
        pq.write_table(plan.table(batch), tmp, row_group_size=ROW_GROUP_ROWS, **PARQUET_OPTIONS)
        tmp.replace(config_dir / name)
        names.append(name)
    json_text = plan.json_columns()
    described = [(f.name, "string (JSON text)" if f.name in json_text else str(f.type)) for f in schema]
    return names, described, examples


def read_parquet_rows(path: str | Path) -> Iterator[dict[str, Any]]:
    """Rows of a Parquet file, JSON-typed columns decoded; missing (null) top-level fields left out."""
    for index, row, error in iter_parquet(str(path)):
        if error is not None:
            raise ValueError(f"row {index}: {error}")
        yield row


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
