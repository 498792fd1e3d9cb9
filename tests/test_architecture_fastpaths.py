"""The fast paths of ARCHITECTURE.md's table that no other test compared with their canonical function.

dedup's small-files path (`dedup_files.index_small_files`: many small files sketched in shared batches, as a
folder of one-record files is) must decide exactly what the in-memory path (`dedup.dedup_records`) decides.
"""

from __future__ import annotations

import pytest

from instructgen.curate import dedup_files
from instructgen.curate.dedup import DedupConfig

from test_dedup_stream import assert_same, in_memory, make_rows, streamed, write_jsonl


@pytest.mark.parametrize("keep", ["first", "longest"])
def test_small_files_path_equals_in_memory(tmp_path, monkeypatch, keep):
    rows = make_rows(600, seed=11)
    paths = []
    for k in range(0, len(rows), 15):  # 40 small files; copies fall in other files than their originals
        path = tmp_path / f"part-{k:04d}.jsonl"
        write_jsonl(path, rows[k:k + 15], bad_lines=k == 0)
        paths.append(str(path))
    batched = []
    real = dedup_files.index_small_files
    monkeypatch.setattr(dedup_files, "index_small_files", lambda files, *a, **kw: (batched.append(len(files)),
                                                                                  real(files, *a, **kw))[1])
    config = DedupConfig(keep=keep)
    expected = in_memory(paths, config, tmp_path / "mem.jsonl")
    got = streamed(paths, config, tmp_path / "stream.jsonl")
    assert batched == [len(paths)]  # every file went through the small-files path, in one run of batches
    assert got[0].dropped["duplicates"] > 60 and got[0].dropped["rejected"] == 2
    assert_same(tmp_path / "mem.jsonl", expected, tmp_path / "stream.jsonl", got)
