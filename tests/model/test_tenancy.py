"""Training tenancy: the team's namespace and quota, the run's own identity, and the platform
facts a model stack must find in the platform's outputs before it declares anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from mlplatform import labels
from mlplatform.configuration import ConfigError
from mlplatform.model.identity import dataset_read_policy
from mlplatform.model.platform_outputs import REQUIRED
from mlplatform.tools.offline.engine import RecordedResource, Recording, recording_of, run_entry_point
from tests.model.helpers import (
    MODEL_STACK_DIR,
    OIDC_PROVIDER_ARN,
    OIDC_PROVIDER_URL,
    PLATFORM_OUTPUTS,
    PLATFORM_STACK,
    SERVING_NAMESPACE,
    TEAM,
    model_config,
    run_model,
)
from tests.support.helpers import ROOT
from tests.support.types import (
    AWS_IAM_ROLE,
    AWS_IAM_ROLE_POLICY,
    AWS_PROVIDER,
    K8S_DEPLOYMENT,
    K8S_JOB,
    K8S_PERSISTENT_VOLUME_CLAIM,
    K8S_RESOURCE_QUOTA,
    K8S_SERVICE_ACCOUNT,
    custom_resource,
)

JOB = K8S_JOB
PVC = K8S_PERSISTENT_VOLUME_CLAIM
SERVICE_ACCOUNT = K8S_SERVICE_ACCOUNT
DEPLOYMENT = K8S_DEPLOYMENT
RECORD = custom_resource("ml.example.com/v1", "ModelTraining")
QUOTA = K8S_RESOURCE_QUOTA
ROLE = AWS_IAM_ROLE
ROLE_POLICY = AWS_IAM_ROLE_POLICY
TRAINING_SA = "fraud-detector-training"


def _training(**overrides: Any) -> dict[str, Any]:
    return {
        "runId": "r1",
        "image": "ghcr.io/example/train:1.0.0",
        "gpus": 2,
        "dataSource": {"type": "s3", "path": "s3://fraud-data/2024-06/"},
        **overrides,
    }


def _with_training(**overrides: Any) -> dict[str, Any]:
    return model_config(team=TEAM, training=_training(**overrides))


@pytest.fixture(scope="module")
def run() -> Recording:
    return run_model(_with_training())


def _pod(job: RecordedResource) -> dict[str, Any]:
    return job.inputs["spec"]["template"]["spec"]


# -- the team's namespace and quota --------------------------------------------
def test_training_runs_in_the_team_namespace_and_serving_does_not(run):
    """The team's GPU quota applies only to pods in its namespace; serving stays in the meshed serving namespace."""
    for type_token in (JOB, PVC, RECORD, SERVICE_ACCOUNT):
        objects = [
            o for o in run.of_type(type_token) if o.metadata["labels"]["app.kubernetes.io/component"] == "training"
        ]
        assert objects, type_token
        assert {o.metadata["namespace"] for o in objects} == {TEAM}, type_token
    deployments = run.of_type(DEPLOYMENT)
    assert deployments and {d.metadata["namespace"] for d in deployments} == {SERVING_NAMESPACE}


def test_the_team_quota_binds_the_jobs_gpus(dev_platform):
    """The quota caps `requests.nvidia.com/gpu`; the Job's pods must request GPUs under that exact name,
    in the namespace the quota is in. Checked against the real dev platform's outputs and quota."""
    recording = run_entry_point(
        MODEL_STACK_DIR,
        stack="fraud-detector-dev",
        stack_references={"organization/mlplatform/dev": dev_platform.stack_outputs},
    )
    job = recording.one(JOB)
    (quota,) = [q for q in dev_platform.of_type(QUOTA) if q.metadata["namespace"] == job.metadata["namespace"]]
    (container,) = _pod(job)["containers"]
    requested = {f"requests.{name}": value for name, value in container["resources"]["requests"].items()}
    capped = set(requested) & set(quota.inputs["spec"]["hard"])
    assert capped == {f"requests.{labels.GPU_RESOURCE}"}
    assert int(requested[f"requests.{labels.GPU_RESOURCE}"]) >= 1
    assert container["resources"]["limits"][labels.GPU_RESOURCE] == requested[f"requests.{labels.GPU_RESOURCE}"]


