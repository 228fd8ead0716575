"""The cluster VPC's address plan: which CIDR each subnet gets and which AZ it lands in.

Pure functions, split from `cluster.py` (which declares the VPC with them) so the
plan can be read and tested without the AWS SDK's resources.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence


def subnet_cidrs(vpc_cidr: str, az_count: int) -> tuple[list[str], list[str]]:
    """Private and public subnet CIDRs, one of each per AZ.

    The VPC is cut into eighths: the first four hold one large private subnet per
    AZ (the VPC CNI gives every pod an address from these), the fifth is cut into
    small public subnets that only hold NAT gateways and load balancers, and the
    rest is left free. Each subnet's CIDR depends only on its AZ index, so
    raising `availabilityZones` adds subnets without renumbering (and so
    replacing) existing ones.
    """
    if not 1 <= az_count <= 4:
        raise ValueError(f"availabilityZones must be between 1 and 4, got {az_count}")
    vpc = ipaddress.ip_network(vpc_cidr, strict=True)
    eighths = list(vpc.subnets(prefixlen_diff=3))
    private = [str(eighths[i]) for i in range(az_count)]
    public_block = list(eighths[4].subnets(prefixlen_diff=3))
    public = [str(public_block[i]) for i in range(az_count)]
    return private, public


def az_name(names: Sequence[str], index: int, wanted: int) -> str:
    if len(names) < wanted:
        raise ValueError(
            f"cluster.availabilityZones is {wanted} but the region has only {len(names)} available AZs: {list(names)}"
        )
    return names[index]
