"""ModelRegistry: MLflow's backend store, artifact bucket, IAM and pod security."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest
from pulumi.runtime import rpc

from mlplatform.platform.registry import AwsRegistryInfra, ModelRegistry, ModelRegistryArgs
from mlplatform.platform.registry_config import LifecycleConfig, MlflowConfig
from mlplatform.tools.offline.engine import RecordedResource, Recording, run_program
from tests.support.types import (
    AWS_EC2_SECURITY_GROUP,
    AWS_IAM_ROLE,
    AWS_IAM_ROLE_POLICY,
    AWS_RDS_INSTANCE,
    AWS_RDS_SUBNET_GROUP,
    AWS_S3_BUCKET,
    AWS_S3_BUCKET_LIFECYCLE_CONFIGURATION,
    AWS_S3_BUCKET_OWNERSHIP_CONTROLS,
    AWS_S3_BUCKET_POLICY,
    AWS_S3_BUCKET_PUBLIC_ACCESS_BLOCK,
    AWS_S3_BUCKET_SERVER_SIDE_ENCRYPTION_CONFIGURATION,
    AWS_S3_BUCKET_VERSIONING,
    K8S_DEPLOYMENT,
    K8S_SECRET,
    K8S_SERVICE,
    K8S_SERVICE_ACCOUNT,
    K8S_STATEFUL_SET,
    RANDOM_PASSWORD,
)

NAMESPACE = "ml-registry"
VPC_CIDR = "10.40.0.0/16"
OIDC_URL = "oidc.eks.us-west-2.amazonaws.com/id/0123456789ABCDEF"
OIDC_ARN = f"arn:aws:iam::123456789012:oidc-provider/{OIDC_URL}"
FULL_IMAGE = "ghcr.io/mlflow/mlflow:v3.15.1-full"

BUCKET = AWS_S3_BUCKET
RDS = AWS_RDS_INSTANCE
DEPLOYMENT = K8S_DEPLOYMENT
STATEFULSET = K8S_STATEFUL_SET
SERVICE = K8S_SERVICE
SECRET = K8S_SECRET
SERVICE_ACCOUNT = K8S_SERVICE_ACCOUNT


def _infra() -> AwsRegistryInfra:
    return AwsRegistryInfra(
        vpc_id="vpc-0abc",
        vpc_cidr=VPC_CIDR,
        private_subnet_ids=["subnet-a", "subnet-b"],
        oidc_provider_arn=OIDC_ARN,
        oidc_provider_url=OIDC_URL,
    )


def _run(config: MlflowConfig, aws: AwsRegistryInfra | None) -> Recording:
    def program():
        registry = ModelRegistry(
            "mlflow",
            ModelRegistryArgs(config=config, namespace=NAMESPACE, aws=aws, tags={"Project": "mlplatform"}),
        )
        pulumi.export("trackingUri", registry.tracking_uri)
        pulumi.export("backendStoreUri", registry.backend_store_uri)
        pulumi.export("artifactRoot", registry.artifact_root)
        pulumi.export("bucketName", registry.bucket_name)
        pulumi.export("databaseEndpoint", registry.database_endpoint)

    return run_program(program, project="mlplatform", stack="dev")


@pytest.fixture(scope="module")
def aws_dev() -> Recording:
    return _run(MlflowConfig(image=FULL_IMAGE), _infra())


@pytest.fixture(scope="module")
def aws_prod() -> Recording:
    lifecycle = LifecycleConfig(
        noncurrent_version_expiration_days=10, transition_to_ia_days=None, abort_incomplete_multipart_days=2,
        expiration_days=400,
    )  # fmt: skip
    config = MlflowConfig(
        image=FULL_IMAGE, rds_multi_az=True, deletion_protection=True, replicas=2, lifecycle=lifecycle
    )
    return _run(config, _infra())


@pytest.fixture(scope="module")
def existing() -> Recording:
    config = MlflowConfig(
        image=FULL_IMAGE,
        backend="in-cluster",
        postgres_storage_gib=50,
        artifact_bucket="ml-artifacts",
        s3_endpoint_url="https://minio.storage.svc:9000",
        s3_credentials_secret="minio-credentials",
    )
    return _run(config, None)


def _policy(resource: RecordedResource, key: str) -> dict[str, Any]:
    return json.loads(resource.inputs[key])


def _container(recording: Recording, type_token: str = DEPLOYMENT) -> dict[str, Any]:
    (container,) = recording.one(type_token).inputs["spec"]["template"]["spec"]["containers"]
    return container


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def _lifecycle(recording: Recording) -> dict[str, dict[str, Any]]:
    rules = recording.one(AWS_S3_BUCKET_LIFECYCLE_CONFIGURATION).inputs["rules"]
    assert all(r["status"] == "Enabled" and r["filter"] == {} for r in rules), rules
    return {r["id"]: {k: v for k, v in r.items() if k not in ("id", "status", "filter")} for r in rules}


# -- backend store --------------------------------------------------------------
def test_backend_uri_points_at_the_rds_instance(aws_dev):
    """MLflow must store runs in the database this stack created, over TLS."""
    address = aws_dev.one(RDS).outputs["address"]
    uri = rpc.unwrap_rpc_secret(aws_dev.stack_outputs["backendStoreUri"])
    password = aws_dev.one(RANDOM_PASSWORD).outputs["result"]
    assert uri == f"postgresql+psycopg2://mlflow:{password}@{address}:5432/mlflow?sslmode=require"
    assert aws_dev.stack_outputs["databaseEndpoint"] == f"{address}:5432"


def test_backend_uri_is_secret_everywhere(aws_dev):
    """The URI embeds the database password: it must never reach state or logs in clear text."""
    assert rpc.is_rpc_secret(aws_dev.stack_outputs["backendStoreUri"])
    assert aws_dev.one(RDS).input_is_secret("password")
    secret = aws_dev.one(SECRET, "mlflow-backend")
    assert secret.input_is_secret("stringData")
    uri = rpc.unwrap_rpc_secret(aws_dev.stack_outputs["backendStoreUri"])
    assert secret.inputs["stringData"] == {"MLFLOW_BACKEND_STORE_URI": uri}


def test_password_is_rds_and_uri_safe(aws_dev):
    """RDS rejects / @ \" and spaces; URI-special characters would corrupt the backend URI."""
    password = aws_dev.one(RANDOM_PASSWORD).inputs
    assert password["length"] >= 32
    assert set(password["overrideSpecial"]) <= set("-_")


