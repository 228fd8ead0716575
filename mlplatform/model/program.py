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

from mlplatform import labels
from mlplatform.configuration import ConfigError
from mlplatform.images import mirrored
from mlplatform.model.alerts import ModelAlerts, ModelAlertsArgs
from mlplatform.model.config import CONFIG_NAMESPACE, ModelStackConfig
from mlplatform.model.engine_adapter import send_registrations
from mlplatform.model.identity import TrainingIdentity, TrainingIdentityArgs
from mlplatform.model.live_abort import RecordLocation, guard, guarded
from mlplatform.model.metrics import ModelMetrics, ModelMetricsArgs
from mlplatform.model.platform_outputs import PLATFORM_STACK_KEY, PlatformOutputs
from mlplatform.model.policy import ModelMeshPolicy, ModelMeshPolicyArgs
from mlplatform.model.records import ModelRecords, ModelRecordsArgs
from mlplatform.model.serving import ModelServing, ModelServingArgs
from mlplatform.model.traffic import ModelTraffic, ModelTrafficArgs
from mlplatform.model.training import TrainingRun, TrainingRunArgs


def build_model_stack(
    config: ModelStackConfig, platform: PlatformOutputs, previous: RecordLocation | None = None
) -> dict[str, Any]:
    """Declare the model's serving, traffic split, mesh policy, records, alerts and
    training run, and return the stack outputs.

    `previous`: where this stack's last `up` put its InferenceService record (None on a first
    deploy). When the stack file gives a canary traffic, that record's live status is read and an
    aborted canary refused (live_abort.py) before anything in the serving namespace is declared."""
    model = config.model.name
    problems = platform_problems(config, platform)
    if problems:
        raise ConfigError(pulumi.get_stack(), problems)
    config = through_image_registry(config, platform.image_registry)
    # The platform's kubeconfig when it created the cluster; otherwise (None) the
    # ambient kubeconfig, as for the platform's own provider.
    provider = k8s.Provider("kubernetes", kubeconfig=platform.kubeconfig)
    send_registrations()  # the engine starts and configures the provider while the rest is declared
    k8s_opts = pulumi.ResourceOptions(providers=[provider])
    weights = config.traffic_weights()
    allowed = guard(
        model,
        record=previous,
        version=config.canary.version if config.canary is not None else None,
        weight=weights.canary.weight if weights.canary is not None else 0,
        api_version=platform.crd_api_version,
        provider=provider,
    )
    # Everything in the serving namespace waits for the check, so a refusal leaves the split, the
    # canary's Deployment and the records as they are on the cluster.
    namespace = guarded(config.serving_namespace(lambda: platform.serving_namespace), allowed)

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

    traffic = ModelTraffic(
        model,
        ModelTrafficArgs(
            model_name=model,
            api=config.traffic_api,
            namespace=namespace,
            apex_service=serving.apex_service.metadata.name,
            port=config.serving.port,
            weights=weights,
            services={object_name: v.service.metadata.name for object_name, v in serving.versions.items()},
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
        ModelRecordsArgs(config=config, weights=weights, namespace=namespace, crd_api_version=platform.crd_api_version),
        opts=k8s_opts,
    )

    alerts = ModelAlerts(model, ModelAlertsArgs(config=config, namespace=namespace), opts=k8s_opts)

    metrics: ModelMetrics | None = None
    if config.serving.metrics is not None:
        metrics = ModelMetrics(
            model,
            ModelMetricsArgs(model_name=model, endpoint=config.serving.metrics, namespace=namespace),
            opts=k8s_opts,
        )

    training: TrainingRun | None = None
    if config.training is not None and config.team is not None:
        # The team's namespace, so its GPU quota applies to the run.
        team_namespace = config.team
        identity_opts = k8s_opts
        dataset = config.training.data_source.s3_location()
        if platform.irsa is not None and dataset is not None:
            # Imported only here, as in identity.py: without IRSA no AWS provider is loaded.
            import pulumi_aws as aws

            # IAM is global, but the provider wants a region: the platform's.
            aws_provider = aws.Provider("aws", region=platform.irsa.region)
            identity_opts = pulumi.ResourceOptions(providers=[provider, aws_provider])
        identity = TrainingIdentity(
            model,
            TrainingIdentityArgs(
                model_name=model,
                namespace=team_namespace,
                irsa=platform.irsa,
                dataset=dataset,
                tags=labels.aws_tags(config.environment, {"Model": model, "Team": config.team}),
            ),
            opts=identity_opts,
        )
        storage_classes = platform.storage_classes
        training = TrainingRun(
            model,
            TrainingRunArgs(
                model_name=model,
                namespace=identity.service_account.metadata.namespace,
                service_account_name=identity.service_account.metadata.name,
                checkpoint_storage_class=(
                    storage_classes.read_write_many
                    if config.training.checkpoint_access_mode == "ReadWriteMany"
                    else storage_classes.read_write_once
                ),
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
        "weights": weights.by_object_name(),
        "trafficApi": config.traffic_api,
        "split": {"kind": traffic.kind, "name": traffic.object_name},
        "serviceProfile": policy.service_profile_name,
        "allowedIdentities": [client.identity(config.trust_domain) for client in config.allowed_clients],
        "inferenceService": records.inference_service_name,
        "alertRule": alerts.rule_name,
        "podMonitor": metrics.pod_monitor_name if metrics is not None else None,
        "trainingJob": training.job_name if training is not None else None,
        "trainingNamespace": config.team if training is not None else None,
    }


def through_image_registry(config: ModelStackConfig, registry: str | None) -> ModelStackConfig:
    """`config` with its serving and training images pulled through the platform's image registry.

    The stack file keeps the upstream names people release under; the mirror is a
    property of the platform the stack runs on, so it is applied here, once."""
    if registry is None:
        return config
    update: dict[str, Any] = {
        "stable": config.stable.model_copy(update={"image": mirrored(config.stable.image, registry)})
    }
    if config.canary is not None:
        update["canary"] = config.canary.model_copy(update={"image": mirrored(config.canary.image, registry)})
    if config.training is not None:
        update["training"] = config.training.model_copy(update={"image": mirrored(config.training.image, registry)})
    return config.model_copy(update=update)


def platform_problems(config: ModelStackConfig, platform: PlatformOutputs) -> list[str]:
    """What this stack asks of the platform that the platform stack does not offer.

    Checked before anything is declared: a GPU run against a platform without GPU
    nodes, or a ReadWriteMany claim without a class to bind it, would otherwise
    be accepted and then sit Pending forever.
    """
    where = f"the platform stack ({PLATFORM_STACK_KEY} = '{platform.platform_stack}')"
    problems: list[str] = []
    if config.traffic_api not in platform.traffic_split_apis:
        problems.append(
            f"{CONFIG_NAMESPACE}:trafficApi = '{config.traffic_api}': {where} offers only "
            f"{list(platform.traffic_split_apis)} (output trafficSplitApis; its mlplatform:mesh.smi setting "
            "installs the SMI extension)"
        )
    if not platform.gpu_pool_enabled and config.serving.gpus > 0:
        problems.append(
            f"{CONFIG_NAMESPACE}:serving.gpus = {config.serving.gpus}: {where} has no GPU nodes (output gpuPoolEnabled "
            "is false); set serving.gpus to 0 or give the platform GPU nodes"
        )
    training = config.training
    if training is None:
        return problems
    if config.team is not None and config.team not in platform.team_namespaces:
        problems.append(
            f"{CONFIG_NAMESPACE}:team = '{config.team}': {where} has no such team (output namespaces.teams: "
            f"{list(platform.team_namespaces)}); add it to the platform's mlplatform:namespaces.teams or "
            "pick one of these"
        )
    if not platform.gpu_pool_enabled and training.gpus > 0:
        problems.append(
            f"{CONFIG_NAMESPACE}:training.gpus = {training.gpus}: {where} has no GPU nodes (output gpuPoolEnabled is "
            "false); set training.gpus to 0 (CPU training) or give the platform GPU nodes "
            "(mlplatform:nodePools.gpu.enabled, or cluster.gpuNodes on an existing cluster)"
        )
    if training.checkpoint_access_mode == "ReadWriteMany" and platform.storage_classes.read_write_many is None:
        problems.append(
            f"{CONFIG_NAMESPACE}:training.checkpointAccessMode = 'ReadWriteMany': {where} offers no ReadWriteMany "
            "StorageClass (output storageClasses.readWriteMany is null); turn on mlplatform:storage.efs "
            "(mode aws), name one in mlplatform:storage.readWriteManyClass (mode existing), or use "
            "checkpointAccessMode 'ReadWriteOnce' with workers: 1"
        )
    return problems
