"""A model stack's configuration: every key under `mlmodel:`.

One stack per model and environment (`fraud-detector-dev`, `fraud-detector-prod`).
The canary's weight lives in `mlmodel:canary.weight` of the stack's config file:
moving a rollout step is a one-line edit that `pulumi preview` shows in the PR.
The rules of a rollout (integer weights in [0, 100], a canary that differs from
stable, names that fit Kubernetes) are enforced here, before anything is declared.

`ModelStackConfig`, the versions, the canary gate and the rollout rules live here;
the serving and training sections have a module each beside it
(`serving_config`, `training_config`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Annotated, Literal, TypeVar

from pydantic import Field, StrictInt, StrictStr, field_validator, model_validator

from mlplatform.config_types import DnsLabel, Duration, ImageRef
from mlplatform.configuration import ConfigModel, CrossFieldError
from mlplatform.model.serving_config import ServingConfig
from mlplatform.model.training_config import TrainingConfig

CONFIG_NAMESPACE = "mlmodel"

DEFAULT_STEPS = (10, 25, 50, 75, 100)
# The split's weights are percentages: stable and canary together always take all the traffic.
TOTAL_WEIGHT = 100
# The Gateway API caps an HTTPRoute at 16 rules; one is the catch-all.
MAX_HTTPROUTE_RULES = 16
MAX_GATEWAY_ROUTES = MAX_HTTPROUTE_RULES - 1
DEFAULT_DWELL_MINUTES = (5, 10, 15, 10, 5)

# Versions become part of object names (`<model>-<version>`) and the `version` label.
VersionLabel = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$",
        description="Version label, lowercase letters, digits and dashes, e.g. `v5` or `v3-2`.",
    ),
]
ModelUri = Annotated[
    str,
    Field(
        pattern=r"^(models:/[^/\s]+/[^/\s]+|runs:/[^/\s]+/\S+|s3://\S+|gs://\S+|mlflow-artifacts:/\S+)$",
        description="MLflow model URI, e.g. `models:/fraud_detector/5`.",
    ),
]
T = TypeVar("T")


def check_split_weights(weights: Sequence[int]) -> None:
    """The rule for a traffic split: non-negative integer weights that sum to TOTAL_WEIGHT.
    The config model builds its split with it and the traffic component checks its input with it."""
    if sum(weights) != TOTAL_WEIGHT or any(w < 0 for w in weights):
        raise ValueError(f"backend weights must be non-negative and sum to {TOTAL_WEIGHT}, got {list(weights)}")


@dataclass(frozen=True)
class VersionWeight:
    """One live version's share of the traffic."""

    version: str
    object_name: str
    """`<model>-<version>`: the version's Deployment and Service."""
    weight: int


@dataclass(frozen=True)
class TrafficWeights:
    """The split between stable and the canary, computed once per run (`ModelStackConfig.traffic_weights`)
    and handed to everything that shows it: the split itself, the records and the stack outputs.
    Valid by construction: the split rule runs here and nowhere downstream."""

    stable: VersionWeight
    canary: VersionWeight | None

    def __post_init__(self) -> None:
        check_split_weights([b.weight for b in self.backends])

    @property
    def backends(self) -> tuple[VersionWeight, ...]:
        """Stable first, then the canary (a canary at 0 stays listed)."""
        return (self.stable,) if self.canary is None else (self.stable, self.canary)

    def by_object_name(self) -> dict[str, int]:
        """Backend Service name -> weight, as the stack output `weights` shows it."""
        return {b.object_name: b.weight for b in self.backends}


def check_gateway_route_count(count: int) -> None:
    """The rule for `trafficApi: gateway`: one HTTPRoute rule per route plus a catch-all must fit
    the Gateway API's cap. The config model and the HTTPRoute builder both call it."""
    if count > MAX_GATEWAY_ROUTES:
        raise CrossFieldError(
            f"trafficApi 'gateway' carries one HTTPRoute rule per route plus a catch-all, and an HTTPRoute "
            f"holds at most {MAX_HTTPROUTE_RULES} rules: serving.routes may list at most {MAX_GATEWAY_ROUTES}, "
            f"got {count}",
            "trafficApi",
            "serving.routes",
        )


class ModelConfig(ConfigModel):
    name: DnsLabel = Field(description="Model name; names the Deployments, Services and the TrafficSplit.")
    namespace: DnsLabel | None = Field(
        None, description="Serving namespace; default: the platform's serving namespace."
    )
    registered_model: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Name in the MLflow registry (default: the model name with dashes as underscores).",
    )

    @property
    def registry_name(self) -> str:
        return self.registered_model or self.name.replace("-", "_")


class VersionConfig(ConfigModel):
    version: VersionLabel = Field(description="Version label, e.g. `v5`.")
    image: ImageRef = Field(description="Serving image.")
    model_uri: ModelUri = Field(description="MLflow model URI, e.g. `models:/fraud_detector/5`.")


