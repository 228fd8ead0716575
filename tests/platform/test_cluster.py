"""The EKS cluster component: control plane, nodes, IAM, access and tags (its network: `test_cluster_network.py`)."""

from __future__ import annotations

import json

import pulumi_aws as aws
import pytest

from mlplatform.platform.cluster import Cluster, ClusterArgs
from mlplatform.platform.cluster_config import ClusterConfig, ScalingConfig, SystemPoolConfig
from mlplatform.tools.offline.engine import run_program
from mlplatform.tools.offline.secrets import contains_secret
from tests.support.cluster_program import TAGS, run_cluster
from tests.support.helpers import build
from tests.support.types import (
    AWS_EC2_ROUTE,
    AWS_EC2_ROUTE_TABLE_ASSOCIATION,
    AWS_EKS_ADDON,
    AWS_EKS_CLUSTER,
    AWS_EKS_NODE_GROUP,
    AWS_IAM_OPEN_ID_CONNECT_PROVIDER,
    AWS_IAM_ROLE,
    AWS_IAM_ROLE_POLICY_ATTACHMENT,
    AWS_KMS_KEY,
    AWS_VPC_SECURITY_GROUP_INGRESS_RULE,
    K8S_PROVIDER,
    PLATFORM_CLUSTER,
)

NOT_TAGGABLE = {
    AWS_EC2_ROUTE,
    AWS_EC2_ROUTE_TABLE_ASSOCIATION,
    AWS_IAM_ROLE_POLICY_ATTACHMENT,
}


# -- control plane ------------------------------------------------------------
def test_secrets_encrypted_with_own_rotating_kms_key(cluster_dev):
    """Kubernetes secrets (DB passwords, tokens) must be envelope-encrypted with a key that rotates."""
    key = cluster_dev.one(AWS_KMS_KEY)
    assert key.inputs["enableKeyRotation"] is True
    encryption = cluster_dev.one(AWS_EKS_CLUSTER).inputs["encryptionConfig"]
    assert encryption["resources"] == ["secrets"]
    assert encryption["provider"]["keyArn"] == key.outputs["arn"]


def test_endpoint_public_only_to_named_cidrs_and_private_by_default(cluster_dev):
    """The default reaches the API from the operators' networks (the first `up` runs from outside the VPC)
    and from inside the VPC; never from the whole internet unless written out."""
    vpc_config = cluster_dev.one(AWS_EKS_CLUSTER).inputs["vpcConfig"]
    assert vpc_config["endpointPrivateAccess"] is True
    assert vpc_config["endpointPublicAccess"] is True
    assert vpc_config["publicAccessCidrs"] == ["198.51.100.0/24"]
    assert cluster_dev.of_type(AWS_VPC_SECURITY_GROUP_INGRESS_RULE) == []


def test_private_only_admits_where_up_runs_from():
    """A private-only endpoint is reachable from the networks the stack names, on 443 only, and nothing else."""
    rec = run_cluster(
        build(ClusterConfig, name="mlp-test", endpoint_public_access=False, private_access_cidrs=["10.100.0.0/24"])
    )
    vpc_config = rec.one(AWS_EKS_CLUSTER).inputs["vpcConfig"]
    assert vpc_config["endpointPublicAccess"] is False
    assert "publicAccessCidrs" not in vpc_config
    rule = rec.one(AWS_VPC_SECURITY_GROUP_INGRESS_RULE)
    assert (rule.inputs["cidrIpv4"], rule.inputs["fromPort"], rule.inputs["toPort"], rule.inputs["ipProtocol"]) == (
        "10.100.0.0/24",
        443,
        443,
        "tcp",
    )


def test_public_endpoint_limited_to_configured_cidrs(cluster_prod):
    """A public endpoint must only admit the CIDRs the operator wrote down."""
    vpc_config = cluster_prod.one(AWS_EKS_CLUSTER).inputs["vpcConfig"]
    assert vpc_config["endpointPublicAccess"] is True
    assert vpc_config["endpointPrivateAccess"] is True
    assert vpc_config["publicAccessCidrs"] == ["203.0.113.0/24"]


