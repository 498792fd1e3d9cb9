"""Dedup's one public toolkit (issue 22, item 2): the CLI, the Dask runner and the pipeline take what they use of
dedup over files from `curate.dedup_toolkit`, never from the modules behind it, and the toolkit's docstring lists
everything it offers."""

from __future__ import annotations

import ast
import re
import types
from pathlib import Path

from instructgen.curate import dedup_toolkit

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src" / "instructgen"
BEHIND = {"dedup_files", "dedup_sketch", "dedup_write", "signature_store"}  # curate modules behind the toolkit
TOOLKIT_SIDE = BEHIND | {"dedup_toolkit"}


def curate_modules_imported(path: Path) -> set[str]:
    """The curate modules a file imports (absolute or relative), anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = [a.name for a in node.names]
            if module.endswith("curate") or module == "" and node.level:
                found |= set(names)
            elif "curate." in module or (node.level and path.parent.name == "curate" and module):
                found.add(module.rsplit(".", 1)[-1])
        elif isinstance(node, ast.Import):
            found |= {a.name.rsplit(".", 1)[-1] for a in node.names if ".curate." in a.name}
    return found


def test_only_the_toolkit_side_imports_the_modules_behind_it():
    files = [*SRC.rglob("*.py"), *(REPO / "flows").glob("*.py")]
    assert any(p.name == "dedup_dask.py" for p in files) and any(p.name == "signatures.py" for p in files)
    offenders = {}
    for path in files:
        if path.parent.name == "curate" and path.stem in TOOLKIT_SIDE:
            continue
        behind = curate_modules_imported(path) & BEHIND
        if behind:
            offenders[str(path.relative_to(REPO))] = sorted(behind)
    assert offenders == {}, "import these from instructgen.curate.dedup_toolkit"


def test_the_checker_sees_an_import_from_behind_the_toolkit(tmp_path):
    sample = tmp_path / "curate" / "sample.py"
    sample.parent.mkdir()
    sample.write_text("from .dedup_files import LocalRunner\nfrom ..curate import signature_store\n"
                      "from instructgen.curate.dedup_write import Decisions\n", encoding="utf-8")
    assert curate_modules_imported(sample) >= {"dedup_files", "signature_store", "dedup_write"}


def test_the_toolkit_docstring_lists_everything_it_offers():
    listed = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", dedup_toolkit.__doc__))
    assert set(dedup_toolkit.__all__) - listed == set()
    offered = {name for name, value in vars(dedup_toolkit).items()
               if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert offered == set(dedup_toolkit.__all__)  # nothing offered without being listed


def test_the_callers_get_the_toolkit_objects():
    from instructgen.curate import dedup_dask
    from instructgen.pipeline import signatures

    assert dedup_dask.LocalRunner is dedup_toolkit.LocalRunner and dedup_dask.Decisions is dedup_toolkit.Decisions
    assert signatures.files is dedup_toolkit


def test_a_caller_that_reads_a_file_its_own_way_keys_its_signatures_by_a_typed_setting(tmp_path):
    """The pipeline's columns and stage settings go in `reading` (no settings folded into a made-up format
    name): the key changes with them, not with their order, and differs from a plain `dedup` of the file."""
    data = tmp_path / "a.jsonl"
    data.write_text('{"instruction": "x", "output": "y"}\n', encoding="utf-8")
    config = dedup_toolkit.DedupConfig()
    key = lambda reading: dedup_toolkit.signature_path(tmp_path, str(data), "alpaca", config, reading=reading)  # noqa: E731
    assert key({"columns": None, "filter": {"min": 1}}) == key({"filter": {"min": 1}, "columns": None})
    assert key({"columns": None, "filter": {"min": 1}}) != key({"columns": None, "filter": {"min": 2}})
    assert key({"columns": None}) != dedup_toolkit.signature_path(tmp_path, str(data), "alpaca", config)


def test_saved_signatures_are_judged_by_one_check(tmp_path):
    data = tmp_path / "a.jsonl"
    data.write_text('{"instruction": "x", "output": "y"}\n', encoding="utf-8")
    fingerprint = dedup_toolkit.file_fingerprint(str(data)).encode()
    good = {b"instructgen": str(dedup_toolkit.SIGNATURE_VERSION).encode(), b"file": fingerprint, b"shape": b"3,64"}
    assert dedup_toolkit.saved_match(good, str(data), (3, 64))
    assert not dedup_toolkit.saved_match(good, str(data), (3, 128))  # other sketch shape
    assert not dedup_toolkit.saved_match({**good, b"instructgen": b"1"}, str(data), (3, 64))  # older sketches
    assert not dedup_toolkit.saved_match({k: v for k, v in good.items() if k != b"shape"}, str(data), (3, 64))
    assert not dedup_toolkit.saved_match(None, str(data), (3, 64))
    assert not dedup_toolkit.saved_match(good, str(data), (3, 64), digest="abc")  # bytes asked for, none kept
    assert dedup_toolkit.saved_match({**good, b"digest": b"abc"}, str(data), (3, 64), digest="abc")
    data.write_text('{"instruction": "x", "output": "changed"}\n', encoding="utf-8")
    assert not dedup_toolkit.saved_match(good, str(data), (3, 64))  # size changed
