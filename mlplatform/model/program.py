"""Wires one model's stack from a validated `ModelStackConfig` and the platform's outputs.

`stacks/model/__main__.py` calls `build_model_stack` and exports what it
returns; the tests call the same entry point under mocks.

What a rollout step touches: a weight change alters only the split (TrafficSplit
or HTTPRoute) and the InferenceService record. Promotion also updates the
ModelVersion records and the alert rule, and removes the old stable's objects;
the former canary's Deployment, Service, HPA and PDB keep their names and
inputs, so its pods keep running.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlplatform.model.alerts import ModelAlerts, ModelAlertsArgs
from mlplatform.model.config import ModelStackConfig
from mlplatform.model.platform_outputs import PlatformOutputs
from mlplatform.model.policy import ModelMeshPolicy, ModelMeshPolicyArgs
from mlplatform.model.records import ModelRecords, ModelRecordsArgs
from mlplatform.model.serving import ModelServing, ModelServingArgs
from mlplatform.model.traffic import ModelTraffic, ModelTrafficArgs, TrafficBackend
from mlplatform.model.training import TrainingRun, TrainingRunArgs


def build_model_stack(config: ModelStackConfig, platform: PlatformOutputs) -> dict[str, Any]:
    """Declare the model's serving, traffic split, mesh policy, records, alerts and
    training run, and return the stack outputs."""
    model = config.model.name
    if config.traffic_api not in platform.traffic_split_apis:
        raise ValueError(
            f"mlmodel:trafficApi is '{config.traffic_api}' but the platform stack offers only "
            f"{list(platform.traffic_split_apis)} (its mlplatform:mesh.smi setting installs the SMI extension)"
        )
    # The platform's kubeconfig when it created the cluster; otherwise (None) the
    # ambient kubeconfig, as for the platform's own provider.
    provider = k8s.Provider("kubernetes", kubeconfig=platform.kubeconfig)
    k8s_opts = pulumi.ResourceOptions(providers=[provider])
    namespace: pulumi.Input[str] = config.model.namespace or platform.serving_namespace

    serving = ModelServing(
        model,
        ModelServingArgs(
            model_name=model,
            serving=config.serving,
            versions={config.version_object_name(v.version): v for _, v in config.live_versions()},
            namespace=namespace,
            tracking_uri=platform.mlflow_tracking_uri,
            gpu_node_selector=platform.gpu_node_selector,
            gpu_taint=platform.gpu_taint,
        ),
        opts=k8s_opts,
    )

    weights = config.split_weights()
    traffic = ModelTraffic(
        model,
        ModelTrafficArgs(
            model_name=model,
            api=config.traffic_api,
            namespace=namespace,
            apex_service=serving.apex_service.metadata.name,
            port=config.serving.port,
            backends=[
                TrafficBackend(service=serving.versions[object_name].service.metadata.name, weight=weight)
                for object_name, weight in weights.items()
            ],
            routes=config.serving.effective_routes if config.traffic_api == "gateway" else (),
            ready=[v.deployment for v in serving.versions.values()],
        ),
        opts=k8s_opts,
    )

    policy = ModelMeshPolicy(
        model,
        ModelMeshPolicyArgs(
            model_name=model,
            namespace=namespace,
            identities=[client.identity(config.trust_domain) for client in config.allowed_clients],
            client_namespaces=sorted({client.namespace for client in config.allowed_clients}),
            routes=config.serving.effective_routes,
            retry_budget=config.serving.retry_budget,
            service_profile=config.traffic_api == "smi",
        ),
        opts=k8s_opts,
    )

    records = ModelRecords(
        model,
        ModelRecordsArgs(config=config, namespace=namespace, crd_api_version=platform.crd_api_version),
        opts=k8s_opts,
    )

    alerts = ModelAlerts(model, ModelAlertsArgs(config=config, namespace=namespace), opts=k8s_opts)

    training: TrainingRun | None = None
    if config.training is not None:
        training = TrainingRun(
            model,
            TrainingRunArgs(
                model_name=model,
                namespace=platform.training_namespace,
                config=config.training,
                gpu_node_selector=platform.gpu_node_selector,
                gpu_taint=platform.gpu_taint,
                tracking_uri=platform.mlflow_tracking_uri,
                crd_api_version=platform.crd_api_version,
            ),
            opts=k8s_opts,
        )

    return {
        "namespace": namespace,
        "apexService": serving.apex_service.metadata.name,
        "versions": {config.version_object_name(v.version): role for role, v in config.live_versions()},
        "weights": weights,
        "trafficApi": config.traffic_api,
        "split": {"kind": traffic.kind, "name": traffic.object_name},
        "serviceProfile": policy.service_profile_name,
        "allowedIdentities": [client.identity(config.trust_domain) for client in config.allowed_clients],
        "inferenceService": records.inference_service_name,
        "alertRule": alerts.rule_name,
        "trainingJob": training.job_name if training is not None else None,
    }