@pytest.mark.parametrize(
    "fixture, types",
    [
        ("cluster_dev", ["api", "audit", "authenticator"]),
        ("cluster_prod", ["api", "audit", "authenticator", "controllerManager", "scheduler"]),
    ],
)
def test_control_plane_log_types_from_config(request, fixture, types):
    """Audit logs are what incident reviews rely on; the set is the operator's choice."""
    rec = request.getfixturevalue(fixture)
    assert rec.one(AWS_EKS_CLUSTER).inputs["enabledClusterLogTypes"] == types


def test_cluster_access_mode_and_version(cluster_dev):
    """Access entries (API) plus aws-auth keep both mechanisms usable; the creator can install charts."""
    eks = cluster_dev.one(AWS_EKS_CLUSTER).inputs
    assert eks["accessConfig"] == {
        "authenticationMode": "API_AND_CONFIG_MAP",
        "bootstrapClusterCreatorAdminPermissions": True,
    }
    assert eks["name"] == "mlp-test" and eks["version"] == "1.33"


def test_cluster_role_has_eks_cluster_policy(cluster_dev):
    """The control plane cannot manage ENIs or load balancers without AmazonEKSClusterPolicy."""
    attachments = [r for r in cluster_dev.of_type(AWS_IAM_ROLE_POLICY_ATTACHMENT) if "-cluster-" in r.name]
    assert [a.inputs["policyArn"] for a in attachments] == ["arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"]
    trust = json.loads(cluster_dev.one(AWS_IAM_ROLE, "cluster-cluster-role").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "eks.amazonaws.com"}


def test_oidc_provider_trusts_sts_for_the_cluster_issuer(cluster_dev):
    """IRSA roles (autoscaler, MLflow) can only be assumed through this provider."""
    oidc = cluster_dev.one(AWS_IAM_OPEN_ID_CONNECT_PROVIDER)
    issuer = cluster_dev.one(AWS_EKS_CLUSTER).outputs["identities"][0]["oidcs"][0]["issuer"]
    assert oidc.inputs["url"] == issuer
    assert oidc.inputs["clientIdLists"] == ["sts.amazonaws.com"]
    assert cluster_dev.stack_outputs["oidcProviderArn"] == oidc.outputs["arn"]


def test_oidc_provider_url_has_no_scheme(cluster_dev):
    """IRSA trust conditions are keyed `<issuer-without-https>:sub`; a scheme makes them never match."""
    url = cluster_dev.stack_outputs["oidcProviderUrl"]
    assert not url.startswith("https://")
    assert url.startswith("oidc.eks.us-west-2.amazonaws.com/id/")


# -- nodes --------------------------------------------------------------------
def test_node_role_policies(cluster_dev):
    """Nodes need these four managed policies to join, run the CNI, pull from ECR and be reachable by SSM."""
    attachments = [r for r in cluster_dev.of_type(AWS_IAM_ROLE_POLICY_ATTACHMENT) if "-node-" in r.name]
    node_role = cluster_dev.one(AWS_IAM_ROLE, "cluster-node-role")
    assert all(a.inputs["role"] == node_role.outputs["name"] for a in attachments)
    assert sorted(a.inputs["policyArn"].rsplit("/", 1)[1] for a in attachments) == [
        "AmazonEC2ContainerRegistryReadOnly",
        "AmazonEKSWorkerNodePolicy",
        "AmazonEKS_CNI_Policy",
        "AmazonSSMManagedInstanceCore",
    ]


def test_system_node_group_from_config():
    """The system pool's size, type, disk and AMI are the operator's to set."""
    rec = run_cluster(
        system_pool=SystemPoolConfig(
            instance_types=["m7i.xlarge"],
            scaling=ScalingConfig(min_size=3, desired_size=3, max_size=6),
            disk_size_gib=80,
            ami_type="BOTTLEROCKET_x86_64",
        )
    )
    group = rec.one(AWS_EKS_NODE_GROUP).inputs
    assert group["instanceTypes"] == ["m7i.xlarge"]
    assert group["scalingConfig"] == {"minSize": 3, "desiredSize": 3, "maxSize": 6}
    assert group["diskSize"] == 80 and group["amiType"] == "BOTTLEROCKET_x86_64"