def test_rds_is_private_and_encrypted(aws_dev):
    """The registry database holds every run and model version: no public endpoint, encrypted at rest."""
    db = aws_dev.one(RDS).inputs
    assert db["engine"] == "postgres"
    assert db["publiclyAccessible"] is False
    assert db["storageEncrypted"] is True
    assert db["backupRetentionPeriod"] >= 1
    subnets = aws_dev.one(AWS_RDS_SUBNET_GROUP).inputs["subnetIds"]
    assert subnets == ["subnet-a", "subnet-b"]


def test_database_admits_postgres_from_the_vpc_only(aws_dev):
    """Only workloads inside the VPC can reach 5432; nothing else is open."""
    group = aws_dev.one(AWS_EC2_SECURITY_GROUP)
    assert [(r["fromPort"], r["toPort"], r["protocol"], r["cidrBlocks"]) for r in group.inputs["ingress"]] == [
        (5432, 5432, "tcp", [VPC_CIDR])
    ]
    assert aws_dev.depends_on(aws_dev.one(RDS), group)


def test_dev_database_is_disposable(aws_dev):
    """Without deletion protection, dev stacks can be destroyed without leaving snapshots behind."""
    db = aws_dev.one(RDS)
    assert (db.inputs["multiAz"], db.inputs["deletionProtection"], db.inputs["skipFinalSnapshot"]) == (
        False,
        False,
        True,
    )
    assert "finalSnapshotIdentifier" not in db.inputs
    assert db.protect is False


