"""The `rollout` verbs. Each returns an exit code (see `context`) and raises for errors.

Every verb that writes holds the stack file's lock from its first read to its
last write (and the commit): see `Context.exclusive`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mlplatform import aborted_canary
from mlplatform.model.config import ModelStackConfig
from mlplatform.tools.rollout import gate, lock, state
from mlplatform.tools.rollout.context import EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_USAGE, Context, UsageError
from mlplatform.tools.rollout.gate import GateVerdict, PrometheusError
from mlplatform.tools.rollout.platform import PlatformOutputError
from mlplatform.tools.stackfile import editor as stackfile
from mlplatform.tools.stackfile import rules


def verdict_lines(verdict: GateVerdict) -> str:
    lines = [f"gate {verdict.namespace}/{verdict.deployment}: {verdict.summary()}"]
    t = verdict.thresholds
    lines.append(
        f"  thresholds: requests >= {t.min_requests}, success >= {t.min_success_rate * 100:.2f}%, "
        f"p99 <= {t.max_p99_latency_ms:.0f}ms"
        + (f", accuracy >= {t.min_accuracy}" if t.min_accuracy is not None else "")
        + (
            f", vs stable at {t.confidence:.0%}: errors <= +{t.max_error_rate_increase:.0%}, slow requests <= "
            f"+{t.max_slow_request_increase:.0%}"
            if t.compare_with_stable
            else ""
        )
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
    _recorded_state(ctx, config, data, lines)
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


def _recorded_state(ctx: Context, config: ModelStackConfig, data: dict[str, Any], lines: list[str]) -> None:
    """The rollout state on the cluster, for `status`: shown when it can be read, named when it cannot."""
    from mlplatform.tools import kube
    from mlplatform.tools.rollout.platform import PlatformOutputError as MissingOutput

    try:
        recorded = ctx.status_store(config).get(missing_ok=True)
    except (kube.KubeError, MissingOutput, OSError) as err:
        data["stateError"] = str(err)
        lines.append(f"state   unavailable: {err}")
        return
    data["state"] = recorded.to_status() if recorded else None
    if recorded is None:
        lines.append("state   none recorded")
        return
    age = recorded.step_age(ctx.now())
    lines.append(
        f"state   {recorded.phase}: {recorded.canary_version} at {recorded.weight}% for {age:.0f}s "
        f"(since {recorded.step_started_at}), {recorded.failed_checks} failed checks"
        + (f"; aborted: {recorded.abort.reason}" if recorded.abort else "")
    )


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
                name=registry_info.name,
                version=registry_info.version,
                stage=registry_info.stage,
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
    if result.written:
        ctx.record(config, state.new_step(args.version, config.steps[0], ctx.now()), best_effort=True)
    # The alias `challenger` moves in the deploy workflow after `up` (move_aliases), not here:
    # it names what runs, and this edit runs nothing until it is merged and applied.
    ctx.out.event(
        "started",
        f"{'started' if result.written else 'would start'} canary {args.version} ({model_uri}) at "
        f"{config.steps[0]}% in {ctx.path}",
        version=args.version,
        modelUri=model_uri,
        image=image,
        weight=config.steps[0],
        written=result.written,
    )
    return EXIT_OK


class WeightMoved(lock.RolloutBusy):
    """`next --from W`: the canary is no longer at W. Someone else stepped it; exit 5, nothing written."""


def _step(
    ctx: Context, config: ModelStackConfig, verdict: GateVerdict, skip_reason: str | None = None
) -> tuple[int, int, bool]:
    """Write the next step after a healthy verdict, and start its dwell in the status: (previous, target, written)."""
    canary = rules.require_live_canary(config)
    target = config.next_step()
    assert target is not None
    message = f"{_title(ctx)}: canary {canary.version} {canary.weight}% -> {target}%"
    if skip_reason:
        message += f"\n\ndwell skipped: {skip_reason}"
    result = ctx.edit(stackfile.set_weight(target), message, verdict)
    if result.written:
        step = state.new_step(canary.version, target, ctx.now())
        step.last_verdict = verdict.to_record()
        ctx.record(config, step)
    return canary.weight, target, result.written


def _current_step(ctx: Context, config: ModelStackConfig) -> state.RolloutStatus:
    """The status of the canary at its weight; a state about anything else starts the step now (and says so)."""
    return _recorded_step(ctx, config)[0]


def _recorded_step(ctx: Context, config: ModelStackConfig) -> tuple[state.RolloutStatus, bool]:
    """`_current_step`, and whether the step's start was on record (False: it starts now)."""
    canary = rules.require_live_canary(config)
    status = ctx.status_store(config).get()
    if status is None or not status.is_for(canary.version, canary.weight):
        status = state.new_step(canary.version, canary.weight, ctx.now())
        ctx.record(config, status)
        return status, False
    return status, True


def _dwell_left(ctx: Context, config: ModelStackConfig, status: state.RolloutStatus) -> float:
    return rules.dwell_seconds(config, status.weight, ctx.option("dwell_seconds")) - status.step_age(ctx.now())


