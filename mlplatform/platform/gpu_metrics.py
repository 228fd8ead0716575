"""GPU metrics: NVIDIA's DCGM exporter on every GPU node, scraped by the platform's Prometheus.

The exporter is declared as our own DaemonSet rather than NVIDIA's Helm chart:
every platform release must install from the pinned chart mirror, and that
mirror carries no dcgm-exporter chart. What the chart would add (RBAC for pod
labels, TLS, a ServiceMonitor) we either do not need or declare here.

Host access, a justified exception to the restricted profile every other pod
of ours runs with (`mlplatform/security.py`):
- it runs as UID 0: the exporter learns which pod holds which GPU from the
  kubelet's pod-resources socket, a root-owned Unix socket mounted read-only
  from the host (`/var/lib/kubelet/pod-resources`), and it reads the GPUs
  through the NVIDIA container runtime, which the GPU AMIs make the default;
- nothing else: no privilege escalation, every capability dropped, no host
  network or PID namespace, no Kubernetes API token. Profiling counters
  (`DCGM_FI_PROF_*`) would need CAP_SYS_ADMIN, so the counters file mounted
  here lists only device-level fields.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from mlplatform import labels
from mlplatform.images import mirrored

NAME = "dcgm-exporter"
# 4.5.3-4.8.2 is DCGM 4.5.3 with exporter 4.8.2 (May 2026); the image emits
# the node name in the `Hostname` label, which later releases rename, so the
# PodMonitor sets a `node` label of its own and the alerts use that.
#
# Pinned by tag, not digest: no digest of this exact tag could be verified offline. The
# stored docs and code corpora (searched 2026-12-04) publish none for
# `4.5.3-4.8.2-ubuntu22.04`; they show only third-party digests of the `-distroless`
# variant, two different ones (a Dockerfile's 60d3b00a..., a private mirror's e9030b4f...),
# and one report that the `-ubuntu22.04` variant was not published for 4.x. Before
# production, resolve the digest against nvcr.io (`crane digest <image>`), confirm the tag
# exists, and pin `<image>@sha256:...` here; a digest copied from a third party is not a pin.
IMAGE = "nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-ubuntu22.04"
PORT = 9400
PORT_NAME = "metrics"
POD_RESOURCES = "/var/lib/kubelet/pod-resources"
COUNTERS_DIR = "/etc/mlplatform-dcgm"
COUNTERS_FILE = "counters.csv"

# (field, Prometheus type, help): the exporter's counters file, and the DCGM
# entry of the metrics catalog (`mlplatform.tools.metrics_catalog`).
COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %)."),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %)."),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB)."),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB)."),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C)."),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W)."),
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz)."),
    ("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered."),
)


def counters_csv() -> str:
    return "".join(f"{field}, {kind}, {help_text}\n" for field, kind, help_text in COUNTERS)


def exporter_relabelings() -> list[dict[str, str | list[str]]]:
    """Target labels for the exporter's series.

    The exporter labels each GPU's series with the `namespace`, `pod` and
    `container` that hold the GPU (from the pod-resources socket). Prometheus
    would rename those to `exported_*` because the target has labels of the
    same names (the exporter's own pod); dropping the target's keeps the GPU
    holder's under their plain names. `node` comes from service discovery.
    """
    return [
        {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "action": "replace", "targetLabel": "node"},
        {"action": "labeldrop", "regex": "namespace|pod|container"},
    ]


@dataclass
class GpuMetricsArgs:
    namespace: pulumi.Input[str]
    """The monitoring namespace."""
    wait_for: list[pulumi.Resource]
    """What must exist first: the Prometheus release, which installs the PodMonitor CRD."""
    time_slicing_replicas: int = 1
    """Pods sharing each GPU (`devicePlugin.timeSlicingReplicas`); above 1 the device plugin advertises
    virtual GPUs (`<uuid>::<n>`), which the exporter maps to pods only with `--kubernetes-virtual-gpus`."""
    image_registry: str | None = None
    """`mlplatform:imageRegistry`: the exporter image is pulled through it; None: from nvcr.io."""


def exporter_args(time_slicing_replicas: int) -> list[str]:
    """Without the flag, a time-sliced GPU's series carry no `pod` label and `GpuIdle` never fires."""
    flags = ["-f", f"{COUNTERS_DIR}/{COUNTERS_FILE}"]
    return [*flags, "--kubernetes-virtual-gpus"] if time_slicing_replicas > 1 else flags


class GpuMetrics(pulumi.ComponentResource):
    """DCGM exporter DaemonSet on the GPU pool and the PodMonitor that scrapes it.

    The DaemonSet selects the GPU pool by the same node label and taint the pool
    is created with (`mlplatform.labels`), so a pool scaled to zero runs no
    exporter pod at all.
    """

    daemon_set: k8s.apps.v1.DaemonSet
    pod_monitor: k8s.apiextensions.CustomResource

    def __init__(self, name: str, args: GpuMetricsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:platform:GpuMetrics", name, None, opts)
        object_labels = labels.k8s_labels("gpu-metrics", name=NAME)
        selector = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/component": "gpu-metrics"}

        def metadata(object_name: str = NAME) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(name=object_name, namespace=args.namespace, labels=object_labels)

        counters = k8s.core.v1.ConfigMap(
            f"{name}-counters",
            metadata=metadata(f"{NAME}-counters"),
            data={COUNTERS_FILE: counters_csv()},
            opts=pulumi.ResourceOptions(parent=self),
        )
        account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata=metadata(),
            automount_service_account_token=False,
            opts=pulumi.ResourceOptions(parent=self),
        )

        health = k8s.core.v1.HTTPGetActionArgs(path="/health", port=PORT_NAME)
        container = k8s.core.v1.ContainerArgs(
            name="exporter",
            image=mirrored(IMAGE, args.image_registry),
            args=exporter_args(args.time_slicing_replicas),
            env=[
                # Labels each GPU's series with the pod holding it (pod-resources socket).
                k8s.core.v1.EnvVarArgs(name="DCGM_EXPORTER_KUBERNETES", value="true"),
                k8s.core.v1.EnvVarArgs(name="DCGM_EXPORTER_LISTEN", value=f":{PORT}"),
                # Narrows the exporter's pod lookup to its own node.
                k8s.core.v1.EnvVarArgs(
                    name="NODE_NAME",
                    value_from=k8s.core.v1.EnvVarSourceArgs(
                        field_ref=k8s.core.v1.ObjectFieldSelectorArgs(field_path="spec.nodeName")
                    ),
                ),
            ],
            ports=[k8s.core.v1.ContainerPortArgs(name=PORT_NAME, container_port=PORT, protocol="TCP")],
            resources=k8s.core.v1.ResourceRequirementsArgs(
                requests={"cpu": "100m", "memory": "128Mi"}, limits={"memory": "512Mi"}
            ),
            liveness_probe=k8s.core.v1.ProbeArgs(http_get=health, initial_delay_seconds=45, period_seconds=10),
            readiness_probe=k8s.core.v1.ProbeArgs(http_get=health, initial_delay_seconds=45, period_seconds=10),
            security_context=k8s.core.v1.SecurityContextArgs(
                run_as_user=0,
                run_as_non_root=False,
                allow_privilege_escalation=False,
                capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
            ),
            volume_mounts=[
                k8s.core.v1.VolumeMountArgs(name="pod-resources", mount_path=POD_RESOURCES, read_only=True),
                k8s.core.v1.VolumeMountArgs(name="counters", mount_path=COUNTERS_DIR, read_only=True),
            ],
        )

        self.daemon_set = k8s.apps.v1.DaemonSet(
            f"{name}-daemon-set",
            metadata=metadata(),
            spec=k8s.apps.v1.DaemonSetSpecArgs(
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                update_strategy=k8s.apps.v1.DaemonSetUpdateStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=k8s.apps.v1.RollingUpdateDaemonSetArgs(max_unavailable=1),
                ),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels={**object_labels, **selector}),
                    spec=k8s.core.v1.PodSpecArgs(
                        service_account_name=account.metadata.name,
                        automount_service_account_token=False,
                        priority_class_name="system-node-critical",
                        node_selector=dict(labels.GPU_NODE_SELECTOR),
                        # A plain dict where PodSpecArgs types TolerationArgs: see mlplatform/model/serving.py.
                        tolerations=[labels.toleration_for(labels.GPU_TAINT)],  # pyright: ignore[reportArgumentType]
                        security_context=k8s.core.v1.PodSecurityContextArgs(
                            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
                        ),
                        containers=[container],
                        volumes=[
                            k8s.core.v1.VolumeArgs(
                                name="pod-resources",
                                host_path=k8s.core.v1.HostPathVolumeSourceArgs(path=POD_RESOURCES, type="Directory"),
                            ),
                            k8s.core.v1.VolumeArgs(
                                name="counters",
                                config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(name=counters.metadata.name),
                            ),
                        ],
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.pod_monitor = k8s.apiextensions.CustomResource(
            f"{name}-pod-monitor",
            api_version="monitoring.coreos.com/v1",
            kind="PodMonitor",
            metadata=metadata(),
            spec={
                "namespaceSelector": {"matchNames": [args.namespace]},
                "selector": {"matchLabels": selector},
                "podMetricsEndpoints": [
                    {"port": PORT_NAME, "path": "/metrics", "interval": "30s", "relabelings": exporter_relabelings()}
                ],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.wait_for),
        )

        self.register_outputs({"daemonSet": self.daemon_set.metadata.name})
