"""CI identity: GitHub's OIDC provider, the three CI roles, their trust and their cluster access.

Runs the real platform entry point under the recording mocks, so the config
validation in front of it is part of what is tested.
"""

from __future__ import annotations

import json

import pytest

from mlplatform.configuration import ConfigError
from mlplatform.tools.offline.engine import Recording, recording_of
from tests.support.helpers import platform_config, run_platform
from tests.support.types import (
    AWS_EKS_ACCESS_ENTRY,
    AWS_EKS_ACCESS_POLICY_ASSOCIATION,
    AWS_EKS_CLUSTER,
    AWS_IAM_OPEN_ID_CONNECT_PROVIDER,
    AWS_IAM_ROLE,
    AWS_IAM_ROLE_POLICY,
    AWS_IAM_ROLE_POLICY_ATTACHMENT,
    K8S_CLUSTER_ROLE,
    K8S_ROLE,
    K8S_ROLE_BINDING,
    PLATFORM_CI_IDENTITY,
)

REPO = "acme/ml-platform"
ISSUER = "token.actions.githubusercontent.com"
CI = {"enabled": True, "githubRepository": REPO, "runnerLabel": "mlplatform-vpc"}
ROLE = AWS_IAM_ROLE
ENTRY = AWS_EKS_ACCESS_ENTRY
ASSOCIATION = AWS_EKS_ACCESS_POLICY_ASSOCIATION


@pytest.fixture(scope="module")
def rec() -> Recording:
    return run_platform(platform_config(ci=CI))


def _trust(rec: Recording, part: str) -> dict:
    role = rec.one(ROLE, f"ci-{part}")
    statements = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert len(statements) == 1, role.urn
    return statements[0]


def test_ci_is_off_by_default():
    """Without `ci.enabled` the platform declares no CI identity at all."""
    rec = run_platform(platform_config())
    assert rec.of_type(PLATFORM_CI_IDENTITY) == []
    assert [r for r in rec.of_type(ROLE) if r.name.startswith("ci-")] == []


def test_github_oidc_provider(rec):
    """One provider for GitHub's issuer whose only audience is STS, as configure-aws-credentials asks for."""
    provider = rec.one(AWS_IAM_OPEN_ID_CONNECT_PROVIDER, "ci-github-oidc")
    assert provider.inputs["url"] == f"https://{ISSUER}"
    assert provider.inputs["clientIdLists"] == ["sts.amazonaws.com"]


def test_preview_role_trusts_only_pull_requests_of_the_repository(rec):
    """The preview role: exactly this repository's pull_request jobs, audience STS, no wildcard."""
    statement = _trust(rec, "preview")
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"]["Federated"].endswith(f":oidc-provider/{ISSUER}")
    assert statement["Condition"] == {
        "StringEquals": {f"{ISSUER}:aud": "sts.amazonaws.com", f"{ISSUER}:sub": [f"repo:{REPO}:pull_request"]}
    }


@pytest.mark.parametrize("part", ["deploy", "deploy-models"])
def test_deploy_roles_trust_only_the_environments(rec, part):
    """Deploy roles: one exact `sub` per GitHub environment, compared with StringEquals (no `*`, no PRs)."""
    condition = _trust(rec, part)["Condition"]
    assert list(condition) == ["StringEquals"]
    subjects = condition["StringEquals"][f"{ISSUER}:sub"]
    assert subjects == [f"repo:{REPO}:environment:{env}" for env in ("dev", "staging", "prod")]
    assert condition["StringEquals"][f"{ISSUER}:aud"] == "sts.amazonaws.com"
    assert not any("*" in s or "?" in s for s in subjects)


def test_deploy_branch_adds_a_ref_subject():
    """`deployBranch` trusts jobs on that branch without an environment, and nothing wider."""
    rec = run_platform(platform_config(ci={**CI, "environments": [], "deployBranch": "main"}))
    assert _trust(rec, "deploy")["Condition"]["StringEquals"][f"{ISSUER}:sub"] == [f"repo:{REPO}:ref:refs/heads/main"]


def _associations(rec: Recording) -> dict[str, dict]:
    found = {}
    for assoc in rec.of_type(ASSOCIATION):
        found[assoc.name] = assoc.inputs
    return found


