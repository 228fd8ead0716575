"""ModelRegistry: MLflow's backend store (AWS_RDS_INSTANCE or in-cluster Postgres) and its artifact bucket."""

from __future__ import annotations

from typing import Any

from pulumi.runtime import rpc

from mlplatform.tools.offline.engine import Recording
from tests.support.registry_program import (
    VPC_CIDR,
    only_container,
    policy_document,
)
from tests.support.types import (
    AWS_EC2_SECURITY_GROUP,
    AWS_RDS_INSTANCE,
    AWS_RDS_SUBNET_GROUP,
    AWS_S3_BUCKET,
    AWS_S3_BUCKET_LIFECYCLE_CONFIGURATION,
    AWS_S3_BUCKET_OWNERSHIP_CONTROLS,
    AWS_S3_BUCKET_POLICY,
    AWS_S3_BUCKET_PUBLIC_ACCESS_BLOCK,
    AWS_S3_BUCKET_SERVER_SIDE_ENCRYPTION_CONFIGURATION,
    AWS_S3_BUCKET_VERSIONING,
    K8S_SECRET,
    K8S_STATEFUL_SET,
    RANDOM_PASSWORD,
)


def _lifecycle(recording: Recording) -> dict[str, dict[str, Any]]:
    rules = recording.one(AWS_S3_BUCKET_LIFECYCLE_CONFIGURATION).inputs["rules"]
    assert all(r["status"] == "Enabled" and r["filter"] == {} for r in rules), rules
    return {r["id"]: {k: v for k, v in r.items() if k not in ("id", "status", "filter")} for r in rules}


# -- backend store --------------------------------------------------------------
def test_backend_uri_points_at_the_rds_instance(aws_dev):
    """MLflow must store runs in the database this stack created, over TLS."""
    address = aws_dev.one(AWS_RDS_INSTANCE).outputs["address"]
    uri = rpc.unwrap_rpc_secret(aws_dev.stack_outputs["backendStoreUri"])
    password = aws_dev.one(RANDOM_PASSWORD).outputs["result"]
    assert uri == f"postgresql+psycopg2://mlflow:{password}@{address}:5432/mlflow?sslmode=require"
    assert aws_dev.stack_outputs["databaseEndpoint"] == f"{address}:5432"


def test_backend_uri_is_secret_everywhere(aws_dev):
    """The URI embeds the database password: it must never reach state or logs in clear text."""
    assert rpc.is_rpc_secret(aws_dev.stack_outputs["backendStoreUri"])
    assert aws_dev.one(AWS_RDS_INSTANCE).input_is_secret("password")
    secret = aws_dev.one(K8S_SECRET, "mlflow-backend")
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
    db = aws_dev.one(AWS_RDS_INSTANCE).inputs
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
    assert aws_dev.depends_on(aws_dev.one(AWS_RDS_INSTANCE), group)


def test_dev_database_is_disposable(aws_dev):
    """Without deletion protection, dev stacks can be destroyed without leaving snapshots behind."""
    db = aws_dev.one(AWS_RDS_INSTANCE)
    assert (db.inputs["multiAz"], db.inputs["deletionProtection"], db.inputs["skipFinalSnapshot"]) == (
        False,
        False,
        True,
    )
    assert "finalSnapshotIdentifier" not in db.inputs
    assert db.protect is False


def test_prod_database_follows_config(aws_prod):
    """Multi-AZ and deletion protection come from config; a protected database leaves a final snapshot."""
    db = aws_prod.one(AWS_RDS_INSTANCE)
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
    bucket = aws_dev.one(AWS_S3_BUCKET).outputs["bucket"]
    assert aws_dev.stack_outputs["artifactRoot"] == f"s3://{bucket}/artifacts"
    assert aws_dev.stack_outputs["bucketName"] == bucket
    args = only_container(aws_dev)["args"]
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
    policy = policy_document(aws_dev.one(AWS_S3_BUCKET_POLICY), "policy")
    arn = aws_dev.one(AWS_S3_BUCKET).outputs["arn"]
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
    assert aws_dev.one(AWS_S3_BUCKET).protect is False
    assert aws_prod.one(AWS_S3_BUCKET).protect is True


def test_stateful_resources_keep_their_names(aws_dev, existing):
    """Renaming the bucket or the database would replace it, and lose every artifact or run."""
    assert aws_dev.one(AWS_S3_BUCKET).name == "mlflow-artifacts"
    assert aws_dev.one(AWS_RDS_INSTANCE).name == "mlflow-db"
    assert existing.one(K8S_STATEFUL_SET).name == "mlflow-postgres"