def test_prod_database_follows_config(aws_prod):
    """Multi-AZ and deletion protection come from config; a protected database leaves a final snapshot."""
    db = aws_prod.one(RDS)
    assert (db.inputs["multiAz"], db.inputs["deletionProtection"], db.inputs["skipFinalSnapshot"]) == (
        True,
        True,
        False,
    )
    assert db.inputs["finalSnapshotIdentifier"].endswith("-final")
    assert db.protect is True


# -- artifacts ------------------------------------------------------------------
def test_artifact_root_is_the_bucket(aws_dev):
    """Artifacts land in the bucket this stack owns, served through MLflow so clients need no S3 access."""
    bucket = aws_dev.one(BUCKET).outputs["bucket"]
    assert aws_dev.stack_outputs["artifactRoot"] == f"s3://{bucket}/artifacts"
    assert aws_dev.stack_outputs["bucketName"] == bucket
    args = _container(aws_dev)["args"]
    assert "--serve-artifacts" in args
    assert args[args.index("--artifacts-destination") + 1] == f"s3://{bucket}/artifacts"


def test_bucket_blocks_all_public_access(aws_dev):
    """Model artifacts are private: all four public-access blocks on, ACLs disabled."""
    block = aws_dev.one(AWS_S3_BUCKET_PUBLIC_ACCESS_BLOCK).inputs
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    assert {flag: block[flag] for flag in flags} == dict.fromkeys(flags, True)
    ownership = aws_dev.one(AWS_S3_BUCKET_OWNERSHIP_CONTROLS).inputs
    assert ownership["rule"] == {"objectOwnership": "BucketOwnerEnforced"}


def test_bucket_is_versioned_and_encrypted(aws_dev):
    """Versioning recovers overwritten models; server-side encryption protects them at rest."""
    versioning = aws_dev.one(AWS_S3_BUCKET_VERSIONING).inputs
    assert versioning["versioningConfiguration"]["status"] == "Enabled"
    encryption = aws_dev.one(AWS_S3_BUCKET_SERVER_SIDE_ENCRYPTION_CONFIGURATION).inputs
    (rule,) = encryption["rules"]
    assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] in ("AES256", "aws:kms")


def test_bucket_refuses_plain_http(aws_dev):
    """Artifacts never travel unencrypted, whoever holds credentials."""
    policy = _policy(aws_dev.one(AWS_S3_BUCKET_POLICY), "policy")
    arn = aws_dev.one(BUCKET).outputs["arn"]
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert sorted(statement["Resource"]) == [arn, f"{arn}/*"]


def test_default_lifecycle_rules(aws_dev):
    """Old artifact versions and stalled uploads do not grow storage without bound."""
    assert _lifecycle(aws_dev) == {
        "expire-noncurrent-versions": {"noncurrentVersionExpiration": {"noncurrentDays": 30}},
        "abort-incomplete-multipart-uploads": {"abortIncompleteMultipartUpload": {"daysAfterInitiation": 7}},
        "transition-to-standard-ia": {"transitions": [{"days": 90, "storageClass": "STANDARD_IA"}]},
    }


def test_lifecycle_rules_follow_config(aws_prod):
    """Retention is a config decision: a disabled transition disappears, an expiration appears."""
    assert _lifecycle(aws_prod) == {
        "expire-noncurrent-versions": {"noncurrentVersionExpiration": {"noncurrentDays": 10}},
        "abort-incomplete-multipart-uploads": {"abortIncompleteMultipartUpload": {"daysAfterInitiation": 2}},
        "expire-artifacts": {"expiration": {"days": 400}},
    }


def test_bucket_protection_follows_config(aws_dev, aws_prod):
    """With deletion protection, `pulumi destroy` cannot delete the artifacts."""
    assert aws_dev.one(BUCKET).protect is False
    assert aws_prod.one(BUCKET).protect is True


def test_stateful_resources_keep_their_names(aws_dev, existing):
    """Renaming the bucket or the database would replace it, and lose every artifact or run."""
    assert aws_dev.one(BUCKET).name == "mlflow-artifacts"
    assert aws_dev.one(RDS).name == "mlflow-db"
    assert existing.one(STATEFULSET).name == "mlflow-postgres"


