"""Cluster: the VPC, its subnets per AZ and the NAT egress (the rest of the component is in `test_cluster.py`)."""

from __future__ import annotations

import ipaddress

import pytest

from mlplatform.platform.cluster import subnet_cidrs
from mlplatform.tools.offline.engine import Recording
from tests.support.types import (
    AWS_EC2_EIP,
    AWS_EC2_NAT_GATEWAY,
    AWS_EC2_ROUTE,
    AWS_EC2_SUBNET,
    AWS_EC2_VPC,
)


def _subnets(rec: Recording, kind: str):
    return sorted((r for r in rec.of_type(AWS_EC2_SUBNET) if f"-{kind}-" in r.name), key=lambda r: r.name)


@pytest.mark.parametrize("fixture, azs", [("cluster_dev", 2), ("cluster_prod", 3)])
def test_one_public_and_one_private_subnet_per_az(request, fixture, azs):
    """Load balancers and nodes must be spread over exactly the AZs the config asks for."""
    rec = request.getfixturevalue(fixture)
    assert len(rec.of_type(AWS_EC2_SUBNET)) == 2 * azs
    assert len(_subnets(rec, "public")) == azs
    assert len(_subnets(rec, "private")) == azs


@pytest.mark.parametrize("fixture, zones", [("cluster_dev", ["a", "b"]), ("cluster_prod", ["a", "b", "c"])])
def test_subnet_zones_come_from_the_provider(request, fixture, zones):
    """AZ names differ per account and region, so they must come from the provider, one distinct AZ per pair."""
    rec = request.getfixturevalue(fixture)
    expected = [f"us-west-2{z}" for z in zones]
    for kind in ("public", "private"):
        assert [s.inputs["availabilityZone"] for s in _subnets(rec, kind)] == expected


def test_subnet_cidrs_inside_vpc_and_disjoint(cluster_prod):
    """Overlapping or out-of-VPC subnet CIDRs are rejected by AWS at apply time."""
    # IPv4 both: an EKS VPC's primary CIDR block and its subnets' are IPv4.
    vpc = ipaddress.IPv4Network(cluster_prod.one(AWS_EC2_VPC).inputs["cidrBlock"])
    nets = [ipaddress.IPv4Network(s.inputs["cidrBlock"]) for s in cluster_prod.of_type(AWS_EC2_SUBNET)]
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


def test_subnets_tagged_for_load_balancer_discovery(cluster_dev):
    """The AWS load balancer controller picks subnets by these tags; without them Services get no LB."""
    assert (len(_subnets(cluster_dev, "public")), len(_subnets(cluster_dev, "private"))) == (2, 2)
    for subnet in _subnets(cluster_dev, "public"):
        assert subnet.inputs["tags"]["kubernetes.io/role/elb"] == "1"
        assert subnet.inputs["tags"]["kubernetes.io/cluster/mlp-test"] == "shared"
    for subnet in _subnets(cluster_dev, "private"):
        assert subnet.inputs["tags"]["kubernetes.io/role/internal-elb"] == "1"
        assert subnet.inputs["tags"]["kubernetes.io/cluster/mlp-test"] == "shared"


def test_vpc_has_dns_support_and_hostnames(cluster_dev):
    """Nodes register by private DNS name and the private endpoint resolves only with both on."""
    vpc = cluster_dev.one(AWS_EC2_VPC).inputs
    assert vpc["enableDnsSupport"] is True and vpc["enableDnsHostnames"] is True


@pytest.mark.parametrize("fixture, count", [("cluster_dev", 1), ("cluster_prod", 3)])
def test_nat_gateway_count(request, fixture, count):
    """singleNatGateway trades AZ-resilient egress for cost: one NAT in dev, one per AZ in prod."""
    rec = request.getfixturevalue(fixture)
    assert len(rec.of_type(AWS_EC2_NAT_GATEWAY)) == count
    assert len(rec.of_type(AWS_EC2_EIP)) == count


def test_every_private_subnet_routes_through_a_nat(cluster_prod):
    """Nodes in private subnets need NAT egress to pull images and join the cluster."""
    nat_ids = {n.id for n in cluster_prod.of_type(AWS_EC2_NAT_GATEWAY)}
    routes = [r for r in cluster_prod.of_type(AWS_EC2_ROUTE) if "private" in r.name]
    assert len(routes) == 3
    assert {r.inputs["natGatewayId"] for r in routes} == nat_ids
    assert all(r.inputs["destinationCidrBlock"] == "0.0.0.0/0" for r in routes)
