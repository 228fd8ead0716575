"""The MLflow model registry side of a rollout: which version, is it good enough, and its aliases.

A version enters a canary only if its run's metrics meet the environment's
promotion thresholds; the failure lists each metric with its value and
threshold. During the canary the alias `challenger` points at it; on promote
`champion` moves to it. MLflow is imported lazily: only `--from-registry`
needs it, and the rest of the tool stays usable without it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CHALLENGER = "challenger"
CHAMPION = "champion"

# The reference design's promotion thresholds, checked against the version's run metrics.
THRESHOLDS: dict[str, dict[str, float]] = {
    "staging": {"accuracy": 0.85, "f1": 0.80},
    "production": {"accuracy": 0.90, "f1": 0.85},
}
# Runs log F1 under either name; the first one found counts.
METRIC_NAMES: dict[str, tuple[str, ...]] = {"accuracy": ("accuracy",), "f1": ("f1", "f1_score")}


class RegistryError(Exception):
    """The registry refused the request, or the version is not usable. Nothing was written."""


class RegistryUnavailable(RegistryError):
    """MLflow could not be reached. Nothing was written."""


@dataclass(frozen=True)
class MetricCheck:
    metric: str
    actual: float | None
    threshold: float

    @property
    def passed(self) -> bool:
        return self.actual is not None and self.actual >= self.threshold

    def describe(self) -> str:
        actual = "missing" if self.actual is None else f"{self.actual:.4f}"
        verdict = "ok" if self.passed else "FAIL"
        return f"{self.metric}: {actual} (threshold >= {self.threshold:.2f}) {verdict}"


@dataclass(frozen=True)
class RegistryVersion:
    """A registered version and what its run logged."""

    name: str
    version: str
    run_id: str | None
    metrics: dict[str, float]
    stage: str
    checks: list[MetricCheck] = field(default_factory=list)

    @property
    def model_uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


class BelowThreshold(RegistryError):
    def __init__(self, version: RegistryVersion):
        self.version = version
        lines = [
            f"model {version.name} version {version.version} does not meet the {version.stage} thresholds:",
            *(f"  - {c.describe()}" for c in version.checks),
        ]
        super().__init__("\n".join(lines))


def stage_for(environment: str) -> str:
    """`prod` stacks need the production thresholds; every other environment the staging ones."""
    return "production" if environment == "prod" else "staging"


def registry_version(label: str) -> str:
    """`v6` -> `6`: the stack's version label as the registry's version number."""
    match = re.fullmatch(r"v?(\d+)", label)
    if not match:
        raise RegistryError(f"cannot derive a registry version from '{label}'; pass --registry-version")
    return match.group(1)


def explicit_tracking_uri(flag: str | None) -> str:
    """The tracking URI the CI tools (`check_registry`, `move_aliases`) were given: the flag, else
    `$MLFLOW_TRACKING_URI`. They run in workflows that name MLflow explicitly, so there is no
    platform-output lookup here (the rollout verbs do that)."""
    uri = flag or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise RegistryError("no MLflow tracking URI: pass --tracking-uri or set MLFLOW_TRACKING_URI")
    return uri


class Registry:
    """A thin wrapper over `mlflow.MlflowClient` that turns its exceptions into RegistryError."""

    def __init__(
        self,
        tracking_uri: str,
        hint: str = "",
        where: str | None = None,
        refusal: Callable[[], Exception | None] | None = None,
    ):
        """`hint` ends the "cannot reach" message: how to reach this MLflow from here. The
        tracking URI and the hint come from the caller (the platform's outputs), not from here.
        `where` names MLflow in messages when `tracking_uri` is a local forwarder; `refusal` is the
        forwarder's explained refusal (the API server's 403 or 503), which then replaces MLflow's own
        wording of the failure."""
        try:
            from mlflow import MlflowClient
        except ImportError:
            raise RegistryError("--from-registry needs the `mlflow` package: pip install mlflow") from None
        self.tracking_uri = tracking_uri
        self.where = where or tracking_uri
        self.hint = hint
        self.refusal = refusal
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def _call(self, what: str, fn, *args: Any, **kwargs: Any) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return fn(*args, **kwargs)
        except (MlflowException, OSError) as err:
            refused = self.refusal() if self.refusal is not None else None
            if refused is not None:
                raise RegistryUnavailable(f"{what}: {refused}") from None
            if isinstance(err, MlflowException):
                raise RegistryError(f"MLflow at {self.where}: {what}: {err.message}") from None
            hint = f"; {self.hint}" if self.hint else ""
            raise RegistryUnavailable(f"cannot reach MLflow at {self.where}: {what}: {err}{hint}") from None

    def check(self, name: str, version: str, environment: str) -> RegistryVersion:
        """The version with its run's metrics checked; raises BelowThreshold when it falls short."""
        model_version = self._call(f"model {name} version {version}", self._client.get_model_version, name, version)
        metrics: dict[str, float] = {}
        if model_version.run_id:
            run = self._call(f"run {model_version.run_id}", self._client.get_run, model_version.run_id)
            metrics = dict(run.data.metrics)
        stage = stage_for(environment)
        checks = [
            MetricCheck(metric, _first(metrics, METRIC_NAMES[metric]), threshold)
            for metric, threshold in THRESHOLDS[stage].items()
        ]
        result = RegistryVersion(
            name=name,
            version=str(model_version.version),
            run_id=model_version.run_id,
            metrics=metrics,
            stage=stage,
            checks=checks,
        )
        if not result.passed:
            raise BelowThreshold(result)
        return result

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._call(
            f"set alias {alias} on {name} version {version}",
            self._client.set_registered_model_alias,
            name,
            alias,
            version,
        )

    def alias_version(self, name: str, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self._client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            return None

    def delete_alias(self, name: str, alias: str) -> None:
        self._call(f"delete alias {alias} of {name}", self._client.delete_registered_model_alias, name, alias)


def _first(metrics: dict[str, float], names: tuple[str, ...]) -> float | None:
    return next((metrics[n] for n in names if n in metrics), None)


def parse_model_uri(uri: str) -> tuple[str, str] | None:
    """`models:/fraud_detector/6` -> (`fraud_detector`, `6`); None for other URIs (runs:/, s3://)."""
    match = re.fullmatch(r"models:/([^/\s]+)/(\d+)", uri)
    return (match.group(1), match.group(2)) if match else None
