"""Downloaded files made readable, treating every byte and name in them as hostile.

    Stager(staging_dir, max_bytes).stage(remote_name, local_path) -> list[Staged]

Archives (.zip, .tar, .tar.gz, .tgz) and compressed files (.jsonl.gz, .json.gz) are unpacked by
streaming into the private staging folder under names of our own (00001.jsonl, ...): no local
path is ever made from a remote name. A member whose name is absolute or holds `..`, and a tar
member that is a link, a device or a fifo, make the whole archive refused. Parquet files are
decoded to JSONL (their JSON columns decoded). Every byte written, and every plain file read, is
counted against `max_bytes`, so a zip/gzip bomb stops at the limit with an error naming the flag.
"""

from __future__ import annotations

import gzip
import os
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson

from ..errors import InstructgenError
from .files import DATA_SUFFIXES, unsafe_reason

CHUNK = 1 << 20
TAR_HEADER = 512


@dataclass(frozen=True, slots=True)
class Staged:
    label: str  # where the rows came from, for origins and messages: "data.zip!train.jsonl"
    path: str  # the local file to read


def _kind(name: str) -> str:
    """The suffix our own staged file gets: what the data inside is, once decompressed."""
    lower = name.lower()
    for suffix, kind in ((".jsonl.gz", ".jsonl"), (".json.gz", ".json"), (".ndjson", ".jsonl"),
                         (".jsonl", ".jsonl"), (".json", ".json"), (".parquet", ".parquet")):
        if lower.endswith(suffix):
            return kind
    raise AssertionError(name)  # only names ending in DATA_SUFFIXES reach here


def size_text(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


class Stager:
    def __init__(self, staging: str | os.PathLike, max_bytes: int):
        self.dir = Path(staging)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.used = 0
        self._count = 0

    # -- the byte budget ------------------------------------------------------------------------
    def take(self, n: int, label: str) -> None:
        self.used += n
        if self.used > self.max_bytes:
            raise InstructgenError(f"{label}: the data is larger than --max-bytes {size_text(self.max_bytes)} "
                                   f"once decompressed; raise --max-bytes if you trust this repo")

    def _new_file(self, kind: str) -> Path:
        self._count += 1
        return self.dir / f"{self._count:05d}{kind}"

    def _copy(self, src: IO[bytes], name: str, label: str) -> Staged:
        """Stream `src` (decompressed when `name` ends in .gz) into a new staged file, within the budget."""
        target = self._new_file(_kind(name))
        if name.lower().endswith(".gz"):
            src = gzip.GzipFile(fileobj=src, mode="rb")
        try:
            with open(target, "wb") as out:
                while block := src.read(CHUNK):
                    self.take(len(block), label)
                    out.write(block)
        except (gzip.BadGzipFile, EOFError, zlib.error, zipfile.BadZipFile, tarfile.TarError) as e:
            raise InstructgenError(f"{label}: cannot decompress it ({e}); the file is damaged") from None
        if target.suffix == ".parquet":
            return Staged(label, str(self._decode_parquet(target, label)))
        return Staged(label, str(target))

    def _decode_parquet(self, path: Path, label: str) -> Path:
        from .parquet import read_parquet_rows

        target = self._new_file(".jsonl")
        try:
            with open(target, "wb") as out:
                for row in read_parquet_rows(path):
                    line = orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)
                    self.take(len(line), label)
                    out.write(line)
        except InstructgenError:
            raise
        except Exception as e:  # pyarrow raises several types for a file that is not Parquet
            raise InstructgenError(f"{label}: not a readable Parquet file ({e})") from None
        return target

    # -- one downloaded file --------------------------------------------------------------------
    def stage(self, remote: str, local: str) -> list[Staged]:
        """The readable files in one downloaded file (`local`, the Hub's cached copy of `remote`)."""
        lower = remote.lower()
        if lower.endswith(".zip"):
            return self._zip(remote, local)
        if lower.endswith((".tar", ".tar.gz", ".tgz")):
            return self._tar(remote, local)
        if lower.endswith((".gz", ".parquet")):
            with open(local, "rb") as fh:
                return [self._copy(fh, remote, remote)]
        self.take(os.path.getsize(local), remote)
        return [Staged(remote, local)]

    def _zip(self, remote: str, local: str) -> list[Staged]:
        try:
            with zipfile.ZipFile(local) as zf:
                members = zf.infolist()
                for info in members:
                    _check_name(remote, info.filename)
                    if stat.S_ISLNK(info.external_attr >> 16):
                        raise InstructgenError(f"{remote}: member {info.filename!r} is a symbolic link; refusing "
                                               f"the archive")
                out = []
                for info in sorted(members, key=lambda i: i.filename):
                    if _wanted(info.filename) and not info.is_dir():
                        with zf.open(info) as src:
                            out.append(self._copy(src, info.filename, f"{remote}!{info.filename}"))
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError) as e:
            raise InstructgenError(f"{remote}: not a readable zip archive ({e})") from None
        return _some(out, remote)

    def _tar(self, remote: str, local: str) -> list[Staged]:
        out = []
        try:
            with tarfile.open(local, mode="r|*") as tf:  # a stream: members are read once, in order
                for member in tf:
                    _check_name(remote, member.name)
                    self.take(TAR_HEADER, remote)
                    if member.isdir() or member.name in (".", "./"):
                        continue
                    if member.issym() or member.islnk():
                        raise InstructgenError(f"{remote}: member {member.name!r} is a link to "
                                               f"{member.linkname!r}; refusing the archive")
                    if not member.isfile():
                        raise InstructgenError(f"{remote}: member {member.name!r} is a device or fifo, not a "
                                               f"file; refusing the archive")
                    if not _wanted(member.name):
                        self.take(member.size, remote)  # skipping it still decompresses it
                        continue
                    src = tf.extractfile(member)
                    out.append(self._copy(src, member.name, f"{remote}!{member.name}"))
        except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as e:
            raise InstructgenError(f"{remote}: not a readable tar archive ({e})") from None
        return _some(out, remote)


def _check_name(remote: str, name: str) -> None:
    while name.startswith("./"):  # `tar -C dir .` writes ./a/b.jsonl
        name = name[2:]
    problem = unsafe_reason(name.rstrip("/")) if name not in ("", ".") else None
    if problem:
        raise InstructgenError(f"{remote}: archive member {name!r} has {problem}; refusing the archive "
                               f"(nothing was extracted outside the private staging folder)")


def _wanted(name: str) -> bool:
    return name.lower().endswith(DATA_SUFFIXES) and not name.startswith("__MACOSX/")


def _some(staged: list[Staged], remote: str) -> list[Staged]:
    if not staged:
        raise InstructgenError(f"{remote}: the archive holds no .json/.jsonl/.parquet file")
    return staged
