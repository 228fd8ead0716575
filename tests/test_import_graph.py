"""The import graph of `mlplatform/` has no circles.

A circle makes two modules one unit that can only be read, tested and moved
together, and a lazy import inside a function only hides it until run time, so
imports inside functions count too (see `tests/support/import_graph.py`).
"""

from __future__ import annotations

from pathlib import Path

from tests.support.import_graph import ImportGraph, import_graph

PACKAGE = Path(__file__).resolve().parent.parent / "mlplatform"


def _summary(graph: ImportGraph) -> str:
    levels = graph.levels()
    return f"{len(graph.edges)} modules on {max(levels.values()) + 1} levels, {graph.edge_count} edges"


def test_no_import_circles() -> None:
    """No module of `mlplatform/` reaches itself through its imports."""
    graph = import_graph(PACKAGE)
    print(f"mlplatform import graph: {_summary(graph)}, {len(graph.cycles())} circles")
    assert graph.cycles() == []
    assert len(graph.edges) > 60 and graph.edge_count > 100  # the walk read the package, not an empty directory


def _part(module: str) -> str:
    """The unit a reader sees: `mlplatform.<module or package>`, and each part of the tools wing."""
    parts = module.split(".")
    return ".".join(parts[:3] if len(parts) >= 3 and parts[1] == "tools" else parts[:2])


def _parts(graph: ImportGraph) -> ImportGraph:
    edges: dict[str, set[str]] = {}
    for module, targets in graph.edges.items():
        edges.setdefault(_part(module), set()).update(_part(t) for t in targets if _part(t) != _part(module))
    for target in {t for ts in edges.values() for t in ts}:
        edges.setdefault(target, set())
    return ImportGraph(edges)


def test_no_circles_between_packages() -> None:
    """Coarser too: no two parts of the package (e.g. the tools wing's `rollout` and `stackfile`) import each
    other, directly or round about, so each part can be read with only what lies below it."""
    parts = _parts(import_graph(PACKAGE))
    print(f"mlplatform parts: {_summary(parts)}")
    assert parts.cycles() == []
    assert {"mlplatform.tools.rollout", "mlplatform.tools.stackfile", "mlplatform.platform"} <= set(parts.edges)


# A ratchet, measured when the last edges that added a level for no reason were cut: lower these when a change
# flattens the graph, never raise them. A new level means a longer chain a reader must climb to understand
# the top; the fix is usually an import of a helper that belongs one level lower.
MAX_MODULE_LEVELS = 12
MAX_PART_LEVELS = 10
# 45 with 23 parts; the round of 2026-12-04 added five parts (images, aborted_canary, tools.service_proxy,
# tools.pulumi_cli, and config_fields in place of credentials) and 12 edges (the model program and the rollout
# guard share the one abort rule), while merging the
# secret and key-path helpers into one leaf and making images a leaf kept the levels at 10.
MAX_PART_EDGES = 57


def test_the_graph_gets_no_deeper() -> None:
    graph = import_graph(PACKAGE)
    parts = _parts(graph)
    module_levels = max(graph.levels().values()) + 1
    part_levels = max(parts.levels().values()) + 1
    assert module_levels <= MAX_MODULE_LEVELS, f"modules: {_summary(graph)}; at most {MAX_MODULE_LEVELS} levels"
    assert part_levels <= MAX_PART_LEVELS, f"parts: {_summary(parts)}; at most {MAX_PART_LEVELS} levels"
    assert parts.edge_count <= MAX_PART_EDGES, f"parts: {_summary(parts)}; at most {MAX_PART_EDGES} edges"


def test_a_lazy_import_counts(tmp_path: Path) -> None:
    """An import inside a function closes a circle as much as one at the top of the module."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import thing\n")
    (package / "b.py").write_text("def thing():\n    from pkg import a\n    from . import c\n")
    (package / "c.py").write_text("import pkg.a\n")
    graph = import_graph(package)
    assert graph.edges == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a", "pkg.c"}, "pkg.c": {"pkg.a"}}
    assert graph.cycles() == [["pkg.a", "pkg.b", "pkg.c"]]
    assert graph.levels() == {"pkg": 0, "pkg.a": 0, "pkg.b": 0, "pkg.c": 0}


def test_levels_count_the_longest_chain(tmp_path: Path) -> None:
    """A module sits one level above the highest module it imports."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "base.py").write_text("import json\n")
    (package / "mid.py").write_text("from pkg.base import x\n")
    (package / "top.py").write_text("from pkg import base, mid\n")
    graph = import_graph(package)
    assert graph.cycles() == []
    assert graph.levels() == {"pkg": 0, "pkg.base": 0, "pkg.mid": 1, "pkg.top": 2}
    assert graph.edge_count == 3
