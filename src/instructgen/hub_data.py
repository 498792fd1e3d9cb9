"""The data side of hub.py: the published-sets registry, Parquet shards in and out, picking files to fetch.

Parquet columns: a column is stored natively when Arrow holds every value exactly (checked by
comparing the JSON of the values before and after); otherwise (dicts whose keys vary between rows,
like MOSS's `chat`, mixed types, empty objects) it is stored as Arrow's JSON type, which
`datasets` shows as `Json()` and decodes back into the same objects. Writer options are fixed and
nothing time-dependent is written, so the same rows give the same bytes.
"""

from __future__ import annotations

import fnmatch
import json
import re
import zipfile
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import orjson

from .errors import InstructgenError

DATA_SUFFIXES = (".parquet", ".jsonl", ".json", ".jsonl.gz", ".json.gz", ".ndjson")
PARQUET_OPTIONS = dict(compression="snappy", use_dictionary=True, write_statistics=True, version="2.6",
                       store_schema=True, row_group_size=10_000)


# -- the registry ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PublishedSet:
    name: str
    repo: str
    format: str
    license: str | None = None
    language: tuple[str, ...] = ()
    split: str = "train"
    config: str | None = None
    data_files: dict[str, list[str]] = field(default_factory=dict)  # split -> glob patterns
    columns: dict[str, str] | None = None  # format field -> column name in the files
    notes: str = ""


@cache
def published() -> dict[str, PublishedSet]:
    """The registry in instructgen/registry/published.json, by short name."""
    doc = json.loads(resources.files("instructgen").joinpath("registry/published.json").read_text("utf-8"))
    out = {}
    for name, e in doc["sets"].items():
        if name in out:
            raise RuntimeError(f"published set {name!r} listed twice")
        out[name] = PublishedSet(
            name=name, repo=e["repo"], format=e["format"], license=e.get("license"),
            language=tuple(e.get("language", ())), split=e.get("split", "train"), config=e.get("config"),
            data_files={k: list(v) for k, v in e.get("data_files", {}).items()}, columns=e.get("columns"),
            notes=e.get("notes", ""),
        )
    return out


def find_published(name: str) -> PublishedSet | None:
    """A registry entry by short name or by repo id (case-insensitive)."""
    sets = published()
    if name in sets:
        return sets[name]
    return next((s for s in sets.values() if s.repo.lower() == name.lower()), None)


# -- writing Parquet shards -----------------------------------------------------------------------

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


# -- picking and staging remote files -------------------------------------------------------------

def choose_files(siblings: list[str], card: dict, entry: PublishedSet | None, config: str | None,
                 split: str | None) -> tuple[list[str], str | None, str]:
    """(data files to fetch, config, split) from the registry entry, the card's `configs`, or the file names."""
    if entry is not None and entry.data_files:
        split = split or entry.split
        if split not in entry.data_files:
            raise InstructgenError(f"{entry.repo}: no split {split!r}; known: {', '.join(entry.data_files)}")
        return _match(siblings, entry.data_files[split], entry.repo), config or entry.config, split
    configs = [c for c in card.get("configs") or [] if isinstance(c, dict)]
    if configs:
        by_name = {c.get("config_name"): c for c in configs}
        if config is not None and config not in by_name:
            raise InstructgenError(f"no config {config!r}; the card lists: {', '.join(map(str, by_name))}")
        chosen = by_name[config] if config else next((c for c in configs if c.get("default")), configs[0])
        splits = _card_splits(chosen.get("data_files"))
        split = split or ("train" if "train" in splits else next(iter(splits)))
        if split not in splits:
            raise InstructgenError(f"config {chosen.get('config_name')!r} has no split {split!r}; "
                                   f"it has: {', '.join(splits)}")
        return _match(siblings, splits[split], "the card's data_files"), chosen.get("config_name"), split
    data = [s for s in siblings if s.lower().endswith(DATA_SUFFIXES + (".zip",))]
    split = split or "train"
    named = [s for s in data if re.search(rf"(^|[/_.-]){re.escape(split)}([/_.-]|$)", s)]
    files = named or data
    if not files:
        raise InstructgenError(f"no data file (.parquet, .json, .jsonl, .zip) in the repo; files: "
                               f"{', '.join(siblings[:20])}")
    return sorted(files), config, split


def _card_splits(data_files: Any) -> dict[str, list[str]]:
    if isinstance(data_files, (str, list)) and not (isinstance(data_files, list) and data_files
                                                    and isinstance(data_files[0], dict)):
        return {"train": [data_files] if isinstance(data_files, str) else list(data_files)}
    out: dict[str, list[str]] = {}
    for item in data_files or []:
        paths = item.get("path")
        out.setdefault(item.get("split", "train"), []).extend([paths] if isinstance(paths, str) else paths or [])
    return out


def _match(siblings: list[str], patterns: list[str], where: str) -> list[str]:
    files = sorted({s for s in siblings for p in patterns if fnmatch.fnmatchcase(s, p)})
    if not files:
        raise InstructgenError(f"no file matches {', '.join(patterns)} ({where}); the repo has: "
                               f"{', '.join(siblings[:20])}")
    return files


def stage_files(fetched: dict[str, str], staging: Path) -> list[str]:
    """Local files instructgen's readers can open: Parquet decoded to JSONL, .zip members extracted."""
    from .io import RowWriter

    out = []
    for remote, local in sorted(fetched.items()):
        if remote.lower().endswith(".parquet"):
            target = staging / (remote + ".jsonl")
            with RowWriter(target) as w:
                w.write_many(read_parquet_rows(local))
            out.append(str(target))
        elif remote.lower().endswith(".zip"):
            with zipfile.ZipFile(local) as zf:
                members = sorted(m for m in zf.namelist()
                                 if m.lower().endswith(DATA_SUFFIXES) and not m.startswith("__MACOSX/"))
                if not members:
                    raise InstructgenError(f"{remote}: the archive holds no .json/.jsonl/.parquet file")
                for m in members:
                    zf.extract(m, staging / remote)
                    out += stage_files({m: str(staging / remote / m)}, staging / remote / "decoded") \
                        if m.lower().endswith(".parquet") else [str(staging / remote / m)]
        else:
            out.append(local)
    return out
