"""Rules on traffic splits: SMI TrafficSplits and Gateway API HTTPRoutes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .model import Resource, Violation, get_path

TOTAL = 100


def split_weights(resource: Resource) -> list[dict[str, int]]:
    """Each weighted group of a split as {service: weight}: a TrafficSplit has one, an HTTPRoute
    one per rule with more than one backend (a single backend takes all of a rule's traffic)."""
    if resource.is_kubernetes("TrafficSplit"):
        backends = get_path(resource.props, "spec", "backends") or []
        return [{str(b.get("service")): int(b.get("weight", 0)) for b in backends}]
    if resource.is_kubernetes("HTTPRoute"):
        groups = []
        for rule in get_path(resource.props, "spec", "rules") or []:
            refs = [r for r in rule.get("backendRefs") or [] if r.get("kind", "Service") == "Service"]
            if len(refs) > 1:
                groups.append({str(r.get("name")): int(r.get("weight", 1)) for r in refs})
        return groups
    return []


def _where(resource: Resource) -> str:
    return f"{resource.kind} {resource.namespace}/{resource.object_name}"


def check_weights_sum(resource: Resource) -> list[Violation]:
    return [
        Violation(f"{_where(resource)} weights {weights} sum to {sum(weights.values())}, not {TOTAL}", resource.urn)
        for weights in split_weights(resource)
        if sum(weights.values()) != TOTAL or any(w < 0 for w in weights.values())
    ]


def check_backends_exist(resources: list[Resource], known_services: list[str]) -> list[Violation]:
    """Every backend names a Service declared in the stack (or listed as existing) in the split's namespace."""
    services = {f"{r.namespace}/{r.object_name}" for r in resources if r.is_kubernetes("Service")}
    services |= set(known_services)
    violations = []
    for r in resources:
        backends = set().union(*split_weights(r)) if split_weights(r) else set()
        if r.is_kubernetes("TrafficSplit") and get_path(r.props, "spec", "service"):
            backends.add(str(get_path(r.props, "spec", "service")))
        missing = sorted(b for b in backends if f"{r.namespace}/{b}" not in services)
        if missing:
            violations.append(
                Violation(f"{_where(r)} names Services {missing} that do not exist in namespace {r.namespace}", r.urn)
            )
    return violations


def check_canary_step(
    resources: list[Resource], max_step: int, previous: Mapping[str, Mapping[str, Any]]
) -> list[Violation]:
    """A single update raises a canary backend's weight by at most `max_step` points.

    `previous` is the old state, by URN: {"weights": {service: weight}, "stable": service}. The
    engine gives a policy only the new inputs (pulumi-policy 1.21 / CLI v3.259 send no old state to
    an analyzer), so CI reads the old state from `pulumi stack export` into the policy config
    (mlplatform/tools/ci/policy_config.py). The stable backend may rise freely: moving traffic
    back to it is a rollback, which must stay one update. Without a recorded stable, the old
    state's heaviest backend is taken as the stable. A split with no old state is a create: no step.
    """
    # Config arrives through the engine as JSON numbers, i.e. floats: 25.0.
    max_step = int(max_step)
    violations = []
    for r in resources:
        old = previous.get(r.urn)
        if not old or not split_weights(r):
            continue
        old_weights = {service: int(weight) for service, weight in (old.get("weights") or {}).items()}
        stable = old.get("stable") or (max(old_weights, key=old_weights.get) if old_weights else None)
        for service, weight in split_weights(r)[0].items():
            rise = weight - int(old_weights.get(service, 0))
            if service != stable and rise > max_step:
                violations.append(
                    Violation(
                        f"{_where(r)} moves canary backend {service} from {old_weights.get(service, 0)} to {weight}: "
                        f"+{rise} points in one update, more than maxStepPercent {max_step}",
                        r.urn,
                    )
                )
    return violations
