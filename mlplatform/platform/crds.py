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

VERSION = "v1"
CRD_KINDS = ("ModelTraining", "ModelVersion", "InferenceService", "DataPipeline")
CATEGORY = "ml"

# The Kubernetes resource.Quantity syntax ("500m", "4Gi", "1e3"), as controller-gen emits it.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"

Schema = dict[str, Any]


# -- schema building blocks ---------------------------------------------------
def _string(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


def _integer(description: str, **extra: Any) -> Schema:
    return {"type": "integer", "description": description, **extra}


def _number(description: str, **extra: Any) -> Schema:
    return {"type": "number", "description": description, **extra}


def _boolean(description: str, **extra: Any) -> Schema:
    return {"type": "boolean", "description": description, **extra}


def _object(description: str, properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    schema: Schema = {"type": "object", "description": description, "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _array(description: str, items: Schema) -> Schema:
    return {"type": "array", "description": description, "items": items}


def _free_form(description: str) -> Schema:
    return {"type": "object", "description": description, "x-kubernetes-preserve-unknown-fields": True}


def _quantity_map(description: str) -> Schema:
    # Integers are allowed ("nvidia.com/gpu: 1" is written unquoted in YAML), as in core/v1 pod specs.
    return {
        "type": "object",
        "description": description,
        "additionalProperties": {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        },
    }


def _training_resources(description: str) -> Schema:
    return _object(
        description,
        {
            "gpuCount": _integer("NVIDIA GPUs per pod.", minimum=0),
            "memory": _string("Memory per pod, a Kubernetes quantity such as 32Gi.", pattern=QUANTITY_PATTERN),
            "cpu": _string('CPU per pod, a Kubernetes quantity such as "8" or 500m.', pattern=QUANTITY_PATTERN),
        },
    )


def _ref(description: str, required: list[str] | None = None) -> Schema:
    return _object(
        description,
        {"name": _string("Registered model name.", minLength=1), "version": _string('Model version, e.g. "3.2".')},
        required,
    )


def _live_version(description: str) -> Schema:
    """A version as the per-model stack last applied it: what serves, from where, at what weight."""
    return {
        "version": _string(f'{description} version, e.g. "3.2".'),
        "modelUri": _string(f"{description} model URI, e.g. models:/fraud_detector/3.2."),
        "weight": _integer(f"Share of traffic the {description.lower()} receives now, 0-100.", minimum=0, maximum=100),
    }


def _scaling_rules(description: str) -> Schema:
    return _object(
        description,
        {
            "stabilizationWindowSeconds": _integer(
                "Seconds of past recommendations considered.", minimum=0, maximum=3600
            ),
            "selectPolicy": _string("Which policy wins.", enum=["Max", "Min", "Disabled"]),
            "policies": _array(
                "Scaling policies.",
                _object(
                    "One scaling policy.",
                    {
                        "type": _string("Pods or Percent.", enum=["Pods", "Percent"]),
                        "value": _integer("Amount of change allowed.", minimum=1),
                        "periodSeconds": _integer("Window the policy holds over.", minimum=1, maximum=1800),
                    },
                    required=["type", "value", "periodSeconds"],
                ),
            ),
        },
    )


def _conditions() -> Schema:
    condition = _object(
        "A metav1.Condition.",
        {
            "type": _string("Condition type, e.g. Ready.", minLength=1),
            "status": _string("True, False or Unknown.", enum=["True", "False", "Unknown"]),
            "reason": _string("Machine-readable reason."),
            "message": _string("Human-readable message."),
            "lastTransitionTime": _string("When the status last changed.", format="date-time"),
            "observedGeneration": _integer("Generation the condition was computed for.", minimum=0),
        },
        required=["type", "status"],
    )
    schema = _array("Observations of the resource's state.", condition)
    schema["x-kubernetes-list-type"] = "map"
    schema["x-kubernetes-list-map-keys"] = ["type"]
    return schema


def _status(extra: dict[str, Schema] | None = None) -> Schema:
    # Controllers record their own details (Job names, run ids); keep what they write.
    return {
        "type": "object",
        "description": "Observed state, written by controllers through the status subresource.",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {
            "phase": _string("Lifecycle phase, e.g. Pending, Running, Succeeded, Failed."),
            "conditions": _conditions(),
            "observedGeneration": _integer("Generation last acted upon.", minimum=0),
            **(extra or {}),
        },
    }


# -- the four kinds -----------------------------------------------------------
def _model_training_spec() -> Schema:
    return _object(
        "One training run.",
        {
            "modelName": _string("Name the model is registered under.", minLength=1),
            "framework": _string("Training framework.", enum=["tensorflow", "pytorch", "sklearn"]),
            "epochs": _integer("Training epochs.", minimum=1),
            "dataSource": _object(
                "Where the training data lives.",
                {
                    "type": _string("Storage kind.", enum=["s3", "gcs", "local"]),
                    "path": _string("URI or path of the dataset.", minLength=1),
                },
                required=["type", "path"],
            ),
            "resources": _training_resources("Resources of a single-pod run."),
            "distributed": _object(
                "Distributed data-parallel training: one master and N workers.",
                {
                    "enabled": _boolean("Run distributed."),
                    "backend": _string("torch.distributed backend.", enum=["nccl", "gloo", "mpi"], default="nccl"),
                    "workerCount": _integer("Worker pods besides the master.", minimum=1),
                    "workerResources": _training_resources("Resources of each worker."),
                    "masterResources": _training_resources("Resources of the master."),
                },
            ),
            "hyperparameters": _free_form("Free-form: learningRate, batchSize, optimizer..."),
        },
        required=["modelName"],
    )


def _model_version_spec() -> Schema:
    return _object(
        "A registered model version and its approval.",
        {
            "modelName": _string("Registered model name.", minLength=1),
            "version": _string('Version, e.g. "2.1".', minLength=1),
            "modelUri": _string("Where the version is loaded from, e.g. models:/fraud_detector/3.2."),
            "role": _string("The part the version plays in its model's rollout.", enum=["stable", "canary"]),
            "source": _object(
                "What produced the version.",
                {
                    "type": _string("Origin, e.g. training."),
                    "trainingRef": _object(
                        "The ModelTraining run that produced it.",
                        {"name": _string("ModelTraining name."), "namespace": _string("Its namespace.")},
                    ),
                },
            ),
            "artifacts": _array(
                "Stored artifacts.",
                _object(
                    "One artifact.",
                    {
                        "type": _string("Artifact kind, e.g. model-weights, config, metrics."),
                        "path": _string("Artifact URI.", minLength=1),
                    },
                    required=["path"],
                ),
            ),
            "evaluation": _object(
                "Offline evaluation results.",
                {
                    "accuracy": _number("Accuracy, 0-1.", minimum=0, maximum=1),
                    "latency": _number("Latency in milliseconds.", minimum=0),
                },
            ),
            "approved": _boolean("Whether the version may be deployed."),
            "approvedBy": _string("Who approved it."),
            "deployment": _object(
                "Where the version is deployed.",
                {"canary": _boolean("Serving as a canary."), "production": _boolean("Serving as stable.")},
            ),
        },
        required=["modelName", "version"],
    )


def _inference_service_spec() -> Schema:
    return _object(
        "How a model is served.",
        {
            "modelRef": _ref("The model and version to serve.", required=["name"]),
            "servingRuntime": _string(
                "Model server.", enum=["triton", "torchserve", "tf-serving", "mlserver", "mlflow", "custom"]
            ),
            "replicas": _object(
                "Horizontal scaling bounds.",
                {
                    "min": _integer("Minimum replicas.", minimum=1),
                    "max": _integer("Maximum replicas.", minimum=1),
                    "targetCPUUtilization": _integer("HPA CPU target, percent.", minimum=1, maximum=100),
                },
            ),
            "stable": _object("The stable version as last rolled out.", _live_version("Stable")),
            "canary": _object(
                "Canary rollout settings and the canary as last rolled out.",
                {
                    "enabled": _boolean("Run a canary."),
                    # Kept in the schema so records written before it was dropped stay valid.
                    "trafficWeight": _integer(
                        "Deprecated: no longer written; the canary's share of traffic is `weight`. 0-100.",
                        minimum=0,
                        maximum=100,
                    ),
                    "canaryModelRef": _ref("The canary's model and version."),
                    "metrics": _array(
                        "Metrics the canary must satisfy.",
                        _object(
                            "One metric gate.",
                            {"name": _string("Metric name.", minLength=1), "threshold": _number("Threshold.")},
                            required=["name", "threshold"],
                        ),
                    ),
                    "autoPromote": _boolean("Promote when every gate passes."),
                    "promotionDelay": _string("Dwell before promotion, e.g. 10m.", pattern=DURATION_PATTERN),
                    **_live_version("Canary"),
                },
            ),
            "resources": _object(
                "Model server resources.",
                {"requests": _quantity_map("Resource requests."), "limits": _quantity_map("Resource limits.")},
            ),
            "autoscaling": _object(
                "HPA settings.",
                {
                    "behavior": _object(
                        "autoscaling/v2 HorizontalPodAutoscalerBehavior.",
                        {
                            "scaleUp": _scaling_rules("Scale-up rules."),
                            "scaleDown": _scaling_rules("Scale-down rules."),
                        },
                    )
                },
            ),
        },
        required=["modelRef"],
    )


def _data_pipeline_spec() -> Schema:
    return _object(
        "Data ingestion and feature computation.",
        {
            "source": _object(
                "Where data comes from.",
                {
                    "type": _string("Source kind, e.g. kafka, s3, database.", minLength=1),
                    "topic": _string("Kafka topic."),
                    "consumerGroup": _string("Kafka consumer group."),
                    "windowSize": _string("Aggregation window, e.g. 5m.", pattern=DURATION_PATTERN),
                },
                required=["type"],
            ),
            "transformations": _array(
                "Ordered transformation steps.",
                _object(
                    "One step.",
                    {
                        "name": _string("Step name.", minLength=1),
                        "type": _string("Step language.", enum=["python", "sql"]),
                        "script": _string("Python script (type python)."),
                        "query": _string("SQL query (type sql)."),
                        "config": _free_form("Step-specific settings."),
                    },
                    required=["name", "type"],
                ),
            ),
            "output": _object(
                "Where results go.",
                {
                    "type": _string("Sink kind, e.g. feature-store.", minLength=1),
                    "store": _string("Store name, e.g. feast."),
                    "project": _string("Feature-store project."),
                    "entities": _array("Entities the features are keyed by.", _string("Entity name.")),
                },
                required=["type"],
            ),
            "schedule": _object(
                "When the pipeline runs.",
                {"cron": _string("Cron expression."), "backfill": _boolean("Backfill missed runs.")},
            ),
        },
        required=["source", "output"],
    )


def _rollout_status() -> dict[str, Schema]:
    """What `mlplatform rollout` records through the status subresource, as Flagger does in a Canary's.
    Pulumi declares `spec` only, so these writes never show as drift."""
    return {
        "canaryVersion": _string("The canary version this rollout state describes."),
        "weight": _integer("The canary weight the state describes, in percent.", minimum=0, maximum=100),
        "stepStartedAt": _string(
            "When the current step (this weight) started; its dwell counts from here.", format="date-time"
        ),
        "failedChecks": _integer("Consecutive failed gate checks at this step.", minimum=0),
        "lastVerdict": _free_form("The last gate verdict with its measured values, as the judge recorded it."),
        "abort": _object(
            "Set when the canary was rolled back.",
            {
                "reason": _string("Why, with the numbers."),
                "at": _string("When.", format="date-time"),
                # Without it in the schema the API server prunes it, and `rollout guard` cannot name the PR.
                "pr": _string("The rollback PR's branch, where the push to main was refused."),
            },
        ),
    }


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
            spec=_model_training_spec(),
            status=_status(
                {
                    "jobName": _string("The training Job's name."),
                    "modelVersion": _string("Registry version the run produced."),
                    "startTime": _string("When training started.", format="date-time"),
                    "completionTime": _string("When training finished.", format="date-time"),
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
            spec=_model_version_spec(),
            status=_status(),
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
            spec=_inference_service_spec(),
            status=_status({"url": _string("In-cluster URL of the apex Service."), **_rollout_status()}),
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
            spec=_data_pipeline_spec(),
            status=_status({"lastRunTime": _string("When the last run started.", format="date-time")}),
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
