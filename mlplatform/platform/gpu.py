"""The GPU node pool and the cluster-autoscaler that scales it, from zero.

The pool is an EKS managed node group on an NVIDIA AMI, tainted so only pods that
tolerate `nvidia.com/gpu` land on it. With `minSize: 0` it costs nothing while
idle; the cluster-autoscaler then has no node to learn the pool's shape from, so
the shape is published as node-template tags on the Auto Scaling group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from mlplatform import labels
from mlplatform.platform.charts_config import ChartConfig
from mlplatform.platform.cluster_config import GpuPoolConfig
from mlplatform.platform.helm import pinned_release
from mlplatform.platform.iam import irsa_trust_policy
from mlplatform.platform.sizing import PodSize

# Kubernetes spells taint effects `NoSchedule`; the EKS API spells them `NO_SCHEDULE`.
EKS_TAINT_EFFECTS: Mapping[str, str] = {
    "NoSchedule": "NO_SCHEDULE",
    "PreferNoSchedule": "PREFER_NO_SCHEDULE",
    "NoExecute": "NO_EXECUTE",
}

NODE_TEMPLATE_PREFIX = "k8s.io/cluster-autoscaler/node-template"

AUTOSCALER_NAMESPACE = "kube-system"
AUTOSCALER_SERVICE_ACCOUNT = "cluster-autoscaler"


def node_template_tags(node_labels: Mapping[str, str], taint: Mapping[str, str], gpus_per_node: int) -> dict[str, str]:
    """The ASG tags that tell the cluster-autoscaler what a node of an empty group looks like.

    Formats from the autoscaler's AWS README: `.../label/<key>` = value,
    `.../taint/<key>` = `<value>:<effect>`, `.../resources/<name>` = quantity.
    """
    tags = {f"{NODE_TEMPLATE_PREFIX}/label/{key}": value for key, value in node_labels.items()}
    tags[f"{NODE_TEMPLATE_PREFIX}/taint/{taint['key']}"] = f"{taint['value']}:{taint['effect']}"
    tags[f"{NODE_TEMPLATE_PREFIX}/resources/{labels.GPU_RESOURCE}"] = str(gpus_per_node)
    return tags


def _tag_resource_name(name: str, tag_key: str) -> str:
    kind, _, subject = tag_key.removeprefix(f"{NODE_TEMPLATE_PREFIX}/").partition("/")
    return f"{name}-template-{kind}-{subject.replace('/', '-')}"


def _autoscaling_group_name(resources: Sequence[aws.eks.outputs.NodeGroupResource] | None) -> str:
    """The Auto Scaling group of a managed node group, which EKS creates with it; the SDK types it optional."""
    groups = resources[0].autoscaling_groups if resources else None
    name = groups[0].name if groups else None
    if not name:
        raise ValueError(f"EKS returned the node group without an Auto Scaling group (resources: {resources!r})")
    return name


@dataclass
class GpuNodePoolArgs:
    cluster_name: pulumi.Input[str]
    node_role_arn: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[str]]
    config: GpuPoolConfig
    kubernetes_version: str
    tags: Mapping[str, str]
    # What one node advertises as `nvidia.com/gpu` (GPUs x time-slicing replicas);
    # None means config.gpus_per_node, i.e. no time-slicing.
    advertised_gpus_per_node: int | None = None


class GpuNodePool(pulumi.ComponentResource):
    """A tainted NVIDIA node group that can scale to zero.

    Trade-off: the cluster-autoscaler sizes an empty group from its first instance
    type and from `gpusPerNode`, so every instance type in the pool should carry
    that many GPUs; mixing g5.xlarge (1 GPU) with g5.12xlarge (4) would make it
    over- or under-provision.
    """

    node_group: aws.eks.NodeGroup
    autoscaling_group_name: pulumi.Output[str]
    node_selector: dict[str, str]
    taint: dict[str, str]

    def __init__(self, name: str, args: GpuNodePoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:platform:GpuNodePool", name, None, opts)
        cfg = args.config
        taint = labels.GPU_TAINT

        self.node_group = aws.eks.NodeGroup(
            f"{name}-nodes",
            cluster_name=args.cluster_name,
            node_role_arn=args.node_role_arn,
            subnet_ids=args.subnet_ids,
            version=args.kubernetes_version,
            ami_type=cfg.ami_type,
            capacity_type=cfg.capacity_type,
            instance_types=list(cfg.instance_types),
            disk_size=cfg.disk_size_gib,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=cfg.scaling.min_size,
                desired_size=cfg.scaling.desired_size,
                max_size=cfg.scaling.max_size,
            ),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            labels=dict(labels.GPU_NODE_LABELS),
            taints=[
                aws.eks.NodeGroupTaintArgs(
                    key=taint["key"], value=taint["value"], effect=EKS_TAINT_EFFECTS[taint["effect"]]
                )
            ],
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(
                parent=self,
                # The cluster-autoscaler owns the desired size after creation.
                ignore_changes=["scalingConfig.desiredSize"],
            ),
        )
        self.autoscaling_group_name = self.node_group.resources.apply(_autoscaling_group_name)

        # Managed node groups do not copy their tags to the Auto Scaling group,
        # and the autoscaler reads node templates from the group itself.
        advertised = args.advertised_gpus_per_node or cfg.gpus_per_node
        for key, value in node_template_tags(labels.GPU_NODE_LABELS, taint, advertised).items():
            aws.autoscaling.Tag(
                _tag_resource_name(name, key),
                autoscaling_group_name=self.autoscaling_group_name,
                tag=aws.autoscaling.TagTagArgs(
                    key=key,
                    value=value,
                    # A hint for the autoscaler, not metadata for the instances.
                    propagate_at_launch=False,
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )

        self.node_selector = dict(labels.GPU_NODE_SELECTOR)
        self.taint = dict(taint)
        self.register_outputs(
            {
                "autoscalingGroupName": self.autoscaling_group_name,
                "nodeSelector": self.node_selector,
                "taint": self.taint,
            }
        )


@dataclass
class ClusterAutoscalerArgs:
    chart: ChartConfig
    cluster_name: pulumi.Input[str]
    region: str
    oidc_provider_arn: pulumi.Input[str]
    oidc_provider_url: pulumi.Input[str]
    tags: Mapping[str, str]
    size: PodSize
    """CPU and memory of the autoscaler."""
    image_registry: str | None = None
    """`mlplatform:imageRegistry`: every image the chart runs is pulled through it; None: upstream."""


class ClusterAutoscaler(pulumi.ComponentResource):
    """The Kubernetes cluster-autoscaler, with an IRSA role scoped to this cluster's groups.

    It discovers groups by the `k8s.io/cluster-autoscaler/enabled` and
    `k8s.io/cluster-autoscaler/<cluster>` tags that EKS puts on every managed node
    group's ASG, and may resize or terminate only in groups tagged as owned by this
    cluster. The image follows the chart's appVersion, so the pinned chart must be
    kept in step with the cluster's Kubernetes minor version.
    """

    role: aws.iam.Role
    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: ClusterAutoscalerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:platform:ClusterAutoscaler", name, None, opts)
        self.role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=irsa_trust_policy(
                args.oidc_provider_arn, args.oidc_provider_url, AUTOSCALER_NAMESPACE, AUTOSCALER_SERVICE_ACCOUNT
            ),
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )

        owned_tag = pulumi.Output.from_input(args.cluster_name).apply(
            lambda cluster: {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster}": "owned"}
        )
        policy = aws.iam.RolePolicy(
            f"{name}-policy",
            role=self.role.id,
            # The upstream "full features" policy, with the two mutating actions
            # limited to ASGs of this cluster. Describe calls support no
            # resource-level scoping, hence "*".
            policy=pulumi.Output.json_dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "Discover",
                            "Effect": "Allow",
                            "Action": [
                                "autoscaling:DescribeAutoScalingGroups",
                                "autoscaling:DescribeAutoScalingInstances",
                                "autoscaling:DescribeLaunchConfigurations",
                                "autoscaling:DescribeScalingActivities",
                                "autoscaling:DescribeTags",
                                "ec2:DescribeImages",
                                "ec2:DescribeInstanceTypes",
                                "ec2:DescribeLaunchTemplateVersions",
                                "ec2:GetInstanceTypesFromInstanceRequirements",
                                "eks:DescribeNodegroup",
                            ],
                            "Resource": "*",
                        },
                        {
                            "Sid": "ScaleOwnGroups",
                            "Effect": "Allow",
                            "Action": [
                                "autoscaling:SetDesiredCapacity",
                                "autoscaling:TerminateInstanceInAutoScalingGroup",
                            ],
                            "Resource": "*",
                            "Condition": {"StringEquals": owned_tag},
                        },
                    ],
                }
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.release = pinned_release(
            f"{name}-release",
            chart="cluster-autoscaler",
            pin=args.chart,
            image_registry=args.image_registry,
            namespace=AUTOSCALER_NAMESPACE,
            values={
                "cloudProvider": "aws",
                "awsRegion": args.region,
                "autoDiscovery": {"clusterName": args.cluster_name},
                "rbac": {
                    "serviceAccount": {
                        "create": True,
                        "name": AUTOSCALER_SERVICE_ACCOUNT,
                        "annotations": {"eks.amazonaws.com/role-arn": self.role.arn},
                    }
                },
                "extraArgs": {
                    # Prefer the group that leaves the least CPU/memory idle.
                    "expander": "least-waste",
                    # ML pods mount emptyDir (e.g. /dev/shm); with the default
                    # `true` an idle GPU node running one would never be removed.
                    "skip-nodes-with-local-storage": False,
                },
                # Run beside the other add-ons, never on a node it may remove.
                "nodeSelector": dict(labels.SYSTEM_NODE_LABELS),
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 65534,
                    "runAsGroup": 65534,
                    # Lets the non-root process read the projected IRSA token.
                    "fsGroup": 65534,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "resources": args.size.k8s(),
                "containerSecurityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
            },
            # Without its permissions the autoscaler starts and crash-loops on AWS errors.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )
        self.register_outputs({"roleArn": self.role.arn, "releaseStatus": self.release.status})
