"""The security context every pod we own runs with (Kubernetes "restricted" profile).

Serving, training and MLflow pods all run non-root, with a read-only root
filesystem, no privilege escalation, no capabilities and the runtime's default
seccomp profile. One definition keeps them from drifting apart; each caller
only picks the UID its image expects.
"""

from __future__ import annotations

from typing import Protocol

import pulumi_kubernetes as k8s


class ScratchBound(Protocol):
    """What `scratch_dir` reads of a workload's scratch config (`config_types.ScratchConfig`). A protocol,
    not that model: the security context stays a ground module that imports no config."""

    @property
    def empty_dir_size_limit(self) -> str: ...


def restricted_pod_security_context(uid: int) -> k8s.core.v1.PodSecurityContextArgs:
    """Pod-level defaults: a fixed non-root UID/GID (also owning mounted volumes) and RuntimeDefault seccomp."""
    return k8s.core.v1.PodSecurityContextArgs(
        run_as_non_root=True,
        run_as_user=uid,
        run_as_group=uid,
        fs_group=uid,
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def restricted_container_security_context() -> k8s.core.v1.SecurityContextArgs:
    """Container-level lockdown; writable paths must come from emptyDir or PVC mounts."""
    return k8s.core.v1.SecurityContextArgs(
        run_as_non_root=True,
        read_only_root_filesystem=True,
        allow_privilege_escalation=False,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
    )


def scratch_dir(scratch: ScratchBound) -> k8s.core.v1.EmptyDirVolumeSourceArgs:
    """A disk-backed `emptyDir` bounded by the workload's scratch config: with a read-only root
    filesystem these volumes are where a pod writes, so they are what can fill a node."""
    return k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit=scratch.empty_dir_size_limit)
