"""MLflow's backend store: RDS Postgres (mode aws) or a single-replica Postgres StatefulSet.

The in-cluster database has no replica or point-in-time recovery; it suits dev and
clusters without RDS, not production. Both are stateful: their logical names
(`<registry>-db`, `<registry>-postgres`) must never change, and the caller passes the
protection options (`stateful`) that deletion protection asks for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random

from mlplatform import labels
from mlplatform.platform.mlflow_config import MlflowConfig
from mlplatform.security import restricted_container_security_context, restricted_pod_security_context

DB_NAME = "mlflow"
DB_USER = "mlflow"
POSTGRES_PORT = 5432
POSTGRES_ENGINE_VERSION = "17"
IN_CLUSTER_NAME = "mlflow-postgres"
# Only `-` and `_`: RDS rejects `/`, `@`, `"` and spaces, and anything URI- or
# configparser-special (`%`, `:`, `#`, `?`) would need escaping in the backend URI.
PASSWORD_SPECIALS = "-_"


@dataclass
class BackendStore:
    """Where MLflow keeps runs and the registry: the SQLAlchemy URI (a secret, it holds
    the password) and `host:port` for humans and dashboards."""

    uri: pulumi.Output[str]
    endpoint: pulumi.Output[str]


def in_cluster_selector(name: str) -> dict[str, str]:
    """The labels that select the in-cluster Postgres pod of registry `name`."""
    return {"app.kubernetes.io/name": IN_CLUSTER_NAME, "app.kubernetes.io/instance": name}


def _password(name: str, parent: pulumi.Resource) -> pulumi.Output[str]:
    password = random.RandomPassword(
        f"{name}-db-password",
        length=32,
        special=True,
        override_special=PASSWORD_SPECIALS,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return pulumi.Output.secret(password.result)


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
    password = _password(name, parent)
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


def in_cluster_backend(
    name: str,
    config: MlflowConfig,
    namespace: pulumi.Input[str],
    *,
    parent: pulumi.Resource,
    stateful: pulumi.ResourceOptions,
) -> BackendStore:
    """Postgres as a StatefulSet next to MLflow, non-root, its data on a PVC, behind a headless Service."""
    password = _password(name, parent)
    selector = in_cluster_selector(name)
    pod_labels = {**labels.k8s_labels("model-registry-db", name=IN_CLUSTER_NAME, instance=name), **selector}
    secret = k8s.core.v1.Secret(
        f"{name}-postgres",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=IN_CLUSTER_NAME, namespace=namespace, labels=pod_labels),
        type="Opaque",
        string_data={"POSTGRES_PASSWORD": password},
        opts=pulumi.ResourceOptions(parent=parent),
    )
    service = k8s.core.v1.Service(
        f"{name}-postgres",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=IN_CLUSTER_NAME, namespace=namespace, labels=pod_labels),
        spec=k8s.core.v1.ServiceSpecArgs(
            cluster_ip="None",
            selector=selector,
            ports=[k8s.core.v1.ServicePortArgs(name="postgres", port=POSTGRES_PORT, target_port="postgres")],
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    pg_isready = ["pg_isready", "-U", DB_USER, "-d", DB_NAME, "-h", "127.0.0.1"]
    k8s.apps.v1.StatefulSet(
        f"{name}-postgres",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=IN_CLUSTER_NAME, namespace=namespace, labels=pod_labels),
        spec=k8s.apps.v1.StatefulSetSpecArgs(
            service_name=service.metadata.name,
            replicas=1,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=pod_labels),
                spec=k8s.core.v1.PodSpecArgs(
                    automount_service_account_token=False,
                    # 999 is the postgres user of the official image; fsGroup makes the volume its own.
                    security_context=restricted_pod_security_context(999),
                    containers=[
                        k8s.core.v1.ContainerArgs(
                            name="postgres",
                            image=config.postgres_image,
                            ports=[k8s.core.v1.ContainerPortArgs(name="postgres", container_port=POSTGRES_PORT)],
                            env=[
                                k8s.core.v1.EnvVarArgs(name="POSTGRES_USER", value=DB_USER),
                                k8s.core.v1.EnvVarArgs(name="POSTGRES_DB", value=DB_NAME),
                                k8s.core.v1.EnvVarArgs(
                                    name="POSTGRES_PASSWORD",
                                    value_from=k8s.core.v1.EnvVarSourceArgs(
                                        secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(
                                            name=secret.metadata.name, key="POSTGRES_PASSWORD"
                                        )
                                    ),
                                ),
                                # A subdirectory: the volume's root holds lost+found, which initdb refuses.
                                k8s.core.v1.EnvVarArgs(name="PGDATA", value="/var/lib/postgresql/data/pgdata"),
                            ],
                            readiness_probe=k8s.core.v1.ProbeArgs(
                                exec_=k8s.core.v1.ExecActionArgs(command=pg_isready), period_seconds=10
                            ),
                            liveness_probe=k8s.core.v1.ProbeArgs(
                                exec_=k8s.core.v1.ExecActionArgs(command=pg_isready),
                                initial_delay_seconds=30,
                                period_seconds=20,
                                failure_threshold=6,
                            ),
                            resources=k8s.core.v1.ResourceRequirementsArgs(
                                requests={"cpu": "100m", "memory": "256Mi"},
                                limits={"cpu": "1", "memory": "1Gi"},
                            ),
                            security_context=restricted_container_security_context(),
                            volume_mounts=[
                                k8s.core.v1.VolumeMountArgs(name="data", mount_path="/var/lib/postgresql/data"),
                                k8s.core.v1.VolumeMountArgs(name="run", mount_path="/var/run/postgresql"),
                                k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
                            ],
                        )
                    ],
                    volumes=[
                        k8s.core.v1.VolumeArgs(name="run", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs()),
                        k8s.core.v1.VolumeArgs(name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs()),
                    ],
                ),
            ),
            volume_claim_templates=[
                k8s.core.v1.PersistentVolumeClaimArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(name="data", labels=pod_labels),
                    spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                        access_modes=["ReadWriteOnce"],
                        resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                            requests={"storage": f"{config.postgres_storage_gib}Gi"}
                        ),
                    ),
                )
            ],
        ),
        opts=stateful,
    )
    uri = pulumi.Output.format(
        "postgresql+psycopg2://{0}:{1}@{2}.{3}.svc.cluster.local:{4}/{5}",
        DB_USER,
        password,
        service.metadata.name,
        service.metadata.namespace,
        POSTGRES_PORT,
        DB_NAME,
    )
    endpoint = pulumi.Output.format(
        "{0}.{1}.svc.cluster.local:{2}", service.metadata.name, service.metadata.namespace, POSTGRES_PORT
    )
    return BackendStore(uri=pulumi.Output.secret(uri), endpoint=endpoint)