def test_access_entries_and_policy_scopes(rec):
    """deploy: cluster admin; deploy-models: edit in the serving and team namespaces only; preview: view."""
    entries = {e.name: e.inputs for e in rec.of_type(ENTRY)}
    assert set(entries) == {"ci-preview", "ci-deploy", "ci-deploy-models"}
    assert {e["type"] for e in entries.values()} == {"STANDARD"}
    assert entries["ci-deploy-models"]["kubernetesGroups"] == ["mlplatform:model-deployers"]
    assert entries["ci-preview"]["kubernetesGroups"] == ["mlplatform:previewers"]
    assert "kubernetesGroups" not in entries["ci-deploy"]
    policy = "arn:aws:eks::aws:cluster-access-policy/"
    assert _associations(rec) == {
        "ci-preview-AmazonEKSViewPolicy": {
            "clusterName": "mlp-test",
            "principalArn": entries["ci-preview"]["principalArn"],
            "policyArn": policy + "AmazonEKSViewPolicy",
            "accessScope": {"type": "cluster"},
        },
        "ci-deploy-AmazonEKSClusterAdminPolicy": {
            "clusterName": "mlp-test",
            "principalArn": entries["ci-deploy"]["principalArn"],
            "policyArn": policy + "AmazonEKSClusterAdminPolicy",
            "accessScope": {"type": "cluster"},
        },
        "ci-deploy-models-AmazonEKSEditPolicy": {
            "clusterName": "mlp-test",
            "principalArn": entries["ci-deploy-models"]["principalArn"],
            "policyArn": policy + "AmazonEKSEditPolicy",
            "accessScope": {"type": "namespace", "namespaces": ["ml-serving", "team-a"]},
        },
    }
    # Each entry is for its own role.
    assert entries["ci-deploy-models"]["principalArn"] == rec.one(ROLE, "ci-deploy-models").outputs["arn"]


def test_cluster_authenticates_through_access_entries(rec):
    """Access entries need the API authentication mode; the ConfigMap stays for the node role."""
    access = rec.one(AWS_EKS_CLUSTER).inputs["accessConfig"]
    assert access["authenticationMode"] == "API_AND_CONFIG_MAP"


def test_aws_permissions_per_role(rec):
    """preview reads no data (ViewOnlyAccess); deploy-models may touch only the training roles."""
    attached = {
        a.name: a.inputs["policyArn"] for a in rec.of_type(AWS_IAM_ROLE_POLICY_ATTACHMENT) if a.name.startswith("ci-")
    }
    assert attached == {
        "ci-preview-job-function/ViewOnlyAccess": "arn:aws:iam::aws:policy/job-function/ViewOnlyAccess",
        "ci-deploy-AdministratorAccess": "arn:aws:iam::aws:policy/AdministratorAccess",
    }
    inline = json.loads(rec.one(AWS_IAM_ROLE_POLICY, "ci-deploy-models-training-roles").inputs["policy"])
    (statement,) = inline["Statement"]
    assert statement["Resource"].startswith("arn:aws:iam::") and statement["Resource"].endswith(":role/*-train-*")
    assert all(action.startswith("iam:") and "*" not in action for action in statement["Action"])


def test_model_deployers_get_the_custom_resources_in_model_namespaces(rec):
    """EKS access policies do not cover CRDs: a RoleBinding per model namespace grants them to the group."""
    bindings = [b for b in rec.of_type(K8S_ROLE_BINDING) if b.name.startswith("ci-model-stack-crds-")]
    assert sorted(b.inputs["metadata"]["namespace"] for b in bindings) == ["ml-serving", "team-a"]
    for binding in bindings:
        assert binding.inputs["subjects"] == [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "mlplatform:model-deployers"}
        ]
    role = rec.one(K8S_CLUSTER_ROLE, "ci-model-stack-crds")
    (rule,) = role.inputs["rules"]
    assert {"ml.example.com", "split.smi-spec.io", "monitoring.coreos.com", "policy.linkerd.io"} <= set(
        rule["apiGroups"]
    )
    assert "" not in rule["apiGroups"] and "rbac.authorization.k8s.io" not in rule["apiGroups"]


def test_role_arns_are_platform_outputs(rec):
    """The workflows need the ARNs as repository variables; the stack outputs them under `ciRoles`."""
    roles = rec.stack_outputs["ciRoles"]
    assert roles["preview"] == rec.one(ROLE, "ci-preview").outputs["arn"]
    assert roles["deploy"] == rec.one(ROLE, "ci-deploy").outputs["arn"]
    assert roles["deployModels"] == rec.one(ROLE, "ci-deploy-models").outputs["arn"]
    assert roles["runnerLabel"] == "mlplatform-vpc"


def test_existing_oidc_provider_is_reused():
    """IAM allows one provider per URL and account: with `oidcProviderArn` none is created, and it is trusted."""
    arn = f"arn:aws:iam::123456789012:oidc-provider/{ISSUER}"
    rec = run_platform(platform_config(ci={**CI, "oidcProviderArn": arn}))
    assert [p for p in rec.of_type(AWS_IAM_OPEN_ID_CONNECT_PROVIDER) if p.name.startswith("ci-")] == []
    assert _trust(rec, "deploy")["Principal"]["Federated"] == arn


