"""The `rollout` verbs that move a canary: `start`, `next`, `abort` and `promote`, and the step they share with `watch`.

Each returns an exit code (see `context`) and raises for errors. Every verb that
writes holds the stack file's lock from its first read to its last write (and the
commit): see `Context.exclusive`. The verbs that only look are in `observe`, the
`watch` loop in `watch`.
"""

from __future__ import annotations

from mlplatform.model.config import ModelStackConfig
from mlplatform.tools.rollout import lock, state
from mlplatform.tools.rollout import registry as reg
from mlplatform.tools.rollout.context import EXIT_OK, EXIT_REFUSED, Context, UsageError
from mlplatform.tools.rollout.gate import GateVerdict
from mlplatform.tools.rollout.report import registry_checks, verdict_lines
from mlplatform.tools.stackfile import editor as stackfile
from mlplatform.tools.stackfile import rules


def _title(ctx: Context) -> str:
    return f"rollout({stackfile.stack_name(ctx.path)})"


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


def advance(
    ctx: Context, config: ModelStackConfig, verdict: GateVerdict, skip_reason: str | None = None
) -> tuple[int, int, bool]:
    """Write the next step after a healthy verdict, and start its dwell in the status: (previous, target, written)."""
    canary = rules.require_live_canary(config)
    target = config.next_step()
    assert target is not None
    message = f"{_title(ctx)}: canary {canary.version} {canary.weight}% -> {target}%"
    if skip_reason:
        message += f"\n\ndwell skipped: {skip_reason}"
    result = ctx.edit(stackfile.set_weight(target), message, verdict, step_forward=True)
    if result.written:
        # The judge's tests continue into the new step: the status carries where they stand.
        step = state.new_step(canary.version, target, ctx.now(), evidence=verdict.evidence_out)
        step.last_verdict = verdict.to_record()
        ctx.record(config, step)
    return canary.weight, target, result.written


def recorded_step(ctx: Context, config: ModelStackConfig) -> tuple[state.RolloutStatus, bool]:
    """The status of the canary at its weight, and whether the step's start was on record. A state about
    anything else starts the step now and is recorded at once, so the dwell runs from here even when the
    gate that follows cannot be queried."""
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
        ctx.require_clean_for_apply()  # before the gate: a dirty file refuses before anything is queried
        config = ctx.load().config
        canary = rules.require_live_canary(config)
        if from_weight is not None and canary.weight != from_weight:
            raise WeightMoved(
                f"canary {canary.version} is at {canary.weight}%, not at --from {from_weight}%: another command "
                "stepped it. Nothing was written."
            )
        if config.next_step() is None:
            raise rules.Refused(f"canary {canary.version} is at 100%: run `rollout promote`")
        status, _ = recorded_step(ctx, config)
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
        previous, target, written = advance(ctx, config, verdict, skip_reason if left > 0 else None)
    verb = "advanced" if written else "would advance (dry run)"
    ctx.out.event(
        "advanced",
        f"{verb}: canary {canary.version} {previous}% -> {target}% in {ctx.path}",
        previous=previous,
        weight=target,
        written=written,
    )
    return EXIT_OK


def abort_locked(ctx: Context, reason: str, verdict: GateVerdict | None) -> int:
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
        return abort_locked(ctx, ctx.args.reason, None)


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
