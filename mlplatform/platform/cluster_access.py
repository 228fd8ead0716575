"""How people, AWS services and day-one add-ons reach the EKS cluster: the kubeconfig, the OIDC
issuer IRSA trusts, the service roles, the private endpoint's ingress rules and the add-ons.

Split from `cluster.py`, which declares the VPC, control plane and nodes and calls
these; every resource here is still a child of the Cluster component, under the
same names, so no URN changes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from mlplatform.platform.cluster_config import ClusterConfig


def kubeconfig_document(cluster_name: str, endpoint: str, ca_data: str, region: str, provider_region: str) -> str:
    if provider_region != region:
        raise ValueError(
            f"cluster.region is {region!r} but the AWS provider deploys to {provider_region!r}; "
            "set aws:region to the same region"
        )
    user = f"{cluster_name}-aws"
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": cluster_name, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}
            ],
            "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": user}}],
            "current-context": cluster_name,
            "users": [
                {
                    "name": user,
                    "user": {
                        # Short-lived tokens from the caller's AWS identity: no
                        # long-lived credential is ever written into the kubeconfig.
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": [
                                "eks",
                                "get-token",
                                "--cluster-name",
                                cluster_name,
                                "--region",
                                region,
                                "--output",
                                "json",
                            ],
                        }
                    },
                }
            ],
        },
        indent=2,
    )


def oidc_issuer(identities: Sequence[aws.eks.outputs.ClusterIdentity] | None) -> str:
    """The cluster's OIDC issuer URL, which IRSA trusts. EKS gives every cluster one; the SDK types it optional."""
    oidcs = identities[0].oidcs if identities else None
    issuer = oidcs[0].issuer if oidcs else None
    if not issuer:
        raise ValueError(
            f"EKS returned the cluster without an OIDC issuer (identities: {identities!r}); IRSA needs one"
        )
    return issuer


def service_role(
    prefix: str,
    *,
    service: str,
    actions: str | list[str],
    managed_policies: Sequence[str],
    partition: pulumi.Input[str],
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> tuple[aws.iam.Role, list[aws.iam.RolePolicyAttachment]]:
    """A role that the AWS `service` assumes, with AWS-managed policies attached by name.

    Resources are named `<prefix>-role` and `<prefix>-<policy>`.
    """
    role = aws.iam.Role(
        f"{prefix}-role",
        assume_role_policy=pulumi.Output.json_dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": actions}],
            }
        ),
        tags=tags,
        opts=opts,
    )
    attachments = [
        aws.iam.RolePolicyAttachment(
            f"{prefix}-{policy}",
            role=role.name,
            policy_arn=pulumi.Output.concat("arn:", partition, ":iam::aws:policy/", policy),
            opts=opts,
        )
        for policy in managed_policies
    ]
    return role, attachments


def declare_api_access_and_addons(
    name: str, eks: aws.eks.Cluster, cfg: ClusterConfig, tags: dict[str, str], child: pulumi.ResourceOptions
) -> None:
    """The private endpoint's ingress rules and the add-ons every cluster needs on day one (children of the Cluster)."""
    # The private endpoint's ENIs carry the cluster security group, which admits only the
    # cluster itself: a runner or VPN client elsewhere in the VPC needs its network let in.
    for index, cidr in enumerate(cfg.private_access_cidrs):
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-api-from-{index}",
            security_group_id=eks.vpc_config.cluster_security_group_id,
            description=f"Kubernetes API (private endpoint) from {cidr}: pulumi up and CI",
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            cidr_ipv4=cidr if ":" not in cidr else None,
            cidr_ipv6=cidr if ":" in cidr else None,
            tags=tags,
            opts=child,
        )

    # EKS installs the VPC CNI unmanaged and with its network policy agent off: every
    # NetworkPolicy the platform declares would then be accepted and ignored. The managed
    # add-on takes the existing DaemonSet over (OVERWRITE) with enforcement on.
    aws.eks.Addon(
        f"{name}-vpc-cni",
        cluster_name=eks.name,
        addon_name="vpc-cni",
        addon_version=cfg.vpc_cni_addon_version,
        configuration_values=json.dumps({"enableNetworkPolicy": "true"}),
        resolve_conflicts_on_create="OVERWRITE",
        resolve_conflicts_on_update="OVERWRITE",
        tags=tags,
        opts=child,
    )

    # HPAs scale on metrics.k8s.io, which nothing serves on a new EKS cluster; EKS ships
    # metrics-server as an add-on (community add-ons), pinned like the others. It runs on
    # the system nodes, which the node group below creates, so EKS waits for them.
    aws.eks.Addon(
        f"{name}-metrics-server",
        cluster_name=eks.name,
        addon_name="metrics-server",
        addon_version=cfg.metrics_server_addon_version,
        resolve_conflicts_on_create="OVERWRITE",
        tags=tags,
        opts=child,
    )
