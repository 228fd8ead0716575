"""A model stack's `mlmodel:serving` config: the model server's pods, routes, retry
budget, probes and metrics endpoint.

Kept apart from `config.py` (which embeds it in `ModelStackConfig`); the rules that
span sections (the Gateway API's route cap, `analysis.minAccuracy` needing
`metrics`) live with `ModelStackConfig`. `Resources` (in `config_types`) is also the training pod's.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mlplatform.config_types import DnsLabel, Duration, Resources, ScratchConfig
from mlplatform.configuration import ConfigModel, CrossFieldError


class ReplicaConfig(ConfigModel):
    min: int = Field(2, ge=1, description="HPA minReplicas.")
    max: int = Field(10, ge=1, description="HPA maxReplicas.")
    target_cpu_utilization: int = Field(70, ge=1, le=100, description="HPA target average CPU %.")

    @model_validator(mode="after")
    def _ordered(self) -> ReplicaConfig:
        if self.min > self.max:
            raise CrossFieldError(f"replicas.min ({self.min}) must be <= replicas.max ({self.max})", "min", "max")
        return self


class RouteConfig(ConfigModel):
    name: DnsLabel = Field(description="Route name, as Linkerd metrics label it.")
    method: Literal["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"] = Field(description="HTTP method.")
    path_regex: str = Field(min_length=1, description="Path regex, anchored by Linkerd.")
    timeout: Duration = Field(description="Route timeout.")
    retryable: bool = Field(False, description="Whether Linkerd may retry it; never for non-idempotent predictions.")

    @field_validator("path_regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        if not value.startswith("/"):
            raise ValueError("must start with /")
        return value


# The reference design's routes, for a custom runtime that serves them.
REFERENCE_ROUTES = (
    RouteConfig(name="predict", method="POST", path_regex="/v1/predict", timeout="5s", retryable=False),
    RouteConfig(name="health", method="GET", path_regex="/health", timeout="2s", retryable=True),
    RouteConfig(name="batch-predict", method="POST", path_regex="/v1/batch-predict", timeout="30s", retryable=False),
    RouteConfig(name="model-metadata", method="GET", path_regex="/v1/models/.*", timeout="3s", retryable=True),
)
# The MLflow scoring server's real endpoints (`mlflow models serve`), same timeouts and retry policy.
MLFLOW_ROUTES = (
    RouteConfig(name="predict", method="POST", path_regex="/invocations", timeout="5s", retryable=False),
    RouteConfig(name="health", method="GET", path_regex="/health", timeout="2s", retryable=True),
    RouteConfig(name="ping", method="GET", path_regex="/ping", timeout="2s", retryable=True),
    RouteConfig(name="model-metadata", method="GET", path_regex="/version", timeout="3s", retryable=True),
)


class RetryBudget(ConfigModel):
    retry_ratio: float = Field(0.2, gt=0, le=1, description="Extra load retries may add, as a ratio.")
    min_retries_per_second: int = Field(10, ge=0, description="Retries always allowed per second.")
    ttl: Duration = Field("10s", description="Window over which the ratio is computed.")


class ProbeConfig(ConfigModel):
    readiness_path: str | None = Field(None, pattern=r"^/", description="Readiness path (default per runtime).")
    liveness_path: str | None = Field(None, pattern=r"^/", description="Liveness path (default per runtime).")
    initial_delay_seconds: int = Field(10, ge=0, description="Delay before the first probe (model download).")


# The Linkerd proxy's own ports in every meshed pod: admin (metrics), inbound, outbound.
LINKERD_PROXY_PORTS = (4191, 4143, 4140)


class MetricsEndpointConfig(ConfigModel):
    """The model server's own Prometheus endpoint: model-quality gauges such as
    `ml_model_accuracy` and `ml_model_drift_score` that no proxy can observe."""

    port: int = Field(
        ge=1024,
        le=65535,
        description="Container port of the metrics endpoint. A port of its own: on `serving.port` the model's "
        "Linkerd policy admits only `allowedClients`, so Prometheus could not scrape it.",
    )
    path: str = Field("/metrics", pattern=r"^/\S*$", description="HTTP path of the metrics endpoint.")
    interval: Duration = Field("15s", description="Scrape interval.")

    @field_validator("port")
    @classmethod
    def _not_the_proxy(cls, value: int) -> int:
        if value in LINKERD_PROXY_PORTS:
            raise ValueError(f"ports {list(LINKERD_PROXY_PORTS)} belong to the Linkerd proxy in every meshed pod")
        return value


class ServingConfig(ConfigModel):
    runtime: Literal["mlflow", "custom"] = Field(
        "mlflow",
        description="`mlflow`: the image runs `mlflow models serve` on the version's model URI, loaded from "
        "the platform's registry; `custom`: the image serves the model itself (reference-design paths).",
    )
    port: int = Field(8080, ge=1024, le=65535, description="Container port (non-root: 1024 or above).")
    resources: Resources = Field(default_factory=Resources.defaults, description="Requests and limits per replica.")
    scratch: ScratchConfig = Field(
        default_factory=ScratchConfig.defaults,
        description="Local disk per replica: ephemeral storage and emptyDir sizes.",
    )
    replicas: ReplicaConfig = Field(default_factory=ReplicaConfig.defaults, description="HPA bounds and CPU target.")
    gpus: int = Field(0, ge=0, le=8, description="GPUs per replica; >0 schedules on the GPU pool.")
    probes: ProbeConfig = Field(default_factory=ProbeConfig.defaults, description="Probe paths.")
    routes: list[RouteConfig] | None = Field(
        None, description="ServiceProfile routes; default per runtime (docs/rollouts.md)."
    )
    retry_budget: RetryBudget = Field(default_factory=RetryBudget.defaults, description="ServiceProfile retry budget.")
    max_batch_size: int = Field(32, ge=1, description="MAX_BATCH_SIZE passed to the server.")
    workers: int = Field(2, ge=1, le=64, description="Scoring server worker processes (runtime mlflow).")
    metrics: MetricsEndpointConfig | None = Field(
        None,
        description="The model server's Prometheus endpoint, if it has one: a PodMonitor scrapes it, and it "
        "carries `ml_model_accuracy` (for `analysis.minAccuracy`) and `ml_model_drift_score` (the "
        "`ModelDriftDetected` alert).",
    )
    await_readiness: bool = Field(
        True,
        description="`pulumi up` waits until each version's Deployment has rolled out and the Services have "
        "endpoints. `false` skips that wait (`pulumi.com/skipAwait`): for a cluster where serving pods "
        "cannot start, such as the e2e tier's control plane without nodes.",
    )

    @property
    def effective_routes(self) -> tuple[RouteConfig, ...]:
        if self.routes is not None:
            return tuple(self.routes)
        return MLFLOW_ROUTES if self.runtime == "mlflow" else REFERENCE_ROUTES

    @property
    def readiness_path(self) -> str:
        # Both runtimes answer /health once the model is loaded.
        return self.probes.readiness_path or "/health"

    @property
    def liveness_path(self) -> str:
        # The MLflow scoring server's /ping is its cheap liveness endpoint.
        return self.probes.liveness_path or ("/ping" if self.runtime == "mlflow" else "/health")

    @model_validator(mode="after")
    def _unique_routes(self) -> ServingConfig:
        names = [r.name for r in self.effective_routes]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            paths = [f"routes[{i}].name" for i, n in enumerate(names) if n in repeated]
            raise CrossFieldError(f"route names must be unique; repeated: {repeated}", *paths)
        if self.metrics is not None and self.metrics.port == self.port:
            raise CrossFieldError(
                f"metrics.port must differ from port ({self.port}): the model's Linkerd Server admits only "
                "the allowedClients' mTLS identities on the serving port, so Prometheus could not scrape it",
                "metrics.port",
                "port",
            )
        return self
