"""The e2e tier's simulated cluster: the control plane, kube-scheduler, kwok, and fake nodes.

kwok (sigs.k8s.io/kwok) plays every kubelet: it keeps the fake nodes Ready
(with leases, so the node lifecycle controller never evicts), gives scheduled
pods an IP and marks them Running and Ready, completes pods that do not restart
(Job pods), finishes pod deletes, and provisions and binds volumes for the
StorageClass `kwok-volume` (provisioner `kwok.x-k8s.io/volume`). It does all of
that through stages, which it ships under `kustomize/stage/` of its module:
scripts/e2e-tools.sh reports that directory as KWOK_STAGES.

Every address is on loopback, a hard rule of these machines: pods get IPs from
POD_CIDR and nodes from NODE_IPS, both inside 127.0.0.0/8. The API server would
call webhooks and aggregated APIs at their pods' endpoints (aggregator routing,
control_plane.py), but it refuses loopback addresses in Endpoints and
EndpointSlices, so those stay empty and it calls nothing: each call fails with
"no endpoints available". A webhook is then skipped if its failurePolicy is
Ignore, and refuses the request if it is Fail (the platform test names each
one). Empty as they are, a Service's Endpoints must still exist for the
provider's Service await: one stage of our own sees to it
(kwok/service-endpoints.yaml says why).

The nodes:
- system nodes, labelled as the platform's system pool;
- GPU nodes carrying the platform's GPU pool labels and taint, from
  `mlplatform.labels` (the same values the EKS node group declares), and an
  `nvidia.com/gpu` capacity, as the device plugin advertises it.
"""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mlplatform import labels
from tests.e2e.control_plane import ControlPlane
from tests.support.servers import free_port, wait_until

POD_CIDR = "127.64.0.0/16"
# Stages of the kwok module, by path under kustomize/stage/.
KWOK_STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
    "volume/fast/pvc-provision.yaml",
    "volume/fast/pv-bind.yaml",
    "volume/fast/pv-delete.yaml",
    "volume/fast/pvc-delete.yaml",
)
# Ours: an empty Endpoints object for every Service (the file says why).
SERVICE_ENDPOINTS_STAGE = Path(__file__).parent / "kwok" / "service-endpoints.yaml"
# The class kwok's volume stages provision for: the simulated cluster's own storage,
# as gp3 and EFS are on EKS. The platform's stack file names it (mode existing).
STORAGE_CLASS = "kwok-volume"
KWOK_PROVISIONER = "kwok.x-k8s.io/volume"
FAKE_NODE_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}
SYSTEM_NODES = ("system-0", "system-1")
GPU_NODES = ("gpu-0", "gpu-1")
# One GPU per node, time-sliced twice: what the device plugin advertises with the dev stack's settings.
GPUS_PER_NODE = 2
NODE_IPS = {name: f"127.32.0.{index + 1}" for index, name in enumerate((*SYSTEM_NODES, *GPU_NODES))}
READY_TIMEOUT = 90.0
NODE_LEASE_SECONDS = 40

assert all(ipaddress.ip_address(ip).is_loopback for ip in NODE_IPS.values())
assert ipaddress.IPv4Network(POD_CIDR).subnet_of(ipaddress.IPv4Network("127.0.0.0/8"))


def _node(name: str, *, gpu: bool) -> dict[str, Any]:
    # ephemeral-storage: every real kubelet reports its node's scratch disk, and the platform's pods
    # request some (serving, training and MLflow scratch); without it they would never schedule.
    capacity = {"cpu": "16", "memory": "64Gi", "ephemeral-storage": "200Gi", "pods": "110"}
    if gpu:
        capacity[labels.GPU_RESOURCE] = str(GPUS_PER_NODE)
    pool_labels = labels.GPU_NODE_LABELS if gpu else labels.SYSTEM_NODE_LABELS
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": dict(FAKE_NODE_ANNOTATION),
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                **pool_labels,
            },
        },
        "spec": {"taints": [dict(labels.GPU_TAINT)] if gpu else []},
        # Nodes may be created with their status: kwok keeps capacity and addresses it finds.
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "addresses": [{"type": "InternalIP", "address": NODE_IPS[name]}, {"type": "Hostname", "address": name}],
        },
    }


