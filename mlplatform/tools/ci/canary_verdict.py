"""The judge's last verdict on a model stack's canary, for the PR comment (`<stack>.verdict.json`).

`rollout watch` and the verbs store the judge's whole record (outcome, window, samples,
measured values, thresholds, reasons) in the InferenceService record's status
(`status.lastVerdict`, tools/rollout/state.py); this reads it the way `rollout status` does
(the same status store, the same platform facts), without querying Prometheus: the preview
job shows what the judge decided, it does not judge again.

- The stack file has no canary: nothing is written (exit 0), the comment has no gate line.
- The record holds a verdict: it is written as the judge recorded it, with the rollout's
  phase and weight beside it.
- No verdict yet (a canary the judge has not checked) or the record cannot be read (no
  cluster access, no platform outputs): a record with outcome `unavailable` and the reason
  is written, so the comment says why there is no verdict rather than leaving it out.

Usage: `python -m mlplatform.tools.ci.canary_verdict --project stacks/model --stack S --out FILE`
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mlplatform.tools.ci.changed_stacks import MODEL_PROJECT
from mlplatform.tools.rollout.state import RolloutStatus, StatusStore
from mlplatform.tools.stackfile.reader import config_block

CANARY_KEY = "mlmodel:canary"


def verdict_record(status: RolloutStatus | None) -> dict[str, Any]:
    if status is None:
        return {"outcome": "unavailable", "reason": "no rollout state recorded on the cluster yet"}
    if not status.last_verdict:
        return {
            "outcome": "unavailable",
            "reason": f"the judge has not checked canary {status.canary_version} at {status.weight}% yet",
            "phase": status.phase,
        }
    return {**status.last_verdict, "phase": status.phase, "weight": status.weight}


def _store(project: Path, stack: str, args: argparse.Namespace) -> StatusStore:
    from mlplatform.tools.rollout.context import Context, Output
    from mlplatform.tools.stackfile.editor import read, stack_path

    path = stack_path(stack, str(project))
    ctx = Context(path=path, out=Output(as_json=True, stream=sys.stderr), args=args)
    return ctx.status_store(read(path).config)


def read_verdict(project: Path, stack: str, args: argparse.Namespace) -> dict[str, Any] | None:
    """The record to write, or None when the stack file has no canary."""
    if not isinstance(config_block(project / f"Pulumi.{stack}.yaml").get(CANARY_KEY), dict):
        return None
    try:
        return verdict_record(_store(project, stack, args).get(missing_ok=True))
    except Exception as error:  # any failure to read becomes the comment's reason, named
        return {"outcome": "unavailable", "reason": f"the rollout state could not be read: {error}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", default=MODEL_PROJECT, help="the model stacks' project (default stacks/model)")
    parser.add_argument("--stack", required=True)
    parser.add_argument("--out", required=True, help="where to write the verdict record (JSON)")
    parser.add_argument("--status-file", help="read the state from this file instead of the cluster (tests, laptops)")
    parser.add_argument("--platform-outputs", help="the platform's `pulumi stack output --json`, as for `rollout`")
    args = parser.parse_args(argv)
    project = Path(args.project)
    if not (project / f"Pulumi.{args.stack}.yaml").is_file():
        print(f"canary_verdict: no stack file {project}/Pulumi.{args.stack}.yaml", file=sys.stderr)
        return 2
    record = read_verdict(project, args.stack, args)
    if record is None:
        print(f"canary_verdict: {args.stack} has no canary; no verdict to show")
        return 0
    Path(args.out).write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"canary_verdict: {args.stack}: {record['outcome']} -> {args.out}")
    if record["outcome"] == "unavailable":
        print(f"::warning title=canary verdict::{args.stack}: {record['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
