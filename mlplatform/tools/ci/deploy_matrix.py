"""The deploy and preview workflows' two matrices: platform stacks, then model stacks.

Reads `changed_stacks`' JSON (`{"include": [{"project", "stack"}, ...]}`) on stdin
and prints `$GITHUB_OUTPUT` lines: `platform=`, `models=` (each a matrix whose
entries also carry the stack's `environment`, which names the GitHub environment
the deploy job runs in) and `platform_any=`/`models_any=`. The split exists so a
workflow can apply platform stacks before model stacks: a model stack reads the
platform's outputs, so it must see the new ones.

Usage: `python -m mlplatform.tools.ci.changed_stacks --root . | python -m mlplatform.tools.ci.deploy_matrix --root .`
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mlplatform.tools.ci.changed_stacks import MODEL_PROJECT, PLATFORM_PROJECT
from mlplatform.tools.stackfile.reader import config_block, stack_file

# The environment key of each project and its default (both config models default to dev).
ENVIRONMENT_KEYS = {PLATFORM_PROJECT: "mlplatform:environment", MODEL_PROJECT: "mlmodel:environment"}
DEFAULT_ENVIRONMENT = "dev"


def stack_environment(root: Path, project: str, stack: str) -> str:
    """The stack's `environment` config value, read from its `Pulumi.<stack>.yaml`."""
    value = config_block(stack_file(root / project, stack)).get(ENVIRONMENT_KEYS[project], DEFAULT_ENVIRONMENT)
    return str(value)


def split(matrix: dict, root: Path) -> dict[str, list[dict[str, str]]]:
    groups: dict[str, list[dict[str, str]]] = {"platform": [], "models": []}
    for entry in matrix["include"]:
        project, stack = entry["project"], entry["stack"]
        if project not in ENVIRONMENT_KEYS:
            raise ValueError(f"unknown project {project!r} in the changed-stacks matrix")
        group = "platform" if project == PLATFORM_PROJECT else "models"
        groups[group].append(
            {"project": project, "stack": stack, "environment": stack_environment(root, project, stack)}
        )
    return groups


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=".", help="repository root (default: .)")
    args = parser.parse_args(argv)
    groups = split(json.loads(sys.stdin.read()), Path(args.root))
    for name, entries in groups.items():
        print(f"{name}={json.dumps({'include': entries})}")
        print(f"{name}_any={'true' if entries else 'false'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
