"""The MLflow server: its backend Secret, ServiceAccount, Deployment and ClusterIP Service.

Image: the official `ghcr.io/mlflow/mlflow:<version>` image installs only core
MLflow (no `psycopg2`, no `boto3`, see mlflow/mlflow docker/README.md), so it cannot
reach Postgres or S3. The `-full` variant (`ghcr.io/mlflow/mlflow:<version>-full`,
published from 3.9.0) carries both. We use whatever `mlflow.image` names, never
`pip install` at start-up (a read-only root filesystem forbids it, and start-up
would depend on PyPI); the component warns when the core image is configured.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from mlplatform import labels
from mlplatform.platform.registry_config import MlflowConfig
from mlplatform.scheduling import spread_constraints
from mlplatform.security import restricted_container_security_context, restricted_pod_security_context, scratch_dir

PORT = 5000
SERVICE_NAME = "mlflow"
SERVICE_ACCOUNT = "mlflow"
BACKEND_URI_KEY = "MLFLOW_BACKEND_STORE_URI"
BACKEND_URI_DIR = "/etc/mlflow/backend"
BACKEND_URI_FILE_NAME = "backend-store-uri"
BACKEND_URI_FILE = f"{BACKEND_URI_DIR}/{BACKEND_URI_FILE_NAME}"
BACKEND_URI_FILE_ENV = "MLFLOW_BACKEND_STORE_URI_FILE"
# The backend URI holds the database password. MLflow 3.15.1 has no option to read it
# from a file: `mlflow server` takes `--backend-store-uri` or the MLFLOW_BACKEND_STORE_URI
# variable (click's envvar), and hands it to its workers in the environment anyway
# (server._run_server). So the Secret is mounted as a file and this wrapper exports it
# just before exec'ing the server:
# - not a `secretKeyRef` env var: that would show in the pod spec as a reference and
#   put the value in the container's declared environment;
# - not `--backend-store-uri "$(cat ...)"`: argv is readable by every process in the
#   container through /proc/<pid>/cmdline, the environment only by the same uid.
# `set -e` stops the container if the file cannot be read, rather than start MLflow
# on its default local store. The pod stays non-root: the file is group-readable
# through the pod's fsGroup. "$@" carries the server's arguments.
START_FROM_FILE = (
    "set -eu\n"
    f'{BACKEND_URI_KEY}="$(cat "${BACKEND_URI_FILE_ENV}")"\n'
    f"export {BACKEND_URI_KEY}\n"
    'exec mlflow server "$@"\n'
)
CORE_IMAGE = re.compile(r"^ghcr\.io/mlflow/mlflow:v?[0-9][0-9.]*$")


@dataclass
class ServerIdentity:
    """The labels of the server's pods and the selector its Service (and policies) use."""

    selector: dict[str, str]
    pod_labels: dict[str, str]


def server_identity(name: str) -> ServerIdentity:
    selector = {"app.kubernetes.io/name": SERVICE_NAME, "app.kubernetes.io/instance": name}
    pod_labels = {**labels.k8s_labels("model-registry", name=SERVICE_NAME, instance=name), **selector}
    return ServerIdentity(selector=selector, pod_labels=pod_labels)


def service_account(
    name: str,
    namespace: pulumi.Input[str],
    identity: ServerIdentity,
    role_arn: pulumi.Input[str] | None,
    *,
    parent: pulumi.Resource,
) -> k8s.core.v1.ServiceAccount:
    """The server's identity; in mode aws it carries the IRSA role that opens the bucket."""
    return k8s.core.v1.ServiceAccount(
        f"{name}-service-account",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=SERVICE_ACCOUNT,
            namespace=namespace,
            labels=identity.pod_labels,
            annotations={"eks.amazonaws.com/role-arn": role_arn} if role_arn is not None else None,
        ),
        # MLflow never calls the Kubernetes API; the IRSA webhook projects its own token.
        automount_service_account_token=False,
        opts=pulumi.ResourceOptions(parent=parent),
    )


