"""The platform stack's configuration: every key under `mlplatform:`.

This module is the config reference: each field's description is what the config
table of docs/configuration.md documents. Defaults are sane for `dev`; `Pulumi.prod.yaml` turns on
HA, multi-AZ and deletion protection.

`PlatformConfig` and the rules that span sections live here, with the small
sections (namespaces, CRDs, device plugin); the larger sections have a module
each beside it: `cluster_config` (cluster and node pools), `charts_config`,
`mesh_config`, `monitoring_config`, `registry_config`, `storage_config` and `ci_identity_config`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from mlplatform.config_types import DnsLabel
from mlplatform.configuration import ConfigModel, CrossFieldError
from mlplatform.images import REGISTRY_PREFIX, REGISTRY_RULE
from mlplatform.platform.charts_config import MIRROR_RULE, MIRROR_URL, ChartsConfig
from mlplatform.platform.ci_identity_config import CiConfig, check_reachable
from mlplatform.platform.cluster_config import ClusterConfig, NodePoolsConfig
from mlplatform.platform.mesh_config import MeshConfig
from mlplatform.platform.monitoring_config import MonitoringConfig
from mlplatform.platform.registry_config import MlflowConfig
from mlplatform.platform.storage_config import (
    DEFAULT_RWO_CLASS,
    DEFAULT_RWX_CLASS,
    StorageClassNames,
    StorageConfig,
)

CONFIG_NAMESPACE = "mlplatform"


# -- namespaces and CRDs ------------------------------------------------------
class TeamConfig(ConfigModel):
    name: DnsLabel = Field(description="Team namespace name.")
    gpu_requests: int = Field(8, ge=0, description="ResourceQuota requests.nvidia.com/gpu.")
    gpu_limits: int = Field(16, ge=0, description="ResourceQuota limits.nvidia.com/gpu.")

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> TeamConfig:
        if self.gpu_limits < self.gpu_requests:
            raise CrossFieldError(
                f"gpuLimits ({self.gpu_limits}) must be >= gpuRequests ({self.gpu_requests})",
                "gpuLimits",
                "gpuRequests",
            )
        return self


class NamespacesConfig(ConfigModel):
    serving: DnsLabel = Field("ml-serving", description="Meshed namespace for model servers.")
    training: DnsLabel = Field(
        "ml-training",
        description="Unmeshed namespace for training outside the teams; model stacks train in their team's "
        "namespace (`mlmodel:team`), under its GPU quota.",
    )
    mlflow: DnsLabel = Field("mlflow", description="Meshed namespace for the MLflow server.")
    monitoring: DnsLabel = Field("monitoring", description="Namespace for Prometheus.")
    teams: list[TeamConfig] = Field(default_factory=list, description="Team namespaces, each with a GPU quota.")

    @model_validator(mode="after")
    def _distinct(self) -> NamespacesConfig:
        names = [self.serving, self.training, self.mlflow, self.monitoring] + [t.name for t in self.teams]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            keys = ["serving", "training", "mlflow", "monitoring"] + [
                f"teams[{i}].name" for i in range(len(self.teams))
            ]
            raise CrossFieldError(
                f"namespace names must be distinct; repeated: {duplicates}",
                *[key for key, name in zip(keys, names, strict=True) if name in duplicates],
            )
        reserved = {"default", "kube-system", "kube-public", "kube-node-lease", "linkerd", "linkerd-viz", "linkerd-smi"}
        clash = sorted(set(names) & reserved)
        if clash:
            raise ValueError(f"namespace names {clash} are reserved")
        return self


class CrdsConfig(ConfigModel):
    group: str = Field(
        "ml.example.com",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$",
        description="API group of the ML CRDs; must contain a dot.",
    )


class DevicePluginConfig(ConfigModel):
    time_slicing_replicas: int = Field(
        1, ge=1, le=48, description="Time-slicing: pods sharing each GPU. 1 disables time-slicing."
    )


# -- the whole namespace ------------------------------------------------------
class PlatformConfig(ConfigModel):
    """Everything under `mlplatform:` in `Pulumi.<stack>.yaml`."""

    environment: Literal["dev", "staging", "prod"] = Field("dev", description="Environment name, used in tags.")
    cluster: ClusterConfig = Field(default_factory=ClusterConfig.defaults, description="Cluster target.")
    node_pools: NodePoolsConfig = Field(default_factory=NodePoolsConfig.defaults, description="Node pools (mode aws).")
    charts: ChartsConfig = Field(default_factory=ChartsConfig.defaults, description="Pinned Helm charts.")
    chart_mirror: str | None = Field(
        None,
        description="An internal Helm repository (http:// or https://) serving the upstream chart names at the "
        "pinned versions; replaces the repository of every release. Unset: the environment variable "
        "`MLPLATFORM_CHART_MIRROR`, if set, else each chart's own `repo`.",
    )
    image_registry: str | None = Field(
        None,
        description="An image registry prefix (host[:port][/path], no scheme) that every image of the platform and "
        "its model stacks is pulled through, as `<prefix>/<upstream registry>/<repository>:<tag>`: our own pods' "
        "images and each chart's. Unset: the environment variable `MLPLATFORM_IMAGE_REGISTRY`, if set, else each "
        "image's own registry. Model stacks read it from the platform's output `imageRegistry`.",
    )
    mesh: MeshConfig = Field(default_factory=MeshConfig.defaults, description="Linkerd.")
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig.defaults, description="Prometheus.")
    mlflow: MlflowConfig = Field(
        default_factory=MlflowConfig.defaults, description="MLflow tracking server and registry."
    )
    namespaces: NamespacesConfig = Field(
        default_factory=NamespacesConfig.defaults, description="Namespaces and quotas."
    )
    crds: CrdsConfig = Field(default_factory=CrdsConfig.defaults, description="The ML CRDs.")
    device_plugin: DevicePluginConfig = Field(
        default_factory=DevicePluginConfig.defaults, description="NVIDIA device plugin."
    )
    storage: StorageConfig = Field(
        default_factory=StorageConfig.defaults, description="StorageClasses and CSI drivers."
    )
    ci: CiConfig = Field(
        default_factory=CiConfig.defaults, description="GitHub Actions' OIDC roles and cluster access."
    )
    tags: dict[str, str] = Field(default_factory=dict, description="Extra AWS tags on every AWS resource.")

    @field_validator("chart_mirror")
    @classmethod
    def _mirror_url(cls, value: str | None) -> str | None:
        if value is not None and not MIRROR_URL.match(value):
            raise ValueError(MIRROR_RULE)
        return value

    @field_validator("image_registry")
    @classmethod
    def _registry_prefix(cls, value: str | None) -> str | None:
        if value is not None and not REGISTRY_PREFIX.match(value):
            raise ValueError(REGISTRY_RULE)
        return value

    def storage_class_names(self) -> StorageClassNames:
        """The classes model stacks and Prometheus use: created in mode aws, named in mode existing."""
        storage = self.storage
        if self.cluster.mode == "aws":
            return StorageClassNames(
                read_write_once=storage.read_write_once_class or DEFAULT_RWO_CLASS,
                read_write_many=(storage.read_write_many_class or DEFAULT_RWX_CLASS)
                if storage.efs is not False
                else None,
            )
        return StorageClassNames(storage.read_write_once_class, storage.read_write_many_class)

    @property
    def gpu_pool_enabled(self) -> bool:
        """Whether GPU workloads can be scheduled: the pool we create, or GPU nodes the existing cluster has."""
        if self.cluster.mode == "aws":
            return self.node_pools.gpu.enabled
        return self.cluster.gpu_nodes

    @property
    def installs_metrics_server(self) -> bool:
        """Whether the program installs the metrics-server chart: mode existing, unless the cluster serves it."""
        return self.cluster.mode == "existing" and self.cluster.metrics_api != "served"

    @property
    def helm_device_plugin(self) -> bool:
        """Whether the program installs NVIDIA's device plugin chart. Bottlerocket's NVIDIA variants run the
        device plugin as a host service of their own; a second one from Helm would advertise the same GPUs
        twice over the same kubelet socket, so the chart is skipped for them."""
        return not (self.cluster.mode == "aws" and self.node_pools.gpu.ami_type.startswith("BOTTLEROCKET"))

    @model_validator(mode="after")
    def _bottlerocket_brings_its_device_plugin(self) -> PlatformConfig:
        if not self.helm_device_plugin and self.device_plugin.time_slicing_replicas > 1:
            raise CrossFieldError(
                f"nodePools.gpu.amiType {self.node_pools.gpu.ami_type} runs Bottlerocket's own NVIDIA device "
                "plugin, so the chart that carries devicePlugin.timeSlicingReplicas is not installed; use "
                "AL2023_x86_64_NVIDIA for time-slicing, or set timeSlicingReplicas to 1 (Bottlerocket's own "
                "time-slicing settings are not managed here)",
                "nodePools.gpu.amiType",
                "devicePlugin.timeSlicingReplicas",
            )
        return self

    @model_validator(mode="after")
    def _region_matches_provider(self, info: ValidationInfo) -> PlatformConfig:
        # The EKS kubeconfig names cluster.region; the AWS provider deploys to aws:region.
        # When the stack file sets both, a mismatch is a config error, not a failed apply.
        provider_region = ((info.context or {}).get("config") or {}).get("aws:region")
        if self.cluster.mode == "aws" and provider_region and provider_region != self.cluster.region:
            raise CrossFieldError(
                f"cluster.region is {self.cluster.region!r} but aws:region is {provider_region!r}: the AWS "
                "provider would create the cluster in the other region; set both to the same region",
                "cluster.region",
                "aws:region",
            )
        return self

    @model_validator(mode="after")
    def _up_reaches_cluster(self) -> PlatformConfig:
        self.cluster.check_endpoint_reachable()
        return self

    @model_validator(mode="after")
    def _ci_reaches_cluster(self) -> PlatformConfig:
        check_reachable(self.ci, mode=self.cluster.mode, endpoint_public_access=self.cluster.endpoint_public_access)
        return self

    # The cross-section rules, one validator each. pydantic runs them in this
    # order and stops at the first that fails, as the one function they were did.
    @model_validator(mode="after")
    def _existing_cluster_has_no_aws_parts(self) -> PlatformConfig:
        if self.cluster.mode != "existing":
            return self
        if self.storage.efs is not None:
            raise CrossFieldError(
                "storage.efs only applies to cluster.mode 'aws' (it creates an EFS file system); with an "
                "existing cluster name its ReadWriteMany class in storage.readWriteManyClass",
                "storage.efs",
                "cluster.mode",
            )
        ignored = _set_keys(
            ("storage.ebsCsiAddonVersion", self.storage.ebs_csi_addon_version),
            ("storage.efsCsiAddonVersion", self.storage.efs_csi_addon_version),
        )
        if ignored:
            raise CrossFieldError(
                f"{', '.join(ignored)} only apply to cluster.mode 'aws' (EKS add-ons)", *ignored, "cluster.mode"
            )
        if self.mlflow.backend == "rds":
            raise CrossFieldError(
                "mlflow.backend 'rds' needs cluster.mode 'aws'; with an existing cluster use 'in-cluster'",
                "mlflow.backend",
                "cluster.mode",
            )
        return self

    @model_validator(mode="after")
    def _existing_cluster_names_its_bucket(self) -> PlatformConfig:
        if self.cluster.mode == "existing" and not self.mlflow.artifact_bucket:
            raise CrossFieldError(
                "mlflow.artifactBucket is required with cluster.mode 'existing' (no bucket is created there)",
                "mlflow.artifactBucket",
                "cluster.mode",
            )
        return self

    @model_validator(mode="after")
    def _aws_mode_has_no_existing_parts(self) -> PlatformConfig:
        if self.cluster.mode != "aws":
            return self
        ignored = _set_keys(
            ("mlflow.s3EndpointUrl", self.mlflow.s3_endpoint_url),
            ("mlflow.s3CredentialsSecret", self.mlflow.s3_credentials_secret),
        )
        if ignored:
            raise CrossFieldError(
                f"{', '.join(ignored)} only apply to cluster.mode 'existing'; in mode 'aws' MLflow reaches "
                "its own bucket through its IRSA role",
                *ignored,
                "cluster.mode",
            )
        if self.cluster.metrics_api is not None:
            raise CrossFieldError(
                f"cluster.metricsApi ({self.cluster.metrics_api!r}) describes an existing cluster; in mode 'aws' "
                "the EKS metrics-server add-on serves metrics.k8s.io (pin it with cluster.metricsServerAddonVersion)",
                "cluster.metricsApi",
                "cluster.mode",
            )
        if self.cluster.gpu_nodes:
            raise CrossFieldError(
                "cluster.gpuNodes describes an existing cluster; in mode 'aws' nodePools.gpu.enabled "
                "creates the GPU pool",
                "cluster.gpuNodes",
                "cluster.mode",
            )
        return self

    @model_validator(mode="after")
    def _aws_storage_classes(self) -> PlatformConfig:
        if self.cluster.mode != "aws":
            return self
        if self.storage.efs is False and self.storage.read_write_many_class:
            raise CrossFieldError(
                f"storage.readWriteManyClass is '{self.storage.read_write_many_class}' but storage.efs is "
                "false: in mode 'aws' that class is the EFS one, so turn efs on or drop the name",
                "storage.readWriteManyClass",
                "storage.efs",
            )
        names = self.storage_class_names()
        if names.read_write_once == names.read_write_many:
            raise CrossFieldError(
                f"storage.readWriteOnceClass and storage.readWriteManyClass are both '{names.read_write_once}': "
                "the program creates two classes and they need two names",
                "storage.readWriteOnceClass",
                "storage.readWriteManyClass",
            )
        if self.storage.efs is False and self.storage.efs_csi_addon_version:
            raise CrossFieldError(
                "storage.efsCsiAddonVersion is set but storage.efs is false",
                "storage.efsCsiAddonVersion",
                "storage.efs",
            )
        return self

    @model_validator(mode="after")
    def _aws_mesh_ha_fits_the_system_pool(self) -> PlatformConfig:
        if self.cluster.mode == "aws" and self.mesh.ha and self.node_pools.system.scaling.min_size < 3:
            raise CrossFieldError(
                "mesh.ha spreads the Linkerd control plane over 3 nodes with required anti-affinity: "
                f"nodePools.system.scaling.minSize must be >= 3, got {self.node_pools.system.scaling.min_size}",
                "mesh.ha",
                "nodePools.system.scaling.minSize",
            )
        return self

    @model_validator(mode="after")
    def _prod_is_highly_available(self) -> PlatformConfig:
        if self.environment != "prod":
            return self
        missing = [
            key
            for key, ok in (
                ("mesh.ha", self.mesh.ha),
                ("mlflow.deletionProtection", self.mlflow.deletion_protection),
                ("mlflow.rdsMultiAz", self.mlflow.rds_multi_az or self.mlflow.backend != "rds"),
            )
            if not ok
        ]
        if missing:
            raise CrossFieldError(
                f"environment 'prod' requires {', '.join(missing)} to be true", "environment", *missing
            )
        return self

    @model_validator(mode="after")
    def _prod_api_is_not_open_to_everyone(self) -> PlatformConfig:
        open_cidrs = self.cluster.open_to_the_internet() if self.cluster.mode == "aws" else []
        if self.environment == "prod" and open_cidrs:
            raise CrossFieldError(
                f"environment 'prod' refuses a public API endpoint open to every address "
                f"({', '.join(open_cidrs)}): name the CIDRs that need it",
                "cluster.publicAccessCidrs",
                "environment",
            )
        return self

    @model_validator(mode="after")
    def _prod_alerts_reach_someone(self) -> PlatformConfig:
        # A prod platform whose alerts go to Alertmanager's null receiver pages nobody when a
        # canary burns or a GPU pool sits idle; the opt-out must say why, in the stack file.
        alerting = self.monitoring.alerting
        if self.environment == "prod" and not alerting.receivers_configured and alerting.no_receivers_reason is None:
            raise CrossFieldError(
                "environment 'prod' sends alerts to no receiver: set monitoring.alerting.slackWebhookUrl, "
                "webhookUrl or pagerdutyRoutingKey (as Pulumi secrets), or say why not in "
                "monitoring.alerting.noReceiversReason",
                "monitoring.alerting",
                "environment",
            )
        return self


def _set_keys(*pairs: tuple[str, object]) -> list[str]:
    """The keys of `(key, value)` pairs whose value is set."""
    return [key for key, value in pairs if value]