def test_system_node_group_placement_and_label(cluster_dev):
    """Add-ons select the system pool by label; nodes must sit in private subnets with the shared role."""
    group = cluster_dev.one(AWS_EKS_NODE_GROUP)
    assert group.inputs["labels"] == {"mlplatform.io/node-pool": "system"}
    assert group.inputs["subnetIds"] == cluster_dev.stack_outputs["privateSubnetIds"]
    assert group.inputs["nodeRoleArn"] == cluster_dev.one(AWS_IAM_ROLE, "cluster-node-role").outputs["arn"]
    assert group.inputs["clusterName"] == "mlp-test"
    assert "taints" not in group.inputs


def test_system_node_group_leaves_desired_size_to_autoscaler(cluster_dev):
    """Otherwise every `pulumi up` would undo the autoscaler's scaling."""
    assert cluster_dev.one(AWS_EKS_NODE_GROUP).ignore_changes == ["scalingConfig.desiredSize"]


def test_system_nodes_wait_for_egress_and_policies(cluster_dev):
    """Nodes launched before NAT routes or node policies exist never join, and the group fails after ~20 min."""
    group = cluster_dev.one(AWS_EKS_NODE_GROUP)
    assert len([d for d in cluster_dev.of_type(AWS_IAM_ROLE_POLICY_ATTACHMENT) if "-node-" in d.name]) == 4
    assert len([r for r in cluster_dev.of_type(AWS_EC2_ROUTE) if "private" in r.name]) == 2
    for dep in cluster_dev.of_type(AWS_IAM_ROLE_POLICY_ATTACHMENT):
        if "-node-" in dep.name:
            assert cluster_dev.depends_on(group, dep), dep
    for route in cluster_dev.of_type(AWS_EC2_ROUTE):
        if "private" in route.name:
            assert cluster_dev.depends_on(group, route), route


def test_outputs_carry_egress_and_policy_dependencies():
    """A GPU node group built from these outputs must not launch nodes before egress and node policies exist."""

    def program():
        cluster = Cluster(
            "cluster",
            ClusterArgs(
                config=build(ClusterConfig, name="mlp-test", public_access_cidrs=["198.51.100.0/24"]),
                system_pool=build(SystemPoolConfig),
            ),
        )
        aws.eks.NodeGroup(
            "consumer",
            cluster_name=cluster.cluster_name,
            node_role_arn=cluster.node_role_arn,
            subnet_ids=cluster.private_subnet_ids,
            scaling_config={"min_size": 0, "desired_size": 0, "max_size": 1},
        )

    rec = run_program(program, project="mlplatform", stack="dev")
    consumer = rec.one(AWS_EKS_NODE_GROUP, "consumer")
    waits_for = [
        r
        for r in rec.resources
        if (r.type == AWS_EC2_ROUTE and "private" in r.name)
        or (r.type.endswith("RolePolicyAttachment") and "-node-" in r.name)
    ]
    assert len(waits_for) == 6
    assert all(rec.depends_on(consumer, r) for r in waits_for)


# -- access -------------------------------------------------------------------
def test_kubeconfig_is_secret(cluster_dev):
    """The kubeconfig names the endpoint and CA; it must stay encrypted in state and outputs."""
    assert contains_secret(cluster_dev.stack_outputs["kubeconfig"])
    assert cluster_dev.one(K8S_PROVIDER).input_is_secret("kubeconfig")


