"""The platform's alert rules (PrometheusRule group `ml-pipeline-alerts`).

Every expression reads only series that a target the platform declares
produces (`mlplatform.tools.metrics_catalog` lists them, and a test holds every rule
to it):
- training failures: kube-state-metrics' Job series, joined to the Job's labels
  so the alert names the model (the chart's allowlist exports those labels);
- serving latency: the Linkerd proxies' inbound latency histogram, with the
  `model` and `model_version` labels the proxy PodMonitor derives from the pods;
- idle GPUs: the DCGM exporter, when the platform runs it.

Model drift is not here: a model's drift score exists only when its stack
declares a metrics endpoint, so that stack's own rule carries the alert.
"""

from __future__ import annotations

from typing import Any

from mlplatform import labels

ALERT_GROUP = "ml-pipeline-alerts"

# Inbound p99 above which a model version is slow (the reference design's 0.1s).
LATENCY_P99_MS = 100
# Below this average utilisation over the window, an allocated GPU counts as idle.
GPU_IDLE_PERCENT = 5
GPU_IDLE_WINDOW = "30m"


def ksm_job_label(kubernetes_label: str) -> str:
    """The label kube-state-metrics gives a Job label on `kube_job_labels`."""
    return "label_" + labels.prometheus_label(kubernetes_label)


# The Job labels kube-state-metrics must export (`metricLabelsAllowlist`) for the
# training alert's join: which model, and that the Job is one of our training runs.
TRAINING_JOB_LABELS = (labels.NAME_LABEL, labels.COMPONENT_LABEL, labels.PART_OF_LABEL)


def kube_state_metrics_allowlist() -> list[str]:
    """kube-state-metrics' `--metric-labels-allowlist` entries, as the chart takes them."""
    return [f"jobs=[{','.join(TRAINING_JOB_LABELS)}]"]


def training_failed_expr() -> str:
    """Failed training Jobs, with the model's name as the `model` label.

    `kube_job_failed{condition="true"}` is the Job's Failed condition (retries
    or deadline exhausted); `kube_job_status_failed` would also count a pod that
    failed once and was retried successfully. The Job's own series carry no
    labels of the Job, so they are joined with `kube_job_labels` on the Job's
    namespace and name. Selecting by label rather than by namespace finds a
    training Job in whichever namespace (training or a team's) it runs.
    """
    name = ksm_job_label(labels.NAME_LABEL)
    job_labels = (
        f'kube_job_labels{{{ksm_job_label(labels.COMPONENT_LABEL)}="{labels.TRAINING_COMPONENT}", '
        f'{ksm_job_label(labels.PART_OF_LABEL)}="{labels.PART_OF}"}}'
    )
    joined = f'(kube_job_failed{{condition="true"}} == 1) * on (namespace, job_name) group_left ({name}) {job_labels}'
    return f'label_replace({joined}, "model", "$1", "{name}", "(.+)")'


def latency_expr() -> str:
    # Buckets are summed across pods per model version before the quantile: a
    # per-pod quantile cannot be combined afterwards. `model!=""` keeps only the
    # serving pods' proxies (the PodMonitor sets `model` on those alone).
    return (
        f"histogram_quantile(0.99, sum by (le, namespace, model, {labels.MODEL_VERSION_METRIC_LABEL}) "
        '(rate(response_latency_ms_bucket{direction="inbound", model!=""}[5m])))'
        f" > {LATENCY_P99_MS}"
    )


def gpu_idle_expr() -> str:
    # `pod` is set only on a GPU that the kubelet has allocated to a pod, so a
    # free GPU waiting for work never alerts.
    return f'avg_over_time(DCGM_FI_DEV_GPU_UTIL{{pod!=""}}[{GPU_IDLE_WINDOW}]) < {GPU_IDLE_PERCENT}'


def _model_annotation(what: str) -> str:
    return what + " (namespace {{ $labels.namespace }}, model {{ $labels.model }}, version {{ $labels.model_version }})"


def platform_alert_rules(*, gpu_metrics: bool) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        {
            "alert": "ModelTrainingFailed",
            "expr": training_failed_expr(),
            "for": "5m",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "Training run of model {{ $labels.model }} failed "
                "({{ $labels.namespace }}/{{ $labels.job_name }})",
                "description": "The training Job {{ $labels.job_name }} of model {{ $labels.model }} in namespace "
                "{{ $labels.namespace }} has been in the Failed condition for 5 minutes; check its pods' logs and "
                "the status of the ModelTraining run it belongs to.",
            },
        },
        {
            "alert": "InferenceServiceHighLatency",
            "expr": latency_expr(),
            "for": "2m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": _model_annotation(f"Inference p99 latency above {LATENCY_P99_MS}ms"),
                "description": "Inbound p99 latency of model {{ $labels.model }} version {{ $labels.model_version }} "
                "in namespace {{ $labels.namespace }} is {{ $value | humanize }}ms, above "
                f"{LATENCY_P99_MS}ms, for 2 minutes (Linkerd proxy metrics).",
            },
        },
    ]
    if gpu_metrics:
        rules.append(
            {
                "alert": "GpuIdle",
                "expr": gpu_idle_expr(),
                # With the window's average, a GPU allocated and idle for about 30 to
                # 60 minutes fires; a pod loading its data for a few minutes does not.
                "for": GPU_IDLE_WINDOW,
                "labels": {"severity": "warning"},
                "annotations": {
                    "summary": "GPU {{ $labels.gpu }} on node {{ $labels.node }} held by "
                    "{{ $labels.namespace }}/{{ $labels.pod }} is idle",
                    "description": "GPU {{ $labels.gpu }} ({{ $labels.modelName }}) on node {{ $labels.node }} is "
                    "allocated to pod {{ $labels.namespace }}/{{ $labels.pod }} but averaged "
                    f"{{{{ $value | humanize }}}}% utilisation over {GPU_IDLE_WINDOW}, below "
                    f"{GPU_IDLE_PERCENT}%. An idle GPU keeps its node (and its cost) from scaling down.",
                },
            }
        )
    return rules
