"""The metrics catalog check: every alert and every gate query reads series a declared target produces.

An alert on an unscraped series never fires and a gate on one never passes,
and neither says so; this is where that is caught. The rules are taken from
the stacks as they render (the platform's `dev` and `prod`, the example model
stacks, and a model stack using every optional feature), the gate's queries
from the gate itself, and the targets from what the same renders declare.
"""

from __future__ import annotations

import pytest

from mlplatform.model.config import AnalysisConfig
from mlplatform.tools import metrics_catalog as catalog
from mlplatform.tools.offline.engine import Recording, run_entry_point
from mlplatform.tools.rollout.gate import Queries
from tests.model.helpers import EXAMPLE_STACK_REFERENCES, MODEL_STACK_DIR, TEAM, run_model, with_canary
from tests.support.helpers import build, platform_config, run_platform

TRAINING = {
    "runId": "r1",
    "image": "ghcr.io/example/train:1.0.0",
    "dataSource": {"type": "s3", "path": "s3://datasets/fraud/"},
}


@pytest.fixture(scope="module")
def full_model() -> Recording:
    """A model stack with every rule it can have: canary, training, metrics endpoint, accuracy gate."""
    return run_model(
        with_canary(
            10, serving={"metrics": {"port": 9090}}, analysis={"minAccuracy": 0.9}, training=TRAINING, team=TEAM
        )
    )


@pytest.fixture(scope="module")
def example_models() -> list[Recording]:
    return [
        run_entry_point(MODEL_STACK_DIR, stack=stack, stack_references=EXAMPLE_STACK_REFERENCES)
        for stack in ("fraud-detector-dev", "fraud-detector-prod")
    ]


def _gate_queries(analysis: AnalysisConfig) -> dict[str, str]:
    """What `mlplatform rollout` queries for one check: accuracy only when the stack gates on it."""
    queries = Queries.for_deployment("ml-serving", "fraud-detector-v6", analysis.interval)
    used = {
        "gate query requests": queries.requests,
        "gate query success_rate": queries.success_rate,
        "gate query p99_latency_ms": queries.p99_latency_ms,
    }
    if analysis.min_accuracy is not None:
        used["gate query accuracy"] = queries.accuracy
    return used


# -- the extractor ------------------------------------------------------------
@pytest.mark.parametrize(
    ("expr", "metrics"),
    [
        ('sum(rate(response_total{namespace="a", classification="success"}[5m])) by (le)', {"response_total"}),
        (
            'histogram_quantile(0.99, sum by (le, model) (rate(response_latency_ms_bucket{a="b"}[1m]))) > 1e3',
            {"response_latency_ms_bucket"},
        ),
        (
            'label_replace((kube_job_failed{condition="true"} == 1) * on (namespace, job_name) '
            'group_left (label_x) kube_job_labels{label_y="training"}, "model", "$1", "label_x", "(.+)")',
            {"kube_job_failed", "kube_job_labels"},
        ),
        ("avg_over_time(DCGM_FI_DEV_GPU_UTIL[30m:1m] offset 5m) < bool 5", {"DCGM_FI_DEV_GPU_UTIL"}),
        ("up == 0 and on(instance) node_load1 unless absent(foo)", {"up", "node_load1", "foo"}),
    ],
)
def test_metric_names_finds_every_selected_metric_and_nothing_else(expr, metrics):
    """Functions, keywords, label names, strings, numbers and durations are not metrics."""
    assert catalog.metric_names(expr) == metrics


# -- the stacks as they render ----------------------------------------------
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_platform_alert_reads_a_declared_target(stack, dev_platform, prod_platform):
    """Each platform stack file's rules against the targets the same render declares."""
    platform = {"dev": dev_platform, "prod": prod_platform}[stack]
    expressions = catalog.rule_expressions(platform.resources)
    assert set(expressions) >= {
        "PrometheusRule ml-pipeline-alerts: alert ModelTrainingFailed",
        "PrometheusRule ml-pipeline-alerts: alert InferenceServiceHighLatency",
        "PrometheusRule ml-pipeline-alerts: alert GpuIdle",
    }
    targets = catalog.declared_targets(platform.resources)
    assert targets == {
        catalog.LINKERD_PROXY,
        catalog.KUBE_STATE_METRICS,
        catalog.NODE_EXPORTER,
        catalog.DCGM_EXPORTER,
    }
    assert [str(u) for u in catalog.unfed(expressions, targets)] == []


