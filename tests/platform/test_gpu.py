"""The GPU node pool (scale from zero) and the cluster-autoscaler."""

from __future__ import annotations

import json

import pulumi
import pulumi_kubernetes as k8s
import pytest

from mlplatform import labels
from mlplatform.platform.charts_config import ChartsConfig
from mlplatform.platform.cluster_config import GpuPoolConfig, ScalingConfig
from mlplatform.platform.gpu import (
    ClusterAutoscaler,
    ClusterAutoscalerArgs,
    GpuNodePool,
    GpuNodePoolArgs,
    node_template_tags,
)
from mlplatform.platform.sizing import platform_sizes
from mlplatform.tools.offline.engine import Recording, run_program
from tests.support.helpers import build
from tests.support.types import (
    AWS_AUTOSCALING_TAG,
    AWS_EKS_NODE_GROUP,
    AWS_IAM_ROLE,
    AWS_IAM_ROLE_POLICY,
    HELM_RELEASE,
    K8S_PROVIDER,
    PLATFORM_CLUSTER_AUTOSCALER,
    PLATFORM_GPU_NODE_POOL,
)

TAGS = {"Project": "mlplatform", "Environment": "dev", "ManagedBy": "pulumi"}
TEMPLATE = "k8s.io/cluster-autoscaler/node-template"
OIDC_URL = "oidc.eks.us-west-2.amazonaws.com/id/ABCDEF0123456789"
OIDC_ARN = f"arn:aws:iam::123456789012:oidc-provider/{OIDC_URL}"


def _pool(config: GpuPoolConfig | None = None) -> Recording:
    return run_program(
        lambda: GpuNodePool(
            "gpu",
            GpuNodePoolArgs(
                cluster_name="mlp-test",
                node_role_arn="arn:aws:iam::123456789012:role/nodes",
                subnet_ids=["subnet-a", "subnet-b"],
                config=config or build(GpuPoolConfig),
                kubernetes_version="1.33",
                tags=TAGS,
            ),
        ),
        project="mlplatform",
        stack="dev",
    )


@pytest.fixture(scope="module")
def pool() -> Recording:
    return _pool()


@pytest.fixture(scope="module")
def autoscaler() -> Recording:
    def program():
        provider = k8s.Provider("k8s", kubeconfig="{}")
        ClusterAutoscaler(
            "autoscaler",
            ClusterAutoscalerArgs(
                chart=ChartsConfig().cluster_autoscaler,
                cluster_name=pulumi.Output.from_input("mlp-test"),
                region="us-west-2",
                oidc_provider_arn=pulumi.Output.from_input(OIDC_ARN),
                oidc_provider_url=pulumi.Output.from_input(OIDC_URL),
                tags=TAGS,
                size=platform_sizes("dev").cluster_autoscaler,
            ),
            opts=pulumi.ResourceOptions(providers=[provider]),
        )

    return run_program(program, project="mlplatform", stack="dev")


def _node_group(rec: Recording):
    return rec.one(AWS_EKS_NODE_GROUP)


# -- node group ---------------------------------------------------------------
def test_default_ami_is_al2023_nvidia(pool):
    """The NVIDIA AMI ships the driver and container toolkit; a standard AMI would expose no GPU."""
    assert _node_group(pool).inputs["amiType"] == "AL2023_x86_64_NVIDIA"


def test_bottlerocket_nvidia_when_configured():
    """Bottlerocket is the supported alternative with the NVIDIA driver built in."""
    rec = _pool(build(GpuPoolConfig, ami_type="BOTTLEROCKET_x86_64_NVIDIA"))
    assert _node_group(rec).inputs["amiType"] == "BOTTLEROCKET_x86_64_NVIDIA"


