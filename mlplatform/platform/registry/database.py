"""MLflow's backend store in the cluster: a single-replica Postgres StatefulSet, and the
database password either backend uses (the RDS one is in `rds`, which needs pulumi_aws).

The in-cluster database has no replica or point-in-time recovery; it suits dev and
clusters without RDS, not production. It is stateful: its logical name
(`<registry>-postgres`) must never change, and the caller passes the protection
options (`stateful`) that deletion protection asks for.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from mlplatform import labels
from mlplatform.platform.registry_config import MlflowConfig
from mlplatform.security import restricted_container_security_context, restricted_pod_security_context

DB_NAME = "mlflow"
DB_USER = "mlflow"
POSTGRES_PORT = 5432
IN_CLUSTER_NAME = "mlflow-postgres"
# Generated passwords: only `-` and `_`. RDS rejects `/`, `@`, `"` and spaces, and anything URI- or
# configparser-special (`%`, `:`, `#`, `?`) would need escaping in the backend URI
# (`registry_config` holds a brought password to the same rule).
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


def database_password(name: str, config: MlflowConfig, parent: pulumi.Resource) -> pulumi.Output[str]:
    """The password the stack brings (`mlflow.databasePassword`), else a generated one, as a secret."""
    if config.database_password is not None:
        return pulumi.Output.secret(config.database_password)
    # pulumi_random is loaded only here: a stack that brings its password must run without the random plugin.
    from mlplatform.platform.passwords import generated_password

    return generated_password(f"{name}-db-password", length=32, special_characters=PASSWORD_SPECIALS, parent=parent)


def in_cluster_backend(
    name: str,
    config: MlflowConfig,
    namespace: pulumi.Input[str],
    *,
    storage_class: pulumi.Input[str] | None,
    parent: pulumi.Resource,
    stateful: pulumi.ResourceOptions,
) -> BackendStore:
    """Postgres as a StatefulSet next to MLflow, non-root, its data on a PVC, behind a headless Service.

    The claim names the platform's ReadWriteOnce class (None: the cluster's default class)."""
    password = database_password(name, config, parent)
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
                        storage_class_name=storage_class,
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
