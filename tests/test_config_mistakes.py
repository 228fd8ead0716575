"""Issue 13: every config mistake stops at config validation, before any resource, with the key named.

Each table is one class of mistake; each case runs the real entry point (platform or
model stack) under the recording mocks with the exact config a stack would hand the
program, as `pulumi up` does, and asserts the key paths the message must name and
that nothing was registered. `ACCEPTED` holds the look-alikes that must still pass,
so no rule is simply "refuse everything".
"""

from __future__ import annotations

from typing import Any

import pytest

from mlplatform.configuration import ConfigError
from mlplatform.tools.offline.engine import recording_of, run_entry_point
from tests.model.helpers import (
    CANARY,
    MODEL_STACK_DIR,
    PLATFORM_OUTPUTS,
    PLATFORM_STACK,
    STABLE,
    model_config,
    with_canary,
)
from tests.support.helpers import ROOT, platform_config, qualify

DIGEST = "sha256:" + "a" * 64
KUBECONFIG_WITH_TOKEN = "apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user:\n    token: abc123\n"


def _existing_cluster(**cluster: Any) -> dict[str, Any]:
    return platform_config(
        cluster={"mode": "existing", **cluster},
        mlflow={"backend": "in-cluster", "artifactBucket": "ml-artifacts"},
    )


def _training(**overrides: Any) -> dict[str, Any]:
    return {
        "runId": "r1",
        "image": "ghcr.io/example/train:1.0.0",
        "dataSource": {"type": "s3", "path": "s3://data/train"},
        **overrides,
    }


def _routes(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "method": "GET", "pathRegex": f"/{i}", "timeout": "1s"} for i, n in enumerate(names)]


def _platform(values: dict[str, Any], extra: dict[str, Any] | None = None, secrets=()) -> tuple:
    return ROOT, "dev", {**qualify("mlplatform", values), "aws:region": "us-west-2", **(extra or {})}, secrets


def _model(values: dict[str, Any], extra: dict[str, Any] | None = None, secrets=()) -> tuple:
    return MODEL_STACK_DIR, "fraud-detector-dev", {**qualify("mlmodel", values), **(extra or {})}, secrets


def _run(case: tuple):
    project, stack, config, secrets = case
    return run_entry_point(
        project, stack=stack, config=config, secret_keys=secrets, stack_references={PLATFORM_STACK: PLATFORM_OUTPUTS}
    )