def test_taint_in_eks_spelling(pool):
    """Only pods that tolerate nvidia.com/gpu=true:NoSchedule may land on expensive GPU nodes."""
    assert _node_group(pool).inputs["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]


def test_labels_include_gpu_present(pool):
    """The device plugin's default affinity needs nvidia.com/gpu.present=true when NFD is absent."""
    node_labels = _node_group(pool).inputs["labels"]
    assert node_labels["nvidia.com/gpu.present"] == "true"
    assert node_labels == dict(labels.GPU_NODE_LABELS)


def test_scales_from_zero(pool):
    """An idle GPU pool must cost nothing: minSize 0 must reach EKS as is."""
    assert _node_group(pool).inputs["scalingConfig"] == {"minSize": 0, "desiredSize": 0, "maxSize": 4}


def test_pool_settings_from_config():
    """Instance types, capacity type, disk and Kubernetes version are the operator's to set."""
    rec = _pool(
        build(
            GpuPoolConfig,
            instance_types=["g6.xlarge"],
            capacity_type="SPOT",
            disk_size_gib=300,
            scaling=ScalingConfig(min_size=1, desired_size=2, max_size=8),
        )
    )
    group = _node_group(rec).inputs
    assert group["instanceTypes"] == ["g6.xlarge"]
    assert group["capacityType"] == "SPOT"
    assert group["diskSize"] == 300
    assert group["version"] == "1.33"
    assert group["scalingConfig"] == {"minSize": 1, "desiredSize": 2, "maxSize": 8}
    assert group["subnetIds"] == ["subnet-a", "subnet-b"]
    assert group["clusterName"] == "mlp-test"


def test_desired_size_left_to_autoscaler(pool):
    """Otherwise every `pulumi up` would scale the pool back to its initial size."""
    assert _node_group(pool).ignore_changes == ["scalingConfig.desiredSize"]


# -- scale from zero ----------------------------------------------------------
def test_node_template_tag_formats():
    """The autoscaler parses these exact key and value formats (AWS README, node-template)."""
    tags = node_template_tags({"a/b": "x"}, {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}, 4)
    assert tags == {
        f"{TEMPLATE}/label/a/b": "x",
        f"{TEMPLATE}/taint/nvidia.com/gpu": "true:NoSchedule",
        f"{TEMPLATE}/resources/nvidia.com/gpu": "4",
    }


def test_asg_tags_describe_labels_taint_and_gpus(pool):
    """With zero nodes the autoscaler knows a GPU pod fits only from these ASG tags."""
    tags = {t.inputs["tag"]["key"]: t.inputs["tag"]["value"] for t in pool.of_type(AWS_AUTOSCALING_TAG)}
    expected = {f"{TEMPLATE}/label/{k}": v for k, v in labels.GPU_NODE_LABELS.items()}
    expected[f"{TEMPLATE}/taint/nvidia.com/gpu"] = "true:NoSchedule"
    expected[f"{TEMPLATE}/resources/nvidia.com/gpu"] = "1"
    assert tags == expected


def test_asg_gpu_resource_follows_gpus_per_node():
    """Advertising the wrong GPU count makes the autoscaler over- or under-provision."""
    rec = _pool(build(GpuPoolConfig, instance_types=["g5.12xlarge"], gpus_per_node=4))
    tags = {t.inputs["tag"]["key"]: t.inputs["tag"]["value"] for t in rec.of_type(AWS_AUTOSCALING_TAG)}
    assert tags[f"{TEMPLATE}/resources/nvidia.com/gpu"] == "4"


def test_asg_tags_target_the_node_groups_asg(pool):
    """Managed node groups do not copy tags to their ASG; the tags must land on that very ASG."""
    asg = _node_group(pool).outputs["resources"][0]["autoscalingGroups"][0]["name"]
    tag_resources = pool.of_type(AWS_AUTOSCALING_TAG)
    assert tag_resources
    for res in tag_resources:
        assert res.inputs["autoscalingGroupName"] == asg
        assert res.inputs["tag"]["propagateAtLaunch"] is False


# -- autoscaler IAM -----------------------------------------------------------
def _trust(rec: Recording) -> dict:
    return json.loads(rec.one(AWS_IAM_ROLE).inputs["assumeRolePolicy"])


def test_irsa_trust_names_only_the_autoscaler_service_account(autoscaler):
    """Any other pod able to assume this role could resize or terminate nodes."""
    (statement,) = _trust(autoscaler)["Statement"]
    assert statement["Principal"] == {"Federated": OIDC_ARN}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"] == {
        "StringEquals": {
            f"{OIDC_URL}:sub": "system:serviceaccount:kube-system:cluster-autoscaler",
            f"{OIDC_URL}:aud": "sts.amazonaws.com",
        }
    }


def test_scaling_actions_limited_to_owned_groups(autoscaler):
    """The autoscaler must not be able to resize or terminate ASGs of other clusters in the account."""
    policy = json.loads(autoscaler.one(AWS_IAM_ROLE_POLICY).inputs["policy"])
    mutating = {"autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"}
    assert [bool(set(s["Action"]) & mutating) for s in policy["Statement"]].count(True) == 1
    for statement in policy["Statement"]:
        actions = set(statement["Action"])
        if actions & mutating:
            assert actions == mutating
            assert statement["Condition"] == {
                "StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/mlp-test": "owned"}
            }
        else:
            assert all(a.split(":")[1].startswith(("Describe", "Get")) for a in actions), actions


