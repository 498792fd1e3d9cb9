"""Dedup's saved signatures: pass 1's arrays of each input file, kept between runs and reused.

    signature_path(folder, path, fmt, config, reading)   where one file's arrays under these settings are kept
    save_signatures(target, indexed, digest)            write them (Parquet, signatures as fixed-size binary)
    load_signatures(target, path, into, digest)         append them to a SketchBuffer, or None when stale
    saved_match(metadata, path, shape, digest)          whether saved arrays' metadata says they are still valid
    index_or_reuse(path, fmt, config, into, folder, runner)  saved arrays when still valid, else pass 1 (saved)
    file_fingerprint(path), file_digest(path)           what says the file is the same: size and modification
                                                        time, and a digest of its bytes
    SIGNATURE_VERSION, SKETCH_SETTINGS                  what else the saved arrays must agree with

One Parquet file per input and sketch settings. They are reused when the same file (the same bytes: a
digest of the file is kept with them and checked, about a second a GB) is deduplicated again with the
same sketch settings: with another threshold or keep rule, or as an --against reference.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import orjson

from ..io import kind_of
from .dedup import DedupConfig, Sketches
from .dedup_sketch import Indexed, SketchBuffer, quiet

if TYPE_CHECKING:
    from .dedup_files import LocalRunner

SIGNATURE_VERSION = 3  # 2: dedup sketches hold a focus quarter and 32-bit MinHash (issue 18); 3: tool calls read as
# queries or code, anchors hashed with xxh3
SKETCH_SETTINGS = ("num_perm", "shingle", "fields", "seed", "identifiers", "tool_calls")


def signature_path(folder: str | os.PathLike, path: str, fmt: str | None, config: DedupConfig,
                   reading: dict[str, Any] | None = None) -> Path:
    """Where pass 1's arrays of `path` under these sketch settings are kept. `reading`: whatever else decides
    which records the file yields and what they hold, for a caller that reads it its own way (the pipeline:
    the source's columns and its per-shard stages' settings)."""
    settings = {k: getattr(config, k) for k in SKETCH_SETTINGS}
    how = orjson.dumps(reading or {}, option=orjson.OPT_SORT_KEYS).decode()
    key = hashlib.sha256(repr((SIGNATURE_VERSION, os.path.abspath(path), fmt, how, sorted(settings.items()))).encode())
    return Path(folder) / f"{Path(path).name}.{key.hexdigest()[:12]}.signatures.parquet"


def saved_match(metadata: dict[bytes, bytes] | None, path: str, shape: tuple[int, int], digest: str | None = None
                ) -> bool:
    """Whether saved arrays (their Parquet metadata) are of this version, this shape and this very file: its
    bytes when `digest` (the file's now) is given, else its size and modification time (for a caller that
    compares each record's digest itself, as the pipeline does)."""
    meta = metadata or {}
    same_file = meta.get(b"digest") == digest.encode() if digest else \
        meta.get(b"file") == file_fingerprint(path).encode()
    return same_file and meta.get(b"instructgen") == f"{SIGNATURE_VERSION}".encode() \
        and meta.get(b"shape") == f"{shape[0]},{shape[1]}".encode()


def file_fingerprint(path: str) -> str:
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}"


