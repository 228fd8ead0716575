"""The one rule about an aborted canary: no apply of a stack file brings it back by accident.

A rollback (weight 0) is applied and recorded before main has it: its push may be refused and land
as a PR instead. Until main records the abort (weight 0 for that canary) or someone retries on
purpose, applying main would give the aborted canary its traffic again. Whoever applies a stack
file asks `refusal` first; the answer names the abort, its reason and the rollback PR.

Ground, not tools: `rollout guard` (which deploy.yml runs before `up`) asks it today, with the abort
recorded in the InferenceService record's status; a program-side check (the model stack refusing a
bare `pulumi up` itself) must ask the same rule, and the program wing may not import the tools.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The InferenceService record's status as the rollout tools write it (tools/rollout/state.py).
ABORTED_PHASE = "Aborted"


def retry_hint(stack: str | None) -> str:
    return (
        f"To run it again on purpose: `mlplatform rollout guard {stack or 'STACK'} --retry REASON`, then apply again."
    )


@dataclass(frozen=True)
class Abort:
    """A recorded abort of canary `version`: why, when, and the rollback PR's branch when the push to
    main was refused."""

    version: str
    reason: str
    at: str
    pr: str | None = None


def abort_in_status(status: Mapping[str, Any] | None) -> Abort | None:
    """The abort the InferenceService record's `status` holds; None unless its phase is Aborted.

    A retry (`rollout guard --retry`) starts a new step, whose phase is no longer Aborted: read from
    the status, the abort is then gone. An abort written without its details still counts."""
    if not status or status.get("phase") != ABORTED_PHASE or not status.get("canaryVersion"):
        return None
    details = status.get("abort") or {}
    return Abort(
        version=str(status["canaryVersion"]),
        reason=str(details.get("reason") or "(no reason recorded)"),
        at=str(details.get("at") or status.get("stepStartedAt") or "(unknown time)"),
        pr=details.get("pr") or None,
    )


def refusal(
    abort: Abort | None,
    version: str | None,
    weight: int,
    *,
    where: str,
    recorded: str,
    retry: str | None = None,
    stack: str | None = None,
) -> str | None:
    """Why applying `where` (a stack file giving canary `version` `weight`%) must not happen; None when
    it may. `recorded` says where the abort was read ("on the cluster"); `retry` is the deliberate
    way back, given with a reason.

    Allowed: no canary, or one without traffic (main recorded the abort); another version than the
    aborted one (a new rollout); a retry on purpose."""
    if abort is None or version is None or weight == 0 or abort.version != version or retry:
        return None
    pr = f"; the rollback is in PR branch {abort.pr}: merge it" if abort.pr else "; merge the rollback into main"
    return (
        f"canary {version} was aborted {recorded} at {abort.at} ({abort.reason}), but {where} still gives it "
        f"{weight}%: applying it would bring the canary back{pr}. {retry_hint(stack)}"
    )