def _start_scheduler(plane: ControlPlane, kube_scheduler: str) -> None:
    plane.spawn(
        "kube-scheduler",
        [
            kube_scheduler,
            f"--kubeconfig={plane.admin_kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            f"--cert-dir={plane.workdir / 'scheduler-certs'}",
        ],
        started_line="Starting Kubernetes Scheduler",
    )


def _start_kwok(plane: ControlPlane, kwok: str, stages_dir: Path) -> subprocess.Popen:
    stage_files = [stages_dir / stage for stage in KWOK_STAGES] + [SERVICE_ENDPOINTS_STAGE]
    missing = [str(path) for path in stage_files if not path.is_file()]
    if missing:
        pytest.fail(f"kwok's stages are missing (scripts/e2e-tools.sh reports KWOK_STAGES): {missing}")
    return plane.spawn(
        "kwok",
        [
            kwok,
            f"--kubeconfig={plane.admin_kubeconfig}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector="
            + ",".join(f"{key}={value}" for key, value in FAKE_NODE_ANNOTATION.items()),
            f"--cidr={POD_CIDR}",
            # Heartbeats through Leases, renewed well within the node lifecycle
            # controller's grace period: without them kwok patches node status about
            # once a minute, the controller sees the node go Unknown in between and
            # marks its pods NotReady, and nothing here marks them Ready again.
            f"--node-lease-duration-seconds={NODE_LEASE_SECONDS}",
            f"--node-ip={NODE_IPS[SYSTEM_NODES[0]]}",
            # Its kubelet-like server (logs, exec) stays on loopback too.
            f"--server-address=127.0.0.1:{free_port()}",
            *(f"--config={path}" for path in stage_files),
        ],
    )


def _add_nodes_and_storage(plane: ControlPlane, kwok: subprocess.Popen) -> None:
    for name in SYSTEM_NODES:
        plane.request("POST", "/api/v1/nodes", _node(name, gpu=False))
    for name in GPU_NODES:
        plane.request("POST", "/api/v1/nodes", _node(name, gpu=True))
    plane.request(
        "POST",
        "/apis/storage.k8s.io/v1/storageclasses",
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": STORAGE_CLASS},
            "provisioner": KWOK_PROVISIONER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        },
    )

    def all_ready() -> bool:
        ready = [
            node["metadata"]["name"]
            for node in plane.items("/api/v1/nodes")
            if any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))
        ]
        return sorted(ready) == sorted((*SYSTEM_NODES, *GPU_NODES))

    wait_until(
        kwok,
        all_ready,
        name="kwok (fake nodes Ready)",
        log_path=plane.workdir / "kwok.log",
        timeout=READY_TIMEOUT,
        interval=0.3,
    )


def start_simulated_cluster(tools: dict[str, str], workdir: Path) -> ControlPlane:
    """The control plane, then the scheduler, kwok, the fake nodes and the kwok StorageClass."""
    plane = ControlPlane(
        etcd=tools["ETCD"],
        kube_apiserver=tools["kube-apiserver"],
        kube_controller_manager=tools["kube-controller-manager"],
        workdir=workdir,
    )
    try:
        plane.start()
        _start_scheduler(plane, tools["kube-scheduler"])
        kwok = _start_kwok(plane, tools["kwok"], Path(tools["KWOK_STAGES"]))
        _add_nodes_and_storage(plane, kwok)
    except OSError as error:
        plane.stop()
        pytest.fail(f"could not start the simulated cluster: {error}")
    except BaseException:
        plane.stop()
        raise
    return plane