def file_digest(path: str) -> str:
    """A digest of the file's bytes (xxh3-128, a dependency of `datasets`: several GB/s, against pass 1's
    tens of MB/s), so that saved signatures are never taken for a file rewritten in place with its size and
    modification time kept."""
    import xxhash

    digest = xxhash.xxh3_128()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def save_signatures(target: Path, indexed: Indexed, digest: str | None = None) -> None:
    """Pass 1's arrays of one file as Parquet (signatures as fixed-size binary), written in batches, with the
    digest of the bytes they were computed from when given."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..tempfiles import finish_temp, temp_beside

    shape = indexed.buffer.shape
    width = shape[0] * shape[1] * 2
    meta = {"instructgen": f"{SIGNATURE_VERSION}", "file": file_fingerprint(indexed.path), "format": indexed.format,
            "shape": f"{shape[0]},{shape[1]}", **({"digest": digest} if digest else {})}
    schema = pa.schema([("key", pa.uint64()), ("length", pa.uint32()), ("anchor", pa.uint32()), ("line", pa.int64()),
                        ("offset", pa.int64()), ("signature", pa.binary(width))], metadata=meta)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(target)
    try:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as out:
            for a in range(0, max(len(indexed), 1), SAVE_BATCH):
                b = min(a + SAVE_BATCH, len(indexed))
                sk = indexed.buffer.view(indexed.start + a, indexed.start + b)
                offsets = indexed.offsets[a:b] if len(indexed.offsets) else np.full(b - a, -1, np.int64)
                sigs = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), b - a, [None, pa.py_buffer(
                    np.ascontiguousarray(sk.sigs).view(np.uint8))])
                out.write_table(pa.table([sk.keys, sk.lengths, sk.anchors, indexed.lines[a:b], offsets, sigs],
                                         schema=schema))
    except BaseException:
        os.unlink(tmp)
        raise
    finish_temp(tmp, target)


SAVE_BATCH = 200_000


def load_signatures(target: Path, path: str, into: SketchBuffer, digest: str | None = None) -> Indexed | None:
    """The saved arrays of `path` (appended to `into`), or None when there are none, they are of other
    settings, or the file changed since: its bytes, when `digest` (the file's now) is given, else its size and
    modification time (for a caller that compares each record's digest itself, as the pipeline does)."""
    import pyarrow.parquet as pq

    if not target.exists():
        return None
    try:
        source = pq.ParquetFile(target)
        if not saved_match(source.schema_arrow.metadata, path, into.shape, digest):
            return None
        fmt = source.schema_arrow.metadata[b"format"].decode()
        start, lines, offsets = into.size, [], []
        for batch in source.iter_batches(batch_size=SAVE_BATCH):
            n = batch.num_rows
            raw = batch.column("signature").buffers()[1]
            sigs = np.frombuffer(raw, dtype=np.uint16, count=n * into.shape[0] * into.shape[1],
                                 offset=batch.column("signature").offset * into.shape[0] * into.shape[1] * 2)
            into.append(Sketches(batch.column("key").to_numpy(), sigs.reshape(n, *into.shape),
                                 batch.column("length").to_numpy(), batch.column("anchor").to_numpy()))
            lines.append(batch.column("line").to_numpy())
            offsets.append(batch.column("offset").to_numpy())
    except (OSError, ValueError, KeyError):  # a damaged file is computed again
        return None
    offsets_all = np.concatenate(offsets) if offsets else np.empty(0, np.int64)
    return Indexed(path, fmt, into, start, into.size,
                   np.concatenate(lines) if lines else np.empty(0, np.int64),
                   offsets_all if kind_of(path) == "jsonl" else offsets_all[:0], reused=True)


def index_or_reuse(path: str, fmt: str | None, config: DedupConfig, into: SketchBuffer, folder: str | None,
                   runner: "LocalRunner", bar=None, announce: Callable[[str], None] = quiet) -> Indexed:
    """Pass 1 over `path` (by `runner`), or its result saved by an earlier run; saved for the next run when
    `folder` is given."""
    target = signature_path(folder, path, fmt, config) if folder else None
    if target is None:
        return runner.index(path, fmt, config, into, bar, announce)
    before, digest = file_fingerprint(path), file_digest(path)
    start = into.size
    if (found := load_signatures(target, path, into, digest)) is not None:
        if bar is not None:
            bar.update(os.path.getsize(path))
        return found
    into.size = start  # a damaged file may have appended some
    indexed = runner.index(path, fmt, config, into, bar, announce)
    if file_fingerprint(path) == before:  # not saved when the file changed while pass 1 read it
        save_signatures(target, indexed, digest)
    return indexed