def backend_secret(
    name: str,
    namespace: pulumi.Input[str],
    identity: ServerIdentity,
    backend_store_uri: pulumi.Input[str],
    *,
    parent: pulumi.Resource,
) -> k8s.core.v1.Secret:
    return k8s.core.v1.Secret(
        f"{name}-backend",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=f"{SERVICE_NAME}-backend", namespace=namespace, labels=identity.pod_labels
        ),
        type="Opaque",
        string_data={BACKEND_URI_KEY: backend_store_uri},
        opts=pulumi.ResourceOptions(parent=parent),
    )


def server_deployment(
    name: str,
    config: MlflowConfig,
    namespace: pulumi.Input[str],
    identity: ServerIdentity,
    *,
    artifact_root: pulumi.Input[str],
    secret: k8s.core.v1.Secret,
    account: k8s.core.v1.ServiceAccount,
    external_store: bool,
    depends_on: Sequence[pulumi.Resource],
    parent: pulumi.Resource,
) -> k8s.apps.v1.Deployment:
    """`mlflow server` proxying artifacts, non-root with a read-only root filesystem.

    `depends_on` holds what the first pod needs in place: the IRSA policy (the first
    upload must not race its attachment) and the mesh (a pod admitted before Linkerd's
    injector exists would run without a proxy)."""
    env = [
        # The path only; the URI itself never appears in the pod spec.
        k8s.core.v1.EnvVarArgs(name=BACKEND_URI_FILE_ENV, value=BACKEND_URI_FILE),
        # The image has no home directory for an arbitrary uid; point HOME at a writable volume.
        k8s.core.v1.EnvVarArgs(name="HOME", value="/home/mlflow"),
    ]
    # An S3-compatible store outside AWS (mode existing). In mode aws the pod's
    # only credentials are the IRSA role's; static keys would shadow it.
    if external_store and config.s3_endpoint_url:
        env.append(k8s.core.v1.EnvVarArgs(name="MLFLOW_S3_ENDPOINT_URL", value=config.s3_endpoint_url))
    if external_store and config.s3_credentials_secret:
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            env.append(
                k8s.core.v1.EnvVarArgs(
                    name=key,
                    value_from=k8s.core.v1.EnvVarSourceArgs(
                        secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=config.s3_credentials_secret, key=key)
                    ),
                )
            )

    server_args = pulumi.Output.all(pulumi.Output.from_input(namespace), artifact_root).apply(
        lambda values: [
            "--host", "0.0.0.0",
            "--port", str(PORT),
            "--workers", "2",
            "--serve-artifacts",
            "--artifacts-destination", values[1],
            "--allowed-hosts", ",".join(allowed_hosts(values[0])),
        ]
    )  # fmt: skip
    health = k8s.core.v1.HTTPGetActionArgs(path="/health", port="http")
    return k8s.apps.v1.Deployment(
        f"{name}-server",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=SERVICE_NAME, namespace=namespace, labels=identity.pod_labels),
        spec=k8s.apps.v1.DeploymentSpecArgs(
            replicas=config.replicas,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=identity.selector),
            strategy=k8s.apps.v1.DeploymentStrategyArgs(
                type="RollingUpdate",
                rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_surge=1, max_unavailable=0),
            ),
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=identity.pod_labels),
                spec=k8s.core.v1.PodSpecArgs(
                    service_account_name=account.metadata.name,
                    automount_service_account_token=False,
                    security_context=restricted_pod_security_context(1000),
                    topology_spread_constraints=spread_constraints(identity.selector) if config.replicas > 1 else None,
                    containers=[
                        k8s.core.v1.ContainerArgs(
                            name="mlflow",
                            image=config.image,
                            command=["/bin/sh", "-c", START_FROM_FILE, "mlflow-server"],
                            args=server_args,
                            ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=PORT)],
                            env=env,
                            # First start runs the schema migrations; give it minutes, not seconds.
                            startup_probe=k8s.core.v1.ProbeArgs(
                                http_get=health, period_seconds=10, failure_threshold=30
                            ),
                            readiness_probe=k8s.core.v1.ProbeArgs(
                                http_get=health, period_seconds=10, timeout_seconds=5
                            ),
                            liveness_probe=k8s.core.v1.ProbeArgs(
                                http_get=health, period_seconds=20, timeout_seconds=5, failure_threshold=3
                            ),
                            resources=k8s.core.v1.ResourceRequirementsArgs(
                                requests={"cpu": "250m", "memory": "512Mi", **config.scratch.requests()},
                                limits={"cpu": "1", "memory": "2Gi", **config.scratch.limits()},
                            ),
                            security_context=restricted_container_security_context(),
                            volume_mounts=[
                                k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
                                k8s.core.v1.VolumeMountArgs(name="home", mount_path="/home/mlflow"),
                                k8s.core.v1.VolumeMountArgs(name="backend", mount_path=BACKEND_URI_DIR, read_only=True),
                            ],
                        )
                    ],
                    volumes=[
                        k8s.core.v1.VolumeArgs(name="tmp", empty_dir=scratch_dir(config.scratch)),
                        k8s.core.v1.VolumeArgs(name="home", empty_dir=scratch_dir(config.scratch)),
                        k8s.core.v1.VolumeArgs(
                            name="backend",
                            secret=k8s.core.v1.SecretVolumeSourceArgs(
                                secret_name=secret.metadata.name,
                                items=[k8s.core.v1.KeyToPathArgs(key=BACKEND_URI_KEY, path=BACKEND_URI_FILE_NAME)],
                                # Owner root, group the pod's fsGroup: readable by the server's uid, no one else.
                                default_mode=0o440,
                            ),
                        ),
                    ],
                ),
            ),
        ),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )


