"""The EKS cluster component: network layout, control plane, IAM and access."""

from __future__ import annotations

import ipaddress
import json

import pulumi
import pulumi_aws as aws
import pytest

from mlplatform.platform.cluster import Cluster, ClusterArgs, subnet_cidrs
from mlplatform.platform.cluster_config import ClusterConfig, ScalingConfig, SystemPoolConfig
from mlplatform.tools.offline.engine import Recording, run_program
from mlplatform.tools.offline.secrets import contains_secret
from tests.support.helpers import build
from tests.support.types import (
    AWS_EC2_EIP,
    AWS_EC2_NAT_GATEWAY,
    AWS_EC2_ROUTE,
    AWS_EC2_ROUTE_TABLE_ASSOCIATION,
    AWS_EC2_SUBNET,
    AWS_EC2_VPC,
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

TAGS = {"Project": "mlplatform", "Environment": "dev", "ManagedBy": "pulumi"}
NOT_TAGGABLE = {
    AWS_EC2_ROUTE,
    AWS_EC2_ROUTE_TABLE_ASSOCIATION,
    AWS_IAM_ROLE_POLICY_ATTACHMENT,
}


def _run(config: ClusterConfig | None = None, system_pool: SystemPoolConfig | None = None) -> Recording:
    def program():
        cluster = Cluster(
            "cluster",
            ClusterArgs(
                config=config or build(ClusterConfig, name="mlp-test", public_access_cidrs=["198.51.100.0/24"]),
                system_pool=system_pool or build(SystemPoolConfig),
                tags=TAGS,
            ),
        )
        pulumi.export("kubeconfig", cluster.kubeconfig)
        pulumi.export("oidcProviderUrl", cluster.oidc_provider_url)
        pulumi.export("oidcProviderArn", cluster.oidc_provider_arn)
        pulumi.export("privateSubnetIds", cluster.private_subnet_ids)
        pulumi.export("publicSubnetIds", cluster.public_subnet_ids)

    return run_program(program, project="mlplatform", stack="dev")


@pytest.fixture(scope="module")
def dev() -> Recording:
    """Defaults: two AZs, one NAT gateway, private endpoint only."""
    return _run()


@pytest.fixture(scope="module")
def prod() -> Recording:
    """Three AZs, a NAT gateway per AZ and a public endpoint limited to one CIDR."""
    return _run(
        build(
            ClusterConfig,
            name="mlp-prod",
            availability_zones=3,
            single_nat_gateway=False,
            endpoint_public_access=True,
            public_access_cidrs=["203.0.113.0/24"],
            control_plane_log_types=["api", "audit", "authenticator", "controllerManager", "scheduler"],
        )
    )


def _subnets(rec: Recording, kind: str):
    return sorted((r for r in rec.of_type(AWS_EC2_SUBNET) if f"-{kind}-" in r.name), key=lambda r: r.name)


# -- network ------------------------------------------------------------------
@pytest.mark.parametrize("fixture, azs", [("dev", 2), ("prod", 3)])
def test_one_public_and_one_private_subnet_per_az(request, fixture, azs):
    """Load balancers and nodes must be spread over exactly the AZs the config asks for."""
    rec = request.getfixturevalue(fixture)
    assert len(rec.of_type(AWS_EC2_SUBNET)) == 2 * azs
    assert len(_subnets(rec, "public")) == azs
    assert len(_subnets(rec, "private")) == azs


@pytest.mark.parametrize("fixture, zones", [("dev", ["a", "b"]), ("prod", ["a", "b", "c"])])
def test_subnet_zones_come_from_the_provider(request, fixture, zones):
    """AZ names differ per account and region, so they must come from the provider, one distinct AZ per pair."""
    rec = request.getfixturevalue(fixture)
    expected = [f"us-west-2{z}" for z in zones]
    for kind in ("public", "private"):
        assert [s.inputs["availabilityZone"] for s in _subnets(rec, kind)] == expected


def test_subnet_cidrs_inside_vpc_and_disjoint(prod):
    """Overlapping or out-of-VPC subnet CIDRs are rejected by AWS at apply time."""
    # IPv4 both: an EKS VPC's primary CIDR block and its subnets' are IPv4.
    vpc = ipaddress.IPv4Network(prod.one(AWS_EC2_VPC).inputs["cidrBlock"])
    nets = [ipaddress.IPv4Network(s.inputs["cidrBlock"]) for s in prod.of_type(AWS_EC2_SUBNET)]
    assert len(nets) == 6  # a public and a private subnet per AZ
    assert all(n.subnet_of(vpc) for n in nets)
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])


