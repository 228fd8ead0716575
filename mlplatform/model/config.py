"""A model stack's configuration: every key under `mlmodel:`.

One stack per model and environment (`fraud-detector-dev`, `fraud-detector-prod`).
The canary's weight lives in `mlmodel:canary.weight` of the stack's config file:
moving a rollout step is a one-line edit that `pulumi preview` shows in the PR.
The rules of a rollout (integer weights in [0, 100], a canary that differs from
stable, names that fit Kubernetes) are enforced here, before anything is declared.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator, Field, field_validator, model_validator

from mlplatform.config_types import pinned_image, quantity_value
from mlplatform.configuration import ConfigModel, CrossFieldError

NAMESPACE = "mlmodel"

DEFAULT_STEPS = (10, 25, 50, 75, 100)
# The split's weights are percentages: stable and canary together always take all the traffic.
TOTAL_WEIGHT = 100
# The Gateway API caps an HTTPRoute at 16 rules; one is the catch-all.
MAX_HTTPROUTE_RULES = 16
MAX_GATEWAY_ROUTES = MAX_HTTPROUTE_RULES - 1
DEFAULT_DWELL_MINUTES = (5, 10, 15, 10, 5)

DnsLabel = Annotated[
    str,
    Field(pattern=r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", description="A DNS-1035 label."),
]
# Versions become part of object names (`<model>-<version>`) and the `version` label.
VersionLabel = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$",
        description="Version label, lowercase letters, digits and dashes, e.g. `v5` or `v3-2`.",
    ),
]
ImageRef = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[\w][\w.-]{0,127})?(@sha256:[a-f0-9]{64})?$",
        description="Container image reference; pin a tag or digest.",
    ),
    AfterValidator(pinned_image),
]
ModelUri = Annotated[
    str,
    Field(
        pattern=r"^(models:/[^/\s]+/[^/\s]+|runs:/[^/\s]+/\S+|s3://\S+|gs://\S+|mlflow-artifacts:/\S+)$",
        description="MLflow model URI, e.g. `models:/fraud_detector/5`.",
    ),
]
Quantity = Annotated[str, Field(pattern=r"^\d+(\.\d+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")]
Duration = Annotated[str, Field(pattern=r"^\d+(ms|s|m|h)$", description="A duration such as `5s` or `1m`.")]
T = TypeVar("T")


def check_split_weights(weights: Sequence[int]) -> None:
    """The rule for a traffic split: non-negative integer weights that sum to TOTAL_WEIGHT.
    The config model builds its split with it and the traffic component checks its input with it."""
    if sum(weights) != TOTAL_WEIGHT or any(w < 0 for w in weights):
        raise ValueError(f"backend weights must be non-negative and sum to {TOTAL_WEIGHT}, got {list(weights)}")


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


class ResourceSpec(ConfigModel):
    cpu: Quantity = Field(description="CPU quantity.")
    memory: Quantity = Field(description="Memory quantity.")


class Resources(ConfigModel):
    requests: ResourceSpec = Field(
        default_factory=lambda: ResourceSpec(cpu="500m", memory="1Gi"), description="Requests."
    )
    limits: ResourceSpec = Field(
        default_factory=lambda: ResourceSpec(cpu="2", memory="4Gi"), description="Limits."
    )

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Resources:
        # The API server rejects a pod whose request exceeds its limit, mid-update.
        for resource in ("cpu", "memory"):
            request, limit = getattr(self.requests, resource), getattr(self.limits, resource)
            if quantity_value(request) > quantity_value(limit):
                raise CrossFieldError(
                    f"the {resource} request {request} is above its limit {limit}; Kubernetes rejects such a pod",
                    f"requests.{resource}",
                    f"limits.{resource}",
                )
        return self


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
    resources: Resources = Field(default_factory=Resources, description="Requests and limits per replica.")
    replicas: ReplicaConfig = Field(default_factory=ReplicaConfig, description="HPA bounds and CPU target.")
    gpus: int = Field(0, ge=0, le=8, description="GPUs per replica; >0 schedules on the GPU pool.")
    probes: ProbeConfig = Field(default_factory=ProbeConfig, description="Probe paths.")
    routes: list[RouteConfig] | None = Field(
        None, description="ServiceProfile routes; default per runtime (see README)."
    )
    retry_budget: RetryBudget = Field(default_factory=RetryBudget, description="ServiceProfile retry budget.")
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


S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/(?P<prefix>\S*))?$")

# The URI scheme each dataSource.type reads; `local` is a path inside the pod.
DATA_SOURCE_SCHEMES = {"s3": "s3://", "gcs": "gs://"}


class DataSource(ConfigModel):
    type: Literal["s3", "gcs", "local"] = Field(description="Where the dataset lives.")
    path: str = Field(
        min_length=1,
        description="Dataset path or URI; for `s3`, `s3://<bucket>/<prefix>`: the training role may read "
        "keys under that prefix only (end it with `/` to mean a folder).",
    )

    @model_validator(mode="after")
    def _s3_uri(self) -> DataSource:
        # A path of another scheme is _scheme_matches_type's to report.
        if self.type == "s3" and self.path.startswith("s3://") and not S3_URI.match(self.path):
            raise CrossFieldError(
                f"type 's3' needs a path 's3://<bucket>/<prefix>', got {self.path!r}", "type", "path"
            )
        return self

    def s3_location(self) -> tuple[str, str] | None:
        """(bucket, key prefix) of an S3 dataset; None for other sources."""
        match = S3_URI.match(self.path) if self.type == "s3" else None
        if match is None:
            return None
        return match["bucket"], match["prefix"] or ""

    @model_validator(mode="after")
    def _scheme_matches_type(self) -> DataSource:
        scheme = DATA_SOURCE_SCHEMES.get(self.type)
        if scheme is not None and not self.path.startswith(scheme):
            raise CrossFieldError(
                f"type '{self.type}' reads {scheme} URIs, but path is {self.path!r}", "type", "path"
            )
        if scheme is None and ("://" in self.path or not self.path.startswith("/")):
            raise CrossFieldError(
                f"type 'local' reads an absolute path inside the pod, but path is {self.path!r}", "type", "path"
            )
        return self


class TrainingConfig(ConfigModel):
    run_id: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Training run id. The Job's name derives from it: a new run id is a new Job.",
    )
    image: ImageRef = Field(description="Training image.")
    framework: Literal["tensorflow", "pytorch", "sklearn"] = Field("pytorch", description="Framework.")
    command: list[str] | None = Field(
        None, description="Container command; default: `python train.py` (or torchrun when distributed)."
    )
    gpus: int = Field(1, ge=0, le=8, description="GPUs per pod (each worker when distributed).")
    epochs: int = Field(10, ge=1, description="Epochs.")
    data_source: DataSource = Field(description="Training data.")
    hyperparameters: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Passed as HP_<NAME> env vars and recorded on the ModelTraining."
    )
    workers: int = Field(
        1, ge=1, le=64, description="Pods in the run. >1 runs distributed PyTorch (torchrun, NCCL) as an indexed Job."
    )
    backend: Literal["nccl", "gloo", "mpi"] = Field("nccl", description="torch.distributed backend.")
    resources: Resources = Field(
        default_factory=lambda: Resources(
            requests=ResourceSpec(cpu="4", memory="16Gi"), limits=ResourceSpec(cpu="8", memory="32Gi")
        ),
        description="CPU and memory per pod (GPUs come from `gpus`).",
    )
    backoff_limit: int = Field(2, ge=0, le=20, description="Job backoffLimit.")
    active_deadline_seconds: int = Field(86400, ge=60, description="Job activeDeadlineSeconds.")
    ttl_seconds_after_finished: int = Field(604800, ge=0, description="Job ttlSecondsAfterFinished.")
    checkpoint_storage_gib: int = Field(100, ge=1, description="Checkpoint PVC size.")
    checkpoint_access_mode: Literal["ReadWriteMany", "ReadWriteOnce"] = Field(
        "ReadWriteMany",
        description="Access mode of the checkpoint PVC, on the platform's class for that mode (output "
        "`storageClasses`). ReadWriteMany (EFS on AWS) lets every worker and every later run, on any node, "
        "share it; ReadWriteOnce needs `workers: 1` and pins later runs to the volume's zone.",
    )

    @model_validator(mode="after")
    def _distributed(self) -> TrainingConfig:
        if self.workers > 1 and self.framework != "pytorch":
            raise CrossFieldError(
                f"workers > 1 runs torchrun and needs framework 'pytorch', got '{self.framework}'",
                "workers",
                "framework",
            )
        if self.workers > 1 and self.backend == "nccl" and self.gpus < 1:
            raise CrossFieldError(
                "backend 'nccl' needs gpus >= 1 per worker; use 'gloo' for CPU-only runs", "backend", "gpus"
            )
        if self.workers > 1 and self.checkpoint_access_mode == "ReadWriteOnce":
            raise CrossFieldError(
                f"checkpointAccessMode 'ReadWriteOnce' lets one node mount the volume, but workers is "
                f"{self.workers}: distributed runs need 'ReadWriteMany'",
                "checkpointAccessMode",
                "workers",
            )
        return self

    @field_validator("hyperparameters")
    @classmethod
    def _distinct_env_names(cls, hyperparameters: dict[str, str | int | float | bool]) -> dict:
        # Each becomes an HP_<NAME> env var; two keys with one name would make the
        # API server reject the Job after the rest of the stack is applied.
        from mlplatform.model.training import hyperparameter_env_name

        by_name: dict[str, str] = {}
        for key in hyperparameters:
            env_name = hyperparameter_env_name(key)
            if env_name == "HP_":
                raise ValueError(f"key {key!r} has no letter or digit to name a variable")
            if env_name in by_name:
                raise ValueError(f"keys {by_name[env_name]!r} and {key!r} both become {env_name}; rename one")
            by_name[env_name] = key
        return hyperparameters


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
        50, ge=1, description="Minimum canary requests in the interval: no traffic is never healthy."
    )
    failure_threshold: int = Field(3, ge=1, description="Consecutive failed checks before `watch` aborts.")
    dwell_minutes: list[int] = Field(
        default_factory=lambda: list(DEFAULT_DWELL_MINUTES),
        description="Minutes to dwell at each step before the next (one per step).",
    )
    min_accuracy: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Optional minimum of the canary's `ml_model_accuracy` gauge; needs `serving.metrics`, "
        "where the gauge is scraped.",
    )
    compare_with_stable: bool = Field(
        False, description="Also require the canary's success rate to be no worse than stable's."
    )


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
    serving: ServingConfig = Field(default_factory=ServingConfig, description="Serving Deployments.")
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
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig, description="Canary gate thresholds.")
    trust_domain: str = Field("cluster.local", description="Linkerd identity trust domain.")

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: list[int]) -> list[int]:
        if not steps:
            raise ValueError("needs at least one step")
        if any(s < 1 or s > 100 for s in steps):
            raise ValueError(f"every step must be in [1, 100], got {steps}")
        if any(b <= a for a, b in zip(steps, steps[1:])):
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
                    f"canary.version '{self.canary.version}' must differ from stable.version "
                    f"'{self.stable.version}'",
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

    def split_weights(self) -> dict[str, int]:
        """Backend Service name -> integer weight; the weights sum to TOTAL_WEIGHT."""
        weights = {self.version_object_name(self.stable.version): TOTAL_WEIGHT - self.canary_weight}
        if self.canary is not None:
            weights[self.version_object_name(self.canary.version)] = self.canary.weight
        check_split_weights(list(weights.values()))
        return weights

    def next_step(self) -> int | None:
        """The first step above the current canary weight, or None at 100 / without a canary."""
        if self.canary is None:
            return None
        return next((s for s in self.steps if s > self.canary.weight), None)
