"""The ML custom resource definitions: ModelTraining, ModelVersion, InferenceService, DataPipeline.

`crd_manifest` is pure so the same definition serves the component, the tests
(which validate sample resources against the schema) and the model stacks'
offline render. The schemas enforce the reference design's enums and bounds at
admission time; anything a controller may add later goes under `status`, which
keeps unknown fields.

Trade-off: fields outside the schema are pruned by the API server, so a new spec
field needs a CRD change here first. That is deliberate: a typo in a manifest
should be dropped visibly, not stored and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlplatform import labels
from mlplatform.platform.crd_schemas import (
    Schema,
    data_pipeline_spec,
    inference_service_spec,
    model_training_spec,
    model_version_spec,
    rollout_status,
    status_schema,
    string,
)

VERSION = "v1"
CRD_KINDS = ("ModelTraining", "ModelVersion", "InferenceService", "DataPipeline")
CATEGORY = "ml"


def _column(name: str, json_path: str, type_: str = "string", priority: int = 0) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "type": type_, "jsonPath": json_path}
    if priority:
        column["priority"] = priority
    return column


_PHASE = _column("Phase", ".status.phase")
_AGE = _column("Age", ".metadata.creationTimestamp", "date")


@dataclass(frozen=True)
class _KindSpec:
    plural: str
    short_names: tuple[str, ...]
    spec: Schema
    status: Schema
    columns: tuple[dict[str, Any], ...]


def _kinds() -> dict[str, _KindSpec]:
    return {
        "ModelTraining": _KindSpec(
            plural="modeltrainings",
            short_names=("mt",),
            spec=model_training_spec(),
            status=status_schema(
                {
                    "jobName": string("The training Job's name."),
                    "modelVersion": string("Registry version the run produced."),
                    "startTime": string("When training started.", format="date-time"),
                    "completionTime": string("When training finished.", format="date-time"),
                }
            ),
            # No Phase column: nothing writes a ModelTraining's status.phase (the training Job
            # carries the run's state, and no controller copies it here), so it would always
            # be blank. The Job column names where to look: `kubectl get job <name>`.
            columns=(
                _column("Model", ".spec.modelName"),
                _column("Version", ".status.modelVersion"),
                _column("Framework", ".spec.framework"),
                _column("Job", ".status.jobName"),
                _AGE,
            ),
        ),
        "ModelVersion": _KindSpec(
            plural="modelversions",
            short_names=("mv",),
            spec=model_version_spec(),
            status=status_schema(),
            columns=(
                _PHASE,
                _column("Model", ".spec.modelName"),
                _column("Version", ".spec.version"),
                _column("Role", ".spec.role"),
                _column("Approved", ".spec.approved", "boolean"),
                _AGE,
            ),
        ),
        # `isvc` is KServe's short name; a second owner of it would make `kubectl get isvc` ambiguous.
        "InferenceService": _KindSpec(
            plural="inferenceservices",
            short_names=("mlisvc",),
            spec=inference_service_spec(),
            status=status_schema({"url": string("In-cluster URL of the apex Service."), **rollout_status()}),
            columns=(
                _PHASE,
                _column("Model", ".spec.modelRef.name"),
                _column("Version", ".spec.modelRef.version"),
                _column("Canary", ".spec.canary.version"),
                _column("Canary Weight", ".spec.canary.weight", "integer"),
                # The rollout's own view (`mlplatform rollout` writes it): the weight it judged, the
                # failed checks so far and how long the current step has dwelled.
                _column("Weight", ".status.weight", "integer"),
                _column("Checks", ".status.failedChecks", "integer"),
                _column("Step age", ".status.stepStartedAt", "date"),
                _AGE,
            ),
        ),
        "DataPipeline": _KindSpec(
            plural="datapipelines",
            short_names=("dp",),
            spec=data_pipeline_spec(),
            status=status_schema({"lastRunTime": string("When the last run started.", format="date-time")}),
            columns=(
                _PHASE,
                _column("Source", ".spec.source.type"),
                _column("Output", ".spec.output.type"),
                _column("Schedule", ".spec.schedule.cron"),
                _AGE,
            ),
        ),
    }


def crd_manifest(kind: str, group: str) -> dict[str, Any]:
    """The complete apiextensions.k8s.io/v1 CustomResourceDefinition for `kind` in `group`."""
    kinds = _kinds()
    if kind not in kinds:
        raise ValueError(f"unknown ML kind {kind!r}; expected one of {', '.join(CRD_KINDS)}")
    spec = kinds[kind]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{spec.plural}.{group}", "labels": labels.k8s_labels("crds", name=spec.plural)},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": spec.plural,
                "singular": kind.lower(),
                "shortNames": list(spec.short_names),
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [dict(c) for c in spec.columns],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": f"{kind} ({group}/{VERSION}).",
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec.spec,
                                "status": spec.status,
                            },
                            "required": ["spec"],
                        }
                    },
                }
            ],
        },
    }


@dataclass
class MlCrdsArgs:
    group: str


class MlCrds(pulumi.ComponentResource):
    """The four ML CRDs in one API group.

    CRDs are cluster-scoped and stateful: deleting one deletes every custom
    resource of its kind in every namespace. They are therefore retained when
    removed from the program (or replaced by a group change), and their logical
    names never change; cleaning up an unused CRD is a deliberate `kubectl delete`.
    """

    group: str
    definitions: dict[str, k8s.apiextensions.v1.CustomResourceDefinition]

    def __init__(self, name: str, args: MlCrdsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:platform:MlCrds", name, None, opts)
        self.group = args.group
        self.definitions = {}
        for kind in CRD_KINDS:
            manifest = crd_manifest(kind, args.group)
            plural = manifest["spec"]["names"]["plural"]
            self.definitions[kind] = k8s.apiextensions.v1.CustomResourceDefinition(
                f"{name}-{plural}",
                metadata=manifest["metadata"],
                spec=manifest["spec"],
                # retain_on_delete: removing the CRD from the program (or replacing it)
                # must never cascade into deleting the trainings and services users created.
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
            )
        self.register_outputs({"group": self.group, "names": {k: d.metadata.name for k, d in self.definitions.items()}})