def disruption_budget(
    name: str,
    config: MlflowConfig,
    namespace: pulumi.Input[str],
    identity: ServerIdentity,
    *,
    parent: pulumi.Resource,
) -> k8s.policy.v1.PodDisruptionBudget | None:
    """With more than one replica, a node drain evicts one at a time; with one, a PDB would only block drains."""
    if config.replicas < 2:
        return None
    return k8s.policy.v1.PodDisruptionBudget(
        f"{name}-pdb",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=SERVICE_NAME, namespace=namespace, labels=identity.pod_labels),
        spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
            max_unavailable=1,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=identity.selector),
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def cluster_ip_service(
    name: str, namespace: pulumi.Input[str], identity: ServerIdentity, *, parent: pulumi.Resource
) -> k8s.core.v1.Service:
    """In-cluster only: no LoadBalancer, NodePort or Ingress reaches the registry."""
    return k8s.core.v1.Service(
        f"{name}-service",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=SERVICE_NAME, namespace=namespace, labels=identity.pod_labels),
        spec=k8s.core.v1.ServiceSpecArgs(
            type="ClusterIP",
            selector=identity.selector,
            ports=[
                k8s.core.v1.ServicePortArgs(
                    name="http", port=PORT, target_port="http", protocol="TCP", app_protocol="http"
                )
            ],
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def allowed_hosts(namespace: str) -> list[str]:
    """Host headers MLflow accepts (3.5+ rejects others to stop DNS rebinding):
    the Service's in-cluster names, with and without the port, and localhost for
    `kubectl port-forward`. `/health` is exempt, so kubelet probes by pod IP pass."""
    names = [SERVICE_NAME, f"{SERVICE_NAME}.{namespace}", f"{SERVICE_NAME}.{namespace}.svc"]
    names.append(f"{SERVICE_NAME}.{namespace}.svc.cluster.local")
    names.append("localhost")
    return [host for name in names for host in (name, f"{name}:{PORT}")]
