"""The model stacks with a canary that takes traffic: the matrix of the scheduled `rollout.yml`.

Prints `$GITHUB_OUTPUT` lines: `models=` (a matrix of `{"project", "stack",
"environment"}`, as `deploy_matrix` prints for the deploy jobs, so both share
the per-stack concurrency group) and `models_any=`. A canary at weight 0 (aborted,
or not started) is skipped: there is nothing to watch.

Reads the stack files strictly (the one reader: a duplicate key fails here as
in the Pulumi CLI) but does not validate them against the config model: a file
that does not validate is the deploy's problem, and must not stop the other
stacks' watch. Usage: `python -m mlplatform.tools.ci.active_canaries --root .`
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mlplatform.tools.ci.changed_stacks import MODEL_PROJECT
from mlplatform.tools.ci.deploy_matrix import stack_environment
from mlplatform.tools.stackfile.reader import config_block, stack_files

CANARY_KEY = "mlmodel:canary"


def active(root: Path) -> list[dict[str, str]]:
    entries = []
    for stack, path in stack_files(root / MODEL_PROJECT).items():
        canary = config_block(path).get(CANARY_KEY)
        weight = canary.get("weight") if isinstance(canary, dict) else None
        if isinstance(weight, int) and weight > 0:
            entries.append(
                {"project": MODEL_PROJECT, "stack": stack, "environment": stack_environment(root, MODEL_PROJECT, stack)}
            )
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=".", help="repository root (default: .)")
    args = parser.parse_args(argv)
    entries = active(Path(args.root))
    print(f"models={json.dumps({'include': entries})}")
    print(f"models_any={'true' if entries else 'false'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
