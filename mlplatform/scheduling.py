"""How every workload with more than one replica is spread and protected: model servers,
MLflow, Prometheus. One rule, so a drain or a zone outage takes at most one replica of
each, whichever component runs it.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi_kubernetes as k8s

# Zones first, then hosts.
SPREAD_TOPOLOGY_KEYS = ("topology.kubernetes.io/zone", "kubernetes.io/hostname")


def spread_constraint_values(selector: Mapping[str, str]) -> list[dict]:
    """The spread as plain values, for a chart's `topologySpreadConstraints`.

    ScheduleAnyway: an uneven spread is better than a pending replica, especially on a
    pool with few nodes; the PodDisruptionBudget is what keeps a drain from taking all."""
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": dict(selector)},
        }
        for key in SPREAD_TOPOLOGY_KEYS
    ]


def spread_constraints(selector: Mapping[str, str]) -> list[k8s.core.v1.TopologySpreadConstraintArgs]:
    """`spread_constraint_values` for a pod spec we declare ourselves."""
    return [
        k8s.core.v1.TopologySpreadConstraintArgs(
            max_skew=value["maxSkew"],
            topology_key=value["topologyKey"],
            when_unsatisfiable=value["whenUnsatisfiable"],
            label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=value["labelSelector"]["matchLabels"]),
        )
        for value in spread_constraint_values(selector)
    ]
