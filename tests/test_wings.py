"""The seam between the program wing and the tools wing.

`pulumi up` runs the program wing: `mlplatform.platform`, `mlplatform.model` and the
ground they stand on. The tools wing (`mlplatform.tools`) is what people and CI run
around it. `changed_stacks` previews no stack for a change in the tools wing, which is
only safe while no program module imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

from mlplatform.tools.ci.changed_stacks import project_files

ROOT = Path(__file__).resolve().parent.parent
TOOLS = "mlplatform.tools"


def _program_modules() -> list[Path]:
    package = ROOT / "mlplatform"
    return sorted(p for p in package.rglob("*.py") if not p.relative_to(package).as_posix().startswith("tools/"))


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_program_module_imports_the_tools_wing() -> None:
    """Every import anywhere in a program module, inside functions too, stays out of `mlplatform.tools`."""
    offenders = {
        path.relative_to(ROOT).as_posix(): sorted(n for n in _imports(path) if n == TOOLS or n.startswith(TOOLS + "."))
        for path in _program_modules()
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    assert len(offenders) > 40  # the walk saw the program wing, not an empty directory


def test_no_entry_point_reaches_the_tools_wing() -> None:
    """The files each project's entry point runs, followed transitively, include no tools module."""
    graph = project_files(ROOT)
    assert graph["."] and graph["stacks/model"]
    for project, files in graph.items():
        assert [f for f in files if f.startswith("mlplatform/tools/")] == [], project


def test_no_relative_import_crosses_the_seam() -> None:
    """A relative import from the program wing cannot climb into the tools wing either."""
    for path in _program_modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert not (node.module or "").startswith("tools"), path
