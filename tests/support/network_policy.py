"""A small evaluator of Kubernetes NetworkPolicy semantics over recorded objects.

Tests ask "may this pod reach that pod (or address) on this port?" instead of
matching policy shapes, so a policy that is present but selects the wrong pods, or
names the wrong port, fails them. What it implements (networking.k8s.io/v1):
- a pod is isolated for ingress (egress) if any policy in its namespace selects it
  with that policy type; an isolated pod admits only what some rule allows;
- a connection needs both the source's egress and the destination's ingress;
- peers: podSelector alone means the policy's namespace; namespaceSelector
  (with an optional podSelector) matches namespaces by their labels, here only
  `kubernetes.io/metadata.name`; ipBlock matches addresses outside the cluster,
  never pods;
- ports: a rule without ports allows every port; matchLabels only, numeric ports.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlplatform.tools.offline.engine import RecordedResource
from tests.support.types import K8S_NETWORK_POLICY

NETWORK_POLICY = K8S_NETWORK_POLICY


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Address:
    """Something outside the cluster's pod network: the API server, a node, RDS, S3."""

    ip: str


Endpoint = Pod | Address


def _selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    if selector is None:
        return False
    if selector.get("matchExpressions"):
        raise NotImplementedError("matchExpressions")
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _peer_matches(peer: Mapping[str, Any], policy_namespace: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        if not isinstance(other, Address):
            return False
        ip = ipaddress.ip_address(other.ip)
        inside = ip in ipaddress.ip_network(block["cidr"])
        return inside and not any(ip in ipaddress.ip_network(c) for c in block.get("except") or [])
    if not isinstance(other, Pod):
        return False
    if "namespaceSelector" in peer:
        namespace_ok = _selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": other.namespace})
    else:
        namespace_ok = other.namespace == policy_namespace
    pod_ok = _selects(peer["podSelector"], other.labels) if "podSelector" in peer else True
    return namespace_ok and pod_ok


def _port_matches(ports: list[Mapping[str, Any]] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    return any(p.get("port") == port and p.get("protocol", "TCP") == protocol for p in ports)


class Policies:
    def __init__(self, resources: Iterable[RecordedResource]):
        self.policies = [(r.metadata["namespace"], r.metadata["name"], r.inputs["spec"]) for r in resources]

    def _selecting(self, pod: Pod, kind: str) -> list[dict[str, Any]]:
        return [
            spec
            for namespace, _, spec in self.policies
            if namespace == pod.namespace
            and kind in spec.get("policyTypes", [])
            and _selects(spec["podSelector"], pod.labels)
        ]

    def _direction_allows(self, pod: Pod, other: Endpoint, port: int, protocol: str, kind: str) -> bool:
        selecting = self._selecting(pod, kind)
        if not selecting:
            return True  # not isolated in this direction
        rules_key, peers_key = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
        for spec in selecting:
            for rule in spec.get(rules_key) or []:
                peers = rule.get(peers_key)
                peer_ok = not peers or any(_peer_matches(p, pod.namespace, other) for p in peers)
                if peer_ok and _port_matches(rule.get("ports"), port, protocol):
                    return True
        return False

    def egress_allows(self, source: Endpoint, destination: Endpoint, port: int, protocol: str = "TCP") -> bool:
        """The source's side only: what a destination outside these policies would see."""
        return not isinstance(source, Pod) or self._direction_allows(source, destination, port, protocol, "Egress")

    def allows(self, source: Endpoint, destination: Endpoint, port: int, protocol: str = "TCP") -> bool:
        ingress = not isinstance(destination, Pod) or self._direction_allows(
            destination, source, port, protocol, "Ingress"
        )
        return self.egress_allows(source, destination, port, protocol) and ingress

    def named(self, namespace: str, name: str) -> dict[str, Any]:
        (spec,) = [s for ns, n, s in self.policies if (ns, n) == (namespace, name)]
        return spec
