"""Which Pulumi stacks a change touches: the preview and deploy workflows' matrix.

A stack file change previews that stack alone. A code change previews every
stack whose program imports the file: the modules each project runs are derived
from its entry point (`__main__.py`, `stacks/model/__main__.py`) by following
its imports, with Python's `ast`, transitively and including imports inside
functions. Nothing is listed by hand, so a new shared module (`mlplatform/security.py`)
is found by itself.

The tools wing (`mlplatform/tools/`: render, diff, the rollout CLI, these CI
helpers) is what people and CI run around the program, and no program module
imports it (a test holds that seam): a change there previews no stack.

When unsure, a path is mapped to more stacks, not fewer: an extra preview costs
minutes, a missed one lets an untested change merge. So any other file under
`mlplatform/` that no entry point reaches (a data file, a deleted module, an
import hidden in `importlib`) maps to every stack, and so do the dependency
files. Files outside the package and the projects (tests, docs, workflows)
preview nothing.

The workflows run this file with a bare `python` before any dependency is
installed: it uses the standard library only and imports nothing of the project.

Usage: `git diff --name-only BASE...HEAD | python mlplatform/tools/ci/changed_stacks.py --root .`
prints `{"include": [{"project": "stacks/model", "stack": "fraud-detector-prod"}, ...]}`.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

if not __package__:  # run as a script (`python mlplatform/tools/ci/changed_stacks.py`): find the repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from mlplatform.tools.stackfile.names import stack_files, stack_of

PLATFORM_PROJECT = "."
MODEL_PROJECT = "stacks/model"
PROJECTS = (PLATFORM_PROJECT, MODEL_PROJECT)
PACKAGE = "mlplatform"
# The tools wing: never imported by a program, so never a reason to preview.
TOOLS_WING = f"{PACKAGE}/tools/"
ENTRY_POINT = "__main__.py"
# Read by every program through the installed environment, not through an import.
DEPENDENCY_FILES = ("requirements.txt", "pyproject.toml")
# Every preview runs the policy pack: a rule change previews every stack, so the PR shows its verdicts.
POLICY_PACK = "policy/"


@dataclass(frozen=True, order=True)
class Stack:
    project: str
    stack: str


def stacks_of(root: Path, project: str) -> list[Stack]:
    """Every `Pulumi.<stack>.yaml` of a project directory."""
    return [Stack(project, stack) for stack in stack_files(root / project)]


def _stack_file(path: PurePosixPath) -> str | None:
    return stack_of(path)


# -- the import graph ------------------------------------------------------------


def _module_file(root: Path, search: list[Path], module: str) -> Path | None:
    """The file of `module` under one of `search`, if it is the repository's own code."""
    parts = module.split(".")
    for base in search:
        for candidate in (base.joinpath(*parts).with_suffix(".py"), base.joinpath(*parts, "__init__.py")):
            if candidate.is_file() and root in candidate.resolve().parents:
                return candidate.resolve()
    return None


def _package_of(root: Path, path: Path) -> list[str]:
    """The dotted package a file belongs to, e.g. ["mlplatform", "model"] for mlplatform/model/x.py."""
    relative = path.relative_to(root).parent.parts
    return list(relative)


def _imported_names(tree: ast.AST, package: list[str]) -> set[str]:
    """Every module name an import statement anywhere in `tree` may load, absolute.

    `from a import b` may import the module `a.b` or the attribute `b` of `a`:
    both are returned, and the caller keeps those that are files."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # A file's package is its directory, for a module and for an `__init__.py` alike.
                base = package[: len(package) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            if prefix:
                names.add(prefix)
                names.update(f"{prefix}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _with_parents(module: str) -> list[str]:
    """`a.b.c` -> [`a`, `a.b`, `a.b.c`]: importing a submodule runs every package `__init__` above it."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def imported_files(root: Path, project: str) -> set[Path]:
    """The repository files the project's entry point runs: itself and every module it imports, transitively."""
    root = root.resolve()
    project_dir = (root / project).resolve()
    entry = project_dir / ENTRY_POINT
    if not entry.is_file():
        return set()
    # What `pulumi` puts on sys.path: the project directory, then the installed package (the root).
    search = [project_dir, root]
    seen: set[Path] = set()
    pending = [entry]
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue  # an unreadable module adds no edges; it maps to every stack below
        package = _package_of(root, path) if root in path.parents else []
        for name in _imported_names(tree, package):
            for module in _with_parents(name):
                found = _module_file(root, search, module)
                if found is not None and found not in seen:
                    pending.append(found)
    return seen


def project_files(root: Path) -> dict[str, set[str]]:
    """For each project, the repository-relative paths of the files its program runs."""
    root = root.resolve()
    return {
        project: {path.relative_to(root).as_posix() for path in imported_files(root, project)} for project in PROJECTS
    }


# -- paths to stacks ----------------------------------------------------------------


def _projects_of(text: str, path: PurePosixPath, graph: dict[str, set[str]]) -> set[str]:
    """The projects a changed (non stack-file) path can affect."""
    if text in DEPENDENCY_FILES or text.startswith(POLICY_PACK):
        return set(PROJECTS)
    if text.startswith(TOOLS_WING):
        return set()
    projects = {project for project, files in graph.items() if text in files}
    if text.startswith(f"{PACKAGE}/"):
        # Fail safe: package files no entry point reaches map to every stack.
        return projects or set(PROJECTS)
    if str(path.parent) == MODEL_PROJECT or text.startswith(f"{MODEL_PROJECT}/"):
        projects.add(MODEL_PROJECT)  # the model project's own files (Pulumi.yaml, requirements)
    elif str(path.parent) == "." and (path.name == "Pulumi.yaml" or path.suffix == ".py"):
        projects.add(PLATFORM_PROJECT)  # the platform project's own files
    return projects


def changed_stacks(paths: list[str], root: Path, graph: dict[str, set[str]] | None = None) -> list[Stack]:
    """The stacks to preview for `paths`; `graph` is `project_files(root)`, computed when first needed."""
    stacks = {project: stacks_of(root, project) for project in PROJECTS}
    existing = {stack for found in stacks.values() for stack in found}
    selected: set[Stack] = set()
    for raw in paths:
        path = PurePosixPath(raw.strip().removeprefix("./"))
        text = str(path)
        if not text or text == ".":
            continue
        stack = _stack_file(path)
        parent = str(path.parent)
        if stack is not None and parent in PROJECTS:
            # A deleted stack file has nothing left to preview.
            selected.add(Stack(parent, stack))
            continue
        if graph is None:
            graph = project_files(root)
        for project in _projects_of(text, path, graph):
            selected.update(stacks[project])
    return sorted(selected & existing)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", help="changed paths (default: read from stdin, one a line)")
    parser.add_argument("--root", default=".", help="repository root (default: .)")
    args = parser.parse_args(argv)
    paths = args.paths or sys.stdin.read().splitlines()
    stacks = changed_stacks(paths, Path(args.root))
    print(json.dumps({"include": [{"project": s.project, "stack": s.stack} for s in stacks]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