# -- storage --------------------------------------------------------------------
def test_checkpoints_use_the_platforms_read_write_many_class(run):
    """The class name comes from the platform's outputs, never from a default of the model stack."""
    claim = run.one(PVC)
    assert claim.inputs["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim.inputs["spec"]["storageClassName"] == PLATFORM_OUTPUTS["storageClasses"]["readWriteMany"]


def test_a_single_worker_may_checkpoint_on_the_read_write_once_class():
    """Without an RWX class a one-pod run can still train, on the platform's RWO class."""
    recording = run_model(
        _with_training(checkpointAccessMode="ReadWriteOnce"),
        platform={"storageClasses": {"readWriteOnce": "ebs-test", "readWriteMany": None}},
    )
    spec = recording.one(PVC).inputs["spec"]
    assert spec["accessModes"] == ["ReadWriteOnce"] and spec["storageClassName"] == "ebs-test"


# -- identity -------------------------------------------------------------------
def test_training_runs_under_its_own_service_account(run):
    """Not the namespace's default account, and no API token: training never calls the Kubernetes API."""
    account = run.one(SERVICE_ACCOUNT, TRAINING_SA)
    assert account.metadata["name"] == TRAINING_SA
    assert account.inputs["automountServiceAccountToken"] is False
    pod = _pod(run.one(JOB))
    assert pod["serviceAccountName"] == TRAINING_SA
    assert pod["automountServiceAccountToken"] is False


def test_the_irsa_role_trusts_exactly_the_training_account(run):
    """Any other subject (another namespace's `<model>-training`, the team's default account) must be refused."""
    role = run.one(ROLE)
    assert run.one(SERVICE_ACCOUNT, TRAINING_SA).metadata["annotations"] == {
        "eks.amazonaws.com/role-arn": role.outputs["arn"]
    }
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Principal"] == {"Federated": OIDC_PROVIDER_ARN}
    assert statement["Condition"]["StringEquals"] == {
        f"{OIDC_PROVIDER_URL}:sub": f"system:serviceaccount:{TEAM}:{TRAINING_SA}",
        f"{OIDC_PROVIDER_URL}:aud": "sts.amazonaws.com",
    }


def test_the_role_reads_the_dataset_prefix_and_nothing_else(run):
    """Read-only, one bucket, one prefix: the run cannot write the dataset or read another team's data."""
    policy = json.loads(run.one(ROLE_POLICY).inputs["policy"])
    listing, reading = policy["Statement"]
    assert listing["Action"] == "s3:ListBucket"
    assert listing["Resource"] == "arn:aws:s3:::fraud-data"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["2024-06/*"]}}
    assert reading["Action"] == "s3:GetObject"
    assert reading["Resource"] == "arn:aws:s3:::fraud-data/2024-06/*"
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])


def test_the_aws_provider_takes_the_platforms_region(run):
    """The model stack needs no aws:region of its own: the platform says where it runs."""
    (provider,) = run.of_type(AWS_PROVIDER)
    assert provider.inputs["region"] == PLATFORM_OUTPUTS["workloadIdentity"]["region"]
    assert run.one(ROLE).provider.startswith(provider.urn)


def test_a_whole_bucket_dataset_lists_without_a_prefix_condition():
    document = dataset_read_policy("aws-us-gov", "fraud-data", "")
    assert "Condition" not in document["Statement"][0]
    assert document["Statement"][1]["Resource"] == "arn:aws-us-gov:s3:::fraud-data/*"


def test_a_platform_without_irsa_gets_no_aws_resource():
    """On an existing cluster (workloadIdentity kind none) the account exists but no IAM role is made."""
    recording = run_model(_with_training(), platform={"workloadIdentity": {"kind": "none"}})
    assert [r for r in recording.resources if r.type.startswith("aws:") or r.type == AWS_PROVIDER] == []
    account = recording.one(SERVICE_ACCOUNT, TRAINING_SA)
    assert "annotations" not in account.metadata
    assert _pod(recording.one(JOB))["serviceAccountName"] == TRAINING_SA


def test_a_non_s3_dataset_gets_no_role():
    recording = run_model(_with_training(dataSource={"type": "gcs", "path": "gs://fraud-data/2024-06/"}))
    assert recording.of_type(ROLE) == [] and recording.of_type(AWS_PROVIDER) == []


# -- refused before anything is declared -----------------------------------------
def _without(key: str) -> dict[str, Any]:
    return {k: v for k, v in PLATFORM_OUTPUTS.items() if k != key}


