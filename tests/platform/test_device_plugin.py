"""NvidiaDevicePlugin: where the DaemonSet may run and the time-slicing config."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from mlplatform import labels
from mlplatform.platform.charts_config import ChartsConfig
from mlplatform.platform.device_plugin import NvidiaDevicePlugin, NvidiaDevicePluginArgs
from mlplatform.platform.sizing import platform_sizes
from mlplatform.tools.offline.engine import Recording, run_program
from tests.support.types import HELM_RELEASE

RELEASE = HELM_RELEASE


def _run(time_slicing_replicas: int) -> Recording:
    return run_program(
        lambda: NvidiaDevicePlugin(
            "nvidia-device-plugin",
            NvidiaDevicePluginArgs(
                chart=ChartsConfig().nvidia_device_plugin,
                time_slicing_replicas=time_slicing_replicas,
                size=platform_sizes("dev").device_plugin,
            ),
        ),
        project="mlplatform",
        stack="dev",
    )


@pytest.fixture(scope="module")
def whole_gpus() -> Recording:
    return _run(1)


@pytest.fixture(scope="module")
def shared_gpus() -> Recording:
    return _run(4)


def _release(recording: Recording) -> dict[str, Any]:
    return recording.one(RELEASE).inputs


def test_release_is_pinned_in_its_own_namespace(whole_gpus):
    """A privileged DaemonSet gets its own namespace, and upgrades are reviewed version edits."""
    release = _release(whole_gpus)
    pinned = ChartsConfig().nvidia_device_plugin
    assert (release["name"], release["chart"]) == ("nvidia-device-plugin", "nvidia-device-plugin")
    assert (release["version"], release["repositoryOpts"]["repo"]) == (pinned.version, pinned.repo)
    assert release["namespace"] == "nvidia-device-plugin" and "createNamespace" not in release


def test_tolerates_exactly_the_gpu_taint(whole_gpus):
    """The plugin must run on our tainted GPU nodes, and match the taint the node group declares."""
    tolerations = _release(whole_gpus)["values"]["tolerations"]
    gpu = [t for t in tolerations if t["key"] == labels.GPU_TAINT["key"]]
    assert gpu == [labels.toleration_for(labels.GPU_TAINT)]
    assert {"key": "CriticalAddonsOnly", "operator": "Exists"} in tolerations
    assert len(tolerations) == 2


def test_keeps_the_chart_node_affinity(whole_gpus):
    """The chart's affinity matches nvidia.com/gpu.present=true, which our GPU nodes carry."""
    assert "affinity" not in _release(whole_gpus)["values"]
    assert labels.GPU_NODE_LABELS["nvidia.com/gpu.present"] == "true"


def test_no_sharing_config_without_time_slicing(whole_gpus):
    """With one replica each pod gets a whole GPU, as the plugin does by default."""
    assert "config" not in _release(whole_gpus)["values"]


def test_time_slicing_config_shares_each_gpu(shared_gpus):
    """With N replicas every GPU node advertises N shares of each GPU."""
    config = _release(shared_gpus)["values"]["config"]
    document = yaml.safe_load(config["map"][config["default"]])
    assert document["version"] == "v1"
    assert document["sharing"]["timeSlicing"]["resources"] == [{"name": labels.GPU_RESOURCE, "replicas": 4}]


def test_rejects_zero_replicas():
    """Zero shares per GPU would advertise no GPUs at all."""
    with pytest.raises(ValueError, match="time_slicing_replicas must be >= 1"):
        _run(0)


def _plugin_releases(recording) -> list:
    return [r for r in recording.of_type(HELM_RELEASE) if r.inputs["chart"] == "nvidia-device-plugin"]


def test_bottlerocket_nvidia_nodes_get_no_helm_device_plugin():
    """Bottlerocket's NVIDIA variants run their own device plugin; a second one would advertise every GPU twice."""
    from tests.support.helpers import platform_config, run_platform

    recording = run_platform(platform_config(nodePools={"gpu": {"amiType": "BOTTLEROCKET_x86_64_NVIDIA"}}))
    assert _plugin_releases(recording) == []
    assert len(_plugin_releases(run_platform(platform_config()))) == 1


def test_bottlerocket_with_time_slicing_is_refused():
    """Time-slicing lives in the chart's config; with the chart skipped it would silently not happen."""
    import pytest

    from mlplatform.configuration import ConfigError
    from tests.support.helpers import platform_config, run_platform

    with pytest.raises(
        ConfigError, match=r"mlplatform:nodePools\.gpu\.amiType / mlplatform:devicePlugin\.timeSlicingReplicas"
    ):
        run_platform(
            platform_config(
                nodePools={"gpu": {"amiType": "BOTTLEROCKET_x86_64_NVIDIA"}}, devicePlugin={"timeSlicingReplicas": 2}
            )
        )