def test_kubeconfig_uses_aws_eks_get_token(cluster_dev):
    """Tokens must come from the caller's AWS identity, for this cluster and region."""
    kubeconfig = json.loads(cluster_dev.one(K8S_PROVIDER).inputs["kubeconfig"])
    eks = cluster_dev.one(AWS_EKS_CLUSTER).outputs
    assert kubeconfig["clusters"][0]["cluster"]["server"] == eks["endpoint"]
    assert kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"] == eks["certificateAuthority"]["data"]
    exec_ = kubeconfig["users"][0]["user"]["exec"]
    assert exec_["command"] == "aws"
    assert exec_["args"][:6] == ["eks", "get-token", "--cluster-name", "mlp-test", "--region", "us-west-2"]


def test_provider_is_child_and_waits_for_system_nodes(cluster_dev):
    """Charts installed through the provider need schedulable nodes, and the provider moves with the component."""
    component = cluster_dev.one(PLATFORM_CLUSTER)
    provider = cluster_dev.one(K8S_PROVIDER)
    assert provider.parent == component.urn
    assert cluster_dev.depends_on(provider, cluster_dev.one(AWS_EKS_NODE_GROUP))


def test_region_mismatch_with_provider_fails():
    """A kubeconfig for the wrong region would point at a cluster that does not exist."""
    args = ClusterArgs(
        config=build(ClusterConfig, name="mlp-test", region="eu-west-1", public_access_cidrs=["198.51.100.0/24"]),
        system_pool=build(SystemPoolConfig),
    )
    with pytest.raises(ValueError, match=r"cluster\.region is 'eu-west-1' but the AWS provider deploys to 'us-west-2'"):
        run_program(lambda: Cluster("cluster", args), project="mlplatform", stack="dev")


# -- structure ----------------------------------------------------------------
def test_every_child_parented_and_prefixed(cluster_prod):
    """Two clusters in one stack must not collide, and the tree must show what belongs to what."""
    component = cluster_prod.one(PLATFORM_CLUSTER)
    children = [r for r in cluster_prod.resources if r is not component]
    assert children and all(r.parent == component.urn for r in children)
    assert all(r.name.startswith("cluster-") for r in children)


def test_every_taggable_resource_carries_the_tags(cluster_prod):
    """Cost and ownership reports group by these tags."""
    assert any(
        res.custom and res.type.startswith("aws:") and res.type not in NOT_TAGGABLE for res in cluster_prod.resources
    )
    for res in cluster_prod.resources:
        if res.custom and res.type.startswith("aws:") and res.type not in NOT_TAGGABLE:
            assert TAGS.items() <= res.inputs.get("tags", {}).items(), res


def test_vpc_cni_addon_enforces_network_policies(cluster_dev):
    """EKS installs the VPC CNI with its policy agent off, so every NetworkPolicy would be accepted and ignored;
    the managed add-on turns enforcement on and takes over the DaemonSet EKS installed."""
    addon = next(a for a in cluster_dev.of_type(AWS_EKS_ADDON) if a.inputs["addonName"] == "vpc-cni")
    assert json.loads(addon.inputs["configurationValues"]) == {"enableNetworkPolicy": "true"}
    assert addon.inputs["resolveConflictsOnCreate"] == "OVERWRITE"
    assert "addonVersion" not in addon.inputs  # the EKS default unless pinned


def test_vpc_cni_addon_version_is_pinned_from_config():
    rec = run_cluster(
        build(
            ClusterConfig,
            name="mlp-test",
            public_access_cidrs=["198.51.100.0/24"],
            vpc_cni_addon_version="v1.20.4-eksbuild.1",
        )
    )
    addon = next(a for a in rec.of_type(AWS_EKS_ADDON) if a.inputs["addonName"] == "vpc-cni")
    assert addon.inputs["addonVersion"] == "v1.20.4-eksbuild.1"


def test_metrics_server_addon_serves_the_hpa_metrics(cluster_dev):
    """Model servers scale with HPAs on CPU, read from metrics.k8s.io; a new EKS cluster serves no such API."""
    addon = next(a for a in cluster_dev.of_type(AWS_EKS_ADDON) if a.inputs["addonName"] == "metrics-server")
    assert "addonVersion" not in addon.inputs