INVALID = [
    ({"ci": {**CI, "githubRepository": "acme/*"}}, "mlplatform:ci.githubRepository", "owner/name"),
    ({"ci": {**CI, "githubRepository": "acme"}}, "mlplatform:ci.githubRepository", "owner/name"),
    ({"ci": {"enabled": True, "runnerLabel": "x"}}, "ci.githubRepository", "not set"),
    (
        {
            "ci": {**CI, "runnerLabel": None},
            "cluster": {
                "endpointPublicAccess": False,
                "publicAccessCidrs": None,
                "privateAccessCidrs": ["10.100.0.0/24"],
            },
        },
        "ci.runnerLabel",
        "private API endpoint",
    ),
    ({"ci": {**CI, "environments": ["prod", "*"]}}, "mlplatform:ci.environments", "pattern"),
    ({"ci": {**CI, "environments": [], "deployBranch": None}}, "ci.deployBranch", "no deploy job"),
    (
        {"ci": {**CI, "oidcProviderArn": "arn:aws:iam::123456789012:oidc-provider/example.com"}},
        "mlplatform:ci.oidcProviderArn",
        "pattern",
    ),
]


@pytest.mark.parametrize(("overrides", "key", "allowed"), INVALID)
def test_bad_ci_config_fails_before_any_resource(overrides, key, allowed):
    """A wrong repository claim, a private endpoint without runners, an untrusted deploy: errors, nothing declared."""
    with pytest.raises(ConfigError) as excinfo:
        run_platform(platform_config(**overrides))
    message = str(excinfo.value)
    assert key in message and allowed in message, message
    assert recording_of(excinfo.value).resources == []


def test_public_endpoint_needs_no_runner_label():
    """With a public endpoint limited by publicAccessCidrs, hosted runners can reach the API."""
    rec = run_platform(
        platform_config(
            ci={**CI, "runnerLabel": None},
            cluster={"endpointPublicAccess": True, "publicAccessCidrs": ["203.0.113.0/24"]},
        )
    )
    assert rec.stack_outputs["ciRoles"]["runnerLabel"] is None


def test_deploy_sessions_outlast_the_longest_update(rec):
    """A first platform `up` (EKS, Multi-AZ RDS, node groups, Helm waits) runs well past an hour; credentials
    that expire mid-update leave the state locked. Preview stays at the one-hour default."""
    sessions = {
        part: rec.one(ROLE, f"ci-{part}").inputs["maxSessionDuration"]
        for part in ("preview", "deploy", "deploy-models")
    }
    assert sessions == {"preview": 3600, "deploy": 10800, "deploy-models": 10800}


def test_deploy_session_is_configurable_within_iam_bounds():
    rec = run_platform(platform_config(ci={**CI, "deploySessionSeconds": 14400}))
    assert rec.one(ROLE, "ci-deploy").inputs["maxSessionDuration"] == 14400
    with pytest.raises(ConfigError, match=r"mlplatform:ci\.deploySessionSeconds = 50000"):
        run_platform(platform_config(ci={**CI, "deploySessionSeconds": 50000}))


def test_model_deployers_may_proxy_exactly_prometheus_and_mlflow(rec):
    """The rollout gate reads Prometheus and MLflow through the API server's service proxy with the
    deploy-models identity: `get` on those two services' proxy subresource, nothing wider."""
    roles = {
        r.inputs["metadata"]["namespace"]: r.inputs["rules"]
        for r in rec.of_type(K8S_ROLE)
        if r.name.startswith("ci-proxy-")
    }
    assert roles == {
        "monitoring": [
            {
                "apiGroups": [""],
                "resources": ["services/proxy"],
                "verbs": ["get"],
                "resourceNames": [
                    "kube-prometheus-stack-prometheus",
                    "kube-prometheus-stack-prometheus:9090",
                    "http:kube-prometheus-stack-prometheus:9090",
                ],
            }
        ],
        "mlflow": [
            {
                "apiGroups": [""],
                "resources": ["services/proxy"],
                "verbs": ["get"],
                "resourceNames": ["mlflow", "mlflow:5000", "http:mlflow:5000"],
            }
        ],
    }
    bindings = [b for b in rec.of_type(K8S_ROLE_BINDING) if b.name.startswith("ci-proxy-")]
    assert {b.inputs["subjects"][0]["name"] for b in bindings} == {"mlplatform:model-deployers"}
    assert len(bindings) == 2


def test_previewers_read_only_the_inference_service_records_in_model_namespaces(rec):
    """The PR comment shows the judge's verdict from the record's status, and the model program reads the
    record to refuse an aborted canary: AmazonEKSViewPolicy covers no custom resource, so a RoleBinding
    per model namespace grants the preview group read access to the records, and nothing more."""
    bindings = [b for b in rec.of_type(K8S_ROLE_BINDING) if b.name.startswith("ci-model-record-readers-")]
    assert sorted(b.inputs["metadata"]["namespace"] for b in bindings) == ["ml-serving", "team-a"]
    for binding in bindings:
        assert binding.inputs["subjects"] == [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "mlplatform:previewers"}
        ]
        assert binding.inputs["roleRef"]["name"] == "mlplatform-model-record-readers"
    (rule,) = rec.one(K8S_CLUSTER_ROLE, "ci-model-record-readers").inputs["rules"]
    assert rule == {
        "apiGroups": ["ml.example.com"],
        "resources": ["inferenceservices"],
        "verbs": ["get", "list", "watch"],
    }
