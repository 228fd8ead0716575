"""The model's PrometheusRule: canary success rate and p99 latency, stable's success rate, and drift.

The serving expressions read the Linkerd proxies' inbound metrics
(`response_total`, `response_latency_ms_bucket`), which the platform's PodMonitor
scrapes with a `deployment` label, so they work for any runtime without app
instrumentation. They name the Deployments, so promotion changes the rule; the
weight never appears in it, so a weight step leaves it untouched.

`ModelDriftDetected` reads `ml_model_drift_score`, which only the model server
can produce: the rule exists only when `serving.metrics` declares the endpoint
the model's PodMonitor scrapes, never as an alert that cannot fire.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlplatform import labels
from mlplatform.model.config import AnalysisConfig, ModelStackConfig

API_VERSION = "monitoring.coreos.com/v1"
_DURATION = re.compile(r"^(\d+)(ms|s|m|h)$")


def _times(duration: str, factor: int) -> str:
    number, unit = _DURATION.fullmatch(duration).groups()  # type: ignore[union-attr]  # validated by config
    return f"{int(number) * factor}{unit}"


def _selector(namespace: str, deployment: str, **extra: str) -> str:
    matchers = {"namespace": namespace, "deployment": deployment, "direction": "inbound", **extra}
    return "{" + ", ".join(f'{k}="{v}"' for k, v in matchers.items()) + "}"


def success_rate_expr(namespace: str, deployment: str, analysis: AnalysisConfig) -> str:
    """Fires below the minimum success rate, and only with enough requests to judge."""
    window = analysis.interval
    ok = _selector(namespace, deployment, classification="success")
    all_ = _selector(namespace, deployment)
    return (
        f"(sum(rate(response_total{ok}[{window}])) / sum(rate(response_total{all_}[{window}])))"
        f" < {analysis.min_success_rate}"
        f" and sum(increase(response_total{all_}[{window}])) >= {analysis.min_requests}"
    )


def p99_latency_expr(namespace: str, deployment: str, analysis: AnalysisConfig) -> str:
    # Buckets are summed across pods before the quantile: per-pod quantiles cannot be combined.
    selector = _selector(namespace, deployment)
    return (
        f"histogram_quantile(0.99, sum by (le) (rate(response_latency_ms_bucket{selector}[{analysis.interval}])))"
        f" > {analysis.max_p99_latency_ms:g}"
    )


DRIFT_THRESHOLD = 0.2


def drift_expr(namespace: str, model: str) -> str:
    # One series per version: every replica reports the same model's score.
    return (
        f"max by (namespace, model, {labels.MODEL_VERSION_METRIC_LABEL}) "
        f'(ml_model_drift_score{{namespace="{namespace}", model="{model}"}})'
        f" > {DRIFT_THRESHOLD}"
    )


def drift_rule(namespace: str, model: str) -> dict[str, Any]:
    return {
        "alert": "ModelDriftDetected",
        "expr": drift_expr(namespace, model),
        "for": "10m",
        "labels": {"severity": "warning", "model": model},
        "annotations": {
            "summary": f"{model} {{{{ $labels.model_version }}}} drift score above {DRIFT_THRESHOLD}",
            "description": f"Drift score of model {model} version {{{{ $labels.model_version }}}} in namespace "
            f"{namespace} is {{{{ $value }}}}, above {DRIFT_THRESHOLD}, for 10 minutes; consider retraining.",
        },
    }


def alert_rules(config: ModelStackConfig, namespace: str) -> list[dict[str, Any]]:
    analysis = config.analysis
    model = config.model.name
    # As long as `mlplatform rollout watch` tolerates failed checks before aborting.
    hold = _times(analysis.interval, analysis.failure_threshold)
    stable = config.version_object_name(config.stable.version)
    min_rate = f"{analysis.min_success_rate:.2%}"
    value = "{{ $value | humanizePercentage }}"
    rules: list[dict[str, Any]] = [
        {
            "alert": "ModelStableSuccessRateLow",
            "expr": success_rate_expr(namespace, stable, analysis),
            "for": hold,
            "labels": {"severity": "critical", "model": model, "version": config.stable.version, "role": "stable"},
            "annotations": {
                "summary": f"{model} {config.stable.version} (stable) success rate below {min_rate}",
                "description": f"Inbound success rate of Deployment {namespace}/{stable} is {value} "
                f"over {analysis.interval}, below {min_rate}.",
            },
        }
    ]
    if config.canary is not None:
        canary = config.version_object_name(config.canary.version)
        canary_labels = {"severity": "warning", "model": model, "version": config.canary.version, "role": "canary"}
        rollback = "Roll back by setting mlmodel:canary.weight to 0 in the stack's config."
        rules += [
            {
                "alert": "ModelCanarySuccessRateLow",
                "expr": success_rate_expr(namespace, canary, analysis),
                "for": hold,
                "labels": canary_labels,
                "annotations": {
                    "summary": f"{model} canary {config.canary.version} success rate below {min_rate}",
                    "description": f"Inbound success rate of Deployment {namespace}/{canary} is {value} "
                    f"over {analysis.interval}. {rollback}",
                },
            },
            {
                "alert": "ModelCanaryLatencyHigh",
                "expr": p99_latency_expr(namespace, canary, analysis),
                "for": hold,
                "labels": canary_labels,
                "annotations": {
                    "summary": f"{model} canary {config.canary.version} p99 above {analysis.max_p99_latency_ms:g}ms",
                    "description": f"Inbound p99 latency of Deployment {namespace}/{canary} is {{{{ $value }}}}ms "
                    f"over {analysis.interval}. {rollback}",
                },
            },
        ]
    if config.serving.metrics is not None:
        rules.append(drift_rule(namespace, model))
    return rules


@dataclass
class ModelAlertsArgs:
    config: ModelStackConfig
    namespace: pulumi.Input[str]


class ModelAlerts(pulumi.ComponentResource):
    """PrometheusRule `<model>` in the model's namespace (the platform's Prometheus selects rules everywhere)."""

    rule: k8s.apiextensions.CustomResource
    rule_name: str

    def __init__(self, name: str, args: ModelAlertsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:model:ModelAlerts", name, None, opts)
        model = self.rule_name = args.config.model.name
        namespace = pulumi.Output.from_input(args.namespace)
        self.rule = k8s.apiextensions.CustomResource(
            f"{name}-rule",
            api_version=API_VERSION,
            kind="PrometheusRule",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=model,
                namespace=namespace,
                labels=labels.k8s_labels("alerts", name=model, instance=model),
            ),
            spec=namespace.apply(
                lambda ns: {"groups": [{"name": f"{model}-serving", "rules": alert_rules(args.config, ns)}]}
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"rule": self.rule_name})
