"""What a weight step's update plan may hold: the split and the record, updated, and nothing else.

`rollout --apply` moves a canary by previewing with `--save-plan`, checking the plan here,
then `pulumi up --plan`. The stack file changed in one line (the weight), so the engine
should plan two updates: the TrafficSplit (or HTTPRoute) that carries the weights, and the
InferenceService record that mirrors them. Anything else in the plan (an HPA bound merged
but never deployed, a chart bumped in a shared module, a platform output that moved, drift
a refresh found) would be applied unreviewed with the step, so the step refuses instead.

The plan file is the engine's (`pulumi preview --save-plan`): `resourcePlans` maps each URN
to the steps the engine plans for it. Steps that change nothing in the cluster are allowed
on any resource: `same`, and the read steps of read resources (the program reads the live
record to honour an abort).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# The resource types a weight step updates, as the engine writes them in a URN.
WEIGHT_CARRIERS = (
    "kubernetes:split.smi-spec.io/v1alpha2:TrafficSplit",
    "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute",
)
# The record's group is the platform's (`crds.group`), so it is matched by provider and kind.
RECORD_KIND = "InferenceService"
EXPECTED_OPERATION = "update"
# Engine operations that write nothing to the cluster or the state's resources.
NO_CHANGE_OPERATIONS = frozenset({"same", "read", "read-replacement", "refresh", "discard", "discard-replaced"})


class PlanUnreadable(Exception):
    """The plan file is missing or not the engine's plan JSON."""


@dataclass(frozen=True)
class PlannedStep:
    """One resource's planned operations that change something."""

    type: str
    name: str
    operations: tuple[str, ...]

    def __str__(self) -> str:
        return f"{'+'.join(self.operations)} {self.type} {self.name}"


def _type_and_name(urn: str) -> tuple[str, str]:
    # urn:pulumi:<stack>::<project>::<parent types joined by $><type>::<name>
    parts = urn.split("::", 3)
    if len(parts) != 4:
        return urn, ""
    return parts[2].rsplit("$", 1)[-1], parts[3]


def _is_expected(step: PlannedStep) -> bool:
    if step.operations != (EXPECTED_OPERATION,):
        return False
    return step.type in WEIGHT_CARRIERS or (
        step.type.startswith("kubernetes:") and step.type.endswith(f":{RECORD_KIND}")
    )


def changes(plan: dict) -> list[PlannedStep]:
    """The resources whose planned steps change something, in URN order."""
    resource_plans = plan.get("resourcePlans")
    if not isinstance(resource_plans, dict):
        raise PlanUnreadable("the plan has no `resourcePlans` object")
    found = []
    for urn in sorted(resource_plans):
        entry = resource_plans[urn] or {}
        operations = tuple(entry.get("steps") or ())
        if all(op in NO_CHANGE_OPERATIONS for op in operations):
            continue
        found.append(PlannedStep(*_type_and_name(urn), operations))
    return found


def read_plan(path: Path) -> dict:
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanUnreadable(f"`pulumi preview --save-plan` wrote no plan to {path}") from None
    except (OSError, ValueError) as err:
        raise PlanUnreadable(f"{path} is not a readable plan: {err}") from None
    if not isinstance(plan, dict):
        raise PlanUnreadable(f"{path} is not a plan object")
    return plan


def unexpected(steps: Iterable[PlannedStep]) -> list[PlannedStep]:
    """The planned changes a weight step never makes."""
    return [step for step in steps if not _is_expected(step)]