class CanaryConfig(VersionConfig):
    weight: int = Field(
        description="Percent of traffic to the canary, an integer in [0, 100]. 0 is a rollback that keeps "
        "the canary pods for debugging.",
        ge=0,
        le=100,
        strict=True,
    )


class AllowedClient(ConfigModel):
    service_account: DnsLabel = Field(description="Client ServiceAccount name.")
    namespace: DnsLabel = Field(description="Client namespace.")

    def identity(self, trust_domain: str = "cluster.local") -> str:
        return f"{self.service_account}.{self.namespace}.serviceaccount.identity.linkerd.{trust_domain}"


class AnalysisConfig(ConfigModel):
    """The canary gate's thresholds (used by `mlplatform rollout` and by the model's alerts)."""

    interval: Duration = Field("1m", description="PromQL rate window.")
    min_success_rate: float = Field(0.99, gt=0, le=1, description="Minimum canary success rate.")
    max_p99_latency_ms: float = Field(500, gt=0, description="Maximum canary p99 latency in ms.")
    min_requests: int = Field(
        50,
        ge=1,
        description="Minimum canary requests since the step started before the gate judges anything; until "
        "then the verdict is `not yet` (never a pass, and never a failure by itself).",
    )
    failure_threshold: int = Field(
        3,
        ge=1,
        description="Consecutive guard-rail failures before `watch` aborts (a statistical failure aborts at once).",
    )
    dwell_minutes: list[StrictInt | StrictStr] = Field(
        default_factory=lambda: list(DEFAULT_DWELL_MINUTES),
        description="How long to dwell at each step before the next (one per step): minutes as a number "
        "(`10`), or a duration (`30s`, `10m`, `1h`), which lets a test scale time down.",
    )
    min_accuracy: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Optional minimum of the canary's `ml_model_accuracy` gauge; needs `serving.metrics`, "
        "where the gauge is scraped.",
    )
    compare_with_stable: bool = Field(
        True,
        description="Judge the canary against stable with the sequential tests (error rate and latency), beside "
        "the fixed guard rails. Off: the guard rails alone decide.",
    )
    max_error_rate_increase: float = Field(
        0.1,
        ge=0,
        le=10,
        description="Tolerance of the error-rate comparison, relative to stable's rate: 0.1 fails a canary "
        "only when it is confidently more than 1.1 times as error-prone as stable.",
    )
    max_slow_request_increase: float = Field(
        0.1,
        ge=0,
        le=10,
        description="Tolerance of the latency comparison, relative: the canary's share of requests slower than "
        "stable's p99 bucket boundary may exceed stable's share by this fraction.",
    )
    confidence: float = Field(
        0.99,
        ge=0.5,
        lt=1,
        description="Confidence of the sequential tests: a canary equal to stable is failed by one of them with "
        "probability at most 1 - confidence over the canary's whole rollout (the tests carry across its steps), "
        "however often the gate checks.",
    )
    max_inconclusive_steps: int = Field(
        10,
        ge=1,
        description="Intervals a step may stay `not yet` (too few requests, no data, stable without traffic) "
        "before the verdict becomes a failure naming why.",
    )

    @field_validator("dwell_minutes")
    @classmethod
    def _dwells(cls, dwells: list[int | str]) -> list[int | str]:
        for index, dwell in enumerate(dwells):
            if isinstance(dwell, bool) or not (
                (isinstance(dwell, int) and dwell >= 0) or (isinstance(dwell, str) and _DURATION.match(dwell))
            ):
                raise ValueError(
                    f"entry {index} is {dwell!r}: give minutes as a whole number >= 0 (`10`) or a duration "
                    "such as `30s`, `10m`, `1h`"
                )
        return dwells

    def dwell_seconds(self, index: int) -> float:
        """The dwell of step `index` in seconds; a bare number counts minutes."""
        return duration_seconds(self.dwell_minutes[index])

    def interval_seconds(self) -> float:
        return duration_seconds(self.interval)


_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\d+(ms|s|m|h)$")


def duration_seconds(value: int | str) -> float:
    """`10` (minutes), `30s`, `10m`, `1h`, `500ms` in seconds; the config model has checked the form."""
    if isinstance(value, int):
        return value * 60.0
    unit = "ms" if value.endswith("ms") else value[-1]
    return int(value[: -len(unit)]) * _UNIT_SECONDS[unit]