# Each case: id, model config, the platform's outputs (a dict: overrides of the defaults; a key: the defaults
# without that output; None: the defaults), and what the message says.
REFUSED: list[tuple[str, dict[str, Any], dict[str, Any] | str | None, tuple[str, ...]]] = [
    (
        "unknown-team",
        model_config(team="team-ads", training=_training()),
        None,
        (
            "mlmodel:team = 'team-ads'",
            f"(mlmodel:platformStack = '{PLATFORM_STACK}')",
            "namespaces.teams",
            "'team-fraud'",
        ),
    ),
    (
        "gpu-training-without-gpu-pool",
        _with_training(),
        {"gpuPoolEnabled": False},
        ("mlmodel:training.gpus = 2", f"(mlmodel:platformStack = '{PLATFORM_STACK}')", "gpuPoolEnabled is false"),
    ),
    (
        "gpu-serving-without-gpu-pool",
        model_config(serving={"gpus": 1}),
        {"gpuPoolEnabled": False},
        ("mlmodel:serving.gpus = 1", "gpuPoolEnabled is false"),
    ),
    (
        "rwx-without-rwx-class",
        _with_training(),
        {"storageClasses": {"readWriteOnce": "ebs-test", "readWriteMany": None}},
        ("mlmodel:training.checkpointAccessMode = 'ReadWriteMany'", "storageClasses.readWriteMany is null"),
    ),
    (
        "missing-storage-classes-output",
        model_config(),
        "storageClasses",
        (f"mlmodel:platformStack = '{PLATFORM_STACK}'", "has no output 'storageClasses'"),
    ),
    (
        "missing-gpu-pool-output",
        model_config(),
        "gpuPoolEnabled",
        ("has no output 'gpuPoolEnabled'",),
    ),
    (
        "missing-prometheus-output",
        model_config(),
        "prometheusUrl",
        ("has no output 'prometheusUrl'",),
    ),
    (
        "irsa-without-provider",
        _with_training(),
        {"workloadIdentity": {"kind": "irsa", "region": "us-west-2"}},
        ("output 'workloadIdentity' has no 'oidcProviderArn'",),
    ),
]


@pytest.mark.parametrize("values,platform,expected", [pytest.param(v, p, e, id=i) for i, v, p, e in REFUSED])
def test_what_the_platform_lacks_is_refused_before_any_resource(values, platform, expected):
    """Each of these would otherwise be accepted and then sit Pending, or fail half-way through `up`."""
    if isinstance(platform, str):
        outputs = _without(platform)
        with pytest.raises(ConfigError) as caught:
            run_entry_point(
                MODEL_STACK_DIR,
                stack="fraud-detector-dev",
                config={f"mlmodel:{k}": v for k, v in values.items()},
                stack_references={PLATFORM_STACK: outputs},
            )
    else:
        with pytest.raises(ConfigError) as caught:
            run_model(values, platform=platform)
    message = str(caught.value)
    assert "stack 'fraud-detector-dev'" in message
    for fragment in expected:
        assert fragment in message
    assert recording_of(caught.value).resources == []


def test_every_missing_output_is_named_at_once():
    """An old platform stack lacking several outputs gets one error listing them all."""
    outputs = {k: v for k, v in PLATFORM_OUTPUTS.items() if k in ("kubeconfig", "namespaces")}
    with pytest.raises(ConfigError) as caught:
        run_entry_point(
            MODEL_STACK_DIR,
            stack="fraud-detector-dev",
            config={f"mlmodel:{k}": v for k, v in model_config().items()},
            stack_references={PLATFORM_STACK: outputs},
        )
    missing = [key for key in REQUIRED if key != "namespaces"]
    assert len(caught.value.problems) == len(missing)
    for key in missing:
        assert f"has no output '{key}'" in str(caught.value)
    assert recording_of(caught.value).resources == []


@pytest.mark.parametrize(
    "values,fragment",
    [
        pytest.param(model_config(training=_training()), "team is required with training", id="training-without-team"),
        pytest.param(
            _with_training(dataSource={"type": "s3", "path": "fraud-data/2024-06/"}),
            "type 's3' reads s3:// URIs",
            id="s3-path-without-scheme",
        ),
        pytest.param(
            _with_training(workers=2, checkpointAccessMode="ReadWriteOnce"),
            "distributed runs need 'ReadWriteMany'",
            id="distributed-on-rwo",
        ),
    ],
)
def test_training_config_errors_name_the_key(values, fragment):
    with pytest.raises(ConfigError) as caught:
        run_model(values)
    assert "mlmodel:" in str(caught.value) and fragment in str(caught.value)
    assert recording_of(caught.value).resources == []


def test_without_irsa_the_model_stack_never_loads_the_aws_provider():
    """A model stack against a platform without IRSA (mode existing) needs no AWS plugin: the
    engine of such a user, and the e2e tier's program environment, have none. So the program
    must not even import pulumi_aws there. Run in a fresh interpreter, since other tests import it."""
    script = """
import sys
from tests.model.helpers import PLATFORM_OUTPUTS, run_model, with_canary
from tests.support.types import K8S_JOB
outputs = {**PLATFORM_OUTPUTS, "workloadIdentity": {"kind": "none"}}
training = {"runId": "r1", "image": "ghcr.io/example/train:1.0.0",
            "dataSource": {"type": "s3", "path": "s3://datasets/fraud/"}}
recording = run_model(with_canary(10, team="team-fraud", training=training), platform=outputs)
assert recording.of_type(K8S_JOB), "the training Job is declared"
print("pulumi_aws" in sys.modules)
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"
