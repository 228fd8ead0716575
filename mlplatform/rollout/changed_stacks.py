"""Which Pulumi stacks a change touches: the preview and deploy workflows' matrix.

A stack file change previews that stack alone; code changes preview every
stack that runs the code. Files no program reads (tests, docs, this tool)
preview nothing. When unsure, a path is mapped to more stacks, not fewer: an
extra preview costs minutes, a missed one lets an untested change merge.

Usage: `git diff --name-only BASE...HEAD | python -m mlplatform.rollout.changed_stacks --root .`
prints `{"include": [{"project": "stacks/model", "stack": "fraud-detector-prod"}, ...]}`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

PLATFORM_PROJECT = "."
MODEL_PROJECT = "stacks/model"
# Read by both programs: a change here can alter any stack.
SHARED = ("mlplatform/__init__.py", "mlplatform/configuration.py", "mlplatform/labels.py",
          "requirements.txt", "pyproject.toml")
PLATFORM_CODE = ("mlplatform/platform/", "__main__.py", "Pulumi.yaml")
MODEL_CODE = ("mlplatform/model/", "stacks/model/")


@dataclass(frozen=True, order=True)
class Stack:
    project: str
    stack: str


def stacks_of(root: Path, project: str) -> list[Stack]:
    """Every `Pulumi.<stack>.yaml` of a project directory."""
    directory = root / project
    return [
        Stack(project, path.name[len("Pulumi.") : -len(".yaml")])
        for path in sorted(directory.glob("Pulumi.*.yaml"))
    ]


def _stack_file(path: PurePosixPath) -> str | None:
    name = path.name
    if name.startswith("Pulumi.") and name.endswith(".yaml") and name != "Pulumi.yaml":
        return name[len("Pulumi.") : -len(".yaml")]
    return None


def changed_stacks(paths: list[str], root: Path) -> list[Stack]:
    platform = stacks_of(root, PLATFORM_PROJECT)
    models = stacks_of(root, MODEL_PROJECT)
    existing = set(platform) | set(models)
    selected: set[Stack] = set()
    for raw in paths:
        path = PurePosixPath(raw.strip().removeprefix("./"))
        text = str(path)
        if not text or text == ".":
            continue
        stack = _stack_file(path)
        parent = str(path.parent)
        if stack is not None and parent in (".", MODEL_PROJECT):
            # A deleted stack file has nothing left to preview.
            selected.add(Stack(PLATFORM_PROJECT if parent == "." else MODEL_PROJECT, stack))
        elif text in SHARED:
            selected.update(platform, models)
        elif text.startswith(MODEL_CODE):
            selected.update(models)
        elif text in PLATFORM_CODE or text.startswith(PLATFORM_CODE):
            selected.update(platform)
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