class ModelStackConfig(ConfigModel):
    """Everything under `mlmodel:` in `stacks/model/Pulumi.<stack>.yaml`."""

    platform_stack: str = Field(
        pattern=r"^([\w.-]+/)?([\w.-]+/)?[\w.-]+$",
        description="StackReference to the platform stack, e.g. `organization/mlplatform/dev`.",
    )
    environment: Literal["dev", "staging", "prod"] = Field(
        "dev", description="Environment; picks the MLflow promotion thresholds (prod: production ones)."
    )
    model: ModelConfig = Field(description="Model identity.")
    team: DnsLabel | None = Field(
        None,
        description="The team that owns the model: one of the platform's team namespaces (output "
        "`namespaces.teams`). Training runs there, under the team's GPU quota. Required with `training`.",
    )
    serving: ServingConfig = Field(default_factory=ServingConfig.defaults, description="Serving Deployments.")
    stable: VersionConfig = Field(description="The stable version.")
    canary: CanaryConfig | None = Field(None, description="The canary version, if a rollout is under way.")
    steps: list[int] = Field(
        default_factory=lambda: list(DEFAULT_STEPS), description="Canary weights a rollout walks through."
    )
    training: TrainingConfig | None = Field(None, description="The current training run, if any.")
    allowed_clients: list[AllowedClient] = Field(
        min_length=1, description="Service accounts allowed to call the model (mTLS identities)."
    )
    traffic_api: Literal["smi", "gateway"] = Field(
        "smi", description="`smi`: TrafficSplit; `gateway`: Gateway API HTTPRoute with weighted backendRefs."
    )
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig.defaults, description="Canary gate thresholds.")
    trust_domain: str = Field("cluster.local", description="Linkerd identity trust domain.")

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: list[int]) -> list[int]:
        if not steps:
            raise ValueError("needs at least one step")
        if any(s < 1 or s > 100 for s in steps):
            raise ValueError(f"every step must be in [1, 100], got {steps}")
        if any(b <= a for a, b in pairwise(steps)):
            raise ValueError(f"steps must strictly increase, got {steps}")
        if steps[-1] != 100:
            raise ValueError(f"the last step must be 100 so the canary can be promoted, got {steps[-1]}")
        return steps

    @model_validator(mode="after")
    def _training_needs_team(self) -> ModelStackConfig:
        if self.training is not None and self.team is None:
            raise CrossFieldError(
                "team is required with training: the run goes to the team's namespace, under its GPU quota "
                "(one of the platform's mlplatform:namespaces.teams)",
                "team",
                "training",
            )
        return self

    @model_validator(mode="after")
    def _rollout_rules(self) -> ModelStackConfig:
        if self.canary is not None:
            if self.canary.version == self.stable.version:
                raise CrossFieldError(
                    f"canary.version '{self.canary.version}' must differ from stable.version '{self.stable.version}'",
                    "canary.version",
                    "stable.version",
                )
            if self.canary.model_uri == self.stable.model_uri and self.canary.image == self.stable.image:
                raise CrossFieldError(
                    "canary must change the image or the model URI of stable",
                    "canary.image",
                    "canary.modelUri",
                )
        for role, version in self.live_versions():
            name = self.version_object_name(version.version)
            if len(name) > 63:
                raise CrossFieldError(
                    f"{role} object name '{name}' is longer than 63 characters", "model.name", f"{role}.version"
                )
        if self.traffic_api == "gateway":
            check_gateway_route_count(len(self.serving.effective_routes))
        if self.analysis.min_accuracy is not None and self.serving.metrics is None:
            raise CrossFieldError(
                f"analysis.minAccuracy ({self.analysis.min_accuracy}) gates on the ml_model_accuracy gauge, which "
                "only the model server can expose: declare its endpoint in serving.metrics (port, path), "
                "or remove analysis.minAccuracy",
                "analysis.minAccuracy",
                "serving.metrics",
            )
        if len(self.analysis.dwell_minutes) != len(self.steps):
            raise CrossFieldError(
                f"analysis.dwellMinutes has {len(self.analysis.dwell_minutes)} entries but steps has "
                f"{len(self.steps)}: give one dwell per step",
                "analysis.dwellMinutes",
                "steps",
            )
        return self

    # -- derived names, in one place for every component --------------------
    def version_object_name(self, version: str) -> str:
        """Deployment/Service name of one version: `<model>-<version>`."""
        return f"{self.model.name}-{version}"

    def live_versions(self) -> list[tuple[str, VersionConfig]]:
        """(role, version) for stable and, when present, canary."""
        versions: list[tuple[str, VersionConfig]] = [("stable", self.stable)]
        if self.canary is not None:
            versions.append(("canary", self.canary))
        return versions

    def serving_namespace(self, platform_namespace: Callable[[], T]) -> str | T:
        """Where the model serves: `model.namespace` if set, else the platform's serving namespace.

        The platform's value is asked for only when needed: the program passes its
        StackReference output, the rollout tool a lookup of the platform's outputs
        that it can then skip."""
        return self.model.namespace or platform_namespace()

    @property
    def canary_weight(self) -> int:
        return self.canary.weight if self.canary is not None else 0

    def traffic_weights(self) -> TrafficWeights:
        """Stable takes what the canary does not; the weights sum to TOTAL_WEIGHT."""

        def share(version: VersionConfig, weight: int) -> VersionWeight:
            return VersionWeight(version.version, self.version_object_name(version.version), weight)

        return TrafficWeights(
            stable=share(self.stable, TOTAL_WEIGHT - self.canary_weight),
            canary=share(self.canary, self.canary.weight) if self.canary is not None else None,
        )

    def next_step(self) -> int | None:
        """The first step above the current canary weight, or None at 100 / without a canary."""
        if self.canary is None:
            return None
        return next((s for s in self.steps if s > self.canary.weight), None)