def next_step(ctx: Context) -> int:
    from_weight, skip_reason = ctx.option("from_weight"), ctx.option("skip_dwell")
    # With --from the weight decides whether this command still applies, not whether the file was touched.
    with ctx.exclusive(require_unchanged=from_weight is None):
        config = ctx.load().config
        canary = rules.require_live_canary(config)
        if from_weight is not None and canary.weight != from_weight:
            raise WeightMoved(
                f"canary {canary.version} is at {canary.weight}%, not at --from {from_weight}%: another command "
                "stepped it. Nothing was written."
            )
        if config.next_step() is None:
            raise rules.Refused(f"canary {canary.version} is at 100%: run `rollout promote`")
        status = _current_step(ctx, config)
        left = _dwell_left(ctx, config, status)
        if left > 0 and not skip_reason:
            reason = (
                f"canary {canary.version} has dwelled {status.step_age(ctx.now()):.0f}s at {canary.weight}% "
                f"(since {status.step_started_at}, {ctx.status_store(config).where}); {left:.0f}s left. "
                "Run again later, or pass --skip-dwell REASON."
            )
            ctx.out.event(
                "refused",
                f"refused: {reason}",
                reason=reason,
                weight=canary.weight,
                dwellLeft=left,
                stepStartedAt=status.step_started_at,
            )
            return EXIT_REFUSED
        verdict = ctx.gate(config)
        ctx.out.event("gate", verdict_lines(verdict), gate=verdict.to_dict())
        if not verdict.healthy:
            status.failed_checks += 1
            status.last_verdict = verdict.to_record()
            ctx.record(config, status)
            ctx.out.event(
                "refused",
                f"refused: canary {canary.version} stays at {canary.weight}%",
                weight=canary.weight,
                reasons=verdict.reasons,
            )
            return EXIT_REFUSED
        previous, target, written = _step(ctx, config, verdict, skip_reason if left > 0 else None)
    verb = "advanced" if written else "would advance (dry run)"
    ctx.out.event(
        "advanced",
        f"{verb}: canary {canary.version} {previous}% -> {target}% in {ctx.path}",
        previous=previous,
        weight=target,
        written=written,
    )
    return EXIT_OK


def _abort_locked(ctx: Context, reason: str, verdict: GateVerdict | None) -> int:
    current = ctx.load()
    canary = rules.require_canary(current.config)
    earlier = stackfile.abort_reason(current)
    if earlier is not None:
        ctx.out.event(
            "aborted",
            f"canary {canary.version} is already aborted ({earlier}); the file keeps that reason, nothing written",
            previous=0,
            weight=0,
            reason=earlier,
            written=False,
            alreadyAborted=True,
        )
        return EXIT_OK
    result = ctx.edit(
        stackfile.abort(reason),
        f"{_title(ctx)}: abort canary {canary.version} ({canary.weight}% -> 0%)\n\nreason: {reason}",
        verdict,
    )
    if result.written:
        aborted = state.new_step(canary.version, 0, ctx.now(), phase=state.ABORTED)
        aborted.abort = state.Abort(reason=reason, at=aborted.step_started_at, pr=ctx.pr_branch)
        aborted.last_verdict = verdict.to_record() if verdict is not None else None
        ctx.record(current.config, aborted, best_effort=True)
    ctx.out.event(
        "aborted",
        f"{'aborted' if result.written else 'would abort'}: canary {canary.version} "
        f"{canary.weight}% -> 0% ({reason}); stable {current.config.stable.version} takes all traffic "
        "after `pulumi up`",
        previous=canary.weight,
        weight=0,
        reason=reason,
        written=result.written,
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
                name=info.name,
                version=info.version,
                stage=info.stage,
                checks=registry_checks(info),
            )
        result = ctx.edit(
            stackfile.promote(),
            f"{_title(ctx)}: promote {canary.version} to stable (was {config.stable.version})",
            verdict,
        )
        if result.written:
            ctx.record(config, state.new_step(canary.version, 100, ctx.now(), phase=state.PROMOTED), best_effort=True)
    ctx.out.event(
        "promoted",
        f"{'promoted' if result.written else 'would promote'}: stable {config.stable.version} -> {canary.version}"
        f" in {ctx.path}",
        previous=config.stable.version,
        stable=canary.version,
        written=result.written,
    )
    return EXIT_OK


