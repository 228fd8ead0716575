"""The seven charts, templated with the values the platform really passes, are production-shaped.

For the `dev` and `prod` stacks, each Helm release's chart, version, namespace and
values are taken from the offline run of the real entry point, and `helm template`
renders them against a chart mirror. Every workload the charts create (and the
Prometheus and Alertmanager the operator will create) must give each container a
CPU request, a memory request and a memory limit, run under the RuntimeDefault
seccomp profile, and not mount a service-account token unless it talks to the API
server. The few exceptions are listed below with their reason (docs/platform.md: "Chart
workloads: sizes and the exceptions").

Configuration, never skipped:
- `MLPLATFORM_TEST_CHARTS`: a static Helm repository (index.yaml and .tgz files), a
  directory (served here over HTTP on 127.0.0.1) or an http(s) URL; `.ci/run` points
  it at the shared mirror. Charts are never copied into the repository.
- helm: from `scripts/e2e-tools.sh helm`, which uses helm from PATH, else the e2e
  tools' cache, else builds it from `tests/e2e/go-modules/helm` with Go.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlplatform.tools.offline.engine import run_entry_point
from tests.e2e.tools import provide_tools, terminal_progress
from tests.support.chart_mirror import chart_mirror
from tests.support.helpers import ROOT
from tests.support.types import HELM_RELEASE

pytestmark = pytest.mark.integration

RELEASE = HELM_RELEASE
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
# Kinds the operator turns into StatefulSets; their pods' resources are set on the custom resource.
OPERATOR_MANAGED = {"Prometheus", "Alertmanager"}
# The CRDs the platform installs, so charts render what they gate on them.
API_VERSIONS = ("monitoring.coreos.com/v1", "policy.linkerd.io/v1beta3", "gateway.networking.k8s.io/v1")

# Workloads that call the Kubernetes API and so keep their service-account token
# (chart, kind/name): operators, controllers and the charts' own Jobs.
TALKS_TO_API = {
    ("kube-prometheus-stack", "Deployment/kube-prometheus-stack-operator"),
    ("kube-prometheus-stack", "Deployment/kube-prometheus-stack-kube-state-metrics"),
    # Its sidecars load dashboards and datasources from ConfigMaps.
    ("kube-prometheus-stack", "Deployment/kube-prometheus-stack-grafana"),
    ("kube-prometheus-stack", "Job/kube-prometheus-stack-admission-create"),
    ("kube-prometheus-stack", "Job/kube-prometheus-stack-admission-patch"),
    ("cluster-autoscaler", "Deployment/cluster-autoscaler-aws-cluster-autoscaler"),
    ("linkerd-smi", "Deployment/smi-adaptor"),
    ("linkerd-smi", "Job/namespace-metadata"),
    # The config manager reads its node's labels to pick the (time-slicing) config.
    ("nvidia-device-plugin", "DaemonSet/nvidia-device-plugin"),
    ("nvidia-device-plugin", "DaemonSet/nvidia-device-plugin-mps-control-daemon"),
}

# Checks a workload is excused from, and why. Keep this short; docs/platform.md lists it too.
EXCEPTIONS: dict[tuple[str, str, str], str] = {
    ("nvidia-device-plugin", "DaemonSet/nvidia-device-plugin", "resources"): (
        "the chart sizes only the plugin container; its init and config-manager containers have no key"
    ),
    ("nvidia-device-plugin", "DaemonSet/nvidia-device-plugin-mps-control-daemon", "resources"): (
        "MPS only, privileged, scheduled only on nodes labelled MPS-capable (none here); its sidecars have no key"
    ),
    ("linkerd-viz", "Job/namespace-metadata", "resources"): "a one-shot Helm hook; the chart has no resources key",
    ("linkerd-smi", "Job/namespace-metadata", "resources"): "a one-shot Helm hook; the chart has no resources key",
}


# -- configuration --------------------------------------------------------------
@pytest.fixture(scope="session")
def helm(request: pytest.FixtureRequest) -> str:
    # The same runner as the e2e tier's tools: its build progress reaches the terminal.
    return provide_tools(tools=("helm",), progress=terminal_progress(request.config))["helm"]


@pytest.fixture(scope="session")
def chart_repo() -> Iterator[str | None]:
    """The mirror's URL: as given, or a directory served on 127.0.0.1 for the session; None: upstream."""
    with chart_mirror() as url:
        yield url


# -- rendering ------------------------------------------------------------------
def _template(helm: str, repo: str | None, release: dict[str, Any], workdir: Path, kube_version: str) -> list[dict]:
    repo = repo or release["repositoryOpts"]["repo"]
    values = workdir / f"{release['name']}.values.json"
    values.write_text(json.dumps(release.get("values") or {}))
    command = [
        helm, "template", release["name"], release["chart"], "--repo", repo, "--version", release["version"],
        "--namespace", release["namespace"], "--values", str(values), "--kube-version", kube_version,
        *[flag for api in API_VERSIONS for flag in ("--api-versions", api)],
    ]  # fmt: skip
    # A private HOME and cache: no user repositories or credentials, nothing left behind.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(workdir), "HELM_CACHE_HOME": str(workdir / "cache"),
           "HELM_CONFIG_HOME": str(workdir / "config"), "HELM_DATA_HOME": str(workdir / "data")}  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert result.returncode == 0, f"helm template {release['chart']} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@functools.cache
