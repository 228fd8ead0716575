"""MLflow's backend store in mode aws: a private, encrypted RDS Postgres.

Stateful: its logical name (`<registry>-db`) must never change, and the caller
passes the protection options (`stateful`) that deletion protection asks for.
Kept apart from `database` because it needs pulumi_aws, which mode existing
must never load (the component imports this module only for `backend: rds`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_aws as aws

from mlplatform.platform.registry.database import DB_NAME, DB_USER, POSTGRES_PORT, BackendStore, database_password
from mlplatform.platform.registry_config import MlflowConfig

POSTGRES_ENGINE_VERSION = "17"


def rds_backend(
    name: str,
    config: MlflowConfig,
    *,
    vpc_id: pulumi.Input[str],
    vpc_cidr: str,
    private_subnet_ids: pulumi.Input[Sequence[str]],
    tags: Mapping[str, str],
    parent: pulumi.Resource,
    stateful: pulumi.ResourceOptions,
) -> BackendStore:
    """A private, encrypted RDS Postgres in the private subnets, reachable on 5432 from the VPC only."""
    password = database_password(name, config, parent)
    security_group = aws.ec2.SecurityGroup(
        f"{name}-db",
        description="MLflow Postgres: 5432 from inside the VPC only.",
        vpc_id=vpc_id,
        ingress=[
            aws.ec2.SecurityGroupIngressArgs(
                description="Postgres from the VPC",
                protocol="tcp",
                from_port=POSTGRES_PORT,
                to_port=POSTGRES_PORT,
                cidr_blocks=[vpc_cidr],
            )
        ],
        # A database initiates no connections; replies to inbound ones are allowed statefully.
        egress=[],
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    subnet_group = aws.rds.SubnetGroup(
        f"{name}-db",
        description="MLflow Postgres in the private subnets.",
        subnet_ids=private_subnet_ids,
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    # Snapshot identifiers are account-wide: borrow the subnet group's auto-generated
    # (randomly suffixed) name so two stacks never collide.
    final_snapshot = pulumi.Output.concat(subnet_group.name, "-final") if config.deletion_protection else None
    database = aws.rds.Instance(
        f"{name}-db",
        engine="postgres",
        # A major version only: RDS picks the current minor and upgrades it in the maintenance window.
        engine_version=POSTGRES_ENGINE_VERSION,
        auto_minor_version_upgrade=True,
        instance_class=config.rds_instance_class,
        allocated_storage=config.rds_allocated_storage_gib,
        storage_type="gp3",
        storage_encrypted=True,
        db_name=DB_NAME,
        username=DB_USER,
        password=password,
        port=POSTGRES_PORT,
        db_subnet_group_name=subnet_group.name,
        vpc_security_group_ids=[security_group.id],
        publicly_accessible=False,
        multi_az=config.rds_multi_az,
        deletion_protection=config.deletion_protection,
        backup_retention_period=7,
        copy_tags_to_snapshot=True,
        skip_final_snapshot=not config.deletion_protection,
        final_snapshot_identifier=final_snapshot,
        tags=dict(tags),
        opts=stateful,
    )
    # RDS Postgres 15+ enforces TLS (rds.force_ssl); say so rather than rely on negotiation.
    uri = pulumi.Output.format(
        "postgresql+psycopg2://{0}:{1}@{2}:{3}/{4}?sslmode=require",
        DB_USER,
        password,
        database.address,
        database.port,
        DB_NAME,
    )
    endpoint = pulumi.Output.concat(database.address, ":", database.port.apply(str))
    return BackendStore(uri=pulumi.Output.secret(uri), endpoint=endpoint)
