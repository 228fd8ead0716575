"""Seeded-bad fixture programs for the policy pack: each breaks exactly one rule.

A fixture is a small stack: Kubernetes manifests (`objects`, which the e2e tier declares
in a real Pulumi program and previews with the pack) and/or AWS resources (`aws`, which
cannot be previewed offline: the fast tier runs the pack's rules on them directly).
Every fixture also runs through the pack's rules in the fast tier.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from policy.guardrails.model import Resource
from tests.support.types import (
    AWS_EC2_SECURITY_GROUP,
    AWS_IAM_ROLE,
    AWS_RDS_INSTANCE,
    AWS_S3_BUCKET,
    AWS_S3_BUCKET_PUBLIC_ACCESS_BLOCK,
    AWS_S3_BUCKET_SERVER_SIDE_ENCRYPTION_CONFIGURATION,
    AWS_VPC_SECURITY_GROUP_INGRESS_RULE,
)

NAMESPACE = "team-fraud"  # has a GPU quota and the platform's default-deny NetworkPolicy
PROJECT = "policy-fixture"
STACK = "fixture"
GOOD_IMAGE = "ghcr.io/example/server:1.4.0"
SPLIT_URN = f"urn:pulumi:{STACK}::{PROJECT}::kubernetes:split.smi-spec.io/v1alpha2:TrafficSplit::trafficsplit-web"


def container(name: str = "app", image: str = GOOD_IMAGE, **overrides: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True},
        **overrides,
    }


def workload(kind: str = "Deployment", name: str = "web", namespace: str = NAMESPACE, **pod: Any) -> dict[str, Any]:
    labels = {"app": name}
    spec: dict[str, Any] = {"containers": [container()], **pod}
    template = {"metadata": {"labels": labels}, "spec": spec}
    if kind == "Pod":
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": spec,
        }
    api = "batch/v1" if kind == "Job" else "apps/v1"
    body: dict[str, Any] = {"template": template}
    if kind != "Job":
        body["selector"] = {"matchLabels": labels}
    if kind == "Job":
        spec.setdefault("restartPolicy", "Never")
    if kind == "Deployment":
        body["replicas"] = 1
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": namespace}, "spec": body}


def gpu_job(**pod: Any) -> dict[str, Any]:
    gpu = container(
        resources={
            "requests": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"},
            "limits": {"memory": "2Gi", "nvidia.com/gpu": "1"},
        }
    )
    spec = {
        "containers": [gpu],
        "nodeSelector": {"mlplatform.io/node-pool": "gpu"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}],
    }
    spec.update(pod)
    return workload("Job", name="train", **{k: v for k, v in spec.items() if v is not None})


def service(name: str, namespace: str = NAMESPACE, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 8080}], **spec},
    }


def traffic_split(backends: dict[str, int], apex: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "split.smi-spec.io/v1alpha2",
        "kind": "TrafficSplit",
        "metadata": {"name": apex, "namespace": NAMESPACE},
        "spec": {"service": apex, "backends": [{"service": s, "weight": w} for s, w in backends.items()]},
    }


def split_services(*names: str) -> list[dict[str, Any]]:
    return [service(name) for name in names]


def http_route(weights: dict[str, int]) -> dict[str, Any]:
    refs = [{"group": "", "kind": "Service", "name": s, "port": 8080, "weight": w} for s, w in weights.items()]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": NAMESPACE},
        "spec": {
            "parentRefs": [{"group": "core", "kind": "Service", "name": "web", "port": 8080}],
            "rules": [{"backendRefs": refs}],
        },
    }


def trust(subjects: list[str] | str, operator: str = "StringEquals") -> str:
    issuer = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Principal": {"Federated": f"arn:aws:iam::123456789012:oidc-provider/{issuer}"},
                    "Condition": {operator: {f"{issuer}:sub": subjects, f"{issuer}:aud": "sts.amazonaws.com"}},
                }
            ],
        }
    )


def aws(type_: str, name: str, deps: dict[str, list[str]] | None = None, **props: Any) -> Resource:
    return Resource(type_, props, aws_urn(type_, name), deps or {})


def aws_urn(type_: str, name: str) -> str:
    return f"urn:pulumi:{STACK}::{PROJECT}::{type_}::{name}"


BUCKET = AWS_S3_BUCKET
SSE = AWS_S3_BUCKET_SERVER_SIDE_ENCRYPTION_CONFIGURATION
PAB = AWS_S3_BUCKET_PUBLIC_ACCESS_BLOCK
ALL_BLOCKS = {
    "blockPublicAcls": True,
    "blockPublicPolicy": True,
    "ignorePublicAcls": True,
    "restrictPublicBuckets": True,
}


def bucket_stack(*, encrypted: bool = True, blocks: dict[str, bool] | None = None) -> list[Resource]:
    bucket_urn = aws_urn(BUCKET, "artifacts")
    resources = [aws(BUCKET, "artifacts", forceDestroy=False)]
    if encrypted:
        resources.append(
            aws(
                SSE,
                "artifacts-sse",
                {"bucket": [bucket_urn]},
                bucket="artifacts-id",
                rules=[{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}],
            )
        )
    resources.append(
        aws(
            PAB,
            "artifacts-pab",
            {"bucket": [bucket_urn]},
            bucket="artifacts-id",
            **(ALL_BLOCKS if blocks is None else blocks),
        )
    )
    return resources


def rds(**props: Any) -> Resource:
    return aws(
        AWS_RDS_INSTANCE,
        "mlflow-db",
        **{"engine": "postgres", "publiclyAccessible": False, "storageEncrypted": True, **props},
    )


def security_group(cidr: str) -> Resource:
    return aws(
        AWS_EC2_SECURITY_GROUP,
        "nodes",
        ingress=[{"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": [cidr]}],
    )


@dataclass(frozen=True)
class Fixture:
    name: str
    rule: str
    """The one rule that must catch it."""
    why: str
    objects: list[dict[str, Any]] = field(default_factory=list)
    aws: list[Resource] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    """Policy-pack config entries on top of policy/policy-config.json."""

    @property
    def engine(self) -> bool:
        """Previewed by the real engine in the e2e tier: Kubernetes objects only."""
        return bool(self.objects) and not self.aws


def _with(obj: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    target = obj
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return obj


_POD = ("spec", "template", "spec")
_STEP_CONFIG = {
    "canary-weight-step": {
        "maxStepPercent": 25,
        "splits": {SPLIT_URN: {"weights": {"web-v1": 90, "web-v2": 10}, "stable": "web-v1"}},
    }
}

FIXTURES: tuple[Fixture, ...] = (
    Fixture(
        "gpu-job-without-toleration",
        "gpu-pods-scheduling",
        "stays Pending: the GPU nodes are tainted",
        [gpu_job(tolerations=None)],
    ),
    Fixture(
        "gpu-job-without-pool-selector",
        "gpu-pods-scheduling",
        "may land on any GPU node, outside the pool",
        [gpu_job(nodeSelector=None)],
    ),
    Fixture(
        "gpu-job-in-namespace-without-quota",
        "gpu-namespace-quota",
        "takes GPUs outside any team's quota",
        [_with(gpu_job(), ("metadata", "namespace"), "ml-serving")],
    ),
    Fixture(
        "container-without-memory-limit",
        "container-resources",
        "can take the node's memory",
        [_with(workload(), (*_POD, "containers", 0, "resources"), {"requests": {"cpu": "1", "memory": "1Gi"}})],
    ),
    Fixture(
        "init-container-without-requests",
        "container-resources",
        "the scheduler cannot place it honestly",
        [_with(workload(), (*_POD, "initContainers"), [container("init", resources={"limits": {"memory": "64Mi"}})])],
    ),
    Fixture(
        "privileged-container",
        "no-privileged-containers",
        "owns the node",
        [_with(workload(), (*_POD, "containers", 0, "securityContext"), {"privileged": True})],
    ),
    Fixture(
        "unlisted-daemonset-on-host-network",
        "no-privileged-containers",
        "sees every node's traffic",
        [workload("DaemonSet", name="sniffer", hostNetwork=True)],
    ),
    Fixture(
        "image-tagged-latest",
        "images-pinned",
        "moves with every push",
        [_with(workload(), (*_POD, "containers", 0, "image"), "ghcr.io/example/server:latest")],
    ),
    Fixture(
        "image-without-tag",
        "images-pinned",
        "pulls whatever is newest",
        [_with(workload("Pod"), ("spec", "containers", 0, "image"), "ghcr.io/example/server")],
    ),
    Fixture(
        "image-outside-mirror",
        "images-from-mirror",
        "the nodes have no route to ghcr.io",
        [workload()],
        config={"images-from-mirror": {"imageMirror": "registry.ml.internal:5000/mirror"}},
    ),
    Fixture(
        "public-load-balancer",
        "no-public-load-balancer",
        "gets an internet-facing address",
        [service("web", type="LoadBalancer")],
    ),
    Fixture(
        "traffic-split-summing-to-90",
        "traffic-weights-sum",
        "weights no longer read as percentages",
        [*split_services("web", "web-v1", "web-v2"), traffic_split({"web-v1": 80, "web-v2": 10})],
    ),
    Fixture(
        "http-route-summing-to-110",
        "traffic-weights-sum",
        "weights no longer read as percentages",
        [*split_services("web", "web-v1", "web-v2"), http_route({"web-v1": 100, "web-v2": 10})],
    ),
    Fixture(
        "traffic-split-to-missing-service",
        "traffic-backends-exist",
        "a share of traffic fails",
        [*split_services("web", "web-v1"), traffic_split({"web-v1": 90, "web-v3": 10})],
    ),
    Fixture(
        "canary-jumps-10-to-50",
        "canary-weight-step",
        "skips two gate checks",
        [*split_services("web", "web-v1", "web-v2"), traffic_split({"web-v1": 50, "web-v2": 50})],
        config=_STEP_CONFIG,
    ),
    Fixture(
        "new-canary-starts-at-40",
        "canary-weight-step",
        "a new version meets 40% of traffic unjudged",
        [*split_services("web", "web-v1", "web-v3"), traffic_split({"web-v1": 60, "web-v3": 40})],
        config={
            "canary-weight-step": {
                "maxStepPercent": 25,
                "splits": {SPLIT_URN: {"weights": {"web-v1": 100}, "stable": "web-v1"}},
            }
        },
    ),
    Fixture(
        "replicated-without-pdb",
        "pdb-for-replicated-workloads",
        "a drain may stop every replica",
        [_with(workload(), ("spec", "replicas"), 3)],
    ),
    Fixture(
        "workload-without-network-policy",
        "network-policy-selects-workload",
        "any pod may call it",
        [workload(namespace="default")],
    ),
    Fixture(
        "security-group-open-ssh", "no-open-ingress", "port 22 open to the internet", aws=[security_group("0.0.0.0/0")]
    ),
    Fixture(
        "ingress-rule-open-ipv6",
        "no-open-ingress",
        "every port open to the IPv6 internet",
        aws=[aws(AWS_VPC_SECURITY_GROUP_INGRESS_RULE, "any6", cidrIpv6="::/0", ipProtocol="-1")],
    ),
    Fixture(
        "bucket-without-encryption",
        "s3-encrypted-private",
        "models at rest in clear",
        aws=bucket_stack(encrypted=False),
    ),
    Fixture(
        "bucket-with-public-policy-allowed",
        "s3-encrypted-private",
        "one bucket policy away from public",
        aws=bucket_stack(blocks={**ALL_BLOCKS, "blockPublicPolicy": False}),
    ),
    Fixture(
        "rds-publicly-accessible",
        "rds-private-encrypted",
        "the MLflow database on the internet",
        aws=[rds(publiclyAccessible=True)],
    ),
    Fixture(
        "rds-unencrypted",
        "rds-private-encrypted",
        "experiment data at rest in clear",
        aws=[rds(storageEncrypted=False)],
    ),
    Fixture(
        "irsa-wildcard-subject",
        "irsa-single-service-account",
        "any service account of the namespace",
        aws=[aws(AWS_IAM_ROLE, "training", assumeRolePolicy=trust("system:serviceaccount:team-fraud:*", "StringLike"))],
    ),
    Fixture(
        "irsa-two-service-accounts",
        "irsa-single-service-account",
        "two workloads share one identity",
        aws=[
            aws(
                AWS_IAM_ROLE,
                "training",
                assumeRolePolicy=trust(
                    ["system:serviceaccount:team-fraud:train", "system:serviceaccount:team-fraud:serve"]
                ),
            )
        ],
    ),
)


def type_token(obj: dict[str, Any]) -> str:
    """`kubernetes:<group>/<version>:<kind>`; the core group is named `core`."""
    api = "core/v1" if obj["apiVersion"] == "v1" else obj["apiVersion"]
    return f"kubernetes:{api}:{obj['kind']}"


def k8s_resources(objects: list[dict[str, Any]], stack: str = STACK) -> list[Resource]:
    """The objects as the engine names them in the fixture program (tests/e2e/policy_fixture)."""
    return [Resource(type_token(o), o, object_urn(o, stack)) for o in objects]


def resource_name(obj: dict[str, Any]) -> str:
    return f"{obj['kind'].lower()}-{obj['metadata']['name']}"


def object_urn(obj: dict[str, Any], stack: str = STACK) -> str:
    return f"urn:pulumi:{stack}::{PROJECT}::{type_token(obj)}::{resource_name(obj)}"