def test_subnet_cidrs_stable_when_adding_azs():
    """Raising availabilityZones must not renumber (and so replace) existing subnets."""
    two_private, two_public = subnet_cidrs("10.0.0.0/16", 2)
    four_private, four_public = subnet_cidrs("10.0.0.0/16", 4)
    assert four_private[:2] == two_private and four_public[:2] == two_public


def test_smallest_vpc_still_fits_four_azs():
    """The config accepts a /20 VPC, so a /20 must hold eight subnets."""
    private, public = subnet_cidrs("10.1.0.0/20", 4)
    assert len(set(private + public)) == 8


def test_subnets_tagged_for_load_balancer_discovery(dev):
    """The AWS load balancer controller picks subnets by these tags; without them Services get no LB."""
    assert (len(_subnets(dev, "public")), len(_subnets(dev, "private"))) == (2, 2)
    for subnet in _subnets(dev, "public"):
        assert subnet.inputs["tags"]["kubernetes.io/role/elb"] == "1"
        assert subnet.inputs["tags"]["kubernetes.io/cluster/mlp-test"] == "shared"
    for subnet in _subnets(dev, "private"):
        assert subnet.inputs["tags"]["kubernetes.io/role/internal-elb"] == "1"
        assert subnet.inputs["tags"]["kubernetes.io/cluster/mlp-test"] == "shared"


def test_vpc_has_dns_support_and_hostnames(dev):
    """Nodes register by private DNS name and the private endpoint resolves only with both on."""
    vpc = dev.one(AWS_EC2_VPC).inputs
    assert vpc["enableDnsSupport"] is True and vpc["enableDnsHostnames"] is True


@pytest.mark.parametrize("fixture, count", [("dev", 1), ("prod", 3)])
def test_nat_gateway_count(request, fixture, count):
    """singleNatGateway trades AZ-resilient egress for cost: one NAT in dev, one per AZ in prod."""
    rec = request.getfixturevalue(fixture)
    assert len(rec.of_type(AWS_EC2_NAT_GATEWAY)) == count
    assert len(rec.of_type(AWS_EC2_EIP)) == count


def test_every_private_subnet_routes_through_a_nat(prod):
    """Nodes in private subnets need NAT egress to pull images and join the cluster."""
    nat_ids = {n.id for n in prod.of_type(AWS_EC2_NAT_GATEWAY)}
    routes = [r for r in prod.of_type(AWS_EC2_ROUTE) if "private" in r.name]
    assert len(routes) == 3
    assert {r.inputs["natGatewayId"] for r in routes} == nat_ids
    assert all(r.inputs["destinationCidrBlock"] == "0.0.0.0/0" for r in routes)


# -- control plane ------------------------------------------------------------
def test_secrets_encrypted_with_own_rotating_kms_key(dev):
    """Kubernetes secrets (DB passwords, tokens) must be envelope-encrypted with a key that rotates."""
    key = dev.one(AWS_KMS_KEY)
    assert key.inputs["enableKeyRotation"] is True
    encryption = dev.one(AWS_EKS_CLUSTER).inputs["encryptionConfig"]
    assert encryption["resources"] == ["secrets"]
    assert encryption["provider"]["keyArn"] == key.outputs["arn"]


def test_endpoint_public_only_to_named_cidrs_and_private_by_default(dev):
    """The default reaches the API from the operators' networks (the first `up` runs from outside the VPC)
    and from inside the VPC; never from the whole internet unless written out."""
    vpc_config = dev.one(AWS_EKS_CLUSTER).inputs["vpcConfig"]
    assert vpc_config["endpointPrivateAccess"] is True
    assert vpc_config["endpointPublicAccess"] is True
    assert vpc_config["publicAccessCidrs"] == ["198.51.100.0/24"]
    assert dev.of_type(AWS_VPC_SECURITY_GROUP_INGRESS_RULE) == []


