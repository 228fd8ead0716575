"""`ModelRegistry`: wires MLflow's three concerns together, artifact storage
(`artifacts`), the backend database (`database`) and the server (`server`).

The server proxies artifacts (`--serve-artifacts`), so training Jobs and model
servers talk only to MLflow over HTTP and need no S3 credentials; the MLflow pod
is the one identity with bucket access (IRSA in mode aws, a named Secret for an
S3-compatible store in mode existing).

Every resource stays a direct child of the component, as before the split into
modules: URNs, and with them the bucket's and the database's identities, did not move.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from mlplatform.images import mirrored
from mlplatform.platform.network_policy import DatabaseRoute
from mlplatform.platform.registry import database, server
from mlplatform.platform.registry.store import ARTIFACTS_PREFIX, object_store_port
from mlplatform.platform.registry_config import MlflowConfig


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
    # The ReadWriteOnce class for the in-cluster Postgres's volume (None: the cluster's default).
    storage_class: pulumi.Input[str] | None = None
    # Resources the MLflow pods must wait for: the mesh, since the namespace is meshed and a
    # pod admitted before Linkerd's injector exists would run without a proxy (no mTLS).
    # A component's own depends_on does not reach its children, so the Deployment takes it.
    wait_for: Sequence[pulumi.Resource] = ()
    # `mlplatform:imageRegistry`: the MLflow and Postgres images are pulled through it; None: upstream.
    image_registry: str | None = None


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
    # What the platform's NetworkPolicies must allow for MLflow.
    pod_selector: dict[str, str]
    port: int
    database_route: DatabaseRoute
    object_store_port: int

    def __init__(self, name: str, args: ModelRegistryArgs, opts: pulumi.ResourceOptions | None = None):
        config = args.config
        # Checked before anything is registered; PlatformConfig rejects the same combinations.
        if config.backend == "rds" and args.aws is None:
            raise ValueError("mlflow.backend 'rds' needs cluster.mode 'aws'; use 'in-cluster' with an existing cluster")
        if args.aws is None and not config.artifact_bucket:
            raise ValueError("mlflow.artifactBucket is required when no AWS infrastructure is created")
        super().__init__("mlplatform:platform:ModelRegistry", name, None, opts)
        if server.CORE_IMAGE.match(config.image):
            pulumi.log.warn(
                f"mlflow.image {config.image} is the core MLflow image without psycopg2 and boto3; "
                f"the server cannot reach Postgres or S3. Use {config.image}-full.",
                resource=self,
            )
        # After the check above, which reads the upstream name.
        config = config.model_copy(
            update={
                "image": mirrored(config.image, args.image_registry),
                "postgres_image": mirrored(config.postgres_image, args.image_registry),
            }
        )

        namespace = args.namespace
        identity = server.server_identity(name)
        self.pod_selector = identity.selector
        self.port = server.PORT
        self.object_store_port = object_store_port(config.s3_endpoint_url if args.aws is None else None)

        waits: list[pulumi.Resource] = []
        role_arn: pulumi.Output[str] | None = None
        if args.aws is not None:
            # pulumi_aws is loaded only in mode aws: mode existing must run without the AWS plugin.
            from mlplatform.platform.registry import artifacts

            bucket = artifacts.artifact_bucket(name, config, args.tags, parent=self, stateful=self._stateful(config))
            self.bucket_name = bucket.bucket
            self.artifact_root = pulumi.Output.concat("s3://", bucket.bucket, f"/{ARTIFACTS_PREFIX}")
            role, role_policy = artifacts.bucket_access_role(
                name,
                oidc_provider_arn=args.aws.oidc_provider_arn,
                oidc_provider_url=args.aws.oidc_provider_url,
                namespace=namespace,
                service_account=server.SERVICE_ACCOUNT,
                bucket=bucket,
                tags=args.tags,
                parent=self,
            )
            role_arn = role.arn
            waits.append(role_policy)
        else:
            self.artifact_root = pulumi.Output.from_input(f"s3://{config.artifact_bucket}/{ARTIFACTS_PREFIX}")

        if config.backend == "rds" and args.aws is not None:
            from mlplatform.platform.registry import rds  # needs pulumi_aws: mode aws only, as above

            backend = rds.rds_backend(
                name,
                config,
                vpc_id=args.aws.vpc_id,
                vpc_cidr=args.aws.vpc_cidr,
                private_subnet_ids=args.aws.private_subnet_ids,
                tags=args.tags,
                parent=self,
                stateful=self._stateful(config),
            )
            self.database_route = DatabaseRoute(port=database.POSTGRES_PORT, cidr=args.aws.vpc_cidr)
        else:
            backend = database.in_cluster_backend(
                name, config, namespace, storage_class=args.storage_class, parent=self, stateful=self._stateful(config)
            )
            self.database_route = DatabaseRoute(
                port=database.POSTGRES_PORT, pod_selector=database.in_cluster_selector(name)
            )
        self.backend_store_uri = backend.uri
        self.database_endpoint = backend.endpoint

        secret = server.backend_secret(name, namespace, identity, self.backend_store_uri, parent=self)
        account = server.service_account(name, namespace, identity, role_arn, parent=self)
        self.deployment = server.server_deployment(
            name,
            config,
            namespace,
            identity,
            artifact_root=self.artifact_root,
            secret=secret,
            account=account,
            external_store=args.aws is None,
            depends_on=[*waits, *args.wait_for],
            parent=self,
        )
        server.disruption_budget(name, config, namespace, identity, parent=self)
        self.service = server.cluster_ip_service(name, namespace, identity, parent=self)
        self.tracking_uri = pulumi.Output.concat(
            "http://",
            self.service.metadata.name,
            ".",
            self.service.metadata.namespace,
            f".svc.cluster.local:{server.PORT}",
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

    def _stateful(self, config: MlflowConfig) -> pulumi.ResourceOptions:
        """Options for the bucket and the database: deletion protection holds on the Pulumi side too."""
        return pulumi.ResourceOptions(
            parent=self, protect=config.deletion_protection, retain_on_delete=config.deletion_protection
        )
