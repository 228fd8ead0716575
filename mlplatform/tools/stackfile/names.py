"""Stack names from stack file names: the one parser of `Pulumi.<stack>.yaml`.

Standard library only: `ci/changed_stacks` runs from a bare interpreter, before
the project's dependencies are installed, and needs these too.
"""

from __future__ import annotations

from pathlib import Path, PurePath

PREFIX, SUFFIXES = "Pulumi.", (".yaml", ".yml")


def stack_of(path: Path | PurePath | str) -> str | None:
    """`Pulumi.dev.yaml` -> `dev`; None for any other file (the project's `Pulumi.yaml` included)."""
    name = PurePath(path).name
    for suffix in SUFFIXES:
        if name.startswith(PREFIX) and name.endswith(suffix) and len(name) > len(PREFIX) + len(suffix):
            return name[len(PREFIX) : -len(suffix)]
    return None


def stack_file(project_dir: Path | str, stack: str) -> Path:
    """`<project_dir>/Pulumi.<stack>.yaml`."""
    return Path(project_dir) / f"{PREFIX}{stack}.yaml"


def stack_files(project_dir: Path | str) -> dict[str, Path]:
    """Every stack file of a project directory, by stack name, sorted by name."""
    found = {stack_of(p): p for p in sorted(Path(project_dir).glob(f"{PREFIX}*.y*ml"))}
    return {stack: path for stack, path in sorted(found.items()) if stack is not None}
