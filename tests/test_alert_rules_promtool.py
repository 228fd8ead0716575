"""The rendered alert rules, evaluated by Prometheus' own rule engine (`promtool test rules`).

The series fed in are shaped as their producers emit them (kube-state-metrics'
Job series and Job labels, the Linkerd proxies' histogram with the labels our
PodMonitor adds, the DCGM exporter's per-GPU gauge, a model server's drift
gauge). The tests prove what string checks cannot: the join puts the model's
name on the training alert, the annotations render with it, and alerts fire
on the series they should and stay quiet on the others.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlplatform.tools.offline.engine import Recording
from tests.model.helpers import run_model, with_canary
from tests.support.prerequisites import require_binary
from tests.support.types import K8S_PROMETHEUS_RULE

pytestmark = pytest.mark.integration

PROMETHEUS_RULE = K8S_PROMETHEUS_RULE
JOB = "fraud-detector-train-r1"
TRAINING_JOB_LABELS = (
    'label_app_kubernetes_io_name="fraud-detector", label_app_kubernetes_io_component="training", '
    'label_app_kubernetes_io_part_of="mlplatform"'
)


def _promtool() -> str:
    return require_binary("promtool")


def _groups(recording: Recording) -> list[dict[str, Any]]:
    return [group for rule in recording.of_type(PROMETHEUS_RULE) for group in rule.inputs["spec"]["groups"]]


def _run_promtool(tmp_path: Path, groups: list[dict[str, Any]], tests: list[dict[str, Any]]) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    (tmp_path / "tests.yaml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}, sort_keys=False)
    )
    result = subprocess.run(
        [_promtool(), "test", "rules", "tests.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_training_failure_names_the_model(dev_platform, tmp_path):
    """Only our training Jobs alert, and the alert carries the model from the Job's labels."""
    series = [
        {"series": f'kube_job_failed{{namespace="team-a", job_name="{JOB}", condition="true"}}', "values": "1x15"},
        {"series": f'kube_job_labels{{namespace="team-a", job_name="{JOB}", {TRAINING_JOB_LABELS}}}', "values": "1x15"},
        # A failed Job that is not a training run of ours (no component label exported).
        {"series": 'kube_job_failed{namespace="team-a", job_name="backup", condition="true"}', "values": "1x15"},
        {"series": 'kube_job_labels{namespace="team-a", job_name="backup"}', "values": "1x15"},
        # A training Job that succeeded.
        {"series": 'kube_job_failed{namespace="team-a", job_name="ok-train", condition="true"}', "values": "0x15"},
        {
            "series": f'kube_job_labels{{namespace="team-a", job_name="ok-train", {TRAINING_JOB_LABELS}}}',
            "values": "1x15",
        },
    ]
    expected = {
        "exp_labels": {
            "severity": "critical",
            "namespace": "team-a",
            "job_name": JOB,
            "condition": "true",
            "label_app_kubernetes_io_name": "fraud-detector",
            "model": "fraud-detector",
        },
        "exp_annotations": {
            "summary": f"Training run of model fraud-detector failed (team-a/{JOB})",
            "description": f"The training Job {JOB} of model fraud-detector in namespace team-a has been in the "
            "Failed condition for 5 minutes; check its pods' logs and the status of the ModelTraining run it "
            "belongs to.",
        },
    }
    _run_promtool(
        tmp_path,
        _groups(dev_platform),
        [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": "3m", "alertname": "ModelTrainingFailed", "exp_alerts": []},
                    {"eval_time": "10m", "alertname": "ModelTrainingFailed", "exp_alerts": [expected]},
                ],
            }
        ],
    )


