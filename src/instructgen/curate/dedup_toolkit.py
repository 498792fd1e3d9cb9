"""Dedup's public toolkit: what the `dedup` command, the Dask runner and the pipeline build on, in one place.

The algorithm, over records in memory (dedup):
    DedupConfig, Sketches, Clusters     the settings, pass 1's arrays, the decisions
    sketch(texts, config), cluster(shards, config, n_reference)   sketches and the decisions over them
    dedup_records(records, config, log, against, clusters_path)   the whole stage in one process

Pass 1 over files (dedup_sketch):
    SketchBuffer(config), Indexed       the run's sketches in one block; one file's rows of it and positions
    index_file, index_small_files       one file; small files in shared batches
    index_range, index_by_ranges        a byte range of a plain JSONL file (a process pool's or a Dask
                                        worker's work); a file by ranges, in range order
    quiet                               an `announce` that says nothing

Saved signatures (signature_store):
    signature_path, save_signatures, load_signatures, saved_match, index_or_reuse
    file_fingerprint, file_digest, SIGNATURE_VERSION

Pass 2 over files (dedup_write):
    HeadTexts, Decisions, LineFates     the kept records' texts, the decisions pass 2 applies, one JSONL
                                        file's line fates (convert_lines' `skip`)
    write_line_file, write_row_files    a JSONL file; files read as rows

The stage over files (dedup_files):
    dedup_files(inputs, writer, config, log, ...) -> Outcome   pass 1, the decisions, pass 2
    LocalRunner(workers), index_all     where the passes run; pass 1 over files in order

The Dask runner (dedup_dask.DaskRunner) builds on this toolkit, so it is imported from its own module (it
needs the `dask` extra).
"""

from .dedup import Clusters, DedupConfig, Sketches, cluster, dedup_records, sketch
from .dedup_files import LocalRunner, Outcome, dedup_files, index_all
from .dedup_sketch import Indexed, SketchBuffer, index_by_ranges, index_file, index_range, index_small_files, quiet
from .dedup_write import Decisions, HeadTexts, LineFates, write_line_file, write_row_files
from .signature_store import (SIGNATURE_VERSION, file_digest, file_fingerprint, index_or_reuse, load_signatures,
                              save_signatures, saved_match, signature_path)

__all__ = [
    "Clusters", "DedupConfig", "Sketches", "cluster", "dedup_records", "sketch",
    "LocalRunner", "Outcome", "dedup_files", "index_all",
    "Indexed", "SketchBuffer", "index_by_ranges", "index_file", "index_range", "index_small_files", "quiet",
    "Decisions", "HeadTexts", "LineFates", "write_line_file", "write_row_files",
    "SIGNATURE_VERSION", "file_digest", "file_fingerprint", "index_or_reuse", "load_signatures", "save_signatures",
    "saved_match", "signature_path",
]
