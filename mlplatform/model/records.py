"""Records of what is live: a ModelVersion per live version and one InferenceService per model.

These custom resources drive nothing; they make the rollout state visible to
`kubectl get modelversions,inferenceservices` and to anything that watches the
platform's ML CRDs. Unlike the serving workloads they do carry roles and
weights, so a rollout step legitimately changes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlplatform import labels
from mlplatform.model.config import ModelStackConfig, TrafficWeights, VersionConfig


def model_version_spec(config: ModelStackConfig, role: str, version: VersionConfig) -> dict[str, Any]:
    return {
        "modelName": config.model.registry_name,
        "version": version.version,
        "modelUri": version.model_uri,
        "role": role,
        "deployment": {"canary": role == "canary", "production": role == "stable"},
        "source": {"type": "registry"},
    }


def inference_service_spec(config: ModelStackConfig, weights: TrafficWeights) -> dict[str, Any]:
    serving, stable = config.serving, config.stable
    canary: dict[str, Any] = {"enabled": False}
    if config.canary is not None and weights.canary is not None:
        canary = {
            "enabled": True,
            "canaryModelRef": {"name": config.model.registry_name, "version": config.canary.version},
            "version": config.canary.version,
            "modelUri": config.canary.model_uri,
            "weight": weights.canary.weight,
            # The gates `mlplatform rollout` and the model's alerts check.
            "metrics": [
                {"name": "success-rate", "threshold": config.analysis.min_success_rate},
                {"name": "p99-latency-ms", "threshold": config.analysis.max_p99_latency_ms},
            ],
            # Promotion is a reviewed config change, never automatic.
            "autoPromote": False,
        }
    limits: dict[str, Any] = {"cpu": serving.resources.limits.cpu, "memory": serving.resources.limits.memory}
    if serving.gpus > 0:
        limits[labels.GPU_RESOURCE] = serving.gpus
    return {
        "modelRef": {"name": config.model.registry_name, "version": stable.version},
        "servingRuntime": serving.runtime,
        "replicas": {
            "min": serving.replicas.min,
            "max": serving.replicas.max,
            "targetCPUUtilization": serving.replicas.target_cpu_utilization,
        },
        "resources": {
            "requests": {"cpu": serving.resources.requests.cpu, "memory": serving.resources.requests.memory},
            "limits": limits,
        },
        "stable": {
            "version": stable.version,
            "modelUri": stable.model_uri,
            "weight": weights.stable.weight,
        },
        "canary": canary,
    }


@dataclass
class ModelRecordsArgs:
    config: ModelStackConfig
    weights: TrafficWeights
    """The run's split, computed once by the program."""
    namespace: pulumi.Input[str]
    crd_api_version: str
    """The platform's ML CRD group and version, e.g. `ml.example.com/v1`; plain, as it names the type."""


class ModelRecords(pulumi.ComponentResource):
    """One ModelVersion per live version (`<model>-<version>`) and the InferenceService `<model>`."""

    model_versions: dict[str, k8s.apiextensions.CustomResource]
    inference_service: k8s.apiextensions.CustomResource
    inference_service_name: str

    def __init__(self, name: str, args: ModelRecordsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:model:ModelRecords", name, None, opts)
        config = args.config
        model = self.inference_service_name = config.model.name

        self.model_versions = {}
        for role, version in config.live_versions():
            object_name = config.version_object_name(version.version)
            self.model_versions[version.version] = k8s.apiextensions.CustomResource(
                # Named by version, not role: promotion updates the record in place.
                f"{name}-{version.version}-model-version",
                api_version=args.crd_api_version,
                kind="ModelVersion",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=object_name,
                    namespace=args.namespace,
                    labels={
                        **labels.k8s_labels("model-records", name=model, instance=object_name),
                        "app.kubernetes.io/version": version.version,
                    },
                ),
                spec=model_version_spec(config, role, version),
                opts=pulumi.ResourceOptions(parent=self),
            )

        self.inference_service = k8s.apiextensions.CustomResource(
            f"{name}-inference-service",
            api_version=args.crd_api_version,
            kind="InferenceService",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=model,
                namespace=args.namespace,
                labels=labels.k8s_labels("model-records", name=model, instance=model),
            ),
            spec=inference_service_spec(config, args.weights),
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.register_outputs(
            {
                "inferenceService": self.inference_service_name,
                "modelVersions": {v.version: config.version_object_name(v.version) for _, v in config.live_versions()},
            }
        )
