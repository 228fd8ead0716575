"""The DCGM exporter: on the GPU nodes only, with just the host access it needs, scraped by a PodMonitor."""

from __future__ import annotations

import re
from typing import Any

import pytest

from mlplatform import labels
from mlplatform.platform.gpu_metrics import COUNTERS, IMAGE
from mlplatform.tools.offline.engine import Recording
from tests.support.helpers import platform_config, run_platform
from tests.support.relabeling import relabel
from tests.support.types import HELM_RELEASE, K8S_CONFIG_MAP, K8S_DAEMON_SET, K8S_POD_MONITOR

DAEMON_SET = K8S_DAEMON_SET
POD_MONITOR = K8S_POD_MONITOR
CONFIG_MAP = K8S_CONFIG_MAP
RELEASE = HELM_RELEASE


@pytest.fixture(scope="module")
def pod_spec(dev_platform: Recording) -> dict[str, Any]:
    return dev_platform.one(DAEMON_SET, "monitoring-gpu-daemon-set").inputs["spec"]["template"]["spec"]


def test_runs_on_the_gpu_pool_only(pod_spec):
    """The same node label and taint the GPU pool is created with; a pool at zero runs no exporter."""
    assert pod_spec["nodeSelector"] == dict(labels.GPU_NODE_SELECTOR)
    assert pod_spec["tolerations"] == [labels.toleration_for(labels.GPU_TAINT)]


def test_image_is_pinned(pod_spec):
    """A release tag of NVIDIA's registry, never `latest`."""
    [container] = pod_spec["containers"]
    assert container["image"] == IMAGE
    assert re.fullmatch(r"nvcr\.io/nvidia/k8s/dcgm-exporter:\d+\.\d+\.\d+-\d+\.\d+\.\d+-ubuntu22\.04", IMAGE)


def test_host_access_is_the_pod_resources_socket_only(pod_spec):
    """The documented exception: root for the kubelet's socket, read-only; no capabilities, no host namespaces."""
    [container] = pod_spec["containers"]
    context = container["securityContext"]
    assert context["runAsUser"] == 0
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert "privileged" not in context
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod_spec.get(key), key
    host_paths = [v for v in pod_spec["volumes"] if "hostPath" in v]
    assert [v["hostPath"]["path"] for v in host_paths] == ["/var/lib/kubelet/pod-resources"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts[host_paths[0]["name"]]["readOnly"] is True
    assert pod_spec["automountServiceAccountToken"] is False


def test_exports_exactly_the_catalogued_counters(dev_platform, pod_spec):
    """The counters file the exporter reads is the DCGM entry of the metrics catalog: one list, not two."""
    counters = dev_platform.one(CONFIG_MAP, "monitoring-gpu-counters").inputs["data"]["counters.csv"]
    fields = [line.split(",")[0] for line in counters.splitlines()]
    assert fields == [field for field, _, _ in COUNTERS]
    assert "DCGM_FI_DEV_GPU_UTIL" in fields
    assert not [f for f in fields if f.startswith("DCGM_FI_PROF_")], "profiling fields need CAP_SYS_ADMIN"
    [container] = pod_spec["containers"]
    assert container["args"][:2] == ["-f", "/etc/mlplatform-dcgm/counters.csv"]
    assert {e["name"]: e.get("value") for e in container["env"]}["DCGM_EXPORTER_KUBERNETES"] == "true"


def test_pod_monitor_scrapes_the_exporter_after_the_chart(dev_platform):
    """The PodMonitor kind comes with the chart; it selects the DaemonSet's pods on their metrics port."""
    monitor = dev_platform.one(POD_MONITOR, "monitoring-gpu-pod-monitor")
    assert dev_platform.depends_on(monitor, dev_platform.one(RELEASE, "monitoring-kube-prometheus-stack"))
    daemon_set = dev_platform.one(DAEMON_SET, "monitoring-gpu-daemon-set").inputs
    pod_labels = daemon_set["spec"]["template"]["metadata"]["labels"]
    selector = monitor.inputs["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    [endpoint] = monitor.inputs["spec"]["podMetricsEndpoints"]
    [container] = daemon_set["spec"]["template"]["spec"]["containers"]
    assert {"name": endpoint["port"], "containerPort": 9400, "protocol": "TCP"} in container["ports"]


def test_gpu_series_keep_the_holding_pod_and_gain_the_node(dev_platform):
    """The exporter's `pod`/`namespace` name the GPU's holder; the target's own must not shadow them."""
    [endpoint] = dev_platform.one(POD_MONITOR, "monitoring-gpu-pod-monitor").inputs["spec"]["podMetricsEndpoints"]
    target = {
        "namespace": "monitoring",
        "pod": "dcgm-exporter-abcde",
        "container": "exporter",
        "__meta_kubernetes_pod_node_name": "ip-10-0-1-5.ec2.internal",
    }
    labels_after = relabel(target, endpoint["relabelings"])
    assert labels_after == {"node": "ip-10-0-1-5.ec2.internal"}


def test_off_by_config():
    """`monitoring.gpuMetrics: false` declares no exporter."""
    recording = run_platform(platform_config(monitoring={"gpuMetrics": False}))
    assert recording.of_type(DAEMON_SET) == []
    assert [m.name for m in recording.of_type(POD_MONITOR)] == ["monitoring-linkerd-proxies"]


def _exporter_args(recording) -> list[str]:
    daemon_set = next(d for d in recording.of_type(K8S_DAEMON_SET) if d.inputs["metadata"]["name"] == "dcgm-exporter")
    return daemon_set.inputs["spec"]["template"]["spec"]["containers"][0]["args"]


def test_time_sliced_gpus_are_attributed_to_pods(dev_platform):
    """dev shares each GPU two ways: the device plugin hands out virtual GPU ids, which the exporter maps to
    pods only with --kubernetes-virtual-gpus; without it GpuIdle, which joins on `pod`, never fires."""
    assert "--kubernetes-virtual-gpus" in _exporter_args(dev_platform)


def test_whole_gpus_need_no_virtual_gpu_mapping(prod_platform):
    """prod gives each pod whole GPUs; the flag would only add series."""
    assert "--kubernetes-virtual-gpus" not in _exporter_args(prod_platform)
