"""The layering ARCHITECTURE.md describes, checked from the source: no import circle between modules, the
library never imports its orchestration layer, and stages do not import each other sideways."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src" / "instructgen"
STAGES = ("curate", "generate", "hub")  # convert.py reads and writes records for every stage: the layer below


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST):
    """Every node but those under `if TYPE_CHECKING:` (type-only imports make no circle at run time)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", getattr(child.test, "attr", "")) == \
                    "TYPE_CHECKING":
                todo.extend(child.orelse)
                continue
            todo.append(child)


def imports_of(path: Path) -> set[str]:
    """Every instructgen module a file imports at run time, at the top or inside a function."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m.split(".")[0] in ("instructgen", "instructgen_flows", "prefect")}


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in SRC.rglob("*.py")}
    edges = {}
    for name, path in files.items():
        targets = set()
        for imported in imports_of(path):
            while imported and imported not in files:  # `from .x import name` names a module or a symbol
                imported = imported.rsplit(".", 1)[0] if "." in imported else ""
            if imported and imported != name and not name.startswith(imported + ".") and imported != "instructgen":
                targets.add(imported)
        edges[name] = targets
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    assert cycles(graph()) == []


def test_the_library_never_imports_prefect_or_the_flows():
    for path in SRC.rglob("*.py"):
        bad = {m for m in imports_of(path) if m.split(".")[0] in ("prefect", "instructgen_flows")}
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


def test_stages_do_not_import_each_other_sideways():
    edges = graph()
    for name, targets in edges.items():
        parts = name.split(".")
        if len(parts) < 2 or parts[1] not in STAGES:
            continue
        for target in targets:
            other = target.split(".")
            assert len(other) < 2 or other[1] not in STAGES or other[1] == parts[1], f"{name} imports {target}"