def _releases(stack: str) -> tuple[str, list[dict[str, Any]]]:
    recording = run_entry_point(ROOT, stack=stack)
    releases = [r.inputs for r in recording.of_type(RELEASE)]
    kube_version = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]["mlplatform:cluster"][
        "kubernetesVersion"
    ]
    return kube_version, releases


@pytest.fixture(scope="module", params=["dev", "prod"])
def rendered(request, helm, chart_repo, tmp_path_factory) -> dict[str, list[dict]]:
    """chart -> its objects, for one stack."""
    kube_version, releases = _releases(request.param)
    assert len(releases) == 7, [r["chart"] for r in releases]
    workdir = tmp_path_factory.mktemp(f"helm-{request.param}")
    return {r["chart"]: _template(helm, chart_repo, r, workdir, kube_version) for r in releases}


# -- the checks -----------------------------------------------------------------
def _pod_spec(document: dict[str, Any]) -> dict[str, Any]:
    spec = document["spec"]
    if document["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def _workloads(rendered: dict[str, list[dict]]) -> list[tuple[str, str, dict[str, Any]]]:
    found = [
        (chart, f"{doc['kind']}/{doc['metadata']['name']}", doc)
        for chart, docs in rendered.items()
        for doc in docs
        if doc.get("kind") in WORKLOADS
    ]
    # Every chart but the CRDs' runs something; an empty scan would prove nothing.
    assert {chart for chart, _, _ in found} == set(rendered) - {"linkerd-crds"}
    return found


def _sized(resources: dict[str, Any] | None) -> bool:
    requests, limits = (resources or {}).get("requests") or {}, (resources or {}).get("limits") or {}
    return "cpu" in requests and "memory" in requests and "memory" in limits


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def test_every_container_has_requests_and_a_memory_limit(rendered):
    problems = [
        f"{chart} {workload} container {c['name']}: resources {c.get('resources') or {}}"
        for chart, workload, doc in _workloads(rendered)
        if (chart, workload, "resources") not in EXCEPTIONS
        for c in _containers(_pod_spec(doc))
        if not _sized(c.get("resources"))
    ]
    assert not problems, "\n".join(problems)


def test_exempt_workloads_size_what_their_chart_lets_us(rendered):
    """An exception covers the containers the chart gives no key for, not the ones it does."""
    workloads = {(chart, workload): doc for chart, workload, doc in _workloads(rendered)}
    plugin = _pod_spec(workloads[("nvidia-device-plugin", "DaemonSet/nvidia-device-plugin")])
    (main,) = [c for c in plugin["containers"] if c["name"] == "nvidia-device-plugin-ctr"]
    assert _sized(main.get("resources")), main.get("resources")


def test_prometheus_and_alertmanager_are_sized(rendered):
    """The operator creates their StatefulSets from these resources; the chart alone shows no pod."""
    resources = [
        (doc["kind"], doc["spec"].get("resources"))
        for doc in rendered["kube-prometheus-stack"]
        if doc.get("kind") in OPERATOR_MANAGED
    ]
    assert {kind for kind, _ in resources} == OPERATOR_MANAGED
    assert all(_sized(r) for _, r in resources), resources
    # The config-reloader sidecar the operator adds to both is sized through the operator's flags.
    (operator,) = [
        d for d in rendered["kube-prometheus-stack"]
        if d.get("kind") == "Deployment" and d["metadata"]["name"].endswith("-operator")
    ]  # fmt: skip
    flags = dict(a.split("=", 1) for a in operator["spec"]["template"]["spec"]["containers"][0]["args"] if "=" in a)
    for flag in ("--config-reloader-cpu-request", "--config-reloader-memory-request", "--config-reloader-memory-limit"):
        assert flags.get(flag, "0") != "0", (flag, flags.get(flag))


def test_every_pod_runs_under_runtime_default_seccomp(rendered):
    problems = []
    for chart, workload, doc in _workloads(rendered):
        if (chart, workload, "seccomp") in EXCEPTIONS:
            continue
        pod = _pod_spec(doc)
        pod_level = ((pod.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
        for container in _containers(pod):
            own = ((container.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
            if (own or pod_level) != "RuntimeDefault":
                problems.append(f"{chart} {workload} container {container['name']}: seccomp {own or pod_level}")
    assert not problems, "\n".join(problems)


def test_only_api_clients_mount_a_service_account_token(rendered):
    """A token in a pod that never calls the API is a credential waiting to be stolen."""
    problems = [
        f"{chart} {workload} mounts a service-account token"
        for chart, workload, doc in _workloads(rendered)
        if (chart, workload) not in TALKS_TO_API and _pod_spec(doc).get("automountServiceAccountToken") is not False
    ]
    assert not problems, "\n".join(problems)


def test_sizes_follow_the_environment(rendered, request):
    """dev and prod differ: one function of the environment sizes both."""
    stack = request.node.callspec.params["rendered"]
    (prometheus,) = [d for d in rendered["kube-prometheus-stack"] if d.get("kind") == "Prometheus"]
    assert prometheus["spec"]["resources"]["requests"]["memory"] == {"dev": "1Gi", "prod": "4Gi"}[stack]
