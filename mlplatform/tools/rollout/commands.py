"""The `rollout` verbs. Each returns an exit code (see `context`) and raises for errors.

Every verb that writes holds the stack file's lock from its first read to its
last write (and the commit): see `Context.exclusive`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from mlplatform.model.config import ModelStackConfig
from mlplatform.tools.rollout import gate, rules
from mlplatform.tools.stackfile import editor as stackfile
from mlplatform.tools.rollout.context import EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_USAGE, Context, UsageError
from mlplatform.tools.rollout.gate import GateVerdict, PrometheusError
from mlplatform.tools.rollout.platform import PlatformOutputError


def verdict_lines(verdict: GateVerdict) -> str:
    lines = [f"gate {verdict.namespace}/{verdict.deployment}: {verdict.summary()}"]
    t = verdict.thresholds
    lines.append(
        f"  thresholds: requests >= {t.min_requests}, success >= {t.min_success_rate * 100:.2f}%, "
        f"p99 <= {t.max_p99_latency_ms:.0f}ms"
        + (f", accuracy >= {t.min_accuracy}" if t.min_accuracy is not None else "")
        + (f", vs stable at {t.confidence:.0%}: errors <= +{t.max_error_rate_increase:.0%}, slow requests <= "
           f"+{t.max_slow_request_increase:.0%}" if t.compare_with_stable else "")
    )
    lines += [f"  - {r}" for r in verdict.reasons]
    lines += [f"  note: {n}" for n in verdict.notes]
    return "\n".join(lines)


def _title(ctx: Context) -> str:
    return f"rollout({stackfile.stack_name(ctx.path)})"


def status(ctx: Context) -> int:
    """The state always; the live gate when a canary takes traffic. Exit 3 if Prometheus cannot be
    queried, 2 if the platform's outputs do not say where it is; the state is printed either way."""
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
            lines.append(verdict_lines(verdict))
        except (PrometheusError, PlatformOutputError) as err:
            data["gateError"] = str(err)
            lines.append(f"gate    unavailable: {err}")
            code = EXIT_UNAVAILABLE if isinstance(err, PrometheusError) else EXIT_USAGE
    ctx.out.event("status", "\n".join(lines), **data)
    return code


def registry_checks(version) -> list[dict[str, Any]]:
    return [{"metric": c.metric, "actual": c.actual, "threshold": c.threshold} for c in version.checks]


def start(ctx: Context) -> int:
    args = ctx.args
    if not args.from_registry and not (args.image and args.model_uri):
        raise UsageError("give --image and --model-uri, or --from-registry")
    if args.from_registry and args.model_uri:
        raise UsageError("--model-uri and --from-registry exclude each other: the registry names the model URI")
    with ctx.exclusive():
        config = ctx.load().config
        rules.require_no_live_canary(config)
        if args.from_registry:
            from mlplatform.tools.rollout import registry as reg

            number = args.registry_version or reg.registry_version(args.version)
            registry_info = ctx.registry(config).check(config.model.registry_name, number, config.environment)
            ctx.out.event(
                "registry",
                f"registry: {registry_info.name} version {registry_info.version} meets the {registry_info.stage} "
                "thresholds:\n" + "\n".join(f"  - {c.describe()}" for c in registry_info.checks),
                name=registry_info.name, version=registry_info.version, stage=registry_info.stage,
                checks=registry_checks(registry_info),
            )
            model_uri = registry_info.model_uri
            image = args.image or config.stable.image
        else:
            image, model_uri = args.image, args.model_uri
        result = ctx.edit(
            stackfile.start_canary(args.version, image, model_uri),
            f"{_title(ctx)}: start canary {args.version} at {config.steps[0]}%\n\nmodel: {model_uri}",
        )
    # The alias `challenger` moves in the deploy workflow after `up` (move_aliases), not here:
    # it names what runs, and this edit runs nothing until it is merged and applied.
    ctx.out.event(
        "started",
        f"{'started' if result.written else 'would start'} canary {args.version} ({model_uri}) at "
        f"{config.steps[0]}% in {ctx.path}",
        version=args.version, modelUri=model_uri, image=image, weight=config.steps[0], written=result.written,
    )
    return EXIT_OK


