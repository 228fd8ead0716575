"""The third-party CRDs a model stack's objects belong to, for the e2e control plane.

On a real cluster these come from charts: linkerd-smi (TrafficSplit), linkerd-crds
(ServiceProfile and the policy kinds) and kube-prometheus-stack (PrometheusRule).

TrafficSplit is defined as the SMI extension defines it: group split.smi-spec.io,
v1alpha1 as the stored version (weights as int-or-string) and v1alpha2 served
beside it (weights as plain numbers), both structural, so the API server prunes and
type-checks what a model stack writes. The other kinds only need to exist for
the API server to store our objects: their field-level checks are the manifest
schema tests' job (tests/schemas/), so here they keep any field.
"""

from __future__ import annotations

from typing import Any


def _crd(group: str, kind: str, plural: str, versions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()},
            "versions": versions,
        },
    }


def _open_version(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "served": True,
        "storage": True,
        "schema": {
            "openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        },
    }


def _traffic_split_version(name: str, *, storage: bool, weight: dict[str, Any]) -> dict[str, Any]:
    backend = {
        "type": "object",
        "required": ["service", "weight"],
        "properties": {"service": {"type": "string"}, "weight": weight},
    }
    return {
        "name": name,
        "served": True,
        "storage": storage,
        "schema": {
            "openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {
                        "type": "object",
                        "required": ["service", "backends"],
                        "properties": {
                            "service": {"type": "string"},
                            "backends": {"type": "array", "items": backend},
                        },
                    }
                },
            }
        },
    }


TRAFFIC_SPLIT_CRD = _crd(
    "split.smi-spec.io",
    "TrafficSplit",
    "trafficsplits",
    [
        _traffic_split_version("v1alpha1", storage=True, weight={"x-kubernetes-int-or-string": True}),
        _traffic_split_version("v1alpha2", storage=False, weight={"type": "number"}),
    ],
)

THIRD_PARTY_CRDS: list[dict[str, Any]] = [
    TRAFFIC_SPLIT_CRD,
    _crd("linkerd.io", "ServiceProfile", "serviceprofiles", [_open_version("v1alpha2")]),
    _crd("policy.linkerd.io", "Server", "servers", [_open_version("v1beta3")]),
    _crd("policy.linkerd.io", "AuthorizationPolicy", "authorizationpolicies", [_open_version("v1alpha1")]),
    _crd("policy.linkerd.io", "MeshTLSAuthentication", "meshtlsauthentications", [_open_version("v1alpha1")]),
    _crd("monitoring.coreos.com", "PrometheusRule", "prometheusrules", [_open_version("v1")]),
]
