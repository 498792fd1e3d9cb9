"""Dedup's two passes on a Dask cluster: `DaskRunner`, a dedup_files runner.

    with DaskRunner("tcp://scheduler:8786") as runner:     # or DaskRunner() for a LocalCluster here
        dedup_files(inputs, writer, config, log, runner=runner)

What runs where:
  pass 1     each plain JSONL file is cut into byte ranges; the workers sketch their ranges
             (dedup_sketch.index_range) and the client appends the results in range order into its
             SketchBuffer. Other files (compressed, Parquet, JSON arrays) are sketched on the client.
  decisions  exact duplicates on the client (dedup.cluster, unchanged). Near duplicates: for a group
             of bands at a time the client scatters those bands' signature columns in slices of the
             surviving rows; the workers hash each band (the values lsh.band_hashes gives), a Dask
             DataFrame shuffle brings the keys of one bucket into one partition, and the workers turn
             each partition's buckets into candidate pairs by the rule of lsh.band_pairs (each member
             with the first bucket_cap members before it in priority order). The candidates come back
             to the client, which verifies them against its signatures (lsh.verify_parts, as locally)
             and keeps the verified pairs; lsh.greedy then keeps the first of each cluster. Greedy
             keep-first, not union-find: that is the local rule (a removed record never pulls in
             another), and the decisions are the same as dedup.cluster's.
  pass 2     each plain JSONL file again by byte ranges: a worker converts its range with the
             duplicates skipped (dedup_range_on_worker, the code of dedup_write's process pool) and
             returns its bytes; the client writes them, the clusters rows and the counts in range order.
             The decisions go to every worker once (without the signatures).

The output, rejects and clusters files are byte-identical to a local run's. Workers read the inputs
by path: on a cluster of several machines, the inputs must be on storage every worker sees. Each task
checks that the bytes of its range are the client's (a digest per range, computed by the client in one
read of the file when pass 1 starts): a worker that sees another file at the same path, or a file that
changed between the passes, stops the run with one error naming the file, never its records.

Where it stops: the client holds every record's sketch (about 540 bytes), the verified pairs (16 bytes
each) and the decisions (about 40 bytes a record), and it verifies the candidates and writes every output
byte itself; the workers hold one group of bands' keys (17 bytes a record and band) and the results of
the ranges in flight.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import math
import os
import weakref
from collections import deque
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from .. import convert_parallel
from ..convert import ReadOptions, PartFile, lines_until, convert_lines, open_source
from ..errors import InstructgenError
from ..io import RowWriter, kind_of
from ..runlog import RunLog
from . import lsh
from .dedup_toolkit import (Clusters, Decisions, DedupConfig, HeadTexts, Indexed, LineFates, LocalRunner, SketchBuffer,
                            Sketches, cluster, index_by_ranges, index_file, index_range, quiet, write_line_file)

LOCAL = "local"  # the address that means: start a LocalCluster here
MIN_RANGE_BYTES = 1 << 20  # a file is cut into ranges of at least this much (tasks cost a few ms each)
IN_FLIGHT_PER_THREAD = 2  # ranges submitted ahead of the one the client waits for
PARTITION_POSITIONS = 250_000  # surviving records per partition of the band keys
SHUFFLE_ROWS = 4_000_000  # band keys per shuffle (17 bytes each): bands are grouped to about this many
JSONL_KINDS = ("jsonl", "jsonl.gz")


class DaskRunner(LocalRunner):
    """Runs dedup_files' passes on the Dask cluster at `address` (a scheduler, e.g. tcp://host:8786), through
    a `client` already connected (Dask Gateway, a cluster object's get_client()), or on a LocalCluster started
    here when neither is given (or the address is "local"): `workers` processes (default one per core) of one
    thread each, `memory_limit` each, and any other LocalCluster argument in `cluster_options`. A context
    manager: what it opened (client, LocalCluster) closes on leaving; a given client stays open."""

    def __init__(self, address: str | None = None, workers: int | None = None, memory_limit: str | int = "auto",
                 client=None, **cluster_options: Any):
        super().__init__(1)  # what runs on the client runs in this process alone
        self.address = None if address in (None, LOCAL) else address
        self.cluster_options = {"n_workers": workers or os.cpu_count() or 1, "threads_per_worker": 1,
                                "processes": True, "memory_limit": memory_limit, **cluster_options}
        self.client = client
        self._own_client = client is None
        self._cluster = None
        self._shipped: tuple[weakref.ref, Any] | None = None  # the decisions and their future on the workers
        self._digests: dict[str, dict[tuple[int, int], str]] = {}  # absolute path -> the client's range digests
        self._checked_in_pass1: dict[str, dict[tuple[int, int], str]] = {}  # the same, of this run's pass 1
        self._file_numbers: dict[int, int] = {}  # id(Indexed) -> its place among the decisions' files

    def __enter__(self) -> "DaskRunner":
        from distributed import Client, LocalCluster

        try:
            if self.client is None and self.address is None:
                self._cluster = LocalCluster(**self.cluster_options)
                self.client = Client(self._cluster)
            elif self.client is None:
                self.client = _connect(self.address)
            self.client.wait_for_workers(1)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._shipped = None
        if self.client is not None and self._own_client:
            self.client.close()
            self.client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def describe(self) -> str:
        where = self.client.scheduler.address + (" (a LocalCluster)" if self._cluster is not None else "")
        return f"dask: {len(self.client.nthreads())} workers, {self.threads()} threads at {where}; " \
               f"dashboard {self.client.dashboard_link}"

    def threads(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    # -- pass 1 ----------------------------------------------------------------------------------------

    def index(self, path: str, fmt: str | None, config: DedupConfig, into: SketchBuffer, bar=None,
              announce: Callable[[str], None] = quiet) -> Indexed:
        if not _plain_jsonl(path):
            return index_file(path, fmt, config, into, 1, bar, announce)
        self._check_visible([path])
        spec, rows = open_source(path, RunLog("dedup-index"), ReadOptions(from_format=fmt, announce=announce))
        next(iter(rows), None)  # an empty or blank file is an error (read_rows says so) before anything
        del rows
        # by its absolute path: a worker's working folder may be another (the sketches do not depend on the name)
        where = os.path.abspath(path)
        expected = self._range_digests(where)
        return index_by_ranges(path, where, spec.name, config, into, self._n_ranges(path), self._map,
                               lambda fn, jobs: _checked(self._in_order(index_range_checked, jobs, expected), path),
                               bar)

    def here(self, path: str) -> bool:
        return not _plain_jsonl(path) or os.path.getsize(path) < MIN_RANGE_BYTES

    # -- the decisions ---------------------------------------------------------------------------------

    def decide(self, sketches: Sketches, config: DedupConfig, n_reference: int) -> Clusters:
        self._checked_in_pass1, self._digests = self._digests, {}  # pass 2 checks against this run's pass 1
        return cluster([sketches], config, n_reference, pairs=self.verified_pairs)

    def verified_pairs(self, sigs: np.ndarray, bands: int, rows: int, cap: int, alive: np.ndarray,
                       verify: Callable[[np.ndarray, np.ndarray], np.ndarray]
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """lsh.verified_pairs with the band keys grouped on the cluster: the same pairs and count."""
        n = len(alive)
        per_shuffle = max(1, min(bands, SHUFFLE_ROWS // max(n, 1)))
        groups = [range(b, min(b + per_shuffle, bands)) for b in range(0, bands, per_shuffle)]
        chunks = self._chunks(n)
        kept, checked = [], 0
        upcoming = self._candidates(sigs, alive, groups[0], rows, cap, chunks)
        for g in range(len(groups)):
            running = upcoming  # the next group is grouped while the client verifies this one
            upcoming = self._candidates(sigs, alive, groups[g + 1], rows, cap, chunks) if g + 1 < len(groups) else []
            for codes, count in _results_as_completed(running):
                checked += count
                for start in range(0, len(codes), lsh.PAIR_CHUNK * 4):
                    chunk = codes[start:start + lsh.PAIR_CHUNK * 4]
                    kept.append(chunk[verify(chunk // n, chunk % n) >= 0])
            del running
        codes = lsh.distinct_sorted(np.concatenate(kept)) if kept else np.empty(0, np.int64)
        i, j = codes // n, codes % n
        return i, j, verify(i, j).astype(np.float32), checked

    def _candidates(self, sigs: np.ndarray, alive: np.ndarray, bands: range, rows: int, cap: int,
                    chunks: list[tuple[int, int]]) -> list:
        """Futures of (candidate codes, candidates counted per band) of each shuffled partition of these bands."""
        import dask.dataframe as dd
        from dask import delayed

        columns = slice(bands.start * rows, bands.stop * rows)
        pieces = [self.client.scatter(sigs[alive[a:b], :, columns], hash=False) for a, b in chunks]
        parts = [delayed(band_keys)(piece, bands.start, rows, a) for piece, (a, _) in zip(pieces, chunks)]
        keys = dd.from_delayed(parts, meta=_keys_meta(), verify_meta=False)
        if keys.npartitions > 1:
            # in memory (tasks), not staged on disk (p2p): a shuffle moves at most SHUFFLE_ROWS keys, and p2p
            # took 1.5x as long (300k records, 2 workers)
            keys = keys.shuffle("hash", npartitions=keys.npartitions, ignore_index=True, shuffle_method="tasks")
        return self.client.compute([delayed(bucket_pairs)(part, cap, len(alive)) for part in keys.to_delayed()])

    def _chunks(self, n: int) -> list[tuple[int, int]]:
        count = min(max(self.threads(), math.ceil(n / PARTITION_POSITIONS)), max(n, 1))
        bounds = np.linspace(0, n, count + 1).astype(np.int64).tolist()
        return list(zip(bounds, bounds[1:]))

    # -- pass 2 ----------------------------------------------------------------------------------------

    def write_lines(self, indexed: Indexed, decisions: Decisions, base: int, writer: RowWriter, log: RunLog,
                    convert_config: tuple, reviews: RowWriter | None, bar=None) -> None:
        if not (_plain_jsonl(indexed.path) and writer.kind in JSONL_KINDS
                and (reviews is None or reviews.kind in JSONL_KINDS)):
            write_line_file(indexed, decisions, base, writer, log, convert_config, reviews, 1, bar)
            return
        shipped = self._ship(decisions)
        file_number = self._file_numbers[id(indexed)]
        jobs = self._line_ranges(indexed.path)
        expected = self._range_digests(os.path.abspath(indexed.path), pass2=True)
        results = self._in_order(dedup_range_on_worker, jobs, shipped, file_number, base, convert_config, expected)
        for data, reviewed, n_reviewed, counts in _checked(results, indexed.path):
            writer.append_jsonl(data, counts[1])
            if reviewed:
                reviews.append_jsonl(reviewed, n_reviewed)
            convert_parallel.absorb_counts(counts, log, bar)

    def _ship(self, decisions: Decisions):
        """The decisions on every worker (once a run), without the signatures."""
        if self._shipped is None or self._shipped[0]() is not decisions:
            self._shipped = None  # the previous run's go first
            self._check_visible([f.path for f in decisions.heads.files if f.seekable])
            portable = dataclasses.replace(decisions, heads=PortableHeads(decisions.heads))
            self._file_numbers = {id(f): k for k, f in enumerate(decisions.heads.files)}
            # a weak reference: the decisions hold the run's sketches, which must go when the run ends
            self._shipped = (weakref.ref(decisions), self.client.scatter(portable, broadcast=True, hash=False))
        return self._shipped[1]

    def _line_ranges(self, path: str) -> list[tuple[str, int, int, int]]:
        """(path, start byte, end byte, number of its first line) of the byte ranges of a plain JSONL file."""
        ranges = convert_parallel.byte_ranges(path, self._n_ranges(path))
        counts = self._map(convert_parallel.count_lines, [(os.path.abspath(path), a, b) for a, b in ranges])
        firsts = np.cumsum([1, *counts[:-1]]).tolist()
        return [(path, a, b, first) for (a, b), first in zip(ranges, firsts)]

    # -- on the cluster --------------------------------------------------------------------------------

    def _check_visible(self, paths: list[str]) -> None:
        """Every worker sees these files at their absolute paths, or an error that says what is missing."""
        wanted = [os.path.abspath(p) for p in paths]
        for worker, seen in self.client.run(lambda: [os.path.isfile(p) for p in wanted]).items():
            missing = [p for p, ok in zip(wanted, seen) if not ok]
            if missing:
                raise InstructgenError(f"{missing[0]}: the Dask worker at {worker} does not see this file; the "
                                       "workers read the inputs by path, so on several machines they must be on "
                                       "storage every worker sees, at the same path")

    def _range_digests(self, path: str, pass2: bool = False) -> dict[tuple[int, int], str]:
        """The digest of each byte range of `path` as this machine reads it; in pass 2, those of this run's
        pass 1 when its workers read the file (so that a file changed between the passes is caught too)."""
        if pass2 and path in self._checked_in_pass1:
            return self._checked_in_pass1[path]
        digests = {(a, b): range_digest(path, a, b) for a, b in convert_parallel.byte_ranges(path, self._n_ranges(path))}
        if not pass2:
            self._digests[path] = digests
        return digests

    def _n_ranges(self, path: str) -> int:
        return max(1, min(self.threads() * convert_parallel.RANGES_PER_WORKER,
                          os.path.getsize(path) // MIN_RANGE_BYTES))

    def _map(self, fn: Callable, items: Iterable) -> list:
        return self.client.gather(self.client.map(fn, list(items), pure=False))

    def _in_order(self, fn: Callable, jobs: Iterable, *args) -> Iterator:
        """fn(job, *args) of each job on the cluster, in job order. A few jobs a thread are submitted ahead, so
        the workers keep busy while the client takes the results one at a time (memory: the results in flight)."""
        jobs = iter(jobs)
        ahead = IN_FLIGHT_PER_THREAD * self.threads()
        pending = deque(self.client.submit(fn, job, *args, pure=False) for job in itertools.islice(jobs, ahead))
        while pending:
            result = pending.popleft().result()
            pending.extend(self.client.submit(fn, job, *args, pure=False) for job in itertools.islice(jobs, 1))
            yield result


def _plain_jsonl(path: str) -> bool:
    return path != "-" and kind_of(path) == "jsonl"


SCHEMES = ("tcp", "tls", "ucx", "ws", "wss", "inproc")  # the addresses a Dask scheduler listens on


def _connect(address: str):
    """A client of the scheduler at `address`, or one line saying why not (nothing answers, not a scheduler)."""
    from distributed import Client

    scheme = address.split("://", 1)[0] if "://" in address else "tcp"
    if scheme not in SCHEMES:
        raise InstructgenError(f"--dask {address}: a Dask scheduler's address starts with {', '.join(SCHEMES[:2])}:// "
                               f"(e.g. tcp://host:8786), not {scheme}:// (the dashboard's http://host:8787 is not it)")
    try:
        return Client(address, timeout=CONNECT_SECONDS)
    except (OSError, TimeoutError, ValueError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InstructgenError(f"--dask {address}: no Dask scheduler answers there ({why}); start one "
                               "(dask scheduler) or check the address") from None


CONNECT_SECONDS = 10


# -- the same bytes on the client and the workers ---------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Mismatch:
    """A worker read other bytes than the client in [start, end) of a file (returned, not raised: a raised
    error would print its traceback in the worker's log)."""

    worker: str
    start: int
    end: int


def range_digest(path: str, a: int, b: int) -> str:
    import xxhash

    digest = xxhash.xxh3_64()
    with open(path, "rb") as fh:
        fh.seek(a)
        left = b - a
        while left > 0 and (chunk := fh.read(min(left, 1 << 22))):
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def _differs(path: str, a: int, b: int, expected: dict[tuple[int, int], str]) -> Mismatch | None:
    """None when [a, b) of the file this worker sees has the client's bytes."""
    if expected.get((a, b)) == range_digest(path, a, b):
        return None
    try:
        from distributed import get_worker

        worker = get_worker().address
    except ValueError:  # not on a worker (tests call it directly)
        worker = "here"
    return Mismatch(worker, a, b)


def _checked(results: Iterable, path: str) -> Iterator:
    """The results in order; a range whose bytes differed stops the run naming the file."""
    for result in results:
        if isinstance(result, Mismatch):
            raise InstructgenError(
                f"{path}: the Dask worker at {result.worker} reads other bytes at this path than the client "
                f"(bytes {result.start}-{result.end}): another file of the same name, or the file changed during "
                "the run; nothing was written. The workers must read the very file the client reads")
        yield result


def index_range_checked(job: tuple, expected: dict[tuple[int, int], str]):
    """dedup_sketch.index_range on a worker, once its range is checked to hold the client's bytes."""
    path, _spec, _config, a, b, _first = job
    return _differs(path, a, b, expected) or index_range(job)


def _results_as_completed(futures: list) -> Iterator:
    from distributed import as_completed

    for future in as_completed(futures):
        yield future.result()
        future.release()


# -- the band keys (on the workers) ----------------------------------------------------------------------

def _keys_meta():
    import pandas as pd

    return pd.DataFrame({"band": np.empty(0, np.uint16), "hash": np.empty(0, np.uint64),
                         "position": np.empty(0, np.int64)})


def band_hash(columns: np.ndarray, band: int) -> np.ndarray:
    """lsh.band_hashes of band `band` from that band's columns alone (uint16[n, parts, rows]): the same values."""
    return lsh.hash_columns([columns[:, p, c] for p in range(columns.shape[1]) for c in range(columns.shape[2])],
                            band, len(columns))


def band_keys(columns: np.ndarray, first_band: int, rows: int, start: int):
    """(band, hash, position) of the positions start.. for each band whose columns are given
    (uint16[n, parts, bands * rows], band `first_band` first)."""
    import pandas as pd

    n, n_bands = len(columns), columns.shape[2] // rows
    hashes = [band_hash(columns[:, :, k * rows:(k + 1) * rows], first_band + k) for k in range(n_bands)]
    return pd.DataFrame({"band": np.repeat(np.arange(first_band, first_band + n_bands, dtype=np.uint16), n),
                         "hash": np.concatenate(hashes),
                         "position": np.tile(np.arange(start, start + n, dtype=np.int64), n_bands)})


def bucket_pairs(keys, cap: int, n: int) -> tuple[np.ndarray, int]:
    """The candidate pairs of the buckets (same band and hash) in one shuffled partition, as distinct codes
    i * n + j (i < j positions), and how many candidates the bands had (a pair may come from several).
    Each member is paired with the first `cap` members before it in position order, as lsh.band_pairs does."""
    band, h, position = (keys[c].to_numpy() for c in ("band", "hash", "position"))
    if not len(h):
        return np.empty(0, np.int64), 0
    h = h & ~np.uint64((1 << lsh.bucket_bits(n)) - 1)  # buckets as lsh.band_pairs tells them apart
    order = np.lexsort((position, h, band))
    band, h, position = band[order], h[order], position[order]
    new = np.empty(len(h), dtype=bool)
    new[0] = True
    new[1:] = (h[1:] != h[:-1]) | (band[1:] != band[:-1])
    start_of = np.flatnonzero(new)[np.cumsum(new) - 1]
    reps = np.minimum(np.arange(len(h)) - start_of, cap)  # a member's rank in its bucket, at most cap
    members = np.flatnonzero(reps)
    reps = reps[members]
    later = np.repeat(members, reps)
    earlier = np.repeat(start_of[members], reps) + np.arange(len(later)) - np.repeat(np.cumsum(reps) - reps, reps)
    codes = position[earlier] * n + position[later]
    return lsh.distinct_sorted(codes), len(codes)


# -- pass 2 (on the workers) -----------------------------------------------------------------------------

class PortableHeads(HeadTexts):
    """HeadTexts as the workers get it: the files without their sketches (pass 2 reads the heads at their
    offsets, it never compares signatures), opened by their absolute paths (a worker's working folder may be
    another; the records keep the names they were given). Each process opens its own descriptors and closes
    them when the decisions are let go."""

    def __init__(self, heads: HeadTexts):
        self.__dict__.update(heads.__dict__)
        self.files = [dataclasses.replace(f, buffer=None) for f in heads.files]
        self.folder = os.getcwd()
        self._fds = {}

    def where(self, path: str) -> str:
        return os.path.join(self.folder, path)

    def _line_at(self, path: str, offset: int) -> bytes:
        return super()._line_at(self.where(path), offset)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fds": {}}

    def __del__(self) -> None:
        for fd in self._fds.values():
            try:
                os.close(fd)
            except OSError:
                pass


def dedup_range_on_worker(job: tuple[str, int, int, int], decisions: Decisions, file_number: int, base: int,
                          convert_config: tuple, expected: dict[tuple[int, int], str]
                          ) -> tuple[bytes, bytes, int, tuple] | Mismatch:
    """Pass 2 over the byte range [a, b) of a plain JSONL file (whose first line is line `first`), as
    dedup_write's process pool does it: (the range's output JSONL, its clusters.jsonl rows, how many rows,
    the counts and drops of its log for convert_parallel.absorb_counts); a Mismatch when the range's bytes are not
    the client's."""
    path, a, b, first = job
    if (mismatch := _differs(decisions.heads.where(path), a, b, expected)) is not None:
        return mismatch
    fates = LineFates(decisions, decisions.heads.files[file_number], base)
    log = RunLog("dedup", keep_entries=True)
    out, reviewed = io.BytesIO(), io.BytesIO()
    rows = PartFile(reviewed)
    n_reviewed = 0

    def review(row: dict) -> None:  # called only when decisions.review
        nonlocal n_reviewed
        rows.write(row)
        n_reviewed += 1

    with open(decisions.heads.where(path), "rb") as fh:
        fh.seek(a)
        convert_lines(lines_until(fh, b - a), path, first, PartFile(out), log, convert_config,
                      skip=fates.skipper(log, review))
    data = out.getvalue()
    return data, reviewed.getvalue(), n_reviewed, convert_parallel.range_result(data, log)[1:]
