"""The rollout's state on the cluster: the InferenceService record's `status`, as Flagger keeps a Canary's.

Git says where the canary should be; the cluster records how the rollout is
going: the phase, the weight the state refers to, when that step started, the
failed checks so far, the last verdict with its measured values, the judge's
sequential evidence from the canary's earlier steps (`judgeEvidence`), and an
abort with its reason. Every scheduled `watch` run resumes from it, so a dwell
longer than one run completes across runs, failed checks carry over until the
weight moves, and the judge's tests continue across steps of the same canary.

The state is written through the status subresource with a JSON merge patch.
Pulumi declares the record's `spec` and never reads back `status` into its
inputs, so these writes cause no drift (tested against the real engine).

A state belongs to one canary at one weight: for any other (a new canary, a
weight moved by hand or by a deploy), it says nothing, and the caller starts the
step afresh. That is the safe side: a full dwell again, never a skipped one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from mlplatform.tools import kube

PROGRESSING, ABORTED, PROMOTED, READY = "Progressing", "Aborted", "Promoted", "Ready"
# Fields this module owns in the record's status; others (`url`, conditions) are left alone.
FIELDS = ("phase", "canaryVersion", "weight", "stepStartedAt", "failedChecks", "lastVerdict", "judgeEvidence", "abort")


def now_iso(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()  # Python 3.11 reads the Z suffix


@dataclass
class Abort:
    reason: str
    at: str
    pr: str | None = None  # the branch of the rollback PR, where the push to main was refused


@dataclass
class RolloutStatus:
    """What `status` says of the rollout. `last_verdict` is free-form: the judge's record, stored as it is."""

    phase: str
    canary_version: str | None
    weight: int
    step_started_at: str
    failed_checks: int = 0
    last_verdict: dict[str, Any] | None = None
    abort: Abort | None = None
    evidence: dict[str, Any] | None = None
    """The judge's sequential tests where the canary's previous step left them (`evidence.CarriedEvidence`,
    versioned): this step's checks continue them. Stored as the judge wrote it; the judge validates it."""

    def is_for(self, version: str, weight: int) -> bool:
        """Whether this state describes the canary `version` at `weight`."""
        return self.canary_version == version and self.weight == weight

    def step_age(self, now: float) -> float:
        return now - parse_iso(self.step_started_at)

    def to_status(self) -> dict[str, Any]:
        data = asdict(self)
        return {
            "phase": self.phase,
            "canaryVersion": self.canary_version,
            "weight": self.weight,
            "stepStartedAt": self.step_started_at,
            "failedChecks": self.failed_checks,
            "lastVerdict": data["last_verdict"],
            "judgeEvidence": data["evidence"],
            "abort": data["abort"],
        }

    @classmethod
    def from_status(cls, status: dict[str, Any] | None) -> RolloutStatus | None:
        if not status or "stepStartedAt" not in status or "weight" not in status:
            return None
        abort = status.get("abort")
        return cls(
            phase=str(status.get("phase") or PROGRESSING),
            canary_version=status.get("canaryVersion"),
            weight=int(status["weight"]),
            step_started_at=str(status["stepStartedAt"]),
            failed_checks=int(status.get("failedChecks") or 0),
            last_verdict=status.get("lastVerdict"),
            evidence=status.get("judgeEvidence"),
            abort=Abort(reason=str(abort.get("reason", "")), at=str(abort.get("at", "")), pr=abort.get("pr"))
            if abort
            else None,
        )


def new_step(
    version: str, weight: int, now: float, phase: str = PROGRESSING, evidence: dict[str, Any] | None = None
) -> RolloutStatus:
    """A step starting now; `evidence` carries the judge's tests into it (None: they start afresh)."""
    return RolloutStatus(
        phase=phase, canary_version=version, weight=weight, step_started_at=now_iso(now), evidence=evidence
    )


class StatusStore(Protocol):
    where: str

    def get(self, missing_ok: bool = False) -> RolloutStatus | None: ...

    def put(self, status: RolloutStatus) -> None: ...


@dataclass
class KubeStatusStore:
    """The InferenceService record `<namespace>/<name>` of `group`, through its status subresource."""

    client: kube.KubeClient
    group: str
    namespace: str
    name: str
    version: str = "v1"
    where: str = field(init=False)

    def __post_init__(self) -> None:
        self.where = f"InferenceService {self.namespace}/{self.name} ({self.group})"

    def _path(self, status: bool) -> str:
        return kube.custom_object_path(self.group, self.version, self.namespace, "inferenceservices", self.name, status)

    def get(self, missing_ok: bool = False) -> RolloutStatus | None:
        try:
            record = self.client.get(self._path(status=False))
        except kube.KubeApiError as err:
            if err.status == 404 and missing_ok:
                return None
            if err.status == 404:
                raise kube.KubeError(
                    f"{self.where} does not exist: the model stack declares it; run `pulumi up` of the stack first"
                ) from None
            raise
        return RolloutStatus.from_status(record.get("status"))

    def put(self, status: RolloutStatus) -> None:
        self.client.merge_patch(self._path(status=True), {"status": status.to_status()})


@dataclass
class FileStatusStore:
    """The same state in a JSON file (`--status-file`): for a laptop without cluster access, and tests."""

    path: Path
    where: str = field(init=False)

    def __post_init__(self) -> None:
        self.where = f"status file {self.path}"

    def get(self, missing_ok: bool = False) -> RolloutStatus | None:
        try:
            return RolloutStatus.from_status(json.loads(self.path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None

    def put(self, status: RolloutStatus) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(status.to_status(), indent=2, default=str) + "\n", encoding="utf-8")
        tmp.replace(self.path)