def test_private_only_admits_where_up_runs_from():
    """A private-only endpoint is reachable from the networks the stack names, on 443 only, and nothing else."""
    rec = _run(
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


def test_public_endpoint_limited_to_configured_cidrs(prod):
    """A public endpoint must only admit the CIDRs the operator wrote down."""
    vpc_config = prod.one(AWS_EKS_CLUSTER).inputs["vpcConfig"]
    assert vpc_config["endpointPublicAccess"] is True
    assert vpc_config["endpointPrivateAccess"] is True
    assert vpc_config["publicAccessCidrs"] == ["203.0.113.0/24"]


@pytest.mark.parametrize(
    "fixture, types",
    [
        ("dev", ["api", "audit", "authenticator"]),
        ("prod", ["api", "audit", "authenticator", "controllerManager", "scheduler"]),
    ],
)
def test_control_plane_log_types_from_config(request, fixture, types):
    """Audit logs are what incident reviews rely on; the set is the operator's choice."""
    rec = request.getfixturevalue(fixture)
    assert rec.one(AWS_EKS_CLUSTER).inputs["enabledClusterLogTypes"] == types


def test_cluster_access_mode_and_version(dev):
    """Access entries (API) plus aws-auth keep both mechanisms usable; the creator can install charts."""
    eks = dev.one(AWS_EKS_CLUSTER).inputs
    assert eks["accessConfig"] == {
        "authenticationMode": "API_AND_CONFIG_MAP",
        "bootstrapClusterCreatorAdminPermissions": True,
    }
    assert eks["name"] == "mlp-test" and eks["version"] == "1.33"


def test_cluster_role_has_eks_cluster_policy(dev):
    """The control plane cannot manage ENIs or load balancers without AmazonEKSClusterPolicy."""
    attachments = [r for r in dev.of_type(AWS_IAM_ROLE_POLICY_ATTACHMENT) if "-cluster-" in r.name]
    assert [a.inputs["policyArn"] for a in attachments] == ["arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"]
    trust = json.loads(dev.one(AWS_IAM_ROLE, "cluster-cluster-role").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "eks.amazonaws.com"}


def test_oidc_provider_trusts_sts_for_the_cluster_issuer(dev):
    """IRSA roles (autoscaler, MLflow) can only be assumed through this provider."""
    oidc = dev.one(AWS_IAM_OPEN_ID_CONNECT_PROVIDER)
    issuer = dev.one(AWS_EKS_CLUSTER).outputs["identities"][0]["oidcs"][0]["issuer"]
    assert oidc.inputs["url"] == issuer
    assert oidc.inputs["clientIdLists"] == ["sts.amazonaws.com"]
    assert dev.stack_outputs["oidcProviderArn"] == oidc.outputs["arn"]


def test_oidc_provider_url_has_no_scheme(dev):
    """IRSA trust conditions are keyed `<issuer-without-https>:sub`; a scheme makes them never match."""
    url = dev.stack_outputs["oidcProviderUrl"]
    assert not url.startswith("https://")
    assert url.startswith("oidc.eks.us-west-2.amazonaws.com/id/")


# -- nodes --------------------------------------------------------------------
def test_node_role_policies(dev):
    """Nodes need these four managed policies to join, run the CNI, pull from ECR and be reachable by SSM."""
    attachments = [r for r in dev.of_type(AWS_IAM_ROLE_POLICY_ATTACHMENT) if "-node-" in r.name]
    node_role = dev.one(AWS_IAM_ROLE, "cluster-node-role")
    assert all(a.inputs["role"] == node_role.outputs["name"] for a in attachments)
    assert sorted(a.inputs["policyArn"].rsplit("/", 1)[1] for a in attachments) == [
        "AmazonEC2ContainerRegistryReadOnly",
        "AmazonEKSWorkerNodePolicy",
        "AmazonEKS_CNI_Policy",
        "AmazonSSMManagedInstanceCore",
    ]


def test_system_node_group_from_config():
    """The system pool's size, type, disk and AMI are the operator's to set."""
    rec = _run(
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


def test_system_node_group_placement_and_label(dev):
    """Add-ons select the system pool by label; nodes must sit in private subnets with the shared role."""
    group = dev.one(AWS_EKS_NODE_GROUP)
    assert group.inputs["labels"] == {"mlplatform.io/node-pool": "system"}
    assert group.inputs["subnetIds"] == dev.stack_outputs["privateSubnetIds"]
    assert group.inputs["nodeRoleArn"] == dev.one(AWS_IAM_ROLE, "cluster-node-role").outputs["arn"]
    assert group.inputs["clusterName"] == "mlp-test"
    assert "taints" not in group.inputs


def test_system_node_group_leaves_desired_size_to_autoscaler(dev):
    """Otherwise every `pulumi up` would undo the autoscaler's scaling."""
    assert dev.one(AWS_EKS_NODE_GROUP).ignore_changes == ["scalingConfig.desiredSize"]


def test_system_nodes_wait_for_egress_and_policies(dev):
    """Nodes launched before NAT routes or node policies exist never join, and the group fails after ~20 min."""
    group = dev.one(AWS_EKS_NODE_GROUP)
    assert len([d for d in dev.of_type(AWS_IAM_ROLE_POLICY_ATTACHMENT) if "-node-" in d.name]) == 4
    assert len([r for r in dev.of_type(AWS_EC2_ROUTE) if "private" in r.name]) == 2
    for dep in dev.of_type(AWS_IAM_ROLE_POLICY_ATTACHMENT):
        if "-node-" in dep.name:
            assert dev.depends_on(group, dep), dep
    for route in dev.of_type(AWS_EC2_ROUTE):
        if "private" in route.name:
            assert dev.depends_on(group, route), route


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
def test_kubeconfig_is_secret(dev):
    """The kubeconfig names the endpoint and CA; it must stay encrypted in state and outputs."""
    assert contains_secret(dev.stack_outputs["kubeconfig"])
    assert dev.one(K8S_PROVIDER).input_is_secret("kubeconfig")


def test_kubeconfig_uses_aws_eks_get_token(dev):
    """Tokens must come from the caller's AWS identity, for this cluster and region."""
    kubeconfig = json.loads(dev.one(K8S_PROVIDER).inputs["kubeconfig"])
    eks = dev.one(AWS_EKS_CLUSTER).outputs
    assert kubeconfig["clusters"][0]["cluster"]["server"] == eks["endpoint"]
    assert kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"] == eks["certificateAuthority"]["data"]
    exec_ = kubeconfig["users"][0]["user"]["exec"]
    assert exec_["command"] == "aws"
    assert exec_["args"][:6] == ["eks", "get-token", "--cluster-name", "mlp-test", "--region", "us-west-2"]


def test_provider_is_child_and_waits_for_system_nodes(dev):
    """Charts installed through the provider need schedulable nodes, and the provider moves with the component."""
    component = dev.one(PLATFORM_CLUSTER)
    provider = dev.one(K8S_PROVIDER)
    assert provider.parent == component.urn
    assert dev.depends_on(provider, dev.one(AWS_EKS_NODE_GROUP))


def test_region_mismatch_with_provider_fails():
    """A kubeconfig for the wrong region would point at a cluster that does not exist."""
    args = ClusterArgs(
        config=build(ClusterConfig, name="mlp-test", region="eu-west-1", public_access_cidrs=["198.51.100.0/24"]),
        system_pool=build(SystemPoolConfig),
    )
    with pytest.raises(ValueError, match=r"cluster\.region is 'eu-west-1' but the AWS provider deploys to 'us-west-2'"):
        run_program(lambda: Cluster("cluster", args), project="mlplatform", stack="dev")


# -- structure ----------------------------------------------------------------
def test_every_child_parented_and_prefixed(prod):
    """Two clusters in one stack must not collide, and the tree must show what belongs to what."""
    component = prod.one(PLATFORM_CLUSTER)
    children = [r for r in prod.resources if r is not component]
    assert children and all(r.parent == component.urn for r in children)
    assert all(r.name.startswith("cluster-") for r in children)


def test_every_taggable_resource_carries_the_tags(prod):
    """Cost and ownership reports group by these tags."""
    assert any(res.custom and res.type.startswith("aws:") and res.type not in NOT_TAGGABLE for res in prod.resources)
    for res in prod.resources:
        if res.custom and res.type.startswith("aws:") and res.type not in NOT_TAGGABLE:
            assert TAGS.items() <= res.inputs.get("tags", {}).items(), res


def test_vpc_cni_addon_enforces_network_policies(dev):
    """EKS installs the VPC CNI with its policy agent off, so every NetworkPolicy would be accepted and ignored;
    the managed add-on turns enforcement on and takes over the DaemonSet EKS installed."""
    addon = next(a for a in dev.of_type(AWS_EKS_ADDON) if a.inputs["addonName"] == "vpc-cni")
    assert json.loads(addon.inputs["configurationValues"]) == {"enableNetworkPolicy": "true"}
    assert addon.inputs["resolveConflictsOnCreate"] == "OVERWRITE"
    assert "addonVersion" not in addon.inputs  # the EKS default unless pinned


def test_vpc_cni_addon_version_is_pinned_from_config():
    rec = _run(
        build(
            ClusterConfig,
            name="mlp-test",
            public_access_cidrs=["198.51.100.0/24"],
            vpc_cni_addon_version="v1.20.4-eksbuild.1",
        )
    )
    addon = next(a for a in rec.of_type(AWS_EKS_ADDON) if a.inputs["addonName"] == "vpc-cni")
    assert addon.inputs["addonVersion"] == "v1.20.4-eksbuild.1"


def test_metrics_server_addon_serves_the_hpa_metrics(dev):
    """Model servers scale with HPAs on CPU, read from metrics.k8s.io; a new EKS cluster serves no such API."""
    addon = next(a for a in dev.of_type(AWS_EKS_ADDON) if a.inputs["addonName"] == "metrics-server")
    assert "addonVersion" not in addon.inputs