def test_every_model_alert_and_gate_query_reads_a_declared_target(full_model, example_models, dev_platform):
    """Model stacks read the platform's targets (the proxies) and, with an endpoint, their own PodMonitor."""
    platform_targets = catalog.declared_targets(dev_platform.resources)
    for model in [full_model, *example_models]:
        expressions = catalog.rule_expressions(model.resources)
        assert expressions, model.stack
        targets = platform_targets | catalog.declared_targets(model.resources)
        assert [str(u) for u in catalog.unfed(expressions, targets)] == [], model.stack
    assert catalog.declared_targets(full_model.resources) == {catalog.MODEL_POD_MONITOR}
    assert "PrometheusRule fraud-detector: alert ModelDriftDetected" in catalog.rule_expressions(full_model.resources)

    analysis = build(AnalysisConfig, min_accuracy=0.9)
    targets = platform_targets | catalog.declared_targets(full_model.resources)
    assert [str(u) for u in catalog.unfed(_gate_queries(analysis), targets)] == []


def test_the_gate_without_an_accuracy_gate_needs_only_the_proxies(dev_platform):
    """A stack without `serving.metrics` cannot set minAccuracy (config error), so its gate reads proxies only."""
    targets = catalog.declared_targets(dev_platform.resources)
    assert catalog.unfed(_gate_queries(build(AnalysisConfig)), targets) == []
    # The accuracy query is exactly what the config rule protects against.
    [missing] = catalog.unfed(_gate_queries(build(AnalysisConfig, min_accuracy=0.9)), targets)
    assert (missing.metric, missing.where) == ("ml_model_accuracy", "gate query accuracy")


# -- the check fails when it should -----------------------------------------
def test_a_rule_on_an_unscraped_metric_is_reported_with_its_rule(dev_platform):
    """The issue's original latency alert: a histogram nothing in the platform scrapes."""
    broken = {
        "PrometheusRule ml-pipeline-alerts: alert InferenceServiceHighLatency": (
            "histogram_quantile(0.99, rate(inference_request_duration_seconds_bucket[5m])) > 0.1"
        ),
        "PrometheusRule ml-pipeline-alerts: alert ModelDriftDetected": "ml_model_drift_score > 0.2",
    }
    problems = [str(u) for u in catalog.unfed(broken, catalog.declared_targets(dev_platform.resources))]
    assert problems == [
        "PrometheusRule ml-pipeline-alerts: alert InferenceServiceHighLatency reads "
        "inference_request_duration_seconds_bucket, which no declared scrape target produces",
        "PrometheusRule ml-pipeline-alerts: alert ModelDriftDetected reads ml_model_drift_score, "
        "which no declared scrape target produces",
    ]


def test_a_catalogued_target_that_the_stack_does_not_declare_does_not_count(dev_platform):
    """With DCGM off the GPU alert would read a series nothing scrapes: the check must say so.

    The stack with `gpuMetrics: false` drops the alert too; here the dev stack's rules are held to
    the targets of that stack, which is what a forgotten condition in the rule list would produce."""
    without_dcgm = run_platform(platform_config(monitoring={"gpuMetrics": False}))
    targets = catalog.declared_targets(without_dcgm.resources)
    assert catalog.DCGM_EXPORTER not in targets
    problems = catalog.unfed(catalog.rule_expressions(dev_platform.resources), targets)
    assert [(u.metric, u.where) for u in problems] == [
        ("DCGM_FI_DEV_GPU_UTIL", "PrometheusRule ml-pipeline-alerts: alert GpuIdle")
    ]
    # And the stack as it renders without DCGM is consistent.
    assert catalog.unfed(catalog.rule_expressions(without_dcgm.resources), targets) == []


def test_a_model_rule_without_its_pod_monitor_is_reported(full_model, dev_platform):
    """The drift alert is fed only by the model's own PodMonitor, not by anything of the platform's."""
    problems = catalog.unfed(
        catalog.rule_expressions(full_model.resources), catalog.declared_targets(dev_platform.resources)
    )
    assert [(u.metric, u.where) for u in problems] == [
        ("ml_model_drift_score", "PrometheusRule fraud-detector: alert ModelDriftDetected")
    ]