def test_latency_alert_from_the_proxy_histogram(dev_platform, tmp_path):
    """All inbound responses of v6 take 100-200ms: p99 is 199ms, above 100ms; v5's 10-20ms is fine."""
    serving = 'namespace="ml-serving", direction="inbound", deployment="fraud-detector-{v}", model="fraud-detector"'
    series = []
    for version, slow_bucket in (("v6", "200"), ("v5", "20")):
        labels = serving.format(v=version) + f', model_version="{version}"'
        for le in ("10", "20", "100", "200", "+Inf"):
            rate = 100 if float(le) >= float(slow_bucket) else 0
            series.append({"series": f'response_latency_ms_bucket{{{labels}, le="{le}"}}', "values": f"0+{rate}x20"})
    _run_promtool(
        tmp_path,
        _groups(dev_platform),
        [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {
                        "eval_time": "10m",
                        "alertname": "InferenceServiceHighLatency",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "namespace": "ml-serving",
                                    "model": "fraud-detector",
                                    "model_version": "v6",
                                },
                                "exp_annotations": {
                                    "summary": "Inference p99 latency above 100ms (namespace ml-serving, "
                                    "model fraud-detector, version v6)",
                                    "description": "Inbound p99 latency of model fraud-detector version v6 in "
                                    "namespace ml-serving is 199ms, above 100ms, for 2 minutes (Linkerd proxy "
                                    "metrics).",
                                },
                            }
                        ],
                    }
                ],
            }
        ],
    )


def test_gpu_idle_only_for_an_allocated_gpu(dev_platform, tmp_path):
    """GPU 0 is held by a pod and idles at 2%; GPU 1 is free; GPU 2 is busy. Only GPU 0 alerts, after 30m."""
    node = 'node="ip-10-0-1-5", modelName="NVIDIA A10G", Hostname="ip-10-0-1-5"'
    series = [
        {
            "series": f'DCGM_FI_DEV_GPU_UTIL{{gpu="0", UUID="GPU-0", {node}, namespace="team-a", pod="trainer-0", '
            'container="trainer"}',
            "values": "2x70",
        },
        {"series": f'DCGM_FI_DEV_GPU_UTIL{{gpu="1", UUID="GPU-1", {node}}}', "values": "0x70"},
        {
            "series": f'DCGM_FI_DEV_GPU_UTIL{{gpu="2", UUID="GPU-2", {node}, namespace="team-b", pod="trainer-1", '
            'container="trainer"}',
            "values": "85x70",
        },
    ]
    fired = {
        "exp_labels": {
            "severity": "warning",
            "gpu": "0",
            "UUID": "GPU-0",
            "node": "ip-10-0-1-5",
            "modelName": "NVIDIA A10G",
            "Hostname": "ip-10-0-1-5",
            "namespace": "team-a",
            "pod": "trainer-0",
            "container": "trainer",
        },
        "exp_annotations": {
            "summary": "GPU 0 on node ip-10-0-1-5 held by team-a/trainer-0 is idle",
            "description": "GPU 0 (NVIDIA A10G) on node ip-10-0-1-5 is allocated to pod team-a/trainer-0 but "
            "averaged 2% utilisation over 30m, below 5%. An idle GPU keeps its node (and its cost) from "
            "scaling down.",
        },
    }
    _run_promtool(
        tmp_path,
        _groups(dev_platform),
        [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": "20m", "alertname": "GpuIdle", "exp_alerts": []},
                    {"eval_time": "45m", "alertname": "GpuIdle", "exp_alerts": [fired]},
                ],
            }
        ],
    )


def test_model_drift_alert_per_version(tmp_path):
    """Two replicas of v6 report drift; one alert for the version, with the highest score."""
    recording = run_model(with_canary(10, serving={"metrics": {"port": 9090}}))
    common = 'namespace="ml-serving", model="fraud-detector", model_version="v6", deployment="fraud-detector-v6"'
    series = [
        {"series": f'ml_model_drift_score{{{common}, pod="a"}}', "values": "0.3x20"},
        {"series": f'ml_model_drift_score{{{common}, pod="b"}}', "values": "0.25x20"},
        {
            "series": 'ml_model_drift_score{namespace="ml-serving", model="fraud-detector", model_version="v5", '
            'pod="c"}',
            "values": "0.1x20",
        },
    ]
    expected = {
        "exp_labels": {
            "severity": "warning",
            "namespace": "ml-serving",
            "model": "fraud-detector",
            "model_version": "v6",
        },
        "exp_annotations": {
            "summary": "fraud-detector v6 drift score above 0.2",
            "description": "Drift score of model fraud-detector version v6 in namespace ml-serving is 0.3, above "
            "0.2, for 10 minutes; consider retraining.",
        },
    }
    _run_promtool(
        tmp_path,
        _groups(recording),
        [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": "5m", "alertname": "ModelDriftDetected", "exp_alerts": []},
                    {"eval_time": "15m", "alertname": "ModelDriftDetected", "exp_alerts": [expected]},
                ],
            }
        ],
    )