# -- IAM ------------------------------------------------------------------------
def test_irsa_policy_names_only_the_artifact_bucket(aws_dev):
    """A compromised MLflow pod can touch its own bucket and nothing else."""
    arn = aws_dev.one(BUCKET).outputs["arn"]
    policy = _policy(aws_dev.one(AWS_IAM_ROLE_POLICY), "policy")
    grants = {
        (tuple(sorted(s["Action"])), s["Resource"] if isinstance(s["Resource"], str) else tuple(s["Resource"]))
        for s in policy["Statement"]
    }
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])
    assert grants == {
        (("s3:GetBucketLocation", "s3:ListBucket"), arn),
        (("s3:DeleteObject", "s3:GetObject", "s3:PutObject"), f"{arn}/*"),
    }


def test_irsa_trust_names_only_the_mlflow_service_account(aws_dev):
    """Only pods running as mlflow/<namespace> can assume the role, and only through the cluster's OIDC issuer."""
    trust = _policy(aws_dev.one(AWS_IAM_ROLE), "assumeRolePolicy")
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Federated": OIDC_ARN}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"] == {
        "StringEquals": {
            f"{OIDC_URL}:sub": f"system:serviceaccount:{NAMESPACE}:mlflow",
            f"{OIDC_URL}:aud": "sts.amazonaws.com",
        }
    }


def test_service_account_is_bound_to_the_role(aws_dev):
    """The pod gets the role through its ServiceAccount annotation, the one the trust policy names."""
    account = aws_dev.one(SERVICE_ACCOUNT)
    role_arn = aws_dev.one(AWS_IAM_ROLE).outputs["arn"]
    assert (account.metadata["name"], account.metadata["namespace"]) == ("mlflow", NAMESPACE)
    assert account.metadata["annotations"] == {"eks.amazonaws.com/role-arn": role_arn}
    spec = aws_dev.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "mlflow"


def test_server_waits_for_its_s3_permissions(aws_dev):
    """The first artifact upload must not race the policy attachment."""
    assert aws_dev.depends_on(aws_dev.one(DEPLOYMENT), aws_dev.one(AWS_IAM_ROLE_POLICY))


