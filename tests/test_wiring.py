"""The wiring check (tests/support/wiring.py) on the four example stacks, with both traffic APIs.

A model stack is checked together with the platform stack its StackReference names,
its reference answered with that platform's real outputs, so its pods' namespaces
and the platform's PodMonitor resolve across stacks. The second half breaks a
rendered object on purpose, one rule at a time, and asserts the check names it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mlplatform.tools.offline.engine import Recording, read_stack_file, run_entry_point
from tests.model.helpers import MODEL_STACK_DIR
from tests.support.wiring import RULES, Findings, Graph, check, describe
from tests.support.wiring_breakages import BROKEN
from tests.support.wiring_provided import CHART_PROVIDED, Provided

TRAFFIC_APIS = ("smi", "gateway")
MODEL_EXAMPLES = {"fraud-detector-dev": "dev", "fraud-detector-prod": "prod"}
"""Each example model stack and the platform stack it references."""
CASES = ["platform-dev", "platform-prod", *(f"{m}-{api}" for m in MODEL_EXAMPLES for api in TRAFFIC_APIS)]
MODEL_CASES = [c for c in CASES if not c.startswith("platform-")]

# Rules with nothing to check in some cases today, and why (they may gain something
# later); everywhere else a rule must examine at least one reference, or its silence
# would prove nothing.
NOTHING_TO_CHECK = {
    "traffic_backends": {"platform-dev", "platform-prod"},  # the platform routes no model traffic
    "authorization_targets": {"platform-dev", "platform-prod"},  # nor declares Linkerd policy
    # The platform declares no ServiceProfile, and with trafficApi gateway the model
    # stack's per-route timeouts live on the HTTPRoute instead.
    "service_profiles": {"platform-dev", "platform-prod", *(c for c in CASES if c.endswith("-gateway"))},
}
# For these a model case must check more than its platform alone does: the model's own objects.
MODEL_MUST_ADD = ("service_selectors", "named_ports", "references")


NO_DEFAULT_STORAGE_CLASS = "refers to the default StorageClass, which does not exist"


class Stacks:
    """Each case's recordings, run on first use and shared by the module's tests."""

    def __init__(self, platforms: dict[str, Recording]):
        self._platforms = platforms
        self._models: dict[str, Recording] = {}

    def platform(self, case: str) -> Recording:
        stack = case.removeprefix("platform-") if case.startswith("platform-") else MODEL_EXAMPLES[_model(case)]
        return self._platforms[stack]

    def recordings(self, case: str) -> list[Recording]:
        if case.startswith("platform-"):
            return [self.platform(case)]
        if case not in self._models:
            self._models[case] = run_example(_model(case), case.rsplit("-", 1)[1], self.platform(case).stack_outputs)
        return [self.platform(case), self._models[case]]

    def graph(self, case: str) -> Graph:
        """A fresh graph: tests may break its objects without touching another test's."""
        return Graph.of(*self.recordings(case))


def _model(case: str) -> str:
    return case.rsplit("-", 1)[0]


def run_example(stack: str, traffic_api: str, platform_outputs: dict[str, Any]) -> Recording:
    """The example stack file as written, but for `mlmodel:trafficApi`; its platform reference
    answered with `platform_outputs`."""
    config, secrets = read_stack_file(MODEL_STACK_DIR / f"Pulumi.{stack}.yaml", "mlmodel")
    config["mlmodel:trafficApi"] = traffic_api
    reference = config["mlmodel:platformStack"]
    return run_entry_point(
        MODEL_STACK_DIR, stack=stack, config=config, secret_keys=secrets, stack_references={reference: platform_outputs}
    )


@pytest.fixture(scope="module")
def stacks(dev_platform: Recording, prod_platform: Recording) -> Stacks:
    return Stacks({"dev": dev_platform, "prod": prod_platform})


# -- the examples are wired correctly ----------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_every_rule_holds(stacks, case):
    """No rule reports anything on the examples as shipped."""
    findings = check(stacks.graph(case))
    reported = sorted((rule, p) for rule, f in findings.items() for p in f.problems)
    assert reported == [], "wiring problems"


@pytest.mark.parametrize("case", CASES)
def test_every_rule_checks_something_where_it_can(stacks, case):
    """A rule that examined nothing passes vacuously; only the documented cases may."""
    findings = check(stacks.graph(case))
    idle = [rule for rule, f in findings.items() if f.checked == 0]
    assert [rule for rule in idle if case not in NOTHING_TO_CHECK.get(rule, ())] == []


@pytest.mark.parametrize("case", MODEL_CASES)
def test_model_objects_are_checked_not_only_the_platform(stacks, case):
    """The model stack's own Services, ports and references are examined, beyond the platform's."""
    platform_only = check(Graph.of(stacks.platform(case)))
    with_model = check(stacks.graph(case))
    fewer = [r for r in MODEL_MUST_ADD if with_model[r].checked <= platform_only[r].checked]
    assert fewer == []


# -- a broken example is reported (the breaks: tests/support/wiring_breakages.py) -----------------
@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_example_is_reported(stacks, name):
    """Each rule catches the break it exists for, naming the referring object, field and target."""
    case, mutate, rule, problem = BROKEN[name]
    graph = stacks.graph(case)
    assert problem not in RULES[rule](graph).problems
    mutate(graph)
    assert problem in RULES[rule](graph).problems, RULES[rule](graph).problems