def _step(ctx: Context, config: ModelStackConfig, verdict: GateVerdict) -> tuple[int, int, bool]:
    """Write the next step after a healthy verdict: (previous, target, written)."""
    canary = rules.require_live_canary(config)
    target = config.next_step()
    assert target is not None
    result = ctx.edit(
        stackfile.set_weight(target), f"{_title(ctx)}: canary {canary.version} {canary.weight}% -> {target}%", verdict
    )
    return canary.weight, target, result.written


def next_step(ctx: Context) -> int:
    with ctx.exclusive():
        config = ctx.load().config
        canary = rules.require_live_canary(config)
        if config.next_step() is None:
            raise rules.Refused(f"canary {canary.version} is at 100%: run `rollout promote`")
        verdict = ctx.gate(config)
        ctx.out.event("gate", verdict_lines(verdict), gate=verdict.to_dict())
        if not verdict.healthy:
            ctx.out.event(
                "refused", f"refused: canary {canary.version} stays at {canary.weight}%",
                weight=canary.weight, reasons=verdict.reasons,
            )
            return EXIT_REFUSED
        previous, target, written = _step(ctx, config, verdict)
    verb = "advanced" if written else "would advance (dry run)"
    ctx.out.event(
        "advanced", f"{verb}: canary {canary.version} {previous}% -> {target}% in {ctx.path}",
        previous=previous, weight=target, written=written,
    )
    return EXIT_OK


def _abort_locked(ctx: Context, reason: str, verdict: GateVerdict | None) -> int:
    current = stackfile.read(ctx.path)
    canary = rules.require_canary(current.config)
    earlier = stackfile.abort_reason(current)
    if earlier is not None:
        ctx.out.event(
            "aborted",
            f"canary {canary.version} is already aborted ({earlier}); the file keeps that reason, nothing written",
            previous=0, weight=0, reason=earlier, written=False, alreadyAborted=True,
        )
        return EXIT_OK
    result = ctx.edit(
        stackfile.abort(reason),
        f"{_title(ctx)}: abort canary {canary.version} ({canary.weight}% -> 0%)\n\nreason: {reason}",
        verdict,
    )
    ctx.out.event(
        "aborted",
        f"{'aborted' if result.written else 'would abort'}: canary {canary.version} "
        f"{canary.weight}% -> 0% ({reason}); stable {current.config.stable.version} takes all traffic "
        "after `pulumi up`",
        previous=canary.weight, weight=0, reason=reason, written=result.written,
    )
    return EXIT_OK


def abort(ctx: Context) -> int:
    # A rollback acts on the file as it is when the lock is free, whatever moved meanwhile.
    with ctx.exclusive(require_unchanged=False):
        ctx.require_clean_for_apply()
        return _abort_locked(ctx, ctx.args.reason, None)


def promote(ctx: Context) -> int:
    with ctx.exclusive():
        config = ctx.load().config
        canary = rules.require_promotable(config)
        verdict = ctx.gate(config)
        ctx.out.event("gate", verdict_lines(verdict), gate=verdict.to_dict())
        if not verdict.healthy:
            ctx.out.event("refused", f"refused: canary {canary.version} is not healthy", reasons=verdict.reasons)
            return EXIT_REFUSED
        if ctx.args.from_registry:
            # Check only: `champion` moves after `up`, in the deploy workflow (move_aliases).
            from mlplatform.tools.rollout import registry as reg

            parsed = reg.parse_model_uri(canary.model_uri)
            if parsed is None:
                raise rules.Refused(f"canary model URI {canary.model_uri} is not models:/<name>/<version>")
            info = ctx.registry(config).check(parsed[0], parsed[1], config.environment)
            ctx.out.event(
                "registry",
                f"registry: {info.name} version {info.version} meets the {info.stage} thresholds",
                name=info.name, version=info.version, stage=info.stage, checks=registry_checks(info),
            )
        result = ctx.edit(
            stackfile.promote(),
            f"{_title(ctx)}: promote {canary.version} to stable (was {config.stable.version})",
            verdict,
        )
    ctx.out.event(
        "promoted",
        f"{'promoted' if result.written else 'would promote'}: stable {config.stable.version} -> {canary.version}"
        f" in {ctx.path}",
        previous=config.stable.version, stable=canary.version, written=result.written,
    )
    return EXIT_OK


