"""The EKS cluster: its VPC, control plane, IAM, OIDC provider and system node group.

The control plane is private by default, secrets are envelope-encrypted with a
KMS key of our own, and one node role serves both the system and the GPU pool so
that aws-auth/access entries need no per-pool bookkeeping. The system pool runs
cluster add-ons (autoscaler, Prometheus, Linkerd, MLflow); GPU work goes to the
tainted pool declared in `gpu.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from mlplatform import labels
from mlplatform.platform.cluster_access import (
    declare_api_access_and_addons,
    kubeconfig_document,
    oidc_issuer,
    service_role,
)
from mlplatform.platform.cluster_config import ClusterConfig, SystemPoolConfig
from mlplatform.platform.cluster_network import az_name, subnet_cidrs

# Managed policies by name; the ARN's partition is resolved at run time so
# GovCloud regions (allowed by ClusterConfig.region) get `aws-us-gov` ARNs.
CLUSTER_POLICIES = ("AmazonEKSClusterPolicy",)
NODE_POLICIES = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
    "AmazonSSMManagedInstanceCore",
)


@dataclass
class ClusterArgs:
    config: ClusterConfig
    system_pool: SystemPoolConfig
    tags: Mapping[str, str] = field(default_factory=dict)


class Cluster(pulumi.ComponentResource):
    """A VPC and an EKS cluster with its system node group.

    Trade-offs: one NAT gateway (`singleNatGateway`, the default) is cheap but
    makes egress depend on one AZ; prod should use one per AZ. The OIDC provider
    carries no thumbprint, since AWS validates EKS issuers against its own trusted
    CAs. The Kubernetes provider waits for the system node group, so every chart
    installed through it has nodes to schedule on.
    """

    vpc_id: pulumi.Output[str]
    private_subnet_ids: pulumi.Output[list[str]]
    public_subnet_ids: pulumi.Output[list[str]]
    cluster_name: pulumi.Output[str]
    cluster_security_group_id: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str]
    node_role_arn: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    oidc_provider_url: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    provider: k8s.Provider

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:platform:Cluster", name, None, opts)
        cfg = args.config
        tags = dict(args.tags)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOptions(parent=self)
        partition = aws.get_partition_output(opts=invoke).partition
        zones = aws.get_availability_zones_output(state="available", opts=invoke).names

        vpc, public_subnets, private_subnets, egress = _declare_network(self, name, cfg, tags, zones)

        # -- control plane -------------------------------------------------
        cluster_role, cluster_attachments = service_role(
            f"{name}-cluster",
            service="eks.amazonaws.com",
            actions=["sts:AssumeRole", "sts:TagSession"],
            managed_policies=CLUSTER_POLICIES,
            partition=partition,
            tags=tags,
            opts=child,
        )

        secrets_key = aws.kms.Key(
            f"{name}-secrets-key",
            description=f"Envelope encryption of Kubernetes secrets in EKS cluster {cfg.name}",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=tags,
            opts=child,
        )

        eks = aws.eks.Cluster(
            f"{name}-eks",
            name=cfg.name,
            version=cfg.kubernetes_version,
            role_arn=cluster_role.arn,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=[s.id for s in private_subnets],
                endpoint_private_access=True,
                endpoint_public_access=cfg.endpoint_public_access,
                public_access_cidrs=cfg.public_access_cidrs if cfg.endpoint_public_access else None,
            ),
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API_AND_CONFIG_MAP",
                # Whoever runs `pulumi up` must be able to install the charts that follow.
                bootstrap_cluster_creator_admin_permissions=True,
            ),
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=secrets_key.arn),
                resources=["secrets"],
            ),
            enabled_cluster_log_types=list(cfg.control_plane_log_types),
            tags=tags,
            # Deleting the policy first would leave EKS unable to clean up its ENIs.
            opts=pulumi.ResourceOptions(parent=self, depends_on=cluster_attachments),
        )

        declare_api_access_and_addons(name, eks, cfg, tags, child)

        issuer = eks.identities.apply(oidc_issuer)
        oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=issuer,
            client_id_lists=["sts.amazonaws.com"],
            tags=tags,
            opts=child,
        )

        # -- nodes ---------------------------------------------------------
        node_role, node_attachments = service_role(
            f"{name}-node",
            service="ec2.amazonaws.com",
            actions="sts:AssumeRole",
            managed_policies=NODE_POLICIES,
            partition=partition,
            tags=tags,
            opts=child,
        )

        pool = args.system_pool
        system_nodes = aws.eks.NodeGroup(
            f"{name}-system",
            cluster_name=eks.name,
            node_role_arn=node_role.arn,
            subnet_ids=[s.id for s in private_subnets],
            version=cfg.kubernetes_version,
            ami_type=pool.ami_type,
            instance_types=list(pool.instance_types),
            disk_size=pool.disk_size_gib,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=pool.scaling.min_size,
                desired_size=pool.scaling.desired_size,
                max_size=pool.scaling.max_size,
            ),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            labels=dict(labels.SYSTEM_NODE_LABELS),
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                # Nodes without their policies or without NAT egress never join,
                # and the node group then fails after a long timeout.
                depends_on=[*node_attachments, *egress],
                # The cluster-autoscaler owns the desired size after creation.
                ignore_changes=["scalingConfig.desiredSize"],
            ),
        )

        # -- access --------------------------------------------------------
        provider_region = aws.get_region_output(opts=invoke).region
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(eks.name, eks.endpoint, eks.certificate_authority.data, provider_region).apply(
                lambda a: kubeconfig_document(a[0], a[1], a[2], cfg.region, a[3])
            )
        )
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[system_nodes]),
        )

        self.vpc_id = vpc.id
        # Consumers (the GPU pool, the database) get the subnets only once their
        # NAT routes exist: nodes launched earlier could not reach EKS or ECR.
        self.private_subnet_ids = pulumi.Output.all([s.id for s in private_subnets], *[r.id for r in egress]).apply(
            lambda a: list(a[0])
        )
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in public_subnets]).apply(list)
        self.cluster_name = eks.name
        # Managed node groups without a launch template put their nodes in this
        # group, so it is also the node security group (EFS admits NFS from it).
        self.cluster_security_group_id = eks.vpc_config.cluster_security_group_id
        # The cluster's own key, reused for EBS and EFS encryption at rest: one key
        # to rotate and audit per cluster.
        self.kms_key_arn = secrets_key.arn
        # Likewise the role ARN: a GPU node group created before the policies
        # are attached would launch nodes that cannot join.
        self.node_role_arn = pulumi.Output.all(node_role.arn, *[a.id for a in node_attachments]).apply(lambda a: a[0])
        self.oidc_provider_arn = oidc.arn
        self.oidc_provider_url = issuer.apply(lambda url: url.removeprefix("https://"))
        self.register_outputs(
            {
                "vpcId": self.vpc_id,
                "privateSubnetIds": self.private_subnet_ids,
                "publicSubnetIds": self.public_subnet_ids,
                "clusterName": self.cluster_name,
                "clusterSecurityGroupId": self.cluster_security_group_id,
                "kmsKeyArn": self.kms_key_arn,
                "nodeRoleArn": self.node_role_arn,
                "oidcProviderArn": self.oidc_provider_arn,
                "oidcProviderUrl": self.oidc_provider_url,
                "kubeconfig": self.kubeconfig,
            }
        )


class _Network(NamedTuple):
    vpc: aws.ec2.Vpc
    public_subnets: list[aws.ec2.Subnet]
    private_subnets: list[aws.ec2.Subnet]
    egress: list[pulumi.CustomResource]
    """The private subnets' routes and associations: nodes join only once their NAT egress exists."""


