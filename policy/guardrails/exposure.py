"""Rules on what reaches a workload or a database from outside the VPC."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .model import Resource, Violation

INTERNAL_ANNOTATIONS: Mapping[str, str] = {
    # The in-tree AWS cloud provider, and the AWS Load Balancer Controller.
    "service.beta.kubernetes.io/aws-load-balancer-internal": "true",
    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
}
ANYWHERE = ("0.0.0.0/0", "::/0")


def check_load_balancer_internal(resource: Resource) -> list[Violation]:
    if not resource.is_kubernetes("Service") or (resource.props.get("spec") or {}).get("type") != "LoadBalancer":
        return []
    annotations = resource.metadata.get("annotations") or {}
    if any(str(annotations.get(key, "")).lower() == value for key, value in INTERNAL_ANNOTATIONS.items()):
        return []
    return [
        Violation(
            f"Service {resource.namespace}/{resource.object_name} is a LoadBalancer without an internal annotation "
            f"({' or '.join(f'{k}: {v}' for k, v in INTERNAL_ANNOTATIONS.items())}): it would get a public address",
            resource.urn,
        )
    ]


def check_open_ingress(resource: Resource) -> list[Violation]:
    """No security group rule lets all of the internet in."""
    props = resource.props
    rules: list[Mapping[str, Any]] = []
    if resource.type == "aws:ec2/securityGroup:SecurityGroup":
        rules = list(props.get("ingress") or [])
    elif resource.type == "aws:ec2/securityGroupRule:SecurityGroupRule" and props.get("type") == "ingress":
        rules = [props]
    elif resource.type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        rules = [{"cidrBlocks": [props.get("cidrIpv4")], "ipv6CidrBlocks": [props.get("cidrIpv6")]}]
    return [
        Violation(
            f"{resource.kind} {resource.name} allows ingress from {cidr}"
            f"{' on port ' + str(rule['fromPort']) if 'fromPort' in rule else ''}",
            resource.urn,
        )
        for rule in rules
        for cidr in [*(rule.get("cidrBlocks") or []), *(rule.get("ipv6CidrBlocks") or [])]
        if cidr in ANYWHERE
    ]


def check_rds(resource: Resource) -> list[Violation]:
    if resource.type not in ("aws:rds/instance:Instance", "aws:rds/cluster:Cluster"):
        return []
    problems = []
    if resource.props.get("publiclyAccessible") is True:
        problems.append("is publicly accessible")
    if resource.props.get("storageEncrypted") is not True:
        problems.append("does not set storageEncrypted")
    return [Violation(f"RDS {resource.kind} {resource.name} {p}", resource.urn) for p in problems]


def _trust_document(value: Any) -> Mapping[str, Any]:
    return json.loads(value) if isinstance(value, str) else (value or {})


def check_irsa_trust(resource: Resource) -> list[Violation]:
    """An IRSA role (trust in an EKS OIDC issuer) names exactly one service account, by StringEquals."""
    if resource.type != "aws:iam/role:Role" or not resource.props.get("assumeRolePolicy"):
        return []
    violations = []
    for statement in _statements(_trust_document(resource.props["assumeRolePolicy"])):
        federated = str((statement.get("Principal") or {}).get("Federated", ""))
        if "oidc.eks." not in federated or statement.get("Effect", "Allow") != "Allow":
            continue
        subjects = [
            (operator, value)
            for operator, conditions in (statement.get("Condition") or {}).items()
            for key, values in conditions.items()
            if key.endswith(":sub")
            for value in (values if isinstance(values, list) else [values])
        ]
        if len(subjects) != 1 or subjects[0][0] != "StringEquals" or "*" in subjects[0][1] or "?" in subjects[0][1]:
            violations.append(
                Violation(
                    f"IAM role {resource.name} trusts {federated} for subjects {subjects or 'any'}: an IRSA role names "
                    f"exactly one service account (StringEquals on :sub, no wildcard)",
                    resource.urn,
                )
            )
    return violations


def _statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statements = document.get("Statement") or []
    return [statements] if isinstance(statements, Mapping) else list(statements)