def test_policy_attached_to_the_role(autoscaler):
    """An unattached policy would leave the autoscaler without permissions."""
    role = autoscaler.one(AWS_IAM_ROLE)
    assert autoscaler.one(AWS_IAM_ROLE_POLICY).inputs["role"] == role.id


# -- autoscaler chart ---------------------------------------------------------
def _release(rec: Recording):
    return rec.one(HELM_RELEASE)


def test_release_is_pinned_chart_in_kube_system(autoscaler):
    """Upgrades must be a reviewed change of the pinned version, never a floating one."""
    release = _release(autoscaler).inputs
    chart = ChartsConfig().cluster_autoscaler
    assert release["chart"] == "cluster-autoscaler"
    assert release["version"] == chart.version
    assert release["repositoryOpts"]["repo"] == "https://kubernetes.github.io/autoscaler"
    assert release["namespace"] == "kube-system"
    assert release["name"] == "cluster-autoscaler"


def test_release_discovers_this_cluster_in_its_region(autoscaler):
    """Auto-discovery by cluster name finds the EKS-tagged ASGs; a wrong region finds none."""
    values = _release(autoscaler).inputs["values"]
    assert values["autoDiscovery"]["clusterName"] == "mlp-test"
    assert values["awsRegion"] == "us-west-2"
    assert values["cloudProvider"] == "aws"


def test_service_account_matches_irsa_role(autoscaler):
    """The pod gets AWS credentials only if its service account is the one the role trusts, annotated with it."""
    service_account = _release(autoscaler).inputs["values"]["rbac"]["serviceAccount"]
    role = autoscaler.one(AWS_IAM_ROLE)
    assert service_account["create"] is True
    assert service_account["name"] == "cluster-autoscaler"
    assert service_account["annotations"] == {"eks.amazonaws.com/role-arn": role.outputs["arn"]}


def test_autoscaler_runs_non_root_on_system_nodes(autoscaler):
    """It must not run on nodes it may remove, nor with privileges it does not need."""
    values = _release(autoscaler).inputs["values"]
    assert values["nodeSelector"] == {"mlplatform.io/node-pool": "system"}
    assert values["securityContext"]["runAsNonRoot"] is True
    container = values["containerSecurityContext"]
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}


def test_release_waits_for_its_permissions(autoscaler):
    """Started before its policy exists, the autoscaler crash-loops on AccessDenied."""
    assert autoscaler.depends_on(_release(autoscaler), autoscaler.one(AWS_IAM_ROLE_POLICY))


def test_release_uses_the_components_kubernetes_provider(autoscaler):
    """The chart must go to the platform's cluster, not to whatever the ambient kubeconfig points at."""
    provider = autoscaler.one(K8S_PROVIDER)
    assert _release(autoscaler).provider.startswith(provider.urn)


# -- structure ----------------------------------------------------------------
@pytest.mark.parametrize(
    "fixture, token, prefix",
    [
        ("pool", PLATFORM_GPU_NODE_POOL, "gpu-"),
        ("autoscaler", PLATFORM_CLUSTER_AUTOSCALER, "autoscaler-"),
    ],
)
def test_children_parented_and_prefixed(request, fixture, token, prefix):
    """Two instances must not collide, and the resource tree must show ownership."""
    rec = request.getfixturevalue(fixture)
    component = rec.one(token)
    children = rec.children_of(component)
    assert children
    assert all(r.name.startswith(prefix) for r in children)
    owned = [r for r in rec.resources if r is not component and r.type != K8S_PROVIDER]
    assert {r.urn for r in owned} == {r.urn for r in children}


@pytest.mark.parametrize("fixture", ["pool", "autoscaler"])
def test_aws_tags_on_taggable_resources(request, fixture):
    """Cost and ownership reports group by these tags."""
    rec = request.getfixturevalue(fixture)
    assert [r for r in rec.resources if r.type in (AWS_EKS_NODE_GROUP, AWS_IAM_ROLE)]
    for res in rec.resources:
        if res.type in (AWS_EKS_NODE_GROUP, AWS_IAM_ROLE):
            assert TAGS.items() <= res.inputs["tags"].items(), res
