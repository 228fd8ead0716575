"""The import graph of `mlplatform/`, read from the source with `ast`.

Every import counts, the ones inside functions too: a lazy import still makes two
modules depend on each other, it only hides the circle until run time. A node is a
module (a package's `__init__` is the package); `from a import b` is an edge to
`a.b` when that is a module, else to `a`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ImportGraph:
    edges: dict[str, set[str]]
    """Each module of the package and the package's modules it imports."""

    @property
    def edge_count(self) -> int:
        return sum(len(targets) for targets in self.edges.values())

    def cycles(self) -> list[list[str]]:
        """The strongly connected components with more than one module, or a module importing itself."""
        return [sorted(c) for c in _components(self.edges) if len(c) > 1 or next(iter(c)) in self.edges[next(iter(c))]]

    def levels(self) -> dict[str, int]:
        """Level 0 imports nothing of the package; a module sits one above the highest it imports.

        Defined on the graph of components, so it is also defined while circles exist.
        """
        component_of = {m: frozenset(c) for c in _components(self.edges) for m in c}
        level: dict[frozenset[str], int] = {}

        def visit(component: frozenset[str]) -> int:
            if component not in level:
                below = {component_of[t] for m in component for t in self.edges[m]} - {component}
                level[component] = 1 + max((visit(c) for c in below), default=-1)
            return level[component]

        return {m: visit(component_of[m]) for m in self.edges}

    def collapsed(self, depth: int) -> ImportGraph:
        """The same graph with module names cut to `depth` dotted parts (`mlplatform.platform` for depth 2)."""
        cut = {m: ".".join(m.split(".")[:depth]) for m in self.edges}
        edges: dict[str, set[str]] = {n: set() for n in cut.values()}
        for module, targets in self.edges.items():
            edges[cut[module]].update(cut[t] for t in targets if cut[t] != cut[module])
        return ImportGraph(edges)


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = module.split(".")
        anchor = anchor if is_package else anchor[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def import_graph(root: Path) -> ImportGraph:
    """The graph of the package at `root` (the directory holding its `__init__.py`)."""
    paths = {_module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    edges: dict[str, set[str]] = {m: set() for m in paths}
    for module, path in paths.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            names = _imported(node, module, is_package)
            if isinstance(node, ast.ImportFrom):
                # `from a import b`: the submodule b if there is one, else the names of a.
                submodules = [n for n in names[1:] if n in paths]
                targets = submodules or [names[0]]
            else:
                targets = names
            edges[module].update(t for t in targets if t in paths and t != module)
    return ImportGraph(edges)


def _components(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit on a deep graph)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[set[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(edges[succ]))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                found.append(component)
    return found
