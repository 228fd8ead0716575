"""`mlplatform rollout`: gated canary steps written as edits of the model stack's config file.

The tool decides and writes; `pulumi up` (by hand, by the deploy workflow, or by the tool itself with `--apply`)
applies. Exit codes:
  0 done
  1 refused by the gate, a rollout rule or the registry (the output says why, with numbers), or `next`
    before the current step's dwell has passed (it names the time left; --skip-dwell REASON overrides);
    with --apply, a step's update plan that holds more than the split and the record (the file is back)
  2 usage or input error (arguments; a missing, malformed or invalid stack file; a missing platform output)
  3 unavailable: Prometheus, MLflow or the Kubernetes API (the rollout state) could not be queried
  4 I/O error: the stack file or its lock cannot be read or written, or `git commit` failed
  5 busy: another rollout command holds the stack file, or changed it meanwhile (`next --from W`: the
    canary is no longer at W); with --apply, another
    update holds the stack's Pulumi state
  6 --apply: `pulumi up` failed; the stack file is back as it was before the edit
Nothing is written on a non-zero exit (but 4 after a successful --apply `up`: the file keeps the applied edit).
"""

from __future__ import annotations

import argparse
import os

from mlplatform.configuration import ConfigError
from mlplatform.tools.kube import KubeError
from mlplatform.tools.rollout import apply, commands, explain, lock, observe, watch
from mlplatform.tools.rollout.context import (
    EXIT_APPLY_FAILED,
    EXIT_BUSY,
    EXIT_IO,
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    PROMETHEUS_URL_ENV,
    STATUS_FILE_ENV,
    Context,
    GitError,
    Output,
    UsageError,
)
from mlplatform.tools.rollout.gate import PrometheusError
from mlplatform.tools.rollout.platform import PlatformOutputError
from mlplatform.tools.rollout.report import registry_checks
from mlplatform.tools.stackfile import editor as stackfile
from mlplatform.tools.stackfile import rules

DEFAULT_LOCK_TIMEOUT = 10.0


def _positive(kind: type):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
        return value

    return parse


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _weight(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"a weight is a percentage in [0, 100], got {text}")
    return value


