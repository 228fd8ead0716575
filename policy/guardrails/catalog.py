"""Every rule of the pack: its name, why it exists, its level, its config and its function.

`__main__.py` turns each entry into a pulumi-policy Policy; the tests run the same entries over
fixture resources (`evaluate`), so what the engine enforces and what the tests check is one list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from . import advisory, buckets, exposure, traffic, workloads
from .model import Resource, Violation

Config = Mapping[str, Any]


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    """Why the rule exists: the engine prints it with every violation."""
    scope: Literal["resource", "stack"]
    check: Callable[..., list[Violation]]
    """(Resource, config) for a resource rule; (list[Resource], config) for a stack rule."""
    advisory: bool = False
    config_schema: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """JSON-schema properties of the rule's config, with their defaults."""

    def defaults(self) -> dict[str, Any]:
        return {key: schema["default"] for key, schema in self.config_schema.items() if "default" in schema}


_STRINGS = {"type": "array", "items": {"type": "string"}}

RULES: tuple[Rule, ...] = (
    Rule(
        "gpu-pods-scheduling",
        "A pod asking for nvidia.com/gpu must tolerate the GPU taint and select the GPU pool: otherwise it stays "
        "Pending forever, or lands on a GPU node it was not meant for.",
        "resource",
        lambda r, c: workloads.check_gpu_scheduling(r),
    ),
    Rule(
        "gpu-namespace-quota",
        "GPU pods run only in namespaces with a GPU ResourceQuota, so one team cannot take every GPU of the pool.",
        "stack",
        lambda rs, c: workloads.check_gpu_namespace_quota(rs, c["gpuQuotaNamespaces"]),
        config_schema={"gpuQuotaNamespaces": {**_STRINGS, "default": []}},
    ),
    Rule(
        "container-resources",
        "Every container sets cpu and memory requests and a memory limit: the scheduler packs by requests, and a "
        "container without a memory limit can take a node's memory from every pod beside it.",
        "resource",
        lambda r, c: workloads.check_container_resources(r),
    ),
    Rule(
        "no-privileged-containers",
        "No container runs privileged, in host namespaces or with SYS_ADMIN outside the listed platform DaemonSets "
        "(the GPU device plugin): such a container owns the node and every pod on it.",
        "resource",
        lambda r, c: workloads.check_privileged(r, c["privilegedDaemonSets"]),
        config_schema={"privilegedDaemonSets": {**_STRINGS, "default": []}},
    ),
    Rule(
        "images-pinned",
        "An image without a tag, or tagged latest, may pull a different build on every node restart: what runs "
        "would not be what was reviewed.",
        "resource",
        lambda r, c: workloads.check_images_pinned(r),
    ),
    Rule(
        "images-from-mirror",
        "When an image mirror is configured, every image comes from it: nodes have no route to public registries, "
        "and the mirror is where images are scanned.",
        "resource",
        lambda r, c: workloads.check_images_from_mirror(r, c["imageMirror"]),
        config_schema={"imageMirror": {"type": "string", "default": ""}},
    ),
    Rule(
        "traffic-weights-sum",
        "A TrafficSplit's or HTTPRoute's weights sum to 100, so each weight reads as the percentage of traffic it "
        "sends and a rollout step means what the stack file says.",
        "resource",
        lambda r, c: traffic.check_weights_sum(r),
    ),
    Rule(
        "traffic-backends-exist",
        "Every backend of a split names an existing Service: traffic sent to a missing Service fails.",
        "stack",
        lambda rs, c: traffic.check_backends_exist(rs, c["knownServices"]),
        config_schema={"knownServices": {**_STRINGS, "default": []}},
    ),
    Rule(
        "canary-weight-step",
        "One update raises a canary's weight by at most maxStepPercent points (from the old state), so a bad "
        "version meets a bounded share of traffic before the gate judges it. Rollbacks are not limited.",
        "stack",
        lambda rs, c: traffic.check_canary_step(rs, c["maxStepPercent"], c["splits"]),
        config_schema={
            "maxStepPercent": {"type": "integer", "minimum": 1, "maximum": 100, "default": 25},
            "splits": {"type": "object", "default": {}},
        },
    ),
    Rule(
        "no-public-load-balancer",
        "A LoadBalancer Service without the internal annotation gets a public address: the platform serves "
        "nothing to the internet.",
        "resource",
        lambda r, c: exposure.check_load_balancer_internal(r),
    ),
    Rule(
        "no-open-ingress",
        "No security group admits 0.0.0.0/0 or ::/0: every port it opens would be scanned within minutes.",
        "resource",
        lambda r, c: exposure.check_open_ingress(r),
    ),
    Rule(
        "s3-encrypted-private",
        "S3 buckets hold models and datasets: encrypted at rest, with all four public-access blocks on.",
        "stack",
        lambda rs, c: buckets.check_buckets(rs),
    ),
    Rule(
        "rds-private-encrypted",
        "An RDS database is never publicly accessible and is encrypted at rest: the MLflow database holds every "
        "experiment and the registry's model versions.",
        "resource",
        lambda r, c: exposure.check_rds(r),
    ),
    Rule(
        "irsa-single-service-account",
        "An IRSA role trusts exactly one service account (StringEquals on :sub): a wildcard or a list lets other "
        "pods of the cluster assume the role.",
        "resource",
        lambda r, c: exposure.check_irsa_trust(r),
    ),
    Rule(
        "pdb-for-replicated-workloads",
        "A workload with more than one replica has a PodDisruptionBudget, so a node drain keeps some serving.",
        "stack",
        lambda rs, c: advisory.check_pdb(rs),
        advisory=True,
    ),
    Rule(
        "network-policy-selects-workload",
        "A workload is selected by a NetworkPolicy (or runs in a namespace the platform covers with default-deny), "
        "so only the clients it names may reach it.",
        "stack",
        lambda rs, c: advisory.check_network_policy(rs, c["coveredNamespaces"]),
        advisory=True,
        config_schema={"coveredNamespaces": {**_STRINGS, "default": []}},
    ),
)
BY_NAME: Mapping[str, Rule] = {rule.name: rule for rule in RULES}


def rule_config(rule: Rule, pack_config: Mapping[str, Any]) -> dict[str, Any]:
    """The rule's config: its defaults, overridden by the pack config file's entry for it."""
    entry = pack_config.get(rule.name)
    return {
        **rule.defaults(),
        **({k: v for k, v in entry.items() if k != "enforcementLevel"} if isinstance(entry, Mapping) else {}),
    }


def evaluate(resources: list[Resource], pack_config: Mapping[str, Any] | None = None) -> dict[str, list[Violation]]:
    """Every rule over a stack's resources, as the engine would run them: {rule name: violations}."""
    pack_config = pack_config or {}
    found: dict[str, list[Violation]] = {}
    for rule in RULES:
        config = rule_config(rule, pack_config)
        if rule.scope == "resource":
            violations = [v for r in resources for v in rule.check(r, config)]
        else:
            violations = rule.check(resources, config)
        if violations:
            found[rule.name] = violations
    return found