# (class, id, run, fragments the message must contain)
MISTAKES: list[tuple[str, str, tuple, tuple[str, ...]]] = [
    # -- namespaces that neither the project nor a provider owns -------------------------
    (
        "namespace",
        "misspelt-model-namespace",
        _model(model_config(), {"mlmodl:canary": {**CANARY, "weight": 10}}),
        ("mlmodl:canary", "did you mean 'mlmodel:canary'?"),
    ),
    (
        "namespace",
        "platform-key-in-model-stack",
        _model(model_config(), {"mlplatform:cluster": {"mode": "aws"}}),
        ("mlplatform:cluster", "belong to the platform project"),
    ),
    (
        "namespace",
        "misspelt-platform-namespace",
        _platform(platform_config(), {"mlplatfrom:mesh": {"ha": True}}),
        ("mlplatfrom:mesh", "did you mean 'mlplatform:mesh'?"),
    ),
    (
        "namespace",
        "model-key-in-platform-stack",
        _platform(platform_config(), {"mlmodel:canary": {"weight": 10}}),
        ("mlmodel:canary", "belong to the model-stack project"),
    ),
    (
        "namespace",
        "misspelt-provider",
        _platform(platform_config(), {"awz:region": "us-west-2"}),
        ("awz:region", "did you mean 'aws:region'?"),
    ),
    (
        "namespace",
        "unrelated-namespace",
        _model(model_config(), {"gcp:project": "x"}),
        ("gcp:project", "unknown config namespace 'gcp'", "known namespaces: mlmodel, aws"),
    ),
    # -- values that must be Pulumi secrets ----------------------------------------------
    (
        "secret",
        "plain-kubeconfig-contents",
        _platform(_existing_cluster(kubeconfig=KUBECONFIG_WITH_TOKEN)),
        (
            "mlplatform:cluster.kubeconfig must be a Pulumi secret",
            "pulumi config set --secret --path 'cluster.kubeconfig'",
        ),
    ),
    (
        "secret",
        "plain-kubeconfig-json",
        _platform(_existing_cluster(kubeconfig='{"apiVersion": "v1"}')),
        ("mlplatform:cluster.kubeconfig must be a Pulumi secret",),
    ),
    (
        "secret",
        "secret-elsewhere-does-not-cover",
        _platform(_existing_cluster(kubeconfig=KUBECONFIG_WITH_TOKEN), secrets=["mlplatform:mesh"]),
        ("mlplatform:cluster.kubeconfig must be a Pulumi secret",),
    ),
    # -- images and charts pinned ---------------------------------------------------------
    (
        "pinning",
        "image-without-tag",
        _model(model_config(stable={"image": "ghcr.io/example/serve"})),
        ("mlmodel:stable.image = 'ghcr.io/example/serve'", "no tag", "image@sha256:"),
    ),
    (
        "pinning",
        "image-latest",
        _model(with_canary(10, canary={"image": "ghcr.io/example/serve:latest"})),
        ("mlmodel:canary.image", "'latest' moves"),
    ),
    (
        "pinning",
        "registry-port-is-not-a-tag",
        _model(model_config(stable={"image": "registry:5000/team/serve"})),
        ("mlmodel:stable.image", "no tag"),
    ),
    (
        "pinning",
        "training-image-latest",
        _model(model_config(training=_training(image="ghcr.io/e/train:latest"))),
        ("mlmodel:training.image", "'latest' moves"),
    ),
    (
        "pinning",
        "mlflow-image-untagged",
        _platform(platform_config(mlflow={"image": "ghcr.io/mlflow/mlflow"})),
        ("mlplatform:mlflow.image", "no tag"),
    ),
    (
        "pinning",
        "postgres-latest",
        _platform(platform_config(mlflow={"postgresImage": "postgres:latest"})),
        ("mlplatform:mlflow.postgresImage", "'latest' moves"),
    ),
    (
        "pinning",
        "chart-caret-range",
        _platform(platform_config(charts={"linkerdSmi": {"repo": "https://x.io", "version": "^1.0.4"}})),
        ("mlplatform:charts.linkerdSmi.version = '^1.0.4'", "not a range"),
    ),
    (
        "pinning",
        "chart-partial-version",
        _platform(platform_config(charts={"clusterAutoscaler": {"repo": "https://x.io", "version": "9.50"}})),
        ("mlplatform:charts.clusterAutoscaler.version = '9.50'", "one exact release"),
    ),
    (
        "pinning",
        "chart-wildcard",
        _platform(platform_config(charts={"nvidiaDevicePlugin": {"repo": "https://x.io", "version": "0.20.x"}})),
        ("mlplatform:charts.nvidiaDevicePlugin.version", "one exact release"),
    ),
    (
        "pinning",
        "chart-not-semver",
        _platform(platform_config(charts={"linkerdViz": {"repo": "https://x.io", "version": "2.14.0.1"}})),
        ("mlplatform:charts.linkerdViz.version = '2.14.0.1'", "not a semantic version"),
    ),
    # -- values the API server would reject mid-apply --------------------------------------
    (
        "kubernetes",
        "serving-cpu-request-above-limit",
        _model(
            model_config(
                serving={
                    "resources": {
                        "requests": {"cpu": "3", "memory": "1Gi"},
                        "limits": {"cpu": "2000m", "memory": "4Gi"},
                    }
                }
            )
        ),
        ("mlmodel:serving.resources.requests.cpu / mlmodel:serving.resources.limits.cpu", "above its limit"),
    ),
    (
        "kubernetes",
        "training-memory-request-above-limit",
        _model(
            model_config(
                training=_training(
                    resources={"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "1", "memory": "1500Mi"}}
                )
            )
        ),
        ("mlmodel:training.resources.requests.memory / mlmodel:training.resources.limits.memory",),
    ),
    (
        "kubernetes",
        "s3-type-with-gcs-path",
        _model(model_config(training=_training(dataSource={"type": "s3", "path": "gs://bucket/data"}))),
        ("mlmodel:training.dataSource.type / mlmodel:training.dataSource.path", "reads s3:// URIs"),
    ),
    (
        "kubernetes",
        "gcs-type-with-s3-path",
        _model(model_config(training=_training(dataSource={"type": "gcs", "path": "s3://bucket/data"}))),
        ("mlmodel:training.dataSource.type", "reads gs:// URIs"),
    ),
    (
        "kubernetes",
        "local-type-with-uri",
        _model(model_config(training=_training(dataSource={"type": "local", "path": "s3://bucket/data"}))),
        ("mlmodel:training.dataSource.path", "absolute path inside the pod"),
    ),
    (
        "kubernetes",
        "hyperparameters-one-env-name",
        _model(model_config(training=_training(hyperparameters={"learningRate": 0.1, "learning_rate": 0.2}))),
        ("mlmodel:training.hyperparameters", "both become HP_LEARNING_RATE"),
    ),
    (
        "kubernetes",
        "hyperparameter-without-name",
        _model(model_config(training=_training(hyperparameters={"--": 1}))),
        ("mlmodel:training.hyperparameters", "no letter or digit"),
    ),
    # -- cross-field rules name every field involved ---------------------------------------
    (
        "cross-field",
        "canary-changes-nothing",
        _model(model_config(canary={**STABLE, "version": "v6", "weight": 10})),
        ("mlmodel:canary.image / mlmodel:canary.modelUri: canary must change the image or the model URI",),
    ),
    (
        "cross-field",
        "canary-same-version",
        _model(model_config(canary={**CANARY, "version": "v5", "weight": 10})),
        ("mlmodel:canary.version / mlmodel:stable.version",),
    ),
    (
        "cross-field",
        "route-names-repeated",
        _model(model_config(serving={"routes": _routes("a", "b", "a")})),
        ("mlmodel:serving.routes[0].name / mlmodel:serving.routes[2].name: route names must be unique",),
    ),
    (
        "cross-field",
        "dwell-per-step",
        _model(model_config(analysis={"dwellMinutes": [5]})),
        ("mlmodel:analysis.dwellMinutes / mlmodel:steps",),
    ),
    (
        "cross-field",
        "team-namespace-clash",
        _platform(platform_config(namespaces={"teams": [{"name": "ml-serving"}]})),
        ("mlplatform:namespaces.serving / mlplatform:namespaces.teams[0].name",),
    ),
    (
        "cross-field",
        "prod-without-ha",
        _platform(platform_config(environment="prod")),
        ("mlplatform:environment / mlplatform:mesh.ha",),
    ),
    (
        "cross-field",
        "region-mismatch",
        _platform(platform_config(cluster={"region": "eu-west-1"}), {"aws:region": "us-east-1"}),
        ("mlplatform:cluster.region / aws:region", "'eu-west-1'", "'us-east-1'"),
    ),
]

ACCEPTED: list[tuple[str, tuple]] = [
    (
        "provider-namespaces",
        _platform(
            platform_config(),
            {"kubernetes:enableServerSideApply": "true", "pulumi:tags": {"team": "ml"}, "random:x": "1"},
        ),
    ),
    ("kubeconfig-as-path", _platform(_existing_cluster(kubeconfig="~/.kube/config"))),
    (
        "kubeconfig-secret-top-level",
        _platform(_existing_cluster(kubeconfig=KUBECONFIG_WITH_TOKEN), secrets=["mlplatform:cluster"]),
    ),
    (
        "kubeconfig-secret-by-path",
        _platform(_existing_cluster(kubeconfig=KUBECONFIG_WITH_TOKEN), secrets=["mlplatform:cluster.kubeconfig"]),
    ),
    ("image-digest", _model(model_config(stable={"image": f"ghcr.io/example/serve@{DIGEST}"}))),
    ("image-tag-and-digest", _model(model_config(stable={"image": f"registry:5000/serve:5.0.0@{DIGEST}"}))),
    (
        "chart-prerelease",
        _platform(platform_config(charts={"linkerdSmi": {"repo": "https://x.io", "version": "1.0.5-rc.1"}})),
    ),
    (
        "request-equals-limit",
        _model(
            model_config(
                serving={
                    "resources": {
                        "requests": {"cpu": "2", "memory": "4Gi"},
                        "limits": {"cpu": "2000m", "memory": "4096Mi"},
                    }
                }
            )
        ),
    ),
    (
        "local-dataset",
        _model(model_config(team="team-fraud", training=_training(dataSource={"type": "local", "path": "/data/x"}))),
    ),
    ("existing-cluster-ignores-region", _platform(_existing_cluster(region="eu-west-1"), {"aws:region": "us-east-1"})),
]


@pytest.mark.parametrize(
    ("case", "expected"), [pytest.param(run, frags, id=f"{cls}:{name}") for cls, name, run, frags in MISTAKES]
)
def test_mistake_stops_before_any_resource_naming_the_key(case, expected):
    """The message names the key paths to edit, and the program registered nothing."""
    with pytest.raises(ConfigError) as caught:
        _run(case)
    message = str(caught.value)
    for fragment in expected:
        assert fragment in message, message
    assert recording_of(caught.value).resources == []


def test_every_class_has_several_cases():
    """The issue asks for several cases per class; a table edit must not quietly drop one."""
    classes = [cls for cls, *_ in MISTAKES]
    assert {c: classes.count(c) for c in set(classes)} == {
        "namespace": 6,
        "secret": 3,
        "pinning": 10,
        "kubernetes": 7,
        "cross-field": 7,
    }


@pytest.mark.parametrize("case", [pytest.param(run, id=name) for name, run in ACCEPTED])
def test_look_alikes_are_accepted(case):
    """Each rule refuses the mistake only: its correct neighbours still declare resources."""
    assert _run(case).resources
