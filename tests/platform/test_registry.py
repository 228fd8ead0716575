"""ModelRegistry: MLflow's IAM, its server and pod security, mode `existing`, and the guards.

The backend store and the artifact bucket are in `test_registry_storage.py`."""

from __future__ import annotations

import pulumi
import pytest
from pulumi.runtime import rpc

from mlplatform.platform.registry_config import MlflowConfig
from tests.support.helpers import build
from tests.support.registry_program import (
    FULL_IMAGE,
    NAMESPACE,
    OIDC_ARN,
    OIDC_URL,
    aws_infra,
    env_of,
    only_container,
    policy_document,
    run_registry,
)
from tests.support.types import (
    AWS_IAM_ROLE,
    AWS_IAM_ROLE_POLICY,
    AWS_S3_BUCKET,
    K8S_DEPLOYMENT,
    K8S_SECRET,
    K8S_SERVICE,
    K8S_SERVICE_ACCOUNT,
    K8S_STATEFUL_SET,
    RANDOM_PASSWORD,
)


# -- IAM ------------------------------------------------------------------------
def test_irsa_policy_names_only_the_artifact_bucket(aws_dev):
    """A compromised MLflow pod can touch its own bucket and nothing else."""
    arn = aws_dev.one(AWS_S3_BUCKET).outputs["arn"]
    policy = policy_document(aws_dev.one(AWS_IAM_ROLE_POLICY), "policy")
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
    trust = policy_document(aws_dev.one(AWS_IAM_ROLE), "assumeRolePolicy")
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
    account = aws_dev.one(K8S_SERVICE_ACCOUNT)
    role_arn = aws_dev.one(AWS_IAM_ROLE).outputs["arn"]
    assert (account.metadata["name"], account.metadata["namespace"]) == ("mlflow", NAMESPACE)
    assert account.metadata["annotations"] == {"eks.amazonaws.com/role-arn": role_arn}
    spec = aws_dev.one(K8S_DEPLOYMENT).inputs["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "mlflow"


def test_server_waits_for_its_s3_permissions(aws_dev):
    """The first artifact upload must not race the policy attachment."""
    assert aws_dev.depends_on(aws_dev.one(K8S_DEPLOYMENT), aws_dev.one(AWS_IAM_ROLE_POLICY))


# -- the server -----------------------------------------------------------------
@pytest.mark.parametrize("fixture", ["aws_dev", "existing"])
def test_server_runs_non_root_with_read_only_root(request, fixture):
    """A compromised server cannot write its image or escalate; only emptyDirs are writable."""
    recording = request.getfixturevalue(fixture)
    pod = recording.one(K8S_DEPLOYMENT).inputs["spec"]["template"]["spec"]
    container = only_container(recording)
    security = container["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert env_of(container)["HOME"] in mounts


def test_server_has_health_probes(aws_dev):
    """Rollouts wait for a healthy server, and a hung one is restarted."""
    container = only_container(aws_dev)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe
    assert container["ports"] == [{"name": "http", "containerPort": 5000}]
    assert set(container["resources"]) == {"requests", "limits"}


def test_server_accepts_its_in_cluster_host_names(aws_dev):
    """MLflow 3.5+ rejects unknown Host headers; clients use the Service's cluster DNS name."""
    args = only_container(aws_dev)["args"]
    hosts = args[args.index("--allowed-hosts") + 1].split(",")
    assert f"mlflow.{NAMESPACE}.svc.cluster.local:5000" in hosts
    assert "*" not in hosts


def test_server_is_reachable_only_in_cluster(aws_dev, existing):
    """No LoadBalancer, NodePort or Ingress: the registry is not exposed outside the cluster."""
    for recording in (aws_dev, existing):
        types = {r.inputs["spec"].get("type", "ClusterIP") for r in recording.of_type(K8S_SERVICE)}
        assert types == {"ClusterIP"}
        assert not [r for r in recording.resources if r.type.endswith(":Ingress")]


def test_tracking_uri_is_the_stable_service_name(aws_dev):
    """Training jobs and model servers are configured with this URI; it must not depend on generated names."""
    service = aws_dev.one(K8S_SERVICE, "mlflow-service")
    assert (service.metadata["name"], service.inputs["spec"]["ports"][0]["port"]) == ("mlflow", 5000)
    assert aws_dev.stack_outputs["trackingUri"] == f"http://mlflow.{NAMESPACE}.svc.cluster.local:5000"


def test_replicas_follow_config(aws_prod):
    """Production runs more than one server so a node drain does not take the registry down."""
    assert aws_prod.one(K8S_DEPLOYMENT).inputs["spec"]["replicas"] == 2


# -- mode existing --------------------------------------------------------------
def test_existing_mode_creates_no_aws_resources(existing):
    """On a cluster outside AWS (or without AWS credentials) nothing may call the AWS API."""
    assert [r for r in existing.resources if r.type.startswith("aws:")] == []
    assert existing.stack_outputs["bucketName"] is None
    assert "annotations" not in existing.one(K8S_SERVICE_ACCOUNT).metadata


def test_existing_mode_uses_the_configured_store(existing):
    """The S3-compatible endpoint and its credentials come from config, credentials via a secretKeyRef."""
    assert existing.stack_outputs["artifactRoot"] == "s3://ml-artifacts/artifacts"
    env = env_of(only_container(existing))
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "https://minio.storage.svc:9000"
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[key] == {"secretKeyRef": {"name": "minio-credentials", "key": key}}


def test_aws_mode_uses_no_static_credentials(aws_dev):
    """In mode aws the pod's only identity is the IRSA role."""
    env = env_of(only_container(aws_dev))
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"} & set(env)


def test_in_cluster_backend_uri_points_at_postgres(existing):
    """Without AWS_RDS_INSTANCE, runs are stored in the Postgres StatefulSet declared next to MLflow."""
    uri = rpc.unwrap_rpc_secret(existing.stack_outputs["backendStoreUri"])
    password = existing.one(RANDOM_PASSWORD).outputs["result"]
    host = f"mlflow-postgres.{NAMESPACE}.svc.cluster.local"
    assert uri == f"postgresql+psycopg2://mlflow:{password}@{host}:5432/mlflow"
    assert rpc.is_rpc_secret(existing.stack_outputs["backendStoreUri"])
    assert existing.stack_outputs["databaseEndpoint"] == f"{host}:5432"
    headless = existing.one(K8S_SERVICE, "mlflow-postgres")
    assert headless.inputs["spec"]["clusterIP"] == "None"


def test_in_cluster_postgres_is_non_root_with_its_volume(existing):
    """Postgres runs non-root, keeps data on a PVC of the configured size, and reads its password from a Secret."""
    statefulset = existing.one(K8S_STATEFUL_SET).inputs["spec"]
    pod = statefulset["template"]["spec"]
    container = only_container(existing, K8S_STATEFUL_SET)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    (claim,) = statefulset["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"] == {"storage": "50Gi"}
    assert env_of(container)["POSTGRES_PASSWORD"] == {
        "secretKeyRef": {"name": "mlflow-postgres", "key": "POSTGRES_PASSWORD"}
    }
    assert existing.one(K8S_SECRET, "mlflow-postgres").input_is_secret("stringData")


# -- guards ---------------------------------------------------------------------
def test_rds_needs_aws_infrastructure():
    """RDS cannot be created without the VPC of mode aws; say so instead of failing in AWS."""
    config = build(MlflowConfig, image=FULL_IMAGE, backend="rds", artifact_bucket="ml-artifacts")
    with pytest.raises(ValueError, match=r"backend 'rds' needs cluster\.mode 'aws'"):
        run_registry(config, None)


def test_existing_mode_needs_a_bucket():
    """Without a bucket MLflow would have nowhere to put artifacts."""
    with pytest.raises(ValueError, match="artifactBucket is required"):
        run_registry(build(MlflowConfig, image=FULL_IMAGE, backend="in-cluster"), None)


def test_core_image_is_flagged(monkeypatch):
    """The core MLflow image lacks psycopg2 and boto3; users learn that at preview, not from a crash loop."""
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *args, **kwargs: warnings.append(message))
    run_registry(build(MlflowConfig, image="ghcr.io/mlflow/mlflow:v3.15.1"), aws_infra())
    run_registry(build(MlflowConfig, image=FULL_IMAGE), aws_infra())
    assert len(warnings) == 1
    assert "ghcr.io/mlflow/mlflow:v3.15.1-full" in warnings[0]
