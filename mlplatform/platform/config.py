"""The platform stack's configuration: every key under `mlplatform:`.

This module is the config reference: each field's description is what README's
config table documents. Defaults are sane for `dev`; `Pulumi.prod.yaml` turns on
HA, multi-AZ and deletion protection.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from mlplatform.config_types import ChartVersion, PinnedImage
from mlplatform.configuration import SECRET_UNLESS_PATH, ConfigModel, CrossFieldError
from mlplatform.platform.ci_config import CiConfig, check_reachable
from mlplatform.platform.storage_config import (
    DEFAULT_RWO_CLASS,
    DEFAULT_RWX_CLASS,
    StorageClassNames,
    StorageConfig,
)

NAMESPACE = "mlplatform"

DnsLabel = Annotated[
    str,
    Field(pattern=r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", description="A DNS-1035 label."),
]
PositiveInt = Annotated[int, Field(ge=1)]


# -- cluster ------------------------------------------------------------------
class ClusterConfig(ConfigModel):
    mode: Literal["aws", "existing"] = Field(
        "aws",
        description="`aws` creates the VPC and the EKS cluster; `existing` targets a cluster "
        "from a kubeconfig or context and creates no AWS resources.",
    )
    name: DnsLabel = Field("mlplatform", description="Cluster name (mode aws); also a prefix for AWS names.")
    region: str = Field("us-west-2", pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$", description="AWS region (mode aws).")
    kubernetes_version: str = Field(
        "1.33", pattern=r"^1\.\d{2}$", description="EKS Kubernetes minor version, e.g. `1.33`."
    )
    vpc_cidr: str = Field("10.0.0.0/16", description="VPC CIDR block (mode aws).")
    availability_zones: int = Field(
        2, ge=2, le=4, description="How many AZs to spread subnets over; AZ names come from the provider."
    )
    single_nat_gateway: bool = Field(
        True, description="One NAT gateway for all AZs (cheap, dev) instead of one per AZ (prod)."
    )
    endpoint_public_access: bool = Field(
        False, description="Expose the EKS API endpoint publicly. Off by default: private endpoint only."
    )
    public_access_cidrs: list[str] = Field(
        default_factory=list,
        description="CIDRs allowed to reach a public endpoint; required when endpointPublicAccess is true.",
    )
    control_plane_log_types: list[Literal["api", "audit", "authenticator", "controllerManager", "scheduler"]] = Field(
        default_factory=lambda: ["api", "audit", "authenticator"],
        description="EKS control-plane log types sent to CloudWatch.",
    )
    kubeconfig: str | None = Field(
        None,
        description="Mode existing: path to a kubeconfig file, or its contents. Default: the ambient kubeconfig. "
        "Contents must be set as a Pulumi secret (`pulumi config set --secret --path cluster.kubeconfig`).",
        json_schema_extra=SECRET_UNLESS_PATH,
    )
    context: str | None = Field(None, description="Mode existing: kubeconfig context to use.")
    gpu_nodes: bool = Field(
        False,
        description="Mode existing: the cluster has NVIDIA GPU nodes labelled `mlplatform.io/node-pool=gpu` and "
        "tainted `nvidia.com/gpu=true:NoSchedule`, so model stacks may ask for GPUs (output `gpuPoolEnabled`). "
        "Mode aws: not used, `nodePools.gpu.enabled` decides.",
    )

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        network = ipaddress.ip_network(value, strict=True)
        if network.prefixlen > 20:
            raise ValueError("the VPC needs at least a /20 to hold public and private subnets in every AZ")
        return value

    @field_validator("public_access_cidrs")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        for value in values:
            ipaddress.ip_network(value, strict=True)
        return values

    @model_validator(mode="after")
    def _public_endpoint_needs_cidrs(self) -> ClusterConfig:
        if self.endpoint_public_access and not self.public_access_cidrs:
            raise CrossFieldError(
                "endpointPublicAccess is true but publicAccessCidrs is empty: name the CIDRs that may "
                "reach the API (0.0.0.0/0 must be written out, never implied)",
                "endpointPublicAccess",
                "publicAccessCidrs",
            )
        if not self.endpoint_public_access and self.public_access_cidrs:
            raise CrossFieldError(
                "publicAccessCidrs is set but endpointPublicAccess is false",
                "publicAccessCidrs",
                "endpointPublicAccess",
            )
        return self


# -- node pools ---------------------------------------------------------------
class ScalingConfig(ConfigModel):
    min_size: int = Field(1, ge=0, description="Minimum nodes.")
    desired_size: int = Field(1, ge=0, description="Desired nodes at creation (later owned by the autoscaler).")
    max_size: PositiveInt = Field(3, description="Maximum nodes.")

    @model_validator(mode="after")
    def _ordered(self) -> ScalingConfig:
        if not self.min_size <= self.desired_size <= self.max_size:
            raise CrossFieldError(
                f"need minSize <= desiredSize <= maxSize, got {self.min_size} <= {self.desired_size} <= {self.max_size}",
                "minSize",
                "desiredSize",
                "maxSize",
            )
        return self


class SystemPoolConfig(ConfigModel):
    instance_types: list[str] = Field(
        default_factory=lambda: ["m6i.large"], min_length=1, description="EC2 instance types for system nodes."
    )
    scaling: ScalingConfig = Field(
        default_factory=lambda: ScalingConfig(min_size=2, desired_size=2, max_size=4),
        description="minSize/desiredSize/maxSize of the system pool.",
    )
    disk_size_gib: int = Field(50, ge=20, le=16384, description="Root volume size in GiB.")
    ami_type: Literal["AL2023_x86_64_STANDARD", "AL2023_ARM_64_STANDARD", "BOTTLEROCKET_x86_64"] = Field(
        "AL2023_x86_64_STANDARD", description="EKS AMI type for system nodes."
    )


GPU_INSTANCE_PATTERN = re.compile(r"^(p[2-6][a-z0-9-]*|g[4-6][a-z0-9-]*|gr6[a-z]*)\.[0-9a-z]+$")


class GpuPoolConfig(ConfigModel):
    enabled: bool = Field(True, description="Create the GPU node pool.")
    instance_types: list[str] = Field(
        default_factory=lambda: ["g5.xlarge", "g5.2xlarge"],
        min_length=1,
        description="NVIDIA GPU instance types (g4dn, g5, g6, p3, p4d, p5 families...).",
    )
    capacity_type: Literal["ON_DEMAND", "SPOT"] = Field("ON_DEMAND", description="On-demand or spot capacity.")
    scaling: ScalingConfig = Field(
        default_factory=lambda: ScalingConfig(min_size=0, desired_size=0, max_size=4),
        description="minSize/desiredSize/maxSize; minSize 0 lets the pool scale to zero.",
    )
    disk_size_gib: int = Field(200, ge=50, le=16384, description="Root volume in GiB; CUDA images are large.")
    ami_type: Literal["AL2023_x86_64_NVIDIA", "BOTTLEROCKET_x86_64_NVIDIA"] = Field(
        "AL2023_x86_64_NVIDIA", description="EKS AMI type with the NVIDIA driver preinstalled."
    )
    gpus_per_node: PositiveInt = Field(
        1,
        description="GPUs on each node of the pool, advertised to the cluster-autoscaler for scale-from-zero.",
    )

    @field_validator("instance_types")
    @classmethod
    def _gpu_instances(cls, values: list[str]) -> list[str]:
        bad = [v for v in values if not GPU_INSTANCE_PATTERN.match(v)]
        if bad:
            raise ValueError(f"not NVIDIA GPU instance types: {bad}; use e.g. g5.xlarge, g6.2xlarge, p4d.24xlarge")
        return values


class NodePoolsConfig(ConfigModel):
    system: SystemPoolConfig = Field(default_factory=SystemPoolConfig, description="The system CPU pool.")
    gpu: GpuPoolConfig = Field(default_factory=GpuPoolConfig, description="The GPU pool.")


# -- charts -------------------------------------------------------------------
# A chart mirror (`chartMirror`, or MLPLATFORM_CHART_MIRROR: mlplatform/platform/chart_mirror.py).
# A Helm repository's index is fetched over HTTP(S); plain http is allowed for
# internal repositories that terminate TLS elsewhere or listen on loopback.
MIRROR_URL = re.compile(r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
MIRROR_RULE = "must be an http:// or https:// URL of a Helm repository (no query or fragment)"

class ChartConfig(ConfigModel):
    repo: str = Field(pattern=r"^(https|oci)://", description="Chart repository URL.")
    version: ChartVersion = Field(description="Pinned chart version: one exact semantic version, never a range.")


def _chart(repo: str, version: str):
    return Field(
        default_factory=lambda: ChartConfig(repo=repo, version=version),
        description="Chart repository and pinned version.",
    )


class ChartsConfig(ConfigModel):
    """Pinned chart versions. Upgrading is a reviewed edit of these, never a floating tag."""

    linkerd_crds: ChartConfig = _chart("https://helm.linkerd.io/edge", "2025.8.5")
    linkerd_control_plane: ChartConfig = _chart("https://helm.linkerd.io/edge", "2025.8.5")
    linkerd_viz: ChartConfig = _chart("https://helm.linkerd.io/edge", "2025.8.5")
    linkerd_smi: ChartConfig = _chart("https://linkerd.github.io/linkerd-smi", "1.0.4")
    kube_prometheus_stack: ChartConfig = _chart("https://prometheus-community.github.io/helm-charts", "88.5.3")
    nvidia_device_plugin: ChartConfig = _chart("https://nvidia.github.io/k8s-device-plugin", "0.20.0")
    cluster_autoscaler: ChartConfig = _chart("https://kubernetes.github.io/autoscaler", "9.50.1")


# -- mesh ---------------------------------------------------------------------
class MeshConfig(ConfigModel):
    ha: bool = Field(False, description="Linkerd control plane in HA mode (3 replicas, PDBs, anti-affinity).")
    trust_anchor_validity_hours: int = Field(
        87600, ge=8760, description="Trust anchor (root CA) lifetime; long-lived, rotated by hand."
    )
    issuer_validity_hours: int = Field(
        8760, ge=720, le=17520, description="Identity issuer (intermediate CA) lifetime, about a year."
    )
    smi: bool = Field(True, description="Install the linkerd-smi extension so TrafficSplit works.")

    @model_validator(mode="after")
    def _issuer_inside_anchor(self) -> MeshConfig:
        if self.issuer_validity_hours >= self.trust_anchor_validity_hours:
            raise CrossFieldError(
                "issuerValidityHours must be shorter than trustAnchorValidityHours",
                "issuerValidityHours",
                "trustAnchorValidityHours",
            )
        return self


# -- monitoring ---------------------------------------------------------------
def _secret(description: str):
    """An optional string that must be given as a Pulumi secret (`pulumi config set --secret --path ...`)."""
    return Field(None, description=description, json_schema_extra={"secret": True})


class AlertingConfig(ConfigModel):
    """Where Alertmanager sends alerts. Every value is a credential: a webhook URL lets anyone who holds
    it post to the channel, so each must be a Pulumi secret and reaches the cluster only inside a Secret."""

    slack_webhook_url: str | None = _secret(
        "Slack incoming-webhook URL (`https://hooks.slack.com/...`); receives every alert not paged. Secret."
    )
    webhook_url: str | None = _secret(
        "Generic webhook URL (Alertmanager's JSON payload); receives every alert not paged, alongside Slack. "
        "Secret."
    )
    pagerduty_routing_key: str | None = _secret(
        "PagerDuty Events API v2 integration (routing) key; `severity: critical` alerts page it. Secret."
    )

    @field_validator("slack_webhook_url", "webhook_url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https://[^\s/]+/\S*$", value):
            raise ValueError("must be an https:// URL")
        return value

    @field_validator("pagerduty_routing_key")
    @classmethod
    def _routing_key(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9]{32}", value):
            raise ValueError("must be a 32-character PagerDuty integration key (letters and digits)")
        return value

    @property
    def receivers_configured(self) -> bool:
        return any((self.slack_webhook_url, self.webhook_url, self.pagerduty_routing_key))


class MonitoringConfig(ConfigModel):
    retention: str = Field("15d", pattern=r"^\d+[smhdwy]$", description="Prometheus TSDB retention.")
    storage_size_gib: int = Field(50, ge=1, description="Prometheus persistent volume size.")
    replicas: int = Field(1, ge=1, le=5, description="Prometheus replicas.")
    grafana: bool = Field(
        True,
        description="Install Grafana with the chart; its admin password is generated (pulumi-random) and kept "
        "in the Secret `grafana-admin` of the monitoring namespace. `false` installs no Grafana.",
    )
    gpu_metrics: bool = Field(
        True,
        description="Run NVIDIA's DCGM exporter on the GPU nodes (GPU utilisation, memory, temperature) and "
        "alert on idle GPUs (`GpuIdle`).",
    )
    alerting: AlertingConfig = Field(
        default_factory=AlertingConfig,
        description="Alertmanager receivers: `critical` alerts page PagerDuty, the rest go to Slack and/or the "
        "webhook. With none set, alerts are only visible in Alertmanager's UI.",
    )


# -- MLflow -------------------------------------------------------------------
class LifecycleConfig(ConfigModel):
    noncurrent_version_expiration_days: PositiveInt = Field(
        30, description="Delete overwritten artifact versions after this many days."
    )
    transition_to_ia_days: int | None = Field(
        90, ge=30, description="Move artifacts to S3 Standard-IA after this many days (min 30); null to disable."
    )
    abort_incomplete_multipart_days: PositiveInt = Field(7, description="Abort stalled multipart uploads.")
    expiration_days: int | None = Field(
        None, ge=1, description="Delete artifacts outright after this many days; null keeps them."
    )

    @model_validator(mode="after")
    def _expire_after_transition(self) -> LifecycleConfig:
        if self.expiration_days is not None and self.transition_to_ia_days is not None:
            if self.expiration_days <= self.transition_to_ia_days:
                raise CrossFieldError(
                    "expirationDays must be later than transitionToIaDays", "expirationDays", "transitionToIaDays"
                )
        return self


class MlflowConfig(ConfigModel):
    image: PinnedImage = Field(
        "ghcr.io/mlflow/mlflow:v3.15.1-full",
        pattern=r"^[\w./-]+(:[\w.-]+)?(@sha256:[a-f0-9]{64})?$",
        description="MLflow server image, pinned; the `-full` variant carries the Postgres driver and boto3.",
    )
    backend: Literal["rds", "in-cluster"] = Field(
        "rds", description="Postgres backend store: Amazon RDS (mode aws only) or an in-cluster Postgres."
    )
    replicas: int = Field(1, ge=1, le=10, description="MLflow server replicas.")
    rds_instance_class: str = Field("db.t4g.medium", pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$", description="RDS class.")
    rds_allocated_storage_gib: int = Field(20, ge=20, le=65536, description="RDS storage.")
    rds_multi_az: bool = Field(False, description="RDS Multi-AZ standby.")
    deletion_protection: bool = Field(False, description="Protect the database (and bucket) from deletion.")
    postgres_image: PinnedImage = Field("postgres:17.6", description="In-cluster Postgres image (backend in-cluster).")
    postgres_storage_gib: int = Field(20, ge=1, description="In-cluster Postgres volume size.")
    artifact_bucket: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="Mode existing: the S3-compatible bucket for artifacts (required there). "
        "Mode aws: an explicit name for the bucket the program creates (default: generated).",
    )
    s3_endpoint_url: str | None = Field(
        None, pattern=r"^https?://", description="Mode existing: S3-compatible endpoint (MinIO, Ceph...)."
    )
    s3_credentials_secret: str | None = Field(
        None,
        description="Mode existing: name of a Secret in the MLflow namespace with AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY for the S3-compatible store.",
    )
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig, description="Artifact bucket lifecycle.")


# -- namespaces and CRDs ------------------------------------------------------
class TeamConfig(ConfigModel):
    name: DnsLabel = Field(description="Team namespace name.")
    gpu_requests: int = Field(8, ge=0, description="ResourceQuota requests.nvidia.com/gpu.")
    gpu_limits: int = Field(16, ge=0, description="ResourceQuota limits.nvidia.com/gpu.")

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> TeamConfig:
        if self.gpu_limits < self.gpu_requests:
            raise CrossFieldError(
                f"gpuLimits ({self.gpu_limits}) must be >= gpuRequests ({self.gpu_requests})", "gpuLimits", "gpuRequests"
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
            keys = ["serving", "training", "mlflow", "monitoring"] + [f"teams[{i}].name" for i in range(len(self.teams))]
            raise CrossFieldError(
                f"namespace names must be distinct; repeated: {duplicates}",
                *[key for key, name in zip(keys, names) if name in duplicates],
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
    cluster: ClusterConfig = Field(default_factory=ClusterConfig, description="Cluster target.")
    node_pools: NodePoolsConfig = Field(default_factory=NodePoolsConfig, description="Node pools (mode aws).")
    charts: ChartsConfig = Field(default_factory=ChartsConfig, description="Pinned Helm charts.")
    chart_mirror: str | None = Field(
        None,
        description="An internal Helm repository (http:// or https://) serving the upstream chart names at the "
        "pinned versions; replaces the repository of every release. Unset: the environment variable "
        "`MLPLATFORM_CHART_MIRROR`, if set, else each chart's own `repo`.",
    )
    mesh: MeshConfig = Field(default_factory=MeshConfig, description="Linkerd.")
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig, description="Prometheus.")
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig, description="MLflow tracking server and registry.")
    namespaces: NamespacesConfig = Field(default_factory=NamespacesConfig, description="Namespaces and quotas.")
    crds: CrdsConfig = Field(default_factory=CrdsConfig, description="The ML CRDs.")
    device_plugin: DevicePluginConfig = Field(default_factory=DevicePluginConfig, description="NVIDIA device plugin.")
    storage: StorageConfig = Field(default_factory=StorageConfig, description="StorageClasses and CSI drivers.")
    ci: CiConfig = Field(default_factory=CiConfig, description="GitHub Actions' OIDC roles and cluster access.")
    tags: dict[str, str] = Field(default_factory=dict, description="Extra AWS tags on every AWS resource.")

    @field_validator("chart_mirror")
    @classmethod
    def _mirror_url(cls, value: str | None) -> str | None:
        if value is not None and not MIRROR_URL.match(value):
            raise ValueError(MIRROR_RULE)
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
    def _ci_reaches_cluster(self) -> PlatformConfig:
        check_reachable(self.ci, mode=self.cluster.mode, endpoint_public_access=self.cluster.endpoint_public_access)
        return self

    @model_validator(mode="after")
    def _mode_rules(self) -> PlatformConfig:
        if self.cluster.mode == "existing":
            if self.storage.efs is not None:
                raise CrossFieldError(
                    "storage.efs only applies to cluster.mode 'aws' (it creates an EFS file system); with an "
                    "existing cluster name its ReadWriteMany class in storage.readWriteManyClass",
                    "storage.efs",
                    "cluster.mode",
                )
            ignored = [
                key
                for key, value in (
                    ("storage.ebsCsiAddonVersion", self.storage.ebs_csi_addon_version),
                    ("storage.efsCsiAddonVersion", self.storage.efs_csi_addon_version),
                )
                if value
            ]
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
            if not self.mlflow.artifact_bucket:
                raise CrossFieldError(
                    "mlflow.artifactBucket is required with cluster.mode 'existing' (no bucket is created there)",
                    "mlflow.artifactBucket",
                    "cluster.mode",
                )
        if self.cluster.mode == "aws":
            ignored = [
                key
                for key, value in (
                    ("mlflow.s3EndpointUrl", self.mlflow.s3_endpoint_url),
                    ("mlflow.s3CredentialsSecret", self.mlflow.s3_credentials_secret),
                )
                if value
            ]
            if ignored:
                raise CrossFieldError(
                    f"{', '.join(ignored)} only apply to cluster.mode 'existing'; in mode 'aws' MLflow reaches "
                    "its own bucket through its IRSA role",
                    *ignored,
                    "cluster.mode",
                )
            if self.cluster.gpu_nodes:
                raise CrossFieldError(
                    "cluster.gpuNodes describes an existing cluster; in mode 'aws' nodePools.gpu.enabled "
                    "creates the GPU pool",
                    "cluster.gpuNodes",
                    "cluster.mode",
                )
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
            if self.mesh.ha and self.node_pools.system.scaling.min_size < 3:
                raise CrossFieldError(
                    "mesh.ha spreads the Linkerd control plane over 3 nodes with required anti-affinity: "
                    f"nodePools.system.scaling.minSize must be >= 3, got {self.node_pools.system.scaling.min_size}",
                    "mesh.ha",
                    "nodePools.system.scaling.minSize",
                )
        if self.environment == "prod":
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
