"""`rollout watch`: gate every --interval seconds; advance after the step's dwell; abort after N failed checks.

The dwell and the failed checks are counted in the rollout status on the cluster
(`state`), so a scheduled run shorter than a dwell resumes where the last one stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from mlplatform.model.config import ModelStackConfig
from mlplatform.tools.rollout import commands, gate, state
from mlplatform.tools.rollout.context import EXIT_OK, EXIT_REFUSED, Context
from mlplatform.tools.stackfile import rules


def _check(ctx: Context, config: ModelStackConfig, checks: int) -> int | None:
    """One check of `watch`, resumed from the status: an exit code when watch is done, else None.

    The judge's evidence starts where the status says the step started, so a scheduled run
    shorter than a dwell neither restarts the sequential test nor the dwell clock. Each outcome
    writes the status once: the abort's, the next step's (`commands.advance`), or this step's."""
    canary = rules.require_live_canary(config)
    status, recorded_start = commands.recorded_step(ctx, config)
    threshold = config.analysis.failure_threshold
    dwell = rules.dwell_seconds(config, canary.weight, ctx.option("dwell_seconds"))
    # A step this status saw begin is judged on its own evidence. One that began before any record
    # (a first watch, a hand edit) has no known start: the gate's default, the last dwell, stands in.
    step_started = datetime.fromtimestamp(state.parse_iso(status.step_started_at), UTC) if recorded_start else None
    verdict = ctx.gate(config, since=step_started, evidence=status.evidence if recorded_start else None)
    waited = status.step_age(ctx.now())
    # Failed checks carry over between runs (the status keeps them); `gate.act` resets them on a pass
    # and leaves them as they are on "not yet".
    action, failures = gate.act(verdict, status.failed_checks, threshold, waited >= dwell)
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
        commands.abort_locked(ctx, reason, verdict)
        return EXIT_REFUSED
    if action == gate.ADVANCE and config.next_step() is not None:
        # The step is asked for from the weight just judged, under the same lock: `next --from`.
        previous, target, _ = commands.advance(ctx, config, verdict)
        ctx.out.event(
            "advanced", f"advanced: canary {canary.version} {previous}% -> {target}%", previous=previous, weight=target
        )
        return None
    status.failed_checks = failures
    status.last_verdict = verdict.to_record()
    ready = action == gate.ADVANCE  # dwelled and healthy at 100%: nothing left to step to
    if ready:
        status.phase = state.READY
    ctx.record(config, status)
    if not ready:
        return None
    ctx.out.event(
        "ready", f"canary {canary.version} dwelled at 100% and is healthy: run `rollout promote`", weight=canary.weight
    )
    return EXIT_OK


def watch(ctx: Context, sleep: Callable[[float], None] = time.sleep) -> int:
    """Gate every --interval seconds; advance after the step's dwell; abort after N failed checks in a row.

    Each check holds the lock only while it reads, gates and writes, so an `abort` from another shell is
    never locked out for long.
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
