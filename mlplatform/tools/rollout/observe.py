"""The `rollout` verbs that look before anything moves: `status` and `guard`, and the lines they print.

Neither edits the stack file, so neither takes its lock; `guard --retry` writes only
the rollout state on the cluster.
"""

from __future__ import annotations

from typing import Any

from mlplatform import aborted_canary
from mlplatform.model.config import ModelStackConfig
from mlplatform.tools import kube
from mlplatform.tools.rollout import state
from mlplatform.tools.rollout.context import EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, Context
from mlplatform.tools.rollout.gate import PrometheusError
from mlplatform.tools.rollout.platform import PlatformOutputError
from mlplatform.tools.rollout.report import verdict_lines
from mlplatform.tools.stackfile import rules


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
    try:
        recorded = ctx.status_store(config).get(missing_ok=True)
    except (kube.KubeError, PlatformOutputError, OSError) as err:
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
