"""The MLflow tracking server and model registry: Postgres backend store, S3 artifacts.

The server proxies artifacts (`--serve-artifacts`), so training Jobs and model
servers talk only to MLflow over HTTP and need no S3 credentials; the MLflow pod
is the one identity with bucket access (IRSA in mode aws, a named Secret for an
S3-compatible store in mode existing).

Image: the official `ghcr.io/mlflow/mlflow:<version>` image installs only core
MLflow (no `psycopg2`, no `boto3`, see mlflow/mlflow docker/README.md), so it cannot
reach Postgres or S3. The `-full` variant (`ghcr.io/mlflow/mlflow:<version>-full`,
published from 3.9.0) carries both. We use whatever `mlflow.image` names, never
`pip install` at start-up (a read-only root filesystem forbids it, and start-up
would depend on PyPI), and warn when the core image is configured.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random

from mlplatform import labels
from mlplatform.platform.config import MlflowConfig
from mlplatform.platform.iam import irsa_trust_policy
from mlplatform.security import restricted_container_security_context, restricted_pod_security_context

PORT = 5000
SERVICE_NAME = "mlflow"
SERVICE_ACCOUNT = "mlflow"
DB_NAME = "mlflow"
DB_USER = "mlflow"
POSTGRES_PORT = 5432
POSTGRES_ENGINE_VERSION = "17"
BACKEND_URI_KEY = "MLFLOW_BACKEND_STORE_URI"
ARTIFACTS_PREFIX = "artifacts"
# Only `-` and `_`: RDS rejects `/`, `@`, `"` and spaces, and anything URI- or
# configparser-special (`%`, `:`, `#`, `?`) would need escaping in the backend URI.
PASSWORD_SPECIALS = "-_"
CORE_IMAGE = re.compile(r"^ghcr\.io/mlflow/mlflow:v?[0-9][0-9.]*$")


@dataclass
class AwsRegistryInfra:
    """What mode aws provides: the VPC for the database, the OIDC provider for IRSA."""

    vpc_id: pulumi.Input[str]
    vpc_cidr: str
    private_subnet_ids: pulumi.Input[Sequence[str]]
    oidc_provider_arn: pulumi.Input[str]
    oidc_provider_url: pulumi.Input[str]  # without https://


@dataclass
class ModelRegistryArgs:
    config: MlflowConfig
    namespace: pulumi.Input[str]
    aws: AwsRegistryInfra | None
    tags: Mapping[str, str]
    # Resources the MLflow pods must wait for: the mesh, since the namespace is meshed and a
    # pod admitted before Linkerd's injector exists would run without a proxy (no mTLS).
    # A component's own depends_on does not reach its children, so the Deployment takes it.
    wait_for: Sequence[pulumi.Resource] = ()


class ModelRegistry(pulumi.ComponentResource):
    """MLflow behind a ClusterIP Service named `mlflow`, reachable only in-cluster.

    Backend: RDS Postgres (mode aws, `backend: rds`) or a single-replica Postgres
    StatefulSet (`backend: in-cluster`). The in-cluster database has no replica or
    point-in-time recovery; it suits dev and clusters without RDS, not production.
    Artifacts: a private, versioned S3 bucket created here (mode aws), or an
    existing S3-compatible bucket (mode existing).
    """

    tracking_uri: pulumi.Output[str]
    backend_store_uri: pulumi.Output[str]
    artifact_root: pulumi.Output[str]
    bucket_name: pulumi.Output[str] | None = None
    database_endpoint: pulumi.Output[str]
    deployment: k8s.apps.v1.Deployment
    service: k8s.core.v1.Service

    def __init__(self, name: str, args: ModelRegistryArgs, opts: pulumi.ResourceOptions | None = None):
        config = args.config
        # Checked before anything is registered; PlatformConfig rejects the same combinations.
        if config.backend == "rds" and args.aws is None:
            raise ValueError("mlflow.backend 'rds' needs cluster.mode 'aws'; use 'in-cluster' with an existing cluster")
        if args.aws is None and not config.artifact_bucket:
            raise ValueError("mlflow.artifactBucket is required when no AWS infrastructure is created")
        super().__init__("mlplatform:platform:ModelRegistry", name, None, opts)
        if CORE_IMAGE.match(config.image):
            pulumi.log.warn(
                f"mlflow.image {config.image} is the core MLflow image without psycopg2 and boto3; "
                f"the server cannot reach Postgres or S3. Use {config.image}-full.",
                resource=self,
            )

        namespace = args.namespace
        tags = dict(args.tags)
        selector = {"app.kubernetes.io/name": SERVICE_NAME, "app.kubernetes.io/instance": name}
        pod_labels = {**labels.k8s_labels("model-registry", name=SERVICE_NAME, instance=name), **selector}

        role_policy: aws.iam.RolePolicy | None = None
        role_arn: pulumi.Output[str] | None = None
        if args.aws is not None:
            bucket = self._artifact_bucket(name, config, tags)
            self.bucket_name = bucket.bucket
            self.artifact_root = pulumi.Output.concat("s3://", bucket.bucket, f"/{ARTIFACTS_PREFIX}")
            role, role_policy = self._irsa_role(name, args.aws, namespace, bucket, tags)
            role_arn = role.arn
        else:
            self.artifact_root = pulumi.Output.from_input(f"s3://{config.artifact_bucket}/{ARTIFACTS_PREFIX}")

        if config.backend == "rds" and args.aws is not None:
            self.backend_store_uri, self.database_endpoint = self._rds_backend(name, config, args.aws, tags)
        else:
            self.backend_store_uri, self.database_endpoint = self._in_cluster_backend(name, config, namespace)

        backend_secret = k8s.core.v1.Secret(
            f"{name}-backend",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=f"{SERVICE_NAME}-backend", namespace=namespace, labels=pod_labels
            ),
            type="Opaque",
            string_data={BACKEND_URI_KEY: self.backend_store_uri},
            opts=pulumi.ResourceOptions(parent=self),
        )

        service_account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=SERVICE_ACCOUNT,
                namespace=namespace,
                labels=pod_labels,
                annotations={"eks.amazonaws.com/role-arn": role_arn} if role_arn is not None else None,
            ),
            # MLflow never calls the Kubernetes API; the IRSA webhook projects its own token.
            automount_service_account_token=False,
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.deployment = self._server(
            name,
            config,
            namespace,
            pod_labels,
            selector,
            backend_secret,
            service_account,
            external_store=args.aws is None,
            depends_on=([role_policy] if role_policy else []) + list(args.wait_for),
        )
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=SERVICE_NAME, namespace=namespace, labels=pod_labels),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=selector,
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        name="http", port=PORT, target_port="http", protocol="TCP", app_protocol="http"
                    )
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.tracking_uri = pulumi.Output.concat(
            "http://", self.service.metadata.name, ".", self.service.metadata.namespace, f".svc.cluster.local:{PORT}"
        )
        self.register_outputs(
            {
                "tracking_uri": self.tracking_uri,
                "backend_store_uri": self.backend_store_uri,
                "artifact_root": self.artifact_root,
                "bucket_name": self.bucket_name,
                "database_endpoint": self.database_endpoint,
            }
        )

    # -- artifacts (mode aws) ---------------------------------------------------
    def _stateful(self, config: MlflowConfig) -> pulumi.ResourceOptions:
        """Options for the bucket and the database: deletion protection holds on the Pulumi side too."""
        return pulumi.ResourceOptions(
            parent=self, protect=config.deletion_protection, retain_on_delete=config.deletion_protection
        )

    def _artifact_bucket(self, name: str, config: MlflowConfig, tags: dict[str, str]) -> aws.s3.Bucket:
        child = pulumi.ResourceOptions(parent=self)
        # No force_destroy: deleting the stack must not silently delete every model artifact.
        bucket = aws.s3.Bucket(
            f"{name}-artifacts", bucket=config.artifact_bucket, tags=tags, opts=self._stateful(config)
        )
        public_access = aws.s3.BucketPublicAccessBlock(
            f"{name}-artifacts-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-artifacts-ownership",
            bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child,
        )
        versioning = aws.s3.BucketVersioning(
            f"{name}-artifacts-versioning",
            bucket=bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-artifacts-encryption",
            bucket=bucket.id,
            rules=[
                {
                    # SSE-S3: no KMS key to manage, and no kms:* grants the IRSA role would need.
                    "apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"},
                    "bucket_key_enabled": True,
                }
            ],
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-artifacts-lifecycle",
            bucket=bucket.id,
            rules=_lifecycle_rules(config),
            # Noncurrent-version rules only make sense once versioning is on.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )
        aws.s3.BucketPolicy(
            f"{name}-artifacts-tls-only",
            bucket=bucket.id,
            policy=pulumi.Output.json_dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "DenyInsecureTransport",
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": "s3:*",
                            "Resource": [bucket.arn, pulumi.Output.concat(bucket.arn, "/*")],
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                        }
                    ],
                }
            ),
            # S3 rejects policy writes that race the public access block being applied.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_access]),
        )
        return bucket

    def _irsa_role(
        self,
        name: str,
        infra: AwsRegistryInfra,
        namespace: pulumi.Input[str],
        bucket: aws.s3.Bucket,
        tags: dict[str, str],
    ) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
        role = aws.iam.Role(
            f"{name}-irsa",
            description="MLflow server: read and write its artifact bucket (IRSA).",
            assume_role_policy=irsa_trust_policy(
                infra.oidc_provider_arn, infra.oidc_provider_url, namespace, SERVICE_ACCOUNT
            ),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        policy = aws.iam.RolePolicy(
            f"{name}-irsa-s3",
            role=role.id,
            policy=pulumi.Output.json_dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "ListArtifactBucket",
                            "Effect": "Allow",
                            "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                            "Resource": bucket.arn,
                        },
                        {
                            "Sid": "ReadWriteArtifacts",
                            "Effect": "Allow",
                            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                            "Resource": pulumi.Output.concat(bucket.arn, "/*"),
                        },
                    ],
                }
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return role, policy

    # -- backend store ----------------------------------------------------------
    def _password(self, name: str) -> pulumi.Output[str]:
        password = random.RandomPassword(
            f"{name}-db-password",
            length=32,
            special=True,
            override_special=PASSWORD_SPECIALS,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return pulumi.Output.secret(password.result)

    def _rds_backend(
        self,
        name: str,
        config: MlflowConfig,
        infra: AwsRegistryInfra,
        tags: dict[str, str],
    ) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        password = self._password(name)
        security_group = aws.ec2.SecurityGroup(
            f"{name}-db",
            description="MLflow Postgres: 5432 from inside the VPC only.",
            vpc_id=infra.vpc_id,
            ingress=[
                aws.ec2.SecurityGroupIngressArgs(
                    description="Postgres from the VPC",
                    protocol="tcp",
                    from_port=POSTGRES_PORT,
                    to_port=POSTGRES_PORT,
                    cidr_blocks=[infra.vpc_cidr],
                )
            ],
            # A database initiates no connections; replies to inbound ones are allowed statefully.
            egress=[],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        subnet_group = aws.rds.SubnetGroup(
            f"{name}-db",
            description="MLflow Postgres in the private subnets.",
            subnet_ids=infra.private_subnet_ids,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
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
            tags=tags,
            opts=self._stateful(config),
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
        return pulumi.Output.secret(uri), endpoint

    def _in_cluster_backend(
        self, name: str, config: MlflowConfig, namespace: pulumi.Input[str]
    ) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        password = self._password(name)
        db_name = f"{SERVICE_NAME}-postgres"
        selector = {"app.kubernetes.io/name": db_name, "app.kubernetes.io/instance": name}
        pod_labels = {**labels.k8s_labels("model-registry-db", name=db_name, instance=name), **selector}
        secret = k8s.core.v1.Secret(
            f"{name}-postgres",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=db_name, namespace=namespace, labels=pod_labels),
            type="Opaque",
            string_data={"POSTGRES_PASSWORD": password},
            opts=pulumi.ResourceOptions(parent=self),
        )
        service = k8s.core.v1.Service(
            f"{name}-postgres",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=db_name, namespace=namespace, labels=pod_labels),
            spec=k8s.core.v1.ServiceSpecArgs(
                cluster_ip="None",
                selector=selector,
                ports=[k8s.core.v1.ServicePortArgs(name="postgres", port=POSTGRES_PORT, target_port="postgres")],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        pg_isready = ["pg_isready", "-U", DB_USER, "-d", DB_NAME, "-h", "127.0.0.1"]
        k8s.apps.v1.StatefulSet(
            f"{name}-postgres",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=db_name, namespace=namespace, labels=pod_labels),
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
            opts=self._stateful(config),
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
        return pulumi.Output.secret(uri), endpoint

    # -- the server -------------------------------------------------------------
    def _server(
        self,
        name: str,
        config: MlflowConfig,
        namespace: pulumi.Input[str],
        pod_labels: dict[str, str],
        selector: dict[str, str],
        backend_secret: k8s.core.v1.Secret,
        service_account: k8s.core.v1.ServiceAccount,
        external_store: bool,
        depends_on: list[pulumi.Resource],
    ) -> k8s.apps.v1.Deployment:
        env = [
            k8s.core.v1.EnvVarArgs(
                name=BACKEND_URI_KEY,
                value_from=k8s.core.v1.EnvVarSourceArgs(
                    secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(
                        name=backend_secret.metadata.name, key=BACKEND_URI_KEY
                    )
                ),
            ),
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

        server_args = pulumi.Output.all(pulumi.Output.from_input(namespace), self.artifact_root).apply(
            lambda values: [
                "--host", "0.0.0.0",
                "--port", str(PORT),
                "--workers", "2",
                "--serve-artifacts",
                "--artifacts-destination", values[1],
                "--allowed-hosts", ",".join(_allowed_hosts(values[0])),
            ]
        )  # fmt: skip
        health = k8s.core.v1.HTTPGetActionArgs(path="/health", port="http")
        return k8s.apps.v1.Deployment(
            f"{name}-server",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=SERVICE_NAME, namespace=namespace, labels=pod_labels),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=config.replicas,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_surge=1, max_unavailable=0),
                ),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=pod_labels),
                    spec=k8s.core.v1.PodSpecArgs(
                        service_account_name=service_account.metadata.name,
                        automount_service_account_token=False,
                        security_context=restricted_pod_security_context(1000),
                        containers=[
                            k8s.core.v1.ContainerArgs(
                                name="mlflow",
                                image=config.image,
                                command=["mlflow", "server"],
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
                                    requests={"cpu": "250m", "memory": "512Mi"},
                                    limits={"cpu": "1", "memory": "2Gi"},
                                ),
                                security_context=restricted_container_security_context(),
                                volume_mounts=[
                                    k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
                                    k8s.core.v1.VolumeMountArgs(name="home", mount_path="/home/mlflow"),
                                ],
                            )
                        ],
                        volumes=[
                            k8s.core.v1.VolumeArgs(name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs()),
                            k8s.core.v1.VolumeArgs(name="home", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs()),
                        ],
                    ),
                ),
            ),
            # The IRSA policy must be attached before the first pod writes an artifact.
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on),
        )


def _allowed_hosts(namespace: str) -> list[str]:
    """Host headers MLflow accepts (3.5+ rejects others to stop DNS rebinding):
    the Service's in-cluster names, with and without the port, and localhost for
    `kubectl port-forward`. `/health` is exempt, so kubelet probes by pod IP pass."""
    names = [SERVICE_NAME, f"{SERVICE_NAME}.{namespace}", f"{SERVICE_NAME}.{namespace}.svc"]
    names.append(f"{SERVICE_NAME}.{namespace}.svc.cluster.local")
    names.append("localhost")
    return [host for name in names for host in (name, f"{name}:{PORT}")]


def _lifecycle_rules(config: MlflowConfig) -> list[aws.s3.BucketLifecycleConfigurationRuleArgs]:
    """Artifact lifecycle from config; each rule applies to the whole bucket."""
    lifecycle = config.lifecycle
    every_object = aws.s3.BucketLifecycleConfigurationRuleFilterArgs()
    rules = [
        aws.s3.BucketLifecycleConfigurationRuleArgs(
            id="expire-noncurrent-versions",
            status="Enabled",
            filter=every_object,
            noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                noncurrent_days=lifecycle.noncurrent_version_expiration_days
            ),
        ),
        aws.s3.BucketLifecycleConfigurationRuleArgs(
            id="abort-incomplete-multipart-uploads",
            status="Enabled",
            filter=every_object,
            abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                days_after_initiation=lifecycle.abort_incomplete_multipart_days
            ),
        ),
    ]
    if lifecycle.transition_to_ia_days is not None:
        rules.append(
            aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="transition-to-standard-ia",
                status="Enabled",
                filter=every_object,
                transitions=[
                    aws.s3.BucketLifecycleConfigurationRuleTransitionArgs(
                        days=lifecycle.transition_to_ia_days, storage_class="STANDARD_IA"
                    )
                ],
            )
        )
    if lifecycle.expiration_days is not None:
        rules.append(
            aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="expire-artifacts",
                status="Enabled",
                filter=every_object,
                expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=lifecycle.expiration_days),
            )
        )
    return rules
