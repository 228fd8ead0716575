"""The platform's namespaces, their mesh membership and the teams' GPU quotas.

Namespaces carry explicit names from config (never auto-named) because the model
stacks look them up by name through the platform's stack outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from mlplatform import labels
from mlplatform.platform.config import NamespacesConfig

PURPOSE_LABEL = "mlplatform.io/purpose"
TEAM_LABEL = "mlplatform.io/team"
INJECT_KEY = next(iter(labels.MESH_INJECT_ANNOTATION))

# Training pods are kept out of the mesh, stated explicitly so a namespace default
# or a later annotation cannot turn injection on by accident:
# - NCCL and torchrun open peer connections on dynamic ports between workers; the
#   proxy would have to intercept (or be told to skip) ports no one knows in advance.
# - A Job completes only when every container exits; a sidecar proxy that keeps
#   running holds the pod, and the Job, open forever.
MESH_DISABLED = {INJECT_KEY: "disabled"}


@dataclass
class OwnedNamespace:
    """A namespace the platform declares: what NetworkPolicies need to know about it."""

    key: str
    """Stable part of child resource names: `serving`, `training`, `mlflow`, `monitoring`, `team-<name>`."""
    name: pulumi.Output[str]
    purpose: str
    """The `mlplatform.io/purpose` label: serving, training, mlflow, monitoring or team."""
    meshed: bool


@dataclass
class PlatformNamespacesArgs:
    config: NamespacesConfig


class PlatformNamespaces(pulumi.ComponentResource):
    """Serving, training, MLflow, monitoring and one namespace per team.

    Serving, MLflow and team namespaces are meshed (mTLS and golden metrics for
    every pod); training is not, see `MESH_DISABLED`. Monitoring is left to the
    cluster default: Prometheus scrapes the proxies' metrics ports, which works
    from outside the mesh.
    """

    serving: pulumi.Output[str]
    training: pulumi.Output[str]
    mlflow: pulumi.Output[str]
    monitoring: pulumi.Output[str]
    teams: pulumi.Output[list[str]]
    owned: list[OwnedNamespace]
    """Every namespace above, in declaration order."""

    def __init__(self, name: str, args: PlatformNamespacesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:platform:Namespaces", name, None, opts)
        config = args.config

        self.owned = []

        def namespace(part: str, ns_name: str, annotations: dict[str, str] | None, purpose: str, **extra: str):
            created = k8s.core.v1.Namespace(
                f"{name}-{part}",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=ns_name,
                    labels={**labels.k8s_labels("namespaces", instance=name), PURPOSE_LABEL: purpose, **extra},
                    annotations=annotations,
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            is_meshed = (annotations or {}).get(INJECT_KEY) == "enabled"
            self.owned.append(OwnedNamespace(part, created.metadata.name, purpose, is_meshed))
            return created

        meshed = dict(labels.MESH_INJECT_ANNOTATION)
        serving = namespace("serving", config.serving, meshed, "serving")
        training = namespace("training", config.training, MESH_DISABLED, "training")
        mlflow = namespace("mlflow", config.mlflow, meshed, "mlflow")
        monitoring = namespace("monitoring", config.monitoring, None, "monitoring")

        team_names: list[pulumi.Output[str]] = []
        for team in config.teams:
            team_ns = namespace(f"team-{team.name}", team.name, meshed, "team", **{TEAM_LABEL: team.name})
            k8s.core.v1.ResourceQuota(
                f"{name}-team-{team.name}-gpu",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name="gpu-quota",
                    namespace=team_ns.metadata.name,
                    labels=labels.k8s_labels("namespaces", instance=name),
                ),
                spec=k8s.core.v1.ResourceQuotaSpecArgs(
                    hard={
                        # Quota admission counts only the `requests.` form for extended
                        # resources: GPUs are never overcommitted, so a pod's GPU limit
                        # equals its request. `limits.` is accepted and shown in
                        # `kubectl describe quota`, but `requests.` is what caps usage.
                        f"requests.{labels.GPU_RESOURCE}": str(team.gpu_requests),
                        f"limits.{labels.GPU_RESOURCE}": str(team.gpu_limits),
                    }
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            team_names.append(team_ns.metadata.name)

        self.serving = serving.metadata.name
        self.training = training.metadata.name
        self.mlflow = mlflow.metadata.name
        self.monitoring = monitoring.metadata.name
        self.teams = pulumi.Output.all(*team_names).apply(list)
        self.register_outputs(
            {
                "serving": self.serving,
                "training": self.training,
                "mlflow": self.mlflow,
                "monitoring": self.monitoring,
                "teams": self.teams,
            }
        )
