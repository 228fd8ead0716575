"""The `mlplatform` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlplatform.configuration import ConfigError


def _render(args: argparse.Namespace) -> int:
    from mlplatform.tools.render import render_stack, resource_tree, write_render

    project_dir = Path(args.project_dir)
    out_dir = Path(args.out) if args.out else Path("rendered") / args.stack
    recording = render_stack(
        project_dir, args.stack, platform_dir=Path(args.platform_dir) if args.platform_dir else None
    )
    result = write_render(recording, out_dir, show_secrets=args.show_secrets)
    print(resource_tree(recording))
    print()
    print(f"wrote {len(result.manifests)} Kubernetes manifests to {out_dir / 'manifests'}")
    print(f"wrote the plan (cloud resources, Helm releases) to {result.plan_path}")
    print(f"wrote the stack outputs to {result.outputs_path}")
    if not args.show_secrets:
        print("secrets are shown as [secret]; pass --show-secrets to see the offline placeholder values")
    if recording.secret_placeholders:
        print(
            "secure: config values cannot be decrypted offline and were rendered as [secret:<key>] "
            f"placeholders: {', '.join(recording.secret_placeholders)}"
        )
    return 0


def _diff(args: argparse.Namespace) -> int:
    import json

    from mlplatform.tools.diff import Override, diff_stack, format_report, parse_assignment

    if not (args.set or args.unset or args.against or args.base):
        raise ConfigError(
            args.stack, ["nothing to compare: give --set KEY=VALUE, --unset KEY, --against FILE or --base FILE"]
        )
    if args.base and (args.set or args.unset or args.against):
        raise ConfigError(args.stack, ["--base compares that file with the stack file: no --set, --unset or --against"])
    overrides = [parse_assignment(text, stack=args.stack) for text in args.set]
    overrides += [Override(key, remove=True) for key in args.unset]
    report = diff_stack(
        Path(args.project_dir),
        args.stack,
        overrides=overrides,
        against=Path(args.against) if args.against else None,
        platform_dir=Path(args.platform_dir) if args.platform_dir else None,
        base=Path(args.base) if args.base else None,
    )
    print(json.dumps(report.to_json(), indent=2, default=str) if args.json else format_report(report))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlplatform", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    render = commands.add_parser(
        "render",
        help="run a stack's program offline and write its Kubernetes manifests and plan",
        description="Run the real program of a stack without cloud, cluster or Pulumi CLI, and write what it declares.",
    )
    render.add_argument("project_dir", help="the Pulumi project: `.` for the platform, `stacks/model` for model stacks")
    render.add_argument("stack", help="stack name, e.g. dev, prod, fraud-detector-prod")
    render.add_argument("--out", help="output directory (default: rendered/<stack>)")
    render.add_argument("--show-secrets", action="store_true", help="write secret values instead of [secret]")
    render.add_argument(
        "--platform-dir", help="platform project answering StackReferences (default: found above project_dir)"
    )
    render.set_defaults(handler=_render)

    diff = commands.add_parser(
        "diff",
        help="name every resource a config edit changes, and whether pods restart",
        description=(
            "Run a stack's program offline with its stack file and with an edited config, and report every "
            "resource whose inputs change, what is added or removed, and whether a pod template changes. "
            "--set/--unset apply on top of the stack file (or of --against FILE)."
        ),
    )
    diff.add_argument("project_dir", help="the Pulumi project: `.` for the platform, `stacks/model` for model stacks")
    diff.add_argument("stack", help="stack name, e.g. fraud-detector-prod")
    diff.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a config key (canary.weight or mlmodel:canary.weight; teams[0].name); VALUE is YAML, "
        "so quote strings that look like numbers: 'cluster.kubernetesVersion=\"1.34\"'",
    )
    diff.add_argument("--unset", action="append", default=[], metavar="KEY", help="remove a config key, e.g. canary")
    diff.add_argument("--against", metavar="FILE", help="compare with this config file (a Pulumi.<stack>.yaml)")
    diff.add_argument(
        "--base",
        metavar="FILE",
        help="compare this config file (before; e.g. the PR base's stack file) with the stack file (after)",
    )
    diff.add_argument("--json", action="store_true", help="print the report as JSON")
    diff.add_argument(
        "--platform-dir", help="platform project answering StackReferences (default: found above project_dir)"
    )
    diff.set_defaults(handler=_diff)

    from mlplatform.tools.rollout.cli import register as register_rollout

    register_rollout(commands)
    return parser


# Exit codes of `render` and `diff` (docs/troubleshooting.md lists them):
EXIT_OK = 0
# A bug, not a mistake in the input: Python's own exit code for an uncaught exception,
# which keeps its traceback for the report.
EXIT_INTERNAL = 1
# The input is wrong: invalid config, a malformed or unreadable stack file, an unknown
# project or stack, a StackReference that cannot be answered, bad arguments (argparse
# exits 2 as well). One line per problem on stderr, no traceback, nothing written.
EXIT_INPUT = 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INPUT
    except Exception as err:  # the user gets one line, not a Pulumi runtime traceback
        from mlplatform.tools.render import RenderError

        if isinstance(err, RenderError):
            print(f"error: {err}", file=sys.stderr)
            return EXIT_INPUT
        if isinstance(err, ValueError) and args.command in ("render", "diff"):
            # The programs raise ValueError for a rule that needs the platform's
            # outputs (e.g. a trafficApi the platform does not install): a config
            # mistake that validation could not see, not a bug.
            print(f"error: stack '{args.stack}': {err}", file=sys.stderr)
            return EXIT_INPUT
        raise


if __name__ == "__main__":
    sys.exit(main())
