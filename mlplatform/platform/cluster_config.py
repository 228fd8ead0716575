"""The platform's `mlplatform:cluster` and `mlplatform:nodePools` config: the cluster it targets
and, in mode aws, the node pools it creates.

Kept apart from `config.py` (which embeds both in `PlatformConfig`); the rules that
tie the cluster to other sections (the mode's rules, mesh HA on the system pool)
live with `PlatformConfig`, which sees every section.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mlplatform.config_types import DnsLabel, PositiveInt
from mlplatform.configuration import SECRET_UNLESS_PATH, ConfigModel, CrossFieldError
from mlplatform.platform.storage_config import AddonVersion


# -- cluster ------------------------------------------------------------------
class ClusterConfig(ConfigModel):
    mode: Literal["aws", "existing"] = Field(
        "aws",
        description="`aws` creates the VPC and the EKS cluster; `existing` targets a cluster "
        "from a kubeconfig or context and creates no AWS resources. An existing cluster must run a CNI that "
        "enforces NetworkPolicy (Calico, Cilium, the VPC CNI with `enableNetworkPolicy`); the platform's "
        "isolation rests on it.",
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
        True,
        description="Mode aws: also expose the EKS API endpoint publicly, limited to `publicAccessCidrs` (the "
        "private endpoint is always on). On by default because the first `pulumi up` creates the cluster and "
        "then installs the charts through its API in the same update, usually from outside the VPC. To go "
        "private-only later, see the two-phase path in the docs; false needs `privateAccessCidrs`.",
    )
    public_access_cidrs: list[str] = Field(
        default_factory=list,
        description="Mode aws: CIDRs allowed to reach the public endpoint (your office, VPN egress, CI runners' "
        "egress); required when endpointPublicAccess is true. `0.0.0.0/0` is refused in prod.",
    )
    private_access_cidrs: list[str] = Field(
        default_factory=list,
        description="Mode aws: where `pulumi up` and CI run from when they use the private endpoint: networks "
        "inside the VPC or connected to it (VPN, peering, the self-hosted runners' subnets). Each gets HTTPS "
        "(443) into the cluster security group. Required when endpointPublicAccess is false.",
    )
    vpc_cni_addon_version: AddonVersion | None = Field(
        None,
        description="Mode aws: pinned `vpc-cni` add-on version, e.g. `v1.20.4-eksbuild.1`; default: the EKS "
        'default for the cluster\'s Kubernetes version. The add-on runs with `enableNetworkPolicy: "true"`, '
        "without which EKS enforces none of the platform's NetworkPolicies.",
    )
    metrics_api: Literal["install", "served"] | None = Field(
        None,
        description="Mode existing: how `metrics.k8s.io` (the model servers' HPAs) is served. `install` (the "
        "default): the platform installs the pinned metrics-server chart; `served`: the cluster already runs one, "
        "and the program reads the APIService `v1beta1.metrics.k8s.io` so preview fails if it is absent. Mode aws "
        "uses the EKS add-on (`metricsServerAddonVersion`).",
    )
    metrics_server_addon_version: AddonVersion | None = Field(
        None,
        description="Mode aws: pinned `metrics-server` add-on version, e.g. `v0.8.0-eksbuild.1`; default: the "
        "EKS default. It serves `metrics.k8s.io`, without which the model servers' HPAs never scale.",
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

    @field_validator("public_access_cidrs", "private_access_cidrs")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        for value in values:
            ipaddress.ip_network(value, strict=True)
        return values

    def check_endpoint_reachable(self) -> None:
        """Raise when `pulumi up` could not reach the API it creates. Called by `PlatformConfig` (paths
        relative to it): the class's default instance must stay constructible for the config reference."""
        if self.mode != "aws":
            return
        if self.endpoint_public_access and not self.public_access_cidrs:
            raise CrossFieldError(
                "endpointPublicAccess is true but publicAccessCidrs is empty: name the CIDRs that may "
                "reach the API (0.0.0.0/0 must be written out, never implied), or set endpointPublicAccess "
                "false with privateAccessCidrs",
                "cluster.endpointPublicAccess",
                "cluster.publicAccessCidrs",
            )
        if not self.endpoint_public_access and self.public_access_cidrs:
            raise CrossFieldError(
                "publicAccessCidrs is set but endpointPublicAccess is false",
                "cluster.publicAccessCidrs",
                "cluster.endpointPublicAccess",
            )
        if not self.endpoint_public_access and not self.private_access_cidrs:
            raise CrossFieldError(
                "endpointPublicAccess is false (private endpoint only) but privateAccessCidrs is empty: say where "
                "`pulumi up` runs from (a network in or connected to the VPC); a laptop outside it could create "
                "the cluster and then never reach its API to install the charts",
                "cluster.endpointPublicAccess",
                "cluster.privateAccessCidrs",
            )

    def open_to_the_internet(self) -> list[str]:
        """The public CIDRs that admit every address (0.0.0.0/0, ::/0)."""
        return [c for c in self.public_access_cidrs if ipaddress.ip_network(c).prefixlen == 0]


# -- node pools ---------------------------------------------------------------
class ScalingConfig(ConfigModel):
    min_size: int = Field(1, ge=0, description="Minimum nodes.")
    desired_size: int = Field(1, ge=0, description="Desired nodes at creation (later owned by the autoscaler).")
    max_size: PositiveInt = Field(3, description="Maximum nodes.")

    @model_validator(mode="after")
    def _ordered(self) -> ScalingConfig:
        if not self.min_size <= self.desired_size <= self.max_size:
            raise CrossFieldError(
                "need minSize <= desiredSize <= maxSize, "
                f"got {self.min_size} <= {self.desired_size} <= {self.max_size}",
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
    system: SystemPoolConfig = Field(default_factory=SystemPoolConfig.defaults, description="The system CPU pool.")
    gpu: GpuPoolConfig = Field(default_factory=GpuPoolConfig.defaults, description="The GPU pool.")
