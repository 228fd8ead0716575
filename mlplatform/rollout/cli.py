"""`mlplatform rollout`: gated canary steps written as edits of the model stack's config file.

The tool decides and writes; `pulumi up` (by hand or by the deploy workflow)
applies. Exit codes: 0 done, 1 refused by the gate or the registry (the output
says why, with numbers), 2 an error (bad file, unreachable Prometheus or MLflow).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlplatform.configuration import ConfigError
from mlplatform.model.config import ModelStackConfig
from mlplatform.rollout import stackfile
from mlplatform.rollout.gate import (
    DEFAULT_PROMETHEUS_URL,
    PORT_FORWARD_HINT,
    GateVerdict,
    PrometheusClient,
    PrometheusError,
    evaluate,
)

# The platform's default serving namespace; a stack's `model.namespace` overrides it.
DEFAULT_SERVING_NAMESPACE = "ml-serving"
EXIT_OK, EXIT_REFUSED, EXIT_ERROR = 0, 1, 2


class Refused(Exception):
    """The gate or a rollout rule said no; nothing was written."""


class Output:
    """Readable lines for a terminal, or one JSON object per event for CI (`--json`)."""

    def __init__(self, as_json: bool, stream=None):
        self.as_json = as_json
        self.stream = stream or sys.stdout

    def event(self, kind: str, text: str, **data: Any) -> None:
        if self.as_json:
            print(json.dumps({"event": kind, **data}, default=str), file=self.stream, flush=True)
        else:
            print(text, file=self.stream, flush=True)


@dataclass(frozen=True)
class Context:
    path: Path
    out: Output
    args: argparse.Namespace

    def load(self) -> stackfile.StackFile:
        return stackfile.load(self.path)

    def namespace(self, config: ModelStackConfig) -> str:
        return self.args.namespace or config.model.namespace or DEFAULT_SERVING_NAMESPACE

    def gate(self, config: ModelStackConfig) -> GateVerdict:
        if config.canary is None:
            raise Refused("no canary to analyse")
        client = PrometheusClient(self.args.prometheus_url, timeout=self.args.prometheus_timeout)
        return evaluate(
            client,
            config.analysis,
            namespace=self.namespace(config),
            deployment=config.version_object_name(config.canary.version),
            stable_deployment=config.version_object_name(config.stable.version),
        )

    def edit(self, edit: stackfile.Edit, message: str, verdict: GateVerdict | None = None) -> stackfile.EditResult:
        result = stackfile.apply_edit(self.path, edit, dry_run=getattr(self.args, "dry_run", False))
        if result.written and getattr(self.args, "commit", False):
            _git_commit(self.path, message, verdict)
        return result


def _git_commit(path: Path, message: str, verdict: GateVerdict | None) -> None:
    body = [message, ""]
    if verdict is not None:
        body += [
            f"gate: {verdict.summary()}",
            f"target: {verdict.namespace}/{verdict.deployment}",
            *(f"reason: {r}" for r in verdict.reasons),
        ]
    directory = path.parent.resolve()
    for command in (["git", "add", "--", path.name], ["git", "commit", "-q", "-m", "\n".join(body), "--", path.name]):
        done = subprocess.run(command, cwd=directory, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise stackfile.StackFileError(f"`{' '.join(command[:2])}` failed: {done.stderr.strip()}")


def _verdict_lines(verdict: GateVerdict) -> str:
    lines = [f"gate {verdict.namespace}/{verdict.deployment}: {verdict.summary()}"]
    t = verdict.thresholds
    lines.append(
        f"  thresholds: requests >= {t.min_requests}, success >= {t.min_success_rate * 100:.2f}%, "
        f"p99 <= {t.max_p99_latency_ms:.0f}ms"
        + (f", accuracy >= {t.min_accuracy}" if t.min_accuracy is not None else "")
        + (", canary no worse than stable" if t.compare_with_stable else "")
    )
    lines += [f"  - {r}" for r in verdict.reasons]
    lines += [f"  note: {n}" for n in verdict.notes]
    return "\n".join(lines)


def _title(path: Path) -> str:
    return f"rollout({stackfile.stack_name(path)})"


# -- commands -------------------------------------------------------------------


def _status(ctx: Context) -> int:
    stack = ctx.load()
    config = stack.config
    canary = config.canary
    data: dict[str, Any] = {
        "stack": stack.stack,
        "stable": config.stable.model_dump(by_alias=True),
        "canary": canary.model_dump(by_alias=True) if canary else None,
        "weight": config.canary_weight,
        "nextStep": config.next_step(),
        "steps": config.steps,
    }
    lines = [
        f"stack   {stack.stack} ({stack.path})",
        f"stable  {config.stable.version}  {config.stable.model_uri}  {config.stable.image}",
    ]
    if canary is None:
        lines.append("canary  none (stable takes all traffic)")
    else:
        lines.append(f"canary  {canary.version}  {canary.model_uri}  {canary.image}")
        lines.append(f"weight  {canary.weight}%  steps {config.steps}  next {config.next_step() or '-'}")
    code = EXIT_OK
    if canary is not None and canary.weight > 0:
        try:
            verdict = ctx.gate(config)
            data["gate"] = verdict.to_dict()
            lines.append(_verdict_lines(verdict))
        except PrometheusError as err:
            data["gateError"] = str(err)
            lines.append(f"gate    unavailable: {err}")
            code = EXIT_ERROR
    ctx.out.event("status", "\n".join(lines), **data)
    return code


def _start(ctx: Context) -> int:
    args = ctx.args
    config = ctx.load().config
    registry_info = None
    if args.from_registry:
        from mlplatform.rollout import registry as reg

        registry = reg.Registry(reg.resolve_tracking_uri(args.tracking_uri))
        number = args.registry_version or reg.registry_version(args.version)
        registry_info = registry.check(config.model.registry_name, number, config.environment)
        ctx.out.event(
            "registry",
            f"registry: {registry_info.name} version {registry_info.version} meets the {registry_info.stage} "
            "thresholds:\n" + "\n".join(f"  - {c.describe()}" for c in registry_info.checks),
            name=registry_info.name, version=registry_info.version, stage=registry_info.stage,
            checks=[{"metric": c.metric, "actual": c.actual, "threshold": c.threshold} for c in registry_info.checks],
        )
        model_uri = registry_info.model_uri
        image = args.image or config.stable.image
    else:
        if not (args.image and args.model_uri):
            raise Refused("give --image and --model-uri, or --from-registry")
        image, model_uri = args.image, args.model_uri
    result = ctx.edit(
        stackfile.start_canary(args.version, image, model_uri),
        f"{_title(ctx.path)}: start canary {args.version} at {config.steps[0]}%\n\nmodel: {model_uri}",
    )
    if registry_info is not None and result.written:
        registry.set_alias(registry_info.name, reg.CHALLENGER, registry_info.version)
    ctx.out.event(
        "started",
        f"{'would start' if not result.written else 'started'} canary {args.version} ({model_uri}) at "
        f"{config.steps[0]}% in {ctx.path}"
        + (f"; alias {reg.CHALLENGER} -> version {registry_info.version}" if registry_info and result.written else ""),
        version=args.version, modelUri=model_uri, image=image, weight=config.steps[0], written=result.written,
    )
    return EXIT_OK


def _next(ctx: Context) -> int:
    config = ctx.load().config
    canary = _active_canary(config)
    target = config.next_step()
    if target is None:
        raise Refused(f"canary {canary.version} is at 100%: run `rollout promote`")
    verdict = ctx.gate(config)
    ctx.out.event("gate", _verdict_lines(verdict), gate=verdict.to_dict())
    if not verdict.healthy:
        ctx.out.event(
            "refused", f"refused: canary {canary.version} stays at {canary.weight}%",
            weight=canary.weight, reasons=verdict.reasons,
        )
        return EXIT_REFUSED
    result = ctx.edit(
        stackfile.set_weight(target),
        f"{_title(ctx.path)}: canary {canary.version} {canary.weight}% -> {target}%",
        verdict,
    )
    verb = "advanced" if result.written else "would advance (dry run)"
    ctx.out.event(
        "advanced", f"{verb}: canary {canary.version} {canary.weight}% -> {target}% in {ctx.path}",
        previous=canary.weight, weight=target, written=result.written,
    )
    return EXIT_OK


def _active_canary(config: ModelStackConfig):
    if config.canary is None:
        raise Refused("no canary in the stack: start one with `rollout start`")
    if config.canary.weight == 0:
        raise Refused(
            f"canary {config.canary.version} was aborted (weight 0); start a new rollout with `rollout start`"
        )
    return config.canary


def _abort(ctx: Context, reason: str | None = None, verdict: GateVerdict | None = None) -> int:
    reason = reason or ctx.args.reason
    config = ctx.load().config
    if config.canary is None:
        raise Refused("no canary to abort")
    result = ctx.edit(
        stackfile.abort(reason),
        f"{_title(ctx.path)}: abort canary {config.canary.version} "
        f"({config.canary.weight}% -> 0%)\n\nreason: {reason}",
        verdict,
    )
    ctx.out.event(
        "aborted",
        f"{'aborted' if result.written else 'would abort'}: canary {config.canary.version} "
        f"{config.canary.weight}% -> 0% ({reason}); stable {config.stable.version} takes all traffic "
        "after `pulumi up`",
        previous=config.canary.weight, weight=0, reason=reason, written=result.written,
    )
    return EXIT_OK


def _promote(ctx: Context) -> int:
    config = ctx.load().config
    canary = _active_canary(config)
    if canary.weight != 100:
        raise Refused(f"canary {canary.version} is at {canary.weight}%; promote only at 100%")
    verdict = ctx.gate(config)
    ctx.out.event("gate", _verdict_lines(verdict), gate=verdict.to_dict())
    if not verdict.healthy:
        ctx.out.event("refused", f"refused: canary {canary.version} is not healthy", reasons=verdict.reasons)
        return EXIT_REFUSED
    registry = None
    parsed = None
    if ctx.args.from_registry:
        from mlplatform.rollout import registry as reg

        parsed = reg.parse_model_uri(canary.model_uri)
        if parsed is None:
            raise Refused(f"canary model URI {canary.model_uri} is not models:/<name>/<version>")
        registry = reg.Registry(reg.resolve_tracking_uri(ctx.args.tracking_uri))
    result = ctx.edit(
        stackfile.promote(),
        f"{_title(ctx.path)}: promote {canary.version} to stable (was {config.stable.version})",
        verdict,
    )
    extra = ""
    if registry is not None and parsed is not None and result.written:
        name, number = parsed
        registry.record_promotion(name, number)
        extra = f"; alias {reg.CHAMPION} -> {name} version {number}"
    ctx.out.event(
        "promoted",
        f"{'promoted' if result.written else 'would promote'}: stable {config.stable.version} -> {canary.version}"
        f" in {ctx.path}{extra}",
        previous=config.stable.version, stable=canary.version, written=result.written,
    )
    return EXIT_OK


def _dwell_seconds(config: ModelStackConfig, weight: int, override: float | None) -> float:
    if override is not None:
        return override
    # A hand-set weight between steps dwells as long as the step below it.
    index = max((i for i, s in enumerate(config.steps) if s <= weight), default=0)
    return config.analysis.dwell_minutes[index] * 60.0


def _watch(ctx: Context, sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> int:
    """Gate every --interval seconds; advance after the step's dwell; abort after N failures.

    The dwell is counted from when watch started or last moved the step: the
    file does not record when a step began, and waiting a full dwell again is
    the safe side.
    """
    args = ctx.args
    failures = 0
    step_since = clock()
    checks = 0
    while True:
        config = ctx.load().config
        canary = _active_canary(config)
        threshold = config.analysis.failure_threshold
        dwell = _dwell_seconds(config, canary.weight, args.dwell_seconds)
        verdict = ctx.gate(config)
        checks += 1
        waited = clock() - step_since
        if verdict.healthy:
            failures = 0
        else:
            failures += 1
        ctx.out.event(
            "check",
            f"[check {checks}] {canary.version} at {canary.weight}%: {verdict.summary()}; "
            + (f"dwell {waited:.0f}s/{dwell:.0f}s" if verdict.healthy else f"failed {failures}/{threshold}")
            + "".join(f"\n  - {r}" for r in verdict.reasons),
            check=checks, weight=canary.weight, failures=failures, failureThreshold=threshold,
            dwelled=waited, dwell=dwell, gate=verdict.to_dict(),
        )
        if failures >= threshold:
            reason = f"{failures} consecutive failed checks: " + "; ".join(verdict.reasons)
            _abort(ctx, reason=reason, verdict=verdict)
            return EXIT_REFUSED
        if verdict.healthy and waited >= dwell:
            target = config.next_step()
            if target is None:
                ctx.out.event(
                    "ready", f"canary {canary.version} dwelled at 100% and is healthy: run `rollout promote`",
                    weight=canary.weight,
                )
                return EXIT_OK
            ctx.edit(
                stackfile.set_weight(target),
                f"{_title(ctx.path)}: canary {canary.version} {canary.weight}% -> {target}%",
                verdict,
            )
            ctx.out.event(
                "advanced", f"advanced: canary {canary.version} {canary.weight}% -> {target}%",
                previous=canary.weight, weight=target,
            )
            step_since = clock()
        if args.max_checks is not None and checks >= args.max_checks:
            ctx.out.event("stopped", f"stopped after {checks} checks (--max-checks)", checks=checks)
            return EXIT_OK
        sleep(args.interval)


# -- wiring ------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `rollout` and its subcommands to a parser's subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("stack", help="model stack, e.g. fraud-detector-prod (file: <project-dir>/Pulumi.<stack>.yaml)")
    common.add_argument(
        "--project-dir", default=str(stackfile.STACKS_DIR), help="the model stacks' project (default: stacks/model)"
    )
    common.add_argument("--json", action="store_true", help="one JSON object per event, for CI")

    gate = argparse.ArgumentParser(add_help=False)
    gate.add_argument(
        "--prometheus-url",
        default=os.environ.get("PROMETHEUS_URL", DEFAULT_PROMETHEUS_URL),
        help=f"Prometheus base URL (default: $PROMETHEUS_URL, else {DEFAULT_PROMETHEUS_URL}); {PORT_FORWARD_HINT}",
    )
    gate.add_argument("--prometheus-timeout", type=float, default=10.0, help="seconds per query (default 10)")
    gate.add_argument(
        "--namespace", help=f"the canary's namespace (default: model.namespace, else {DEFAULT_SERVING_NAMESPACE})"
    )

    writes = argparse.ArgumentParser(add_help=False)
    writes.add_argument("--commit", action="store_true", help="git commit the edited stack file, with the metrics")

    mlflow = argparse.ArgumentParser(add_help=False)
    mlflow.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI; in-cluster needs a port-forward)"
    )

    rollout = subparsers.add_parser(
        "rollout", help="gated canary steps as edits of a model stack's config", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = rollout.add_subparsers(dest="rollout_command", required=True)

    p = commands.add_parser("status", parents=[common, gate], help="stable, canary, weight, next step, live gate")
    p.set_defaults(rollout_handler=_status)

    p = commands.add_parser("start", parents=[common, writes, mlflow], help="put a new canary at the first step")
    p.add_argument("--version", required=True, help="version label, e.g. v6 (names the Deployment <model>-v6)")
    p.add_argument("--image", help="serving image (default with --from-registry: stable's image)")
    p.add_argument("--model-uri", help="model URI, e.g. models:/fraud_detector/6")
    p.add_argument(
        "--from-registry", action="store_true",
        help="take the model URI from the MLflow registry after checking the version's metrics; sets alias challenger",
    )
    p.add_argument("--registry-version", help="registry version number (default: the digits of --version)")
    p.add_argument("--dry-run", action="store_true", help="check everything, write nothing")
    p.set_defaults(rollout_handler=_start)

    p = commands.add_parser("next", parents=[common, gate, writes], help="gate, then write the next weight")
    p.add_argument("--dry-run", action="store_true", help="evaluate the gate, write nothing")
    p.set_defaults(rollout_handler=_next)

    p = commands.add_parser("abort", parents=[common, writes], help="set the canary weight to 0")
    p.add_argument("--reason", required=True, help="why; written as a comment on the weight line")
    p.set_defaults(rollout_handler=_abort)

    p = commands.add_parser(
        "promote", parents=[common, gate, writes, mlflow], help="at 100%% and healthy: stable becomes the canary"
    )
    p.add_argument("--from-registry", action="store_true", help="also move the registry alias champion")
    p.set_defaults(rollout_handler=_promote)

    p = commands.add_parser(
        "watch", parents=[common, gate, writes], help="gate periodically; advance after each dwell; abort on failures"
    )
    p.add_argument("--interval", type=float, default=30.0, help="seconds between checks (default 30)")
    p.add_argument(
        "--dwell-seconds", type=float, help="dwell per step in seconds (default: analysis.dwellMinutes of the step)"
    )
    p.add_argument("--max-checks", type=int, help="stop after this many checks (default: until done or aborted)")
    p.set_defaults(rollout_handler=_watch)

    rollout.set_defaults(handler=run)
    return rollout


def run(args: argparse.Namespace, stream=None) -> int:
    """Run a parsed `rollout` command; errors become one line and an exit code."""
    out = Output(args.json, stream)
    ctx = Context(path=stackfile.stack_path(args.stack, args.project_dir), out=out, args=args)
    try:
        return args.rollout_handler(ctx)
    except Refused as err:
        out.event("refused", f"refused: {err}", reason=str(err))
        return EXIT_REFUSED
    except (stackfile.StackFileError, ConfigError, PrometheusError) as err:
        out.event("error", f"error: {err}", error=str(err))
        return EXIT_ERROR
    except Exception as err:
        from mlplatform.rollout.registry import BelowThreshold, RegistryError

        if isinstance(err, BelowThreshold):
            out.event(
                "refused", f"refused: {err}", reason=str(err),
                checks=[{"metric": c.metric, "actual": c.actual, "threshold": c.threshold}
                        for c in err.version.checks],
            )
            return EXIT_REFUSED
        if isinstance(err, RegistryError):
            out.event("error", f"error: {err}", error=str(err))
            return EXIT_ERROR
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlplatform")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)
