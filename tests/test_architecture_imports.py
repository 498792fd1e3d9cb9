"""What crosses a module boundary, checked from the source (issue 22, items 6 and 7).

- No private name (`_x`) is imported from another instructgen module, nor reached through an imported module
  (`module._x`): what another module needs is public, named at its definition.
- Every library the package imports is a declared dependency; `datasets` and `datasketch` are not imported
  (they are test and benchmark extras: ARCHITECTURE.md, "Dependencies").
- `instructgen run` works without the test/bench extras: the bundled pipeline runs with them unimportable.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src" / "instructgen"
FLOWS = REPO / "flows"

# Private names still crossing, in files other helpers are editing now (issue 22): importer -> target.name.
# Each must become public (renamed at its definition and at its callers); this list only shrinks.
LEFT_TO_OTHERS: set[tuple[str, str]] = set()  # none left


def modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    for path in FLOWS.glob("*.py"):
        found["instructgen_flows" if path.stem == "__init__" else f"instructgen_flows.{path.stem}"] = path
    return found


def _base(node: ast.ImportFrom, name: str, path: Path) -> str:
    if not node.level:
        return node.module or ""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join(anchor + ([node.module] if node.module else []))


def private_crossings() -> set[tuple[str, str]]:
    """(importer, defining module . private name) for every private name one module takes from another."""
    known = modules()
    crossings = set()
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module_aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = _base(node, name, path)
                for alias in node.names:
                    if f"{base}.{alias.name}" in known:  # `from . import lsh`: a module
                        module_aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
                    elif base in known and _private(alias.name) and base != name:
                        crossings.add((name, f"{base}.{alias.name}"))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in known and alias.asname:
                        module_aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and _private(node.attr):
                target = module_aliases.get(node.value.id)
                if target and target != name:
                    crossings.add((name, f"{target}.{node.attr}"))
    return crossings


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_the_checker_sees_both_ways_a_private_name_crosses(tmp_path, monkeypatch):
    pkg = tmp_path / "src" / "instructgen"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def _hidden():\n    pass\n\ndef shown():\n    pass\n")
    (pkg / "sub" / "b.py").write_text("from ..a import _hidden, shown\nfrom .. import a\n\ndef f():\n"
                                      "    return a._hidden, a.shown, _hidden\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", pkg)
    monkeypatch.setattr(sys.modules[__name__], "FLOWS", tmp_path / "none")
    assert private_crossings() == {("instructgen.sub.b", "instructgen.a._hidden")}


def test_no_private_name_crosses_a_module_boundary():
    new = sorted(f"{importer} takes {target}" for importer, target in private_crossings() - LEFT_TO_OTHERS)
    assert new == [], "make these public (rename at the definition and the callers): " + "; ".join(new)


# -- dependencies ----------------------------------------------------------------------------------------

def _declared(extra: str | None = None) -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    specs = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    names = set()
    for spec in specs:
        match = re.match(r"([A-Za-z0-9_.-]+)(?:\[([^\]]+)\])?", spec)
        names.add(_canon(match.group(1)))
        names |= {f"{_canon(match.group(1))}[{e.strip()}]" for e in (match.group(2) or "").split(",") if e.strip()}
    return names


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def third_party_imports() -> dict[str, set[str]]:
    """Top-level package name -> the modules importing it (anywhere in the file)."""
    ours = {"instructgen", "instructgen_flows", "instructgen_schemas", "instructgen_data"}
    found: dict[str, set[str]] = {}
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            tops = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and not node.level and node.module else []
            for top in (t.split(".")[0] for t in tops):
                if top not in sys.stdlib_module_names and top not in ours:
                    found.setdefault(top, set()).add(name)
    return found


# imported only inside the function that needs them, for a choice that names them
OPTIONAL = {"lingua": ("bench", "lingua-language-detector"), "prefect_ray": ("ray", "prefect-ray")}
# what a declared extra brings: dask[distributed] brings distributed, dask[dataframe] brings pandas
BROUGHT_BY = {"distributed": "dask[distributed]", "pandas": "dask[dataframe]"}


def test_every_imported_library_is_declared():
    dists = importlib.metadata.packages_distributions()
    base = _declared()
    missing = []
    for top, importers in sorted(third_party_imports().items()):
        if top in OPTIONAL:
            extra, dist = OPTIONAL[top]
            assert dist in _declared(extra), f"{top}: declare {dist} in the {extra} extra"
            continue
        names = {_canon(d) for d in dists.get(top, [])} | ({BROUGHT_BY[top]} if top in BROUGHT_BY else set())
        if not names & base:
            missing.append(f"{top} (imported by {', '.join(sorted(importers))})")
    assert missing == [], "declare in pyproject.toml's dependencies: " + "; ".join(missing)


def test_datasets_and_datasketch_are_extras_the_package_never_imports():
    assert not {"datasets", "datasketch"} & set(third_party_imports())
    assert not {"datasets", "datasketch"} & _declared()
    assert {"datasets", "datasketch"} <= _declared("test")


EXTRAS_ONLY = ("datasets", "datasketch", "rensa", "lingua", "hypothesis", "rouge_score")


def test_instructgen_run_needs_no_extra(prefect, tmp_path, monkeypatch):
    """The README's main job (the bundled example) with the test and bench extras unimportable."""
    from instructgen.cli import main

    for name in EXTRAS_ONLY:
        monkeypatch.setitem(sys.modules, name, None)  # `import name` now raises ModuleNotFoundError
    assert main(["run", "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "stats.json").exists() and (tmp_path / "out" / "report.html").exists()