def test_a_model_stack_against_a_platform_without_its_namespace_is_reported(stacks, prod_platform):
    """A break made through the program: the model reads a serving namespace the platform never created."""
    outputs = {**prod_platform.stack_outputs}
    outputs["namespaces"] = {**outputs["namespaces"], "serving": "ml-serve"}
    broken = Graph.of(prod_platform, run_example("fraud-detector-prod", "smi", outputs))
    problems = check(broken)["references"].problems
    missing = "refers to Namespace ml-serve, which does not exist"
    assert f"Deployment ml-serve/fraud-detector-v6 metadata.namespace: {missing}" in problems


def test_chart_outputs_count_only_when_the_chart_is_installed(stacks):
    """Without the Linkerd control plane no pod is meshed: the proxies' PodMonitor then selects nothing."""
    graph = stacks.graph("platform-dev")
    graph.releases = [r for r in graph.releases if r.chart != "linkerd-control-plane"]
    assert check(graph)["monitor_selectors"].problems == [
        "PodMonitor monitoring/linkerd-proxies spec.selector: matches no pod template"
    ]


def test_a_charts_pods_answer_a_monitor_once_listed(stacks, monitoring_chart_pod):
    """A monitor of ours on a chart's pods (an exporter's, say) resolves through the chart table."""
    graph = stacks.graph("platform-dev")
    graph.objects.append(
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": {"name": "exporter", "namespace": "monitoring"},
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/name": "exporter"}},
                "podMetricsEndpoints": [{"port": "metrics"}],
            },
        }
    )
    monitor_problem = "PodMonitor monitoring/exporter spec.selector: matches no pod template"
    assert check(graph)["monitor_selectors"].problems == [monitor_problem]
    monitoring_chart_pod(labels={"app.kubernetes.io/name": "exporter"}, port_names=("metrics",))
    assert (check(graph)["monitor_selectors"].problems, check(graph)["named_ports"].problems) == ([], [])
    monitoring_chart_pod(labels={"app.kubernetes.io/name": "exporter"}, port_names=("http-metrics",))
    assert check(graph)["named_ports"].problems == [
        "PodMonitor monitoring/exporter spec.podMetricsEndpoints[0].port: no container of "
        "Pod monitoring/exporter (a chart's pod) names port 'metrics'"
    ]


@pytest.fixture
def monitoring_chart_pod(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Lists a pod `exporter` as created by kube-prometheus-stack, for this test only."""

    listed = CHART_PROVIDED["kube-prometheus-stack"]

    def add(**pod: Any) -> None:
        entry = Provided("Pod", "monitoring", "exporter", "test entry", **pod)
        monkeypatch.setitem(CHART_PROVIDED, "kube-prometheus-stack", (*listed, entry))

    return add


def test_a_pvc_without_a_class_needs_a_default_class(stacks):
    """Take the default annotation off the platform's gp3 class: Prometheus' claim, which names the
    platform's class, still resolves, but a claim that names none is reported."""
    graph = stacks.graph("platform-dev")
    classes = list(graph.of_kind("StorageClass"))
    assert classes, "the aws platform declares its StorageClasses"
    for storage_class in classes:
        storage_class.get("metadata", {}).get("annotations", {}).pop(
            "storageclass.kubernetes.io/is-default-class", None
        )
    graph.objects.append(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "scratch", "namespace": "monitoring"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        }
    )
    problems = [p for p in check(graph)["references"].problems if NO_DEFAULT_STORAGE_CLASS in p]
    assert problems == [f"PersistentVolumeClaim monitoring/scratch spec.storageClassName: {NO_DEFAULT_STORAGE_CLASS}"]


def test_a_service_monitor_is_checked_against_the_services_it_selects(stacks):
    """No stack declares a ServiceMonitor yet; one added later is held to its Service's selector and port names."""
    graph = stacks.graph("platform-dev")
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "mlflow", "namespace": "monitoring"},
        "spec": {
            "namespaceSelector": {"matchNames": ["mlflow"]},
            "selector": {"matchLabels": {"app.kubernetes.io/name": "mlflow"}},
            "endpoints": [{"port": "http"}],
        },
    }
    graph.objects.append(monitor)
    assert (check(graph)["named_ports"].problems, check(graph)["monitor_selectors"].problems) == ([], [])
    monitor["spec"]["endpoints"][0]["port"] = "metrics"
    assert check(graph)["named_ports"].problems == [
        "ServiceMonitor monitoring/mlflow spec.endpoints[0].port: Service mlflow/mlflow names no port 'metrics'"
    ]
    monitor["spec"]["namespaceSelector"] = {}
    assert check(graph)["monitor_selectors"].problems == [
        "ServiceMonitor monitoring/mlflow spec.selector: matches no Service"
    ]


def test_problems_name_the_referring_object():
    """`Kind namespace/name` for namespaced objects, `Kind name` for cluster-scoped ones."""
    assert describe({"kind": "Service", "metadata": {"name": "a", "namespace": "b"}}) == "Service b/a"
    assert describe({"kind": "Namespace", "metadata": {"name": "b"}}) == "Namespace b"


def test_findings_count_what_they_checked():
    found = Findings()
    found.check(True, "fine")
    found.check(False, "broken")
    assert (found.checked, found.problems) == (2, ["broken"])