# -- the server -----------------------------------------------------------------
@pytest.mark.parametrize("fixture", ["aws_dev", "existing"])
def test_server_runs_non_root_with_read_only_root(request, fixture):
    """A compromised server cannot write its image or escalate; only emptyDirs are writable."""
    recording = request.getfixturevalue(fixture)
    pod = recording.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]
    container = _container(recording)
    security = container["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert _env(container)["HOME"] in mounts


def test_server_has_health_probes(aws_dev):
    """Rollouts wait for a healthy server, and a hung one is restarted."""
    container = _container(aws_dev)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe
    assert container["ports"] == [{"name": "http", "containerPort": 5000}]
    assert set(container["resources"]) == {"requests", "limits"}


def test_server_accepts_its_in_cluster_host_names(aws_dev):
    """MLflow 3.5+ rejects unknown Host headers; clients use the Service's cluster DNS name."""
    args = _container(aws_dev)["args"]
    hosts = args[args.index("--allowed-hosts") + 1].split(",")
    assert f"mlflow.{NAMESPACE}.svc.cluster.local:5000" in hosts
    assert "*" not in hosts


def test_server_is_reachable_only_in_cluster(aws_dev, existing):
    """No LoadBalancer, NodePort or Ingress: the registry is not exposed outside the cluster."""
    for recording in (aws_dev, existing):
        types = {r.inputs["spec"].get("type", "ClusterIP") for r in recording.of_type(SERVICE)}
        assert types == {"ClusterIP"}
        assert not [r for r in recording.resources if r.type.endswith(":Ingress")]


def test_tracking_uri_is_the_stable_service_name(aws_dev):
    """Training jobs and model servers are configured with this URI; it must not depend on generated names."""
    service = aws_dev.one(SERVICE, "mlflow-service")
    assert (service.metadata["name"], service.inputs["spec"]["ports"][0]["port"]) == ("mlflow", 5000)
    assert aws_dev.stack_outputs["trackingUri"] == f"http://mlflow.{NAMESPACE}.svc.cluster.local:5000"


def test_replicas_follow_config(aws_prod):
    """Production runs more than one server so a node drain does not take the registry down."""
    assert aws_prod.one(DEPLOYMENT).inputs["spec"]["replicas"] == 2


# -- mode existing --------------------------------------------------------------
def test_existing_mode_creates_no_aws_resources(existing):
    """On a cluster outside AWS (or without AWS credentials) nothing may call the AWS API."""
    assert [r for r in existing.resources if r.type.startswith("aws:")] == []
    assert existing.stack_outputs["bucketName"] is None
    assert "annotations" not in existing.one(SERVICE_ACCOUNT).metadata


def test_existing_mode_uses_the_configured_store(existing):
    """The S3-compatible endpoint and its credentials come from config, credentials via a secretKeyRef."""
    assert existing.stack_outputs["artifactRoot"] == "s3://ml-artifacts/artifacts"
    env = _env(_container(existing))
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "https://minio.storage.svc:9000"
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[key] == {"secretKeyRef": {"name": "minio-credentials", "key": key}}


def test_aws_mode_uses_no_static_credentials(aws_dev):
    """In mode aws the pod's only identity is the IRSA role."""
    env = _env(_container(aws_dev))
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"} & set(env)


def test_in_cluster_backend_uri_points_at_postgres(existing):
    """Without RDS, runs are stored in the Postgres StatefulSet declared next to MLflow."""
    uri = rpc.unwrap_rpc_secret(existing.stack_outputs["backendStoreUri"])
    password = existing.one(RANDOM_PASSWORD).outputs["result"]
    host = f"mlflow-postgres.{NAMESPACE}.svc.cluster.local"
    assert uri == f"postgresql+psycopg2://mlflow:{password}@{host}:5432/mlflow"
    assert rpc.is_rpc_secret(existing.stack_outputs["backendStoreUri"])
    assert existing.stack_outputs["databaseEndpoint"] == f"{host}:5432"
    headless = existing.one(SERVICE, "mlflow-postgres")
    assert headless.inputs["spec"]["clusterIP"] == "None"


def test_in_cluster_postgres_is_non_root_with_its_volume(existing):
    """Postgres runs non-root, keeps data on a PVC of the configured size, and reads its password from a Secret."""
    statefulset = existing.one(STATEFULSET).inputs["spec"]
    pod = statefulset["template"]["spec"]
    container = _container(existing, STATEFULSET)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    (claim,) = statefulset["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"] == {"storage": "50Gi"}
    assert _env(container)["POSTGRES_PASSWORD"] == {
        "secretKeyRef": {"name": "mlflow-postgres", "key": "POSTGRES_PASSWORD"}
    }
    assert existing.one(SECRET, "mlflow-postgres").input_is_secret("stringData")


# -- guards ---------------------------------------------------------------------
def test_rds_needs_aws_infrastructure():
    """RDS cannot be created without the VPC of mode aws; say so instead of failing in AWS."""
    config = MlflowConfig(image=FULL_IMAGE, backend="rds", artifact_bucket="ml-artifacts")
    with pytest.raises(ValueError, match=r"backend 'rds' needs cluster\.mode 'aws'"):
        _run(config, None)


def test_existing_mode_needs_a_bucket():
    """Without a bucket MLflow would have nowhere to put artifacts."""
    with pytest.raises(ValueError, match="artifactBucket is required"):
        _run(MlflowConfig(image=FULL_IMAGE, backend="in-cluster"), None)


def test_core_image_is_flagged(monkeypatch):
    """The core MLflow image lacks psycopg2 and boto3; users learn that at preview, not from a crash loop."""
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *args, **kwargs: warnings.append(message))
    _run(MlflowConfig(image="ghcr.io/mlflow/mlflow:v3.15.1"), _infra())
    _run(MlflowConfig(image=FULL_IMAGE), _infra())
    assert len(warnings) == 1
    assert "ghcr.io/mlflow/mlflow:v3.15.1-full" in warnings[0]
