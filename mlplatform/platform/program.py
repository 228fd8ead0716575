"""Wires the platform components together from one validated `PlatformConfig`.

`__main__.py` calls `build_platform` after validation and exports what it returns;
the tests and `mlplatform render` call the same function under mocks.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlplatform import labels
from mlplatform.platform.cluster import Cluster, ClusterArgs
from mlplatform.platform.config import PlatformConfig
from mlplatform.platform.crds import MlCrds, MlCrdsArgs
from mlplatform.platform.device_plugin import NvidiaDevicePlugin, NvidiaDevicePluginArgs
from mlplatform.platform.gpu import ClusterAutoscaler, ClusterAutoscalerArgs, GpuNodePool, GpuNodePoolArgs
from mlplatform.platform.mesh import LINKERD_NAMESPACE, VIZ_NAMESPACE, ServiceMesh, ServiceMeshArgs
from mlplatform.platform.monitoring import Monitoring, MonitoringArgs
from mlplatform.platform.namespaces import PlatformNamespaces, PlatformNamespacesArgs
from mlplatform.platform.network_policy import ANYWHERE, NetworkPolicies, NetworkPoliciesArgs
from mlplatform.platform.registry import AwsRegistryInfra, ModelRegistry, ModelRegistryArgs
from mlplatform.platform.sizing import platform_sizes


def build_platform(config: PlatformConfig) -> dict[str, Any]:
    """Declare the whole platform and return the stack outputs the model stacks consume."""
    tags = labels.aws_tags(config.environment, config.tags)
    sizes = platform_sizes(config.environment)
    cluster: Cluster | None = None
    gpu_pool: GpuNodePool | None = None

    if config.cluster.mode == "aws":
        cluster = Cluster(
            "cluster",
            ClusterArgs(config=config.cluster, system_pool=config.node_pools.system, tags=tags),
        )
        provider = cluster.provider
        kubeconfig: pulumi.Input[str] | None = cluster.kubeconfig
    else:
        provider = k8s.Provider(
            "cluster",
            kubeconfig=config.cluster.kubeconfig,
            context=config.cluster.context,
        )
        kubeconfig = pulumi.Output.secret(config.cluster.kubeconfig) if config.cluster.kubeconfig else None

    k8s_opts = pulumi.ResourceOptions(providers=[provider])

    if cluster is not None and config.node_pools.gpu.enabled:
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
            ),
            opts=pulumi.ResourceOptions(providers=[provider], depends_on=[gpu_pool]),
        )

    namespaces = PlatformNamespaces("namespaces", PlatformNamespacesArgs(config=config.namespaces), opts=k8s_opts)

    NvidiaDevicePlugin(
        "nvidia-device-plugin",
        NvidiaDevicePluginArgs(
            chart=config.charts.nvidia_device_plugin,
            time_slicing_replicas=config.device_plugin.time_slicing_replicas,
            size=sizes.device_plugin,
        ),
        opts=k8s_opts,
    )

    crds = MlCrds("ml-crds", MlCrdsArgs(group=config.crds.group), opts=k8s_opts)

    monitoring = Monitoring(
        "monitoring",
        MonitoringArgs(
            chart=config.charts.kube_prometheus_stack,
            config=config.monitoring,
            namespace=namespaces.monitoring,
            training_namespace=namespaces.training,
            sizes=sizes,
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
            wait_for=[mesh],
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

    return {
        "kubeconfig": kubeconfig,
        "clusterName": cluster.cluster_name if cluster is not None else None,
        "namespaces": {
            "serving": namespaces.serving,
            "training": namespaces.training,
            "mlflow": namespaces.mlflow,
            "monitoring": namespaces.monitoring,
            "teams": namespaces.teams,
        },
        "gpuNodeSelector": dict(labels.GPU_NODE_SELECTOR),
        "gpuTaint": dict(labels.GPU_TAINT),
        "gpuPoolEnabled": gpu_pool is not None,
        "mlflowTrackingUri": registry.tracking_uri,
        "prometheusUrl": monitoring.prometheus_url,
        "trafficSplitApis": mesh.traffic_split_apis,
        "crdGroup": crds.group,
    }