def dwell_seconds(config: ModelStackConfig, weight: int, override: float | None) -> float:
    if override is not None:
        return override
    # A hand-set weight between steps dwells as long as the step below it.
    index = max((i for i, s in enumerate(config.steps) if s <= weight), default=0)
    return config.analysis.dwell_minutes[index] * 60.0


def watch(ctx: Context, sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> int:
    """Gate every --interval seconds; advance after the step's dwell; abort after N failures.

    The dwell is counted from when watch started or last saw the weight move: the
    file does not record when a step began, and waiting a full dwell again is
    the safe side. Each check holds the lock only while it reads, gates and
    writes, so an `abort` from another shell is never locked out for long; a
    weight that someone else moved restarts the dwell.
    """
    args = ctx.args
    failures = checks = 0
    # The evidence starts with the step: when watch moves (or sees) the weight; before that, the
    # one-shot commands' default (the last dwell), since the file does not say when the step began.
    step_since, step_started = clock(), None
    seen_weight: int | None = None
    while True:
        with ctx.exclusive(require_unchanged=False):
            # With --apply: before the gate, so a dirty file refuses before anything is queried or written.
            ctx.require_clean_for_apply()
            config = ctx.load().config
            canary = rules.require_live_canary(config)
            if seen_weight is not None and canary.weight != seen_weight:
                step_since, step_started, failures = clock(), datetime.now(timezone.utc), 0
            seen_weight = canary.weight
            threshold = config.analysis.failure_threshold
            dwell = dwell_seconds(config, canary.weight, args.dwell_seconds)
            verdict = ctx.gate(config, since=step_started)
            checks += 1
            waited = clock() - step_since
            action, failures = gate.act(verdict, failures, threshold, waited >= dwell)
            ctx.out.event(
                "check",
                f"[check {checks}] {canary.version} at {canary.weight}%: {verdict.summary()}; "
                + (f"dwell {waited:.0f}s/{dwell:.0f}s" if verdict.healthy else f"failed {failures}/{threshold}")
                + "".join(f"\n  - {r}" for r in verdict.reasons),
                check=checks, weight=canary.weight, failures=failures, failureThreshold=threshold,
                dwelled=waited, dwell=dwell, gate=verdict.to_dict(),
            )
            if action == gate.ABORT:
                reason = ("" if verdict.decisive else f"{failures} consecutive failed checks: ") + "; ".join(verdict.reasons)
                _abort_locked(ctx, reason, verdict)
                return EXIT_REFUSED
            if action == gate.ADVANCE:
                if config.next_step() is None:
                    ctx.out.event(
                        "ready", f"canary {canary.version} dwelled at 100% and is healthy: run `rollout promote`",
                        weight=canary.weight,
                    )
                    return EXIT_OK
                previous, target, _ = _step(ctx, config, verdict)
                ctx.out.event(
                    "advanced", f"advanced: canary {canary.version} {previous}% -> {target}%",
                    previous=previous, weight=target,
                )
                step_since, step_started, seen_weight = clock(), datetime.now(timezone.utc), target
        if args.max_checks is not None and checks >= args.max_checks:
            ctx.out.event("stopped", f"stopped after {checks} checks (--max-checks)", checks=checks)
            return EXIT_OK
        sleep(args.interval)
