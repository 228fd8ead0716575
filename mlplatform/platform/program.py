"""Wires the platform components together from one validated `PlatformConfig`.

`__main__.py` calls `build_platform` after validation and exports the contract it returns;
the tests and `mlplatform render` call the same function under mocks.

The AWS components (cluster, GPU pool, storage, CI roles) are imported inside the
mode-aws branches, not at the top: the Pulumi engine wants a plugin for every
provider package the program loads, so mode existing must never import
pulumi_aws. That lets an on-prem or air-gapped user run it with the Kubernetes
plugin only (docs/platform.md, "Mode existing with the Kubernetes plugin only").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi
import pulumi_kubernetes as k8s

from mlplatform import labels
from mlplatform.platform.config import PlatformConfig
from mlplatform.platform.crds import MlCrds, MlCrdsArgs
from mlplatform.platform.device_plugin import NvidiaDevicePlugin, NvidiaDevicePluginArgs
from mlplatform.platform.mesh import LINKERD_NAMESPACE, VIZ_NAMESPACE, ServiceMesh, ServiceMeshArgs
from mlplatform.platform.metrics_api import MetricsServerArgs, metrics_server, served_metrics_api
from mlplatform.platform.monitoring import PROMETHEUS_PORT, PROMETHEUS_SERVICE, Monitoring, MonitoringArgs
from mlplatform.platform.namespaces import PlatformNamespaces, PlatformNamespacesArgs
from mlplatform.platform.network_policy import ANYWHERE, NetworkPolicies, NetworkPoliciesArgs
from mlplatform.platform.registry import AwsRegistryInfra, ModelRegistry, ModelRegistryArgs
from mlplatform.platform.registry.server import PORT as MLFLOW_PORT
from mlplatform.platform.registry.server import SERVICE_NAME as MLFLOW_SERVICE
from mlplatform.platform.sizing import platform_sizes
from mlplatform.platform_contract import CiRoles, IrsaIdentity, Namespaces, NoIdentity, PlatformContract, StorageClasses

if TYPE_CHECKING:
    from mlplatform.platform.ci_identity import CiIdentity
    from mlplatform.platform.cluster import Cluster
    from mlplatform.platform.gpu import GpuNodePool


def build_platform(config: PlatformConfig) -> PlatformContract:
    """Declare the whole platform and return its outputs, the contract its consumers read."""
    tags = labels.aws_tags(config.environment, config.tags)
    sizes = platform_sizes(config.environment)
    cluster: Cluster | None = None
    gpu_pool: GpuNodePool | None = None

    if config.cluster.mode == "aws":
        from mlplatform.platform.cluster import Cluster, ClusterArgs  # mode aws only: see the module docstring

        cluster = Cluster(
            "cluster",
            ClusterArgs(config=config.cluster, system_pool=config.node_pools.system, tags=tags),
        )
        provider = cluster.provider
        kubeconfig: pulumi.Input[str] | None = cluster.kubeconfig
    else:
        # Nothing here can see the cluster's CNI at preview; say it where every `up` shows it.
        pulumi.log.warn(
            "cluster.mode 'existing': the platform's NetworkPolicies isolate its namespaces only if the cluster's "
            "CNI enforces them (Calico, Cilium, or the VPC CNI with enableNetworkPolicy); see the docs, "
            "'Check that NetworkPolicies are enforced'"
        )
        # Contents may hold a token (configuration requires them to be a Pulumi secret);
        # keep them secret in the provider's inputs and state too.
        kubeconfig = pulumi.Output.secret(config.cluster.kubeconfig) if config.cluster.kubeconfig else None
        provider = k8s.Provider("cluster", kubeconfig=kubeconfig, context=config.cluster.context)

    k8s_opts = pulumi.ResourceOptions(providers=[provider])

    if cluster is not None and config.node_pools.gpu.enabled:
        from mlplatform.platform.gpu import (  # mode aws only: see the module docstring
            ClusterAutoscaler,
            ClusterAutoscalerArgs,
            GpuNodePool,
            GpuNodePoolArgs,
        )

        gpu_pool = GpuNodePool(
            "gpu",
            GpuNodePoolArgs(
                cluster_name=cluster.cluster_name,
                node_role_arn=cluster.node_role_arn,
                subnet_ids=cluster.private_subnet_ids,
                config=config.node_pools.gpu,
                kubernetes_version=config.cluster.kubernetes_version,
                tags=tags,
                # With time-slicing the device plugin advertises replicas x GPUs per node; the
                # autoscaler's scale-from-zero template must promise the same number.
                advertised_gpus_per_node=config.node_pools.gpu.gpus_per_node
                * config.device_plugin.time_slicing_replicas,
            ),
        )
        ClusterAutoscaler(
            "autoscaler",
            ClusterAutoscalerArgs(
                chart=config.charts.cluster_autoscaler,
                cluster_name=cluster.cluster_name,
                region=config.cluster.region,
                oidc_provider_arn=cluster.oidc_provider_arn,
                oidc_provider_url=cluster.oidc_provider_url,
                tags=tags,
                size=sizes.cluster_autoscaler,
                image_registry=config.image_registry,
            ),
            opts=pulumi.ResourceOptions(providers=[provider], depends_on=[gpu_pool]),
        )

    storage_classes = config.storage_class_names()
    # The classes Prometheus and the model stacks use: in mode aws those the
    # Storage component creates (as Outputs, so consumers wait for them), in
    # mode existing the configured names (None: the cluster's default class).
    read_write_once: pulumi.Input[str] | None = storage_classes.read_write_once
    read_write_many: pulumi.Input[str] | None = storage_classes.read_write_many
    if cluster is not None:
        from mlplatform.platform.storage import Storage, StorageArgs  # mode aws only: see the module docstring

        storage = Storage(
            "storage",
            StorageArgs(
                config=config.storage,
                class_names=storage_classes,
                cluster_name=cluster.cluster_name,
                kms_key_arn=cluster.kms_key_arn,
                oidc_provider_arn=cluster.oidc_provider_arn,
                oidc_provider_url=cluster.oidc_provider_url,
                vpc_id=cluster.vpc_id,
                node_security_group_id=cluster.cluster_security_group_id,
                private_subnet_ids=cluster.private_subnet_ids,
                subnet_count=config.cluster.availability_zones,
                # The provider waits for the system node group, where the controllers run.
                nodes_ready=[cluster.provider],
                tags=tags,
            ),
            opts=k8s_opts,
        )
        read_write_once = storage.read_write_once_class
        read_write_many = storage.read_write_many_class

    namespaces = PlatformNamespaces("namespaces", PlatformNamespacesArgs(config=config.namespaces), opts=k8s_opts)

    owns_namespaces: list[pulumi.Resource] = [namespaces]
    if config.helm_device_plugin:
        device_plugin = NvidiaDevicePlugin(
            "nvidia-device-plugin",
            NvidiaDevicePluginArgs(
                chart=config.charts.nvidia_device_plugin,
                time_slicing_replicas=config.device_plugin.time_slicing_replicas,
                size=sizes.device_plugin,
                image_registry=config.image_registry,
            ),
            opts=k8s_opts,
        )
        owns_namespaces.append(device_plugin)

    crds = MlCrds("ml-crds", MlCrdsArgs(group=config.crds.group), opts=k8s_opts)

    monitoring = Monitoring(
        "monitoring",
        MonitoringArgs(
            chart=config.charts.kube_prometheus_stack,
            config=config.monitoring,
            namespace=namespaces.monitoring,
            sizes=sizes,
            storage_class=read_write_once,
            time_slicing_replicas=config.device_plugin.time_slicing_replicas,
            image_registry=config.image_registry,
        ),
        opts=k8s_opts,
    )

    mesh = ServiceMesh(
        "mesh",
        ServiceMeshArgs(
            config=config.mesh,
            crds_chart=config.charts.linkerd_crds,
            control_plane_chart=config.charts.linkerd_control_plane,
            viz_chart=config.charts.linkerd_viz,
            smi_chart=config.charts.linkerd_smi,
            prometheus_url=monitoring.prometheus_url,
            sizes=sizes,
            image_registry=config.image_registry,
        ),
        opts=k8s_opts,
    )

    aws_infra = None
    if cluster is not None:
        aws_infra = AwsRegistryInfra(
            vpc_id=cluster.vpc_id,
            vpc_cidr=config.cluster.vpc_cidr,
            private_subnet_ids=cluster.private_subnet_ids,
            oidc_provider_arn=cluster.oidc_provider_arn,
            oidc_provider_url=cluster.oidc_provider_url,
        )
    registry = ModelRegistry(
        "mlflow",
        ModelRegistryArgs(
            config=config.mlflow,
            namespace=namespaces.mlflow,
            aws=aws_infra,
            tags=tags,
            storage_class=read_write_once,
            wait_for=[mesh],
            image_registry=config.image_registry,
        ),
        opts=k8s_opts,
    )

    NetworkPolicies(
        "network-policies",
        NetworkPoliciesArgs(
            namespaces=namespaces.owned,
            linkerd_namespace=LINKERD_NAMESPACE,
            viz_namespace=VIZ_NAMESPACE,
            mlflow_pods=registry.pod_selector,
            mlflow_port=registry.port,
            database=registry.database_route,
            object_store_port=registry.object_store_port,
            # In mode existing the platform does not know where nodes and the API server are.
            infrastructure_cidrs=[config.cluster.vpc_cidr] if cluster is not None else [ANYWHERE],
        ),
        opts=k8s_opts,
    )

    if config.installs_metrics_server:
        # Declared after, and depending on, everything that owns a namespace: `destroy` then
        # removes it first. While its APIService is registered but unserved, the namespace
        # controller's discovery fails and every namespace deletion hangs in Terminating
        # ("NamespaceDeletionDiscoveryFailure"), so metrics-server must not outlive them.
        metrics_server(
            "metrics-server",
            MetricsServerArgs(
                chart=config.charts.metrics_server, size=sizes.metrics_server, image_registry=config.image_registry
            ),
            opts=pulumi.ResourceOptions(provider=provider, depends_on=[*owns_namespaces, monitoring, mesh, registry]),
        )
    elif config.cluster.mode == "existing":
        served_metrics_api("metrics-api", opts=pulumi.ResourceOptions(provider=provider))

    ci: CiIdentity | None = None
    if cluster is not None and config.ci.enabled:
        # Mode aws only: see the module docstring.
        from mlplatform.platform.ci_identity import CiIdentity, CiIdentityArgs

        ci = CiIdentity(
            "ci",
            CiIdentityArgs(
                config=config.ci,
                cluster_name=cluster.cluster_name,
                model_namespaces=[config.namespaces.serving, *(team.name for team in config.namespaces.teams)],
                crd_group=config.crds.group,
                service_proxies=[
                    (config.namespaces.monitoring, PROMETHEUS_SERVICE, PROMETHEUS_PORT),
                    (config.namespaces.mlflow, MLFLOW_SERVICE, MLFLOW_PORT),
                ],
                namespaces_ready=[namespaces],
                tags=tags,
            ),
            opts=k8s_opts,
        )

    return PlatformContract.declared(
        kubeconfig=kubeconfig,
        cluster_name=cluster.cluster_name if cluster is not None else None,
        namespaces=Namespaces.declared(
            serving=namespaces.serving,
            training=namespaces.training,
            mlflow=namespaces.mlflow,
            monitoring=namespaces.monitoring,
            teams=namespaces.teams,
        ),
        gpu_node_selector=dict(labels.GPU_NODE_SELECTOR),
        gpu_taint=dict(labels.GPU_TAINT),
        gpu_pool_enabled=config.gpu_pool_enabled,
        storage_classes=StorageClasses.declared(read_write_once=read_write_once, read_write_many=read_write_many),
        # What a model stack needs to give its training run an IRSA role; mode
        # existing has no OIDC provider of ours, so no AWS identity is offered.
        workload_identity=(
            IrsaIdentity.declared(
                kind="irsa",
                oidc_provider_arn=cluster.oidc_provider_arn,
                oidc_provider_url=cluster.oidc_provider_url,
                region=config.cluster.region,
            )
            if cluster is not None
            else NoIdentity.declared(kind="none")
        ),
        mlflow_tracking_uri=registry.tracking_uri,
        prometheus_url=monitoring.prometheus_url,
        traffic_split_apis=mesh.traffic_split_apis,
        crd_group=crds.group,
        # For people, not model stacks: the ARNs to set as the repository variables
        # the workflows read (docs/ci-cd.md). None when CI is off.
        ci_roles=(
            CiRoles.declared(
                preview=ci.preview_role_arn,
                deploy=ci.deploy_role_arn,
                deploy_models=ci.deploy_models_role_arn,
                runner_label=config.ci.runner_label,
            )
            if ci is not None
            else None
        ),
        image_registry=config.image_registry,
    )
