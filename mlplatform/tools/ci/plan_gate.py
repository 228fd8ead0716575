"""Apply the reviewed plan, or preview again: deploy.yml's choice for one stack.

`preview.yml` saves each stack's plan (`pulumi preview --save-plan`) with the fingerprint
of that stack's inputs as the preview saw them. On merge, `deploy.yml` applies the plan
(`pulumi up --plan`) only when the merge commit's inputs have the same fingerprint;
otherwise something the review never saw landed in between (another PR touching a shared
module, a dependency bump), and it previews again and says so in the job summary.

A stack's inputs: the files its program runs (the import graph of changed_stacks.py), the
project's Pulumi.yaml and the stack file, the dependency files, and the policy pack.
What lives outside the repository (the stack's state, a platform output a model stack
reads) is not fingerprinted: the plan itself holds that line, since `up --plan` refuses
any operation the preview did not plan.

Usage:
  python -m mlplatform.tools.ci.plan_gate fingerprint --project stacks/model --stack S > S.inputs
  python -m mlplatform.tools.ci.plan_gate decide --project stacks/model --stack S \
      --previewed S.inputs --plan S.plan.json
`decide` prints `mode=plan` or `mode=preview` (for $GITHUB_OUTPUT) and writes the reason to
stderr and, when set, to $GITHUB_STEP_SUMMARY.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

from mlplatform.tools.ci.changed_stacks import DEPENDENCY_FILES, POLICY_PACK, project_files


def stack_inputs(root: Path, project: str, stack: str) -> list[str]:
    """Repository-relative paths of everything that decides what the stack's preview shows."""
    files = set(project_files(root)[project])
    files |= {f"{project}/Pulumi.yaml".removeprefix("./"), f"{project}/Pulumi.{stack}.yaml".removeprefix("./")}
    files |= set(DEPENDENCY_FILES)
    files |= {
        p.relative_to(root).as_posix()
        for p in (root / POLICY_PACK).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    return sorted(files)


def fingerprint(root: Path, project: str, stack: str) -> str:
    """sha256 over each input's path and content; a missing file counts as missing."""
    root = root.resolve()
    digest = hashlib.sha256()
    for path in stack_inputs(root, project, stack):
        file = root / path
        content = file.read_bytes() if file.is_file() else b"\0missing"
        digest.update(f"{path}\0{hashlib.sha256(content).hexdigest()}\n".encode())
    return digest.hexdigest()


def decide(root: Path, project: str, stack: str, previewed: str | None, plan: Path | None) -> tuple[str, str]:
    """("plan" | "preview", why)."""
    if plan is None or not plan.is_file():
        return "preview", f"{project}/{stack}: no saved plan from the PR's preview; previewing again"
    if not previewed:
        return "preview", f"{project}/{stack}: the plan has no inputs fingerprint; previewing again"
    current = fingerprint(root, project, stack)
    if current != previewed.strip():
        return "preview", (
            f"{project}/{stack}: the merge commit's inputs differ from the previewed ones "
            f"({previewed.strip()[:12]} -> {current[:12]}); previewing again instead of "
            "applying the reviewed plan"
        )
    return "plan", f"{project}/{stack}: inputs unchanged since the preview ({current[:12]}); applying its plan"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("fingerprint", "decide"):
        sub = commands.add_parser(name)
        sub.add_argument("--root", default=".")
        sub.add_argument("--project", required=True, help="`.` or stacks/model")
        sub.add_argument("--stack", required=True)
        if name == "decide":
            sub.add_argument("--previewed", required=True, help="the fingerprint file saved with the plan")
            sub.add_argument("--plan", required=True, help="the saved plan file")
    args = parser.parse_args(argv)
    root = Path(args.root)
    if not (root / args.project / f"Pulumi.{args.stack}.yaml").is_file():
        print(f"plan_gate: no stack file {args.project}/Pulumi.{args.stack}.yaml under {root}", file=sys.stderr)
        return 2
    if args.command == "fingerprint":
        print(fingerprint(root, args.project, args.stack))
        return 0
    previewed_file = Path(args.previewed)
    previewed = previewed_file.read_text() if previewed_file.is_file() else None
    mode, why = decide(root, args.project, args.stack, previewed, Path(args.plan))
    print(f"mode={mode}")
    print(why, file=sys.stderr)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(f"- {why}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