def _declare_network(
    parent: pulumi.Resource, name: str, cfg: ClusterConfig, tags: dict[str, str], zones: pulumi.Output[list[str]]
) -> _Network:
    """The VPC: a public and a private subnet per AZ, the internet gateway, NAT and the route tables.
    Children of the Cluster component, so their URNs are the ones they had when declared inline."""
    child = pulumi.ResourceOptions(parent=parent)
    az_count = cfg.availability_zones
    cluster_tag = {f"kubernetes.io/cluster/{cfg.name}": "shared"}
    vpc = aws.ec2.Vpc(
        f"{name}-vpc",
        cidr_block=cfg.vpc_cidr,
        enable_dns_support=True,
        # EKS nodes register by private DNS name and the private API endpoint
        # resolves only when the VPC has DNS hostnames on.
        enable_dns_hostnames=True,
        tags={**tags, "Name": f"{cfg.name}-vpc"},
        opts=child,
    )
    igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags={**tags, "Name": f"{cfg.name}-igw"}, opts=child)

    private_cidrs, public_cidrs = subnet_cidrs(cfg.vpc_cidr, az_count)
    public_subnets: list[aws.ec2.Subnet] = []
    private_subnets: list[aws.ec2.Subnet] = []
    for i in range(az_count):
        zone = zones.apply(lambda names, i=i: az_name(names, i, az_count))
        public_subnets.append(
            aws.ec2.Subnet(
                f"{name}-public-{i}",
                vpc_id=vpc.id,
                cidr_block=public_cidrs[i],
                availability_zone=zone,
                # Public subnets hold NAT gateways and internet-facing load
                # balancers only; nothing launched there gets a public IP by default.
                map_public_ip_on_launch=False,
                tags={**tags, **cluster_tag, "kubernetes.io/role/elb": "1", "Name": f"{cfg.name}-public-{i}"},
                opts=child,
            )
        )
        private_subnets.append(
            aws.ec2.Subnet(
                f"{name}-private-{i}",
                vpc_id=vpc.id,
                cidr_block=private_cidrs[i],
                availability_zone=zone,
                tags={
                    **tags,
                    **cluster_tag,
                    "kubernetes.io/role/internal-elb": "1",
                    "Name": f"{cfg.name}-private-{i}",
                },
                opts=child,
            )
        )

    public_rt = aws.ec2.RouteTable(
        f"{name}-public-rt", vpc_id=vpc.id, tags={**tags, "Name": f"{cfg.name}-public"}, opts=child
    )
    public_route = aws.ec2.Route(
        f"{name}-public-default",
        route_table_id=public_rt.id,
        destination_cidr_block="0.0.0.0/0",
        gateway_id=igw.id,
        opts=child,
    )
    for i, subnet in enumerate(public_subnets):
        aws.ec2.RouteTableAssociation(
            f"{name}-public-{i}", subnet_id=subnet.id, route_table_id=public_rt.id, opts=child
        )

    nat_count = 1 if cfg.single_nat_gateway else az_count
    nats: list[aws.ec2.NatGateway] = []
    for i in range(nat_count):
        eip = aws.ec2.Eip(f"{name}-nat-{i}", domain="vpc", tags={**tags, "Name": f"{cfg.name}-nat-{i}"}, opts=child)
        nats.append(
            aws.ec2.NatGateway(
                f"{name}-nat-{i}",
                allocation_id=eip.id,
                subnet_id=public_subnets[i].id,
                tags={**tags, "Name": f"{cfg.name}-nat-{i}"},
                # The gateway forwards to the internet only once the IGW route exists.
                opts=pulumi.ResourceOptions(parent=parent, depends_on=[public_route]),
            )
        )

    # One private route table per AZ whatever the NAT count, so switching
    # singleNatGateway only retargets routes instead of replacing tables.
    egress: list[pulumi.CustomResource] = []
    for i, subnet in enumerate(private_subnets):
        rt = aws.ec2.RouteTable(
            f"{name}-private-{i}-rt", vpc_id=vpc.id, tags={**tags, "Name": f"{cfg.name}-private-{i}"}, opts=child
        )
        route = aws.ec2.Route(
            f"{name}-private-{i}-default",
            route_table_id=rt.id,
            destination_cidr_block="0.0.0.0/0",
            nat_gateway_id=nats[i % nat_count].id,
            opts=child,
        )
        assoc = aws.ec2.RouteTableAssociation(
            f"{name}-private-{i}", subnet_id=subnet.id, route_table_id=rt.id, opts=child
        )
        egress += [route, assoc]
    return _Network(vpc, public_subnets, private_subnets, egress)