def _check(ctx: Context, config: ModelStackConfig, checks: int) -> int | None:
    """One check of `watch`, resumed from the status: an exit code when watch is done, else None.

    The judge's evidence starts where the status says the step started, so a scheduled run
    shorter than a dwell neither restarts the sequential test nor the dwell clock."""
    canary = rules.require_live_canary(config)
    status, recorded_start = _recorded_step(ctx, config)
    threshold = config.analysis.failure_threshold
    dwell = rules.dwell_seconds(config, canary.weight, ctx.option("dwell_seconds"))
    # A step this status saw begin is judged on its own evidence. One that began before any record
    # (a first watch, a hand edit) has no known start: the gate's default, the last dwell, stands in.
    step_started = datetime.fromtimestamp(state.parse_iso(status.step_started_at), UTC) if recorded_start else None
    verdict = ctx.gate(config, since=step_started)
    waited = status.step_age(ctx.now())
    # Failed checks carry over between runs (the status keeps them); `gate.act` resets them on a pass
    # and leaves them as they are on "not yet".
    action, status.failed_checks = gate.act(verdict, status.failed_checks, threshold, waited >= dwell)
    status.last_verdict = verdict.to_record()
    failures = status.failed_checks
    ctx.out.event(
        "check",
        f"[check {checks}] {canary.version} at {canary.weight}%: {verdict.summary()}; "
        + (f"dwell {waited:.0f}s/{dwell:.0f}s" if verdict.healthy else f"failed {failures}/{threshold}")
        + "".join(f"\n  - {r}" for r in verdict.reasons),
        check=checks,
        weight=canary.weight,
        failures=failures,
        failureThreshold=threshold,
        dwelled=waited,
        dwell=dwell,
        stepStartedAt=status.step_started_at,
        gate=verdict.to_dict(),
    )
    if action == gate.ABORT:
        reason = ("" if verdict.decisive else f"{failures} consecutive failed checks: ") + "; ".join(verdict.reasons)
        _abort_locked(ctx, reason, verdict)
        return EXIT_REFUSED
    if action == gate.ADVANCE:
        if config.next_step() is None:
            status.phase = state.READY
            ctx.record(config, status)
            ctx.out.event(
                "ready",
                f"canary {canary.version} dwelled at 100% and is healthy: run `rollout promote`",
                weight=canary.weight,
            )
            return EXIT_OK
        # The step is asked for from the weight just judged, under the same lock: `next --from`.
        previous, target, _ = _step(ctx, config, verdict)
        ctx.out.event(
            "advanced", f"advanced: canary {canary.version} {previous}% -> {target}%", previous=previous, weight=target
        )
        return None
    ctx.record(config, status)
    return None


def watch(ctx: Context, sleep: Callable[[float], None] = time.sleep) -> int:
    """Gate every --interval seconds; advance after the step's dwell; abort after N failed checks in a row.

    The dwell and the failed checks are counted in the rollout status on the cluster (`state`), so a
    scheduled run shorter than a dwell resumes where the last one stopped. Each check holds the lock
    only while it reads, gates and writes, so an `abort` from another shell is never locked out for long.
    """
    args = ctx.args
    checks = 0
    while True:
        with ctx.exclusive(require_unchanged=False):
            # With --apply: before the gate, so a dirty file refuses before anything is queried or written.
            ctx.require_clean_for_apply()
            checks += 1
            done = _check(ctx, ctx.load().config, checks)
            if done is not None:
                return done
        if args.max_checks is not None and checks >= args.max_checks:
            ctx.out.event("stopped", f"stopped after {checks} checks (--max-checks)", checks=checks)
            return EXIT_OK
        sleep(args.interval)


def guard(ctx: Context) -> int:
    """Before any `pulumi up` of the stack (deploy.yml, a laptop): refuse to bring back an aborted canary.

    The stack file says the canary takes traffic, but the cluster's record says that very canary was
    aborted: main has not caught up with the rollback (its PR is open), and an `up` would undo it.
    `--retry REASON` is the deliberate way back: it clears the abort in the record and passes."""
    document = ctx.load()
    config = document.config
    canary = config.canary
    if canary is None or canary.weight == 0:
        ctx.out.event("guard", "ok: no canary takes traffic in the stack file", ok=True)
        return EXIT_OK
    status = ctx.status_store(config).get(missing_ok=True)
    # Read as the model program reads the live record, so both apply paths see the same abort.
    abort = aborted_canary.abort_in_status(status.to_status() if status is not None else None)
    if abort is None:
        ctx.out.event("guard", f"ok: canary {canary.version} at {canary.weight}% was not aborted", ok=True)
        return EXIT_OK
    retry = ctx.option("retry")
    refused = aborted_canary.refusal(
        abort,
        canary.version,
        canary.weight,
        where=str(ctx.path),
        recorded="on the cluster",
        retry=retry,
        stack=document.stack,
    )
    if refused is not None:
        raise rules.Refused(refused)
    if not retry or abort.version != canary.version:
        ctx.out.event("guard", f"ok: canary {canary.version} at {canary.weight}% was not aborted", ok=True)
        return EXIT_OK
    again = state.new_step(canary.version, canary.weight, ctx.now())
    ctx.record(config, again)
    ctx.out.event(
        "guard",
        f"ok: retrying canary {canary.version} at {canary.weight}% on purpose ({retry}); "
        f"it was aborted at {abort.at}: {abort.reason}",
        ok=True,
        retry=retry,
        abort={"reason": abort.reason, "at": abort.at, "pr": abort.pr},
    )
    return EXIT_OK