def _parent_parsers() -> tuple[argparse.ArgumentParser, ...]:
    """The option groups the verbs share: common, gate, writes, applying, mlflow."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("stack", help="model stack, e.g. fraud-detector-prod (file: <project-dir>/Pulumi.<stack>.yaml)")
    common.add_argument(
        "--project-dir", default=str(stackfile.STACKS_DIR), help="the model stacks' project (default: stacks/model)"
    )
    common.add_argument("--json", action="store_true", help="one JSON object per event, for CI")
    common.add_argument(
        "--lock-timeout",
        type=_non_negative_float,
        default=DEFAULT_LOCK_TIMEOUT,
        help=f"seconds to wait for another rollout command on the same stack file (default {DEFAULT_LOCK_TIMEOUT:g})",
    )
    common.add_argument(
        "--status-file",
        metavar="FILE",
        default=os.environ.get(STATUS_FILE_ENV) or None,
        help="keep the rollout state (step start, failed checks, last verdict, abort) in this JSON file instead of "
        f"the InferenceService record's status on the cluster (default: ${STATUS_FILE_ENV}, else the cluster)",
    )
    common.add_argument(
        "--platform-outputs",
        metavar="FILE",
        help="the platform stack's outputs as JSON (`pulumi stack output --json`); default: ask `pulumi`, else "
        "render the platform stack offline",
    )

    gate = argparse.ArgumentParser(add_help=False)
    gate.add_argument(
        "--prometheus-url",
        default=os.environ.get(PROMETHEUS_URL_ENV) or None,
        help="Prometheus base URL (default: $PROMETHEUS_URL, else the platform output prometheusUrl, reached "
        "through the Kubernetes API server's service proxy with the kube credentials)",
    )
    gate.add_argument(
        "--prometheus-timeout", type=_positive(float), default=10.0, help="seconds per query (default 10)"
    )
    gate.add_argument(
        "--namespace",
        help="the canary's namespace (default: model.namespace, else the platform output namespaces.serving)",
    )

    writes = argparse.ArgumentParser(add_help=False)
    writes.add_argument("--commit", action="store_true", help="git commit the edited stack file, with the metrics")

    applying = argparse.ArgumentParser(add_help=False)
    applying.add_argument(
        "--apply",
        action="store_true",
        help="apply the edit to this stack, then commit it: a rollback is one `pulumi up`; a step forward is "
        "`preview --save-plan`, the plan checked to hold only the split's and the record's updates (anything "
        "else refuses, exit 1), then `up --plan`. A failed `up` puts the file back (exit 6)",
    )
    applying.add_argument("--git-push", metavar="BRANCH", help="with --apply: push the commit to this branch")
    applying.add_argument(
        "--git-pr",
        action="store_true",
        help="with --apply and --git-push: open a PR into --git-base (`gh pr create`; without gh, print the URL)",
    )
    applying.add_argument("--git-remote", default="origin", help="remote for --git-push (default origin)")
    applying.add_argument("--git-base", default="main", help="base branch of the --git-pr PR (default main)")

    mlflow = argparse.ArgumentParser(add_help=False)
    mlflow.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the platform output mlflowTrackingUri, "
        "reached through the Kubernetes API server's service proxy with the kube credentials)",
    )
    return common, gate, writes, applying, mlflow


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `rollout` and its subcommands to a parser's subcommands."""
    common, gate, writes, applying, mlflow = _parent_parsers()

    rollout = subparsers.add_parser(
        "rollout",
        help="gated canary steps as edits of a model stack's config",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = rollout.add_subparsers(dest="rollout_command", required=True)

    p = verbs.add_parser("status", parents=[common, gate], help="stable, canary, weight, next step, live gate")
    p.set_defaults(rollout_handler=observe.status)

    p = verbs.add_parser("start", parents=[common, writes, mlflow], help="put a new canary at the first step")
    p.add_argument("--version", required=True, help="version label, e.g. v6 (names the Deployment <model>-v6)")
    p.add_argument("--image", help="serving image (default with --from-registry: stable's image)")
    p.add_argument("--model-uri", help="model URI, e.g. models:/fraud_detector/6")
    p.add_argument(
        "--from-registry",
        action="store_true",
        help="take the model URI from the MLflow registry after checking the version's metrics (the alias challenger "
        "moves after `up`, in the deploy workflow)",
    )
    p.add_argument("--registry-version", help="registry version number (default: the digits of --version)")
    p.add_argument("--dry-run", action="store_true", help="check everything, write nothing")
    p.set_defaults(rollout_handler=commands.start)

    p = verbs.add_parser(
        "next",
        parents=[common, gate, writes, applying],
        help="gate, then write the next weight (with --apply: apply it under a checked update plan)",
    )
    p.add_argument("--dry-run", action="store_true", help="evaluate the gate, write nothing")
    p.add_argument(
        "--from",
        dest="from_weight",
        type=_weight,
        metavar="WEIGHT",
        help="step only if the canary is still at WEIGHT%%; otherwise exit 5 (CI always passes it)",
    )
    p.add_argument(
        "--skip-dwell",
        metavar="REASON",
        help="step before the current step's dwell has passed; REASON goes into the commit message",
    )
    p.set_defaults(rollout_handler=commands.next_step)

    p = verbs.add_parser("abort", parents=[common, writes, applying], help="set the canary weight to 0")
    p.add_argument("--reason", required=True, help="why; written as a comment on the weight line")
    p.set_defaults(rollout_handler=commands.abort)

    p = verbs.add_parser(
        "promote", parents=[common, gate, writes, mlflow], help="at 100%% and healthy: stable becomes the canary"
    )
    p.add_argument(
        "--from-registry",
        action="store_true",
        help="also check the canary's registry version against the thresholds (champion moves after `up`)",
    )
    p.set_defaults(rollout_handler=commands.promote)

    p = verbs.add_parser(
        "watch",
        parents=[common, gate, writes, applying],
        help="gate periodically; advance after each dwell; abort on failures",
    )
    p.add_argument("--interval", type=_positive(float), default=30.0, help="seconds between checks (default 30)")
    p.add_argument(
        "--dwell-seconds",
        type=_non_negative_float,
        help="dwell per step in seconds (default: analysis.dwellMinutes of the step)",
    )
    p.add_argument(
        "--max-checks", type=_positive(int), help="stop after this many checks (default: until done or aborted)"
    )
    p.set_defaults(rollout_handler=watch.watch)

    p = verbs.add_parser(
        "guard",
        parents=[common],
        help="before `pulumi up`: refuse when the file would bring back a canary the cluster aborted",
    )
    p.add_argument("--namespace", help="the record's namespace (default: model.namespace, else the platform's)")
    p.add_argument("--retry", metavar="REASON", help="bring the aborted canary back on purpose; clears the abort")
    p.set_defaults(rollout_handler=observe.guard)
    explain.add_arguments(
        verbs.add_parser("explain", parents=[common, gate], help="the gate's verdict re-derived, and why")
    )

    rollout.set_defaults(handler=run)
    return rollout


def run(args: argparse.Namespace, stream=None, up: apply.UpFunction | None = None) -> int:
    """Run a parsed `rollout` command; every error becomes one line (one event) and an exit code.
    `up` replaces `apply.cli_up`, the one `pulumi up` of an `--apply` rollback (tests)."""
    ctx = Context(path=stackfile.stack_path(args.stack, args.project_dir), out=Output(args.json, stream), args=args)
    if up is not None:
        ctx.up = up
    return run_context(ctx)


def run_context(ctx: Context) -> int:
    """`run` for a Context already built (tests inject its clock)."""
    args, out = ctx.args, ctx.out
    from mlplatform.tools.rollout.registry import BelowThreshold, RegistryError, RegistryUnavailable

    def error(message: str, code: int) -> int:
        out.event("error", f"error: {message}", error=message, exitCode=code)
        return code

    try:
        if getattr(args, "apply", False) is False and (
            getattr(args, "git_push", None) or getattr(args, "git_pr", False)
        ):
            raise UsageError("--git-push and --git-pr need --apply")
        if getattr(args, "apply", False) and getattr(args, "dry_run", False):
            raise UsageError("--dry-run writes nothing and --apply applies: pass one of them")
        if getattr(args, "git_pr", False) and not args.git_push:
            raise UsageError("--git-pr needs --git-push BRANCH: the PR's head branch")
        with ctx.resources:
            return args.rollout_handler(ctx)
    except rules.Refused as err:
        out.event("refused", f"refused: {err}", reason=str(err))
        return EXIT_REFUSED
    except BelowThreshold as err:
        out.event("refused", f"refused: {err}", reason=str(err), checks=registry_checks(err.version))
        return EXIT_REFUSED
    except apply.ApplyRefused as err:
        out.event("refused", f"refused: {err}", reason=str(err))
        return EXIT_REFUSED
    except apply.StateLocked as err:
        message = (
            f"the Pulumi state of {args.stack} is locked by another update; "
            f"nothing was applied and {ctx.path} is as it was: {err}"
        )
        return error(message, EXIT_BUSY)
    except apply.UpFailed as err:
        message = (
            f"`pulumi up` of {args.stack} failed; {ctx.path} is back as it was before the edit. The engine may have "
            f"applied part of it: check `pulumi stack --show-urns` / the cluster. {err}"
        )
        return error(message, EXIT_APPLY_FAILED)
    except apply.PublishFailed as err:
        return error(f"applied and committed, but not published: {err}", EXIT_IO)
    except lock.RolloutBusy as err:
        return error(f"in progress: {err}", EXIT_BUSY)
    except (stackfile.StackFileIOError, lock.LockError, GitError) as err:
        return error(str(err), EXIT_IO)
    except (PrometheusError, RegistryUnavailable, KubeError) as err:
        return error(str(err), EXIT_UNAVAILABLE)
    except (UsageError, stackfile.StackFileError, ConfigError, PlatformOutputError, RegistryError) as err:
        return error(str(err), EXIT_USAGE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlplatform")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)
