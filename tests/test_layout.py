"""The package's layering, read from its source (``ast``): no import cycles, figures saved in one place.

Every ``import lcamlab...`` and ``from lcamlab... import ...`` counts, at module level or inside a
function (a deferred import still ties the two modules together). Relative imports are resolved
against the importing module. ``from lcamlab.x import y`` is an edge to ``lcamlab.x`` (the
package's ``__init__`` runs, and ``y`` may be a name it defines) and, when ``y`` is a submodule,
to ``lcamlab.x.y``; the implicit import of a dotted module's parents (``import lcamlab.train.config``
runs ``lcamlab/train/__init__.py`` first) is how Python packages work and is not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import lcamlab

PACKAGE = Path(lcamlab.__file__).resolve().parent

def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ["lcamlab", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The lcamlab modules ``name`` imports (``from X import y``: X, and ``X.y`` when that is a module)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # ``from X import y`` runs X (a package's __init__) and then y when y is a submodule
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import lcamlab.train.grid.x` style: the longest module
                target = target.rpartition(".")[0]
            if target.startswith("lcamlab") and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    """``{module: the lcamlab modules it imports}``."""
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _package(module: str) -> str:
    """``lcamlab.train.grid`` -> ``lcamlab.train``; a top-level module is its own unit."""
    return ".".join(module.split(".")[:2])


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _describe(component: frozenset[str], graph: dict[str, set[str]]) -> str:
    edges = sorted(f"{a} -> {b}" for a in component for b in graph.get(a, ()) if b in component)
    return "{" + ", ".join(sorted(component)) + "}: " + "; ".join(edges)


def test_the_scan_sees_the_packages_imports():
    graph = _graph()
    assert {"lcamlab.escape", "lcamlab.escape.cache", "lcamlab.reports.plan", "lcamlab.train.runner"} <= set(graph)
    assert "lcamlab.train.grid" in graph["lcamlab.reports.plan"]
    assert "lcamlab.train.runner" in graph["lcamlab.train.grid"]  # a deferred import inside a function counts
    assert "lcamlab.train.groups" in graph["lcamlab.paper.parse"]
    # the cycle finder itself: a 3-cycle and a self-contained pair, not the tail
    found = _cycles({"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "x": {"y"}, "y": {"x"}})
    assert sorted(map(sorted, found)) == [["a", "b", "c"], ["x", "y"]]


def test_no_import_cycle_between_modules():
    graph = _graph()
    cycles = _cycles(graph)
    assert not cycles, "module import cycles: " + " | ".join(_describe(c, graph) for c in cycles)


def test_no_import_cycle_between_subpackages():
    graph = _graph()
    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        packages.setdefault(_package(module), set()).update(
            _package(t) for t in targets if _package(t) != _package(module))
    cycles = _cycles(packages)
    assert not cycles, "subpackage import cycles: " + " | ".join(_describe(c, packages) for c in cycles)


def test_the_engines_never_import_the_notebook_layer():
    """``lcamlab.reports`` (planning runs, assembling reports) sits above the engines."""
    graph = _graph()
    engines = [m for m in graph if _package(m) in ("lcamlab.train", "lcamlab.paper", "lcamlab.data")]
    upward = sorted(f"{m} -> {t}" for m in engines for t in graph[m] if _package(t) == "lcamlab.reports")
    assert not upward, upward
    # the LCAM paper's momentum groups are shared by paper, reports and train: a leaf module
    assert not graph["lcamlab.train.groups"], graph["lcamlab.train.groups"]


def test_only_the_notebooks_save_figures():
    """Library functions return figures; a notebook names and saves each one (``style.show``)."""
    saving = []
    for name, path in _modules().items():
        if name == "lcamlab.style":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) \
                    else ""
                owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
                if called in ("save_figure", "savefig") or (owner == "style" and called == "show"):
                    saving.append(f"{name}:{node.lineno} {called}")
    assert not saving, saving
