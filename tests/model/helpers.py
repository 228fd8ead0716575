"""Shared helpers for the model-stack tests: a minimal valid config, the platform's
outputs as a StackReference returns them, and a runner for the real entry point."""

from __future__ import annotations

from typing import Any

from mlplatform.tools.offline.engine import Recording, run_entry_point
from tests.support.helpers import ROOT, deep_merge, qualify
from tests.support.types import (
    K8S_AUTHORIZATION_POLICY,
    K8S_DEPLOYMENT,
    K8S_HORIZONTAL_POD_AUTOSCALER,
    K8S_HTTP_ROUTE,
    K8S_MESH_TLS_AUTHENTICATION,
    K8S_POD_DISRUPTION_BUDGET,
    K8S_PROMETHEUS_RULE,
    K8S_SERVER,
    K8S_SERVICE,
    K8S_SERVICE_ACCOUNT,
    K8S_SERVICE_PROFILE,
    K8S_TRAFFIC_SPLIT,
    custom_resource,
)

MODEL_STACK_DIR = ROOT / "stacks" / "model"
PLATFORM_STACK = "acme/mlplatform/dev"
MODEL = "fraud-detector"
SERVING_NAMESPACE = "ml-serving"
TRAINING_NAMESPACE = "ml-training"
TEAM = "team-fraud"
OIDC_PROVIDER_URL = "oidc.eks.us-west-2.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF"
OIDC_PROVIDER_ARN = f"arn:aws:iam::123456789012:oidc-provider/{OIDC_PROVIDER_URL}"
CRD_GROUP = "ml.example.com"
TRACKING_URI = "http://mlflow.mlflow.svc.cluster.local:5000"
# Deliberately not mlplatform.labels' values: the stack must take the platform's outputs.
GPU_NODE_SELECTOR = {"mlplatform.io/node-pool": "gpu-test"}
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}

PLATFORM_OUTPUTS: dict[str, Any] = {
    "kubeconfig": "apiVersion: v1\nkind: Config\n",
    "clusterName": "mlp-test",
    "namespaces": {
        "serving": SERVING_NAMESPACE,
        "training": TRAINING_NAMESPACE,
        "mlflow": "mlflow",
        "monitoring": "monitoring",
        "teams": [TEAM, "team-vision"],
    },
    "gpuNodeSelector": GPU_NODE_SELECTOR,
    "gpuTaint": GPU_TAINT,
    "gpuPoolEnabled": True,
    # Deliberately not the platform's default names: the stack must take these.
    "storageClasses": {"readWriteOnce": "ebs-test", "readWriteMany": "efs-test"},
    "workloadIdentity": {
        "kind": "irsa",
        "oidcProviderArn": OIDC_PROVIDER_ARN,
        "oidcProviderUrl": OIDC_PROVIDER_URL,
        "region": "us-west-2",
    },
    "mlflowTrackingUri": TRACKING_URI,
    "prometheusUrl": "http://kube-prometheus-stack-prometheus.monitoring.svc.cluster.local:9090",
    "trafficSplitApis": ["smi", "gateway"],
    "crdGroup": CRD_GROUP,
}

# The example stack files reference the platform by these names.
EXAMPLE_STACK_REFERENCES = {
    "organization/mlplatform/dev": PLATFORM_OUTPUTS,
    "organization/mlplatform/prod": PLATFORM_OUTPUTS,
}

STABLE = {"version": "v5", "image": "ghcr.io/example/fraud-serving:5.0.0", "modelUri": "models:/fraud_detector/5"}
CANARY = {"version": "v6", "image": "ghcr.io/example/fraud-serving:6.0.0", "modelUri": "models:/fraud_detector/6"}
CLIENT = {"serviceAccount": "api-gateway", "namespace": "api-gateway"}

# Kubernetes type tokens the tests look up.
DEPLOYMENT = K8S_DEPLOYMENT
SERVICE = K8S_SERVICE
HPA = K8S_HORIZONTAL_POD_AUTOSCALER
PDB = K8S_POD_DISRUPTION_BUDGET
SERVICE_ACCOUNT = K8S_SERVICE_ACCOUNT
TRAFFIC_SPLIT = K8S_TRAFFIC_SPLIT
HTTP_ROUTE = K8S_HTTP_ROUTE
SERVICE_PROFILE = K8S_SERVICE_PROFILE
SERVER = K8S_SERVER
MESH_TLS_AUTHN = K8S_MESH_TLS_AUTHENTICATION
AUTHZ_POLICY = K8S_AUTHORIZATION_POLICY
MODEL_VERSION = custom_resource(f"{CRD_GROUP}/v1", "ModelVersion")
INFERENCE_SERVICE = custom_resource(f"{CRD_GROUP}/v1", "InferenceService")
PROMETHEUS_RULE = K8S_PROMETHEUS_RULE
SPLIT_TYPES = {"smi": TRAFFIC_SPLIT, "gateway": HTTP_ROUTE}


def model_config(**overrides: Any) -> dict[str, Any]:
    """A minimal valid `mlmodel:` namespace (unqualified camelCase keys), deep-merged with overrides.

    A value of None removes the key: `model_config(canary=None)` has no canary.
    """
    base: dict[str, Any] = {
        "platformStack": PLATFORM_STACK,
        "model": {"name": MODEL},
        "stable": dict(STABLE),
        "allowedClients": [dict(CLIENT)],
    }
    return deep_merge(base, overrides)


def with_canary(weight: Any, **overrides: Any) -> dict[str, Any]:
    """A config mid-rollout: the canary `CANARY` at `weight`; `canary={...}` overrides its fields."""
    canary = {**CANARY, "weight": weight, **overrides.pop("canary", {})}
    return model_config(canary=canary, **overrides)


def promoted(**overrides: Any) -> dict[str, Any]:
    """The config after promotion: stable took the canary's version, image and URI."""
    return model_config(stable=dict(CANARY), **overrides)


def run_model(
    values: dict[str, Any], *, stack: str = "fraud-detector-dev", platform: dict[str, Any] | None = None
) -> Recording:
    """Run the model stack's real `__main__.py` with `values` as its `mlmodel:` config;
    `platform` overrides some of the platform stack's outputs."""
    return run_entry_point(
        MODEL_STACK_DIR,
        stack=stack,
        config=qualify("mlmodel", values),
        stack_references={PLATFORM_STACK: {**PLATFORM_OUTPUTS, **(platform or {})}},
    )
