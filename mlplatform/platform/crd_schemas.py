"""The OpenAPI schemas of the ML custom resources: building blocks and the four kinds' spec and status.

Split from `crds.py` (which assembles each CustomResourceDefinition, its printer
columns, and declares them): the schemas are most of the text and change on their
own, when a field is added. The reference design's enums and bounds live here.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

# The Kubernetes resource.Quantity syntax ("500m", "4Gi", "1e3"), as controller-gen emits it.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"


# -- schema building blocks ---------------------------------------------------
def string(description: str, **extra: Any) -> Schema:
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
            "memory": string("Memory per pod, a Kubernetes quantity such as 32Gi.", pattern=QUANTITY_PATTERN),
            "cpu": string('CPU per pod, a Kubernetes quantity such as "8" or 500m.', pattern=QUANTITY_PATTERN),
        },
    )


def _ref(description: str, required: list[str] | None = None) -> Schema:
    return _object(
        description,
        {"name": string("Registered model name.", minLength=1), "version": string('Model version, e.g. "3.2".')},
        required,
    )


def _live_version(description: str) -> Schema:
    """A version as the per-model stack last applied it: what serves, from where, at what weight."""
    return {
        "version": string(f'{description} version, e.g. "3.2".'),
        "modelUri": string(f"{description} model URI, e.g. models:/fraud_detector/3.2."),
        "weight": _integer(f"Share of traffic the {description.lower()} receives now, 0-100.", minimum=0, maximum=100),
    }


def _scaling_rules(description: str) -> Schema:
    return _object(
        description,
        {
            "stabilizationWindowSeconds": _integer(
                "Seconds of past recommendations considered.", minimum=0, maximum=3600
            ),
            "selectPolicy": string("Which policy wins.", enum=["Max", "Min", "Disabled"]),
            "policies": _array(
                "Scaling policies.",
                _object(
                    "One scaling policy.",
                    {
                        "type": string("Pods or Percent.", enum=["Pods", "Percent"]),
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
            "type": string("Condition type, e.g. Ready.", minLength=1),
            "status": string("True, False or Unknown.", enum=["True", "False", "Unknown"]),
            "reason": string("Machine-readable reason."),
            "message": string("Human-readable message."),
            "lastTransitionTime": string("When the status last changed.", format="date-time"),
            "observedGeneration": _integer("Generation the condition was computed for.", minimum=0),
        },
        required=["type", "status"],
    )
    schema = _array("Observations of the resource's state.", condition)
    schema["x-kubernetes-list-type"] = "map"
    schema["x-kubernetes-list-map-keys"] = ["type"]
    return schema


def status_schema(extra: dict[str, Schema] | None = None) -> Schema:
    # Controllers record their own details (Job names, run ids); keep what they write.
    return {
        "type": "object",
        "description": "Observed state, written by controllers through the status subresource.",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {
            "phase": string("Lifecycle phase, e.g. Pending, Running, Succeeded, Failed."),
            "conditions": _conditions(),
            "observedGeneration": _integer("Generation last acted upon.", minimum=0),
            **(extra or {}),
        },
    }


# -- the four kinds -----------------------------------------------------------
def model_training_spec() -> Schema:
    return _object(
        "One training run.",
        {
            "modelName": string("Name the model is registered under.", minLength=1),
            "framework": string("Training framework.", enum=["tensorflow", "pytorch", "sklearn"]),
            "epochs": _integer("Training epochs.", minimum=1),
            "dataSource": _object(
                "Where the training data lives.",
                {
                    "type": string("Storage kind.", enum=["s3", "gcs", "local"]),
                    "path": string("URI or path of the dataset.", minLength=1),
                },
                required=["type", "path"],
            ),
            "resources": _training_resources("Resources of a single-pod run."),
            "distributed": _object(
                "Distributed data-parallel training: one master and N workers.",
                {
                    "enabled": _boolean("Run distributed."),
                    "backend": string("torch.distributed backend.", enum=["nccl", "gloo", "mpi"], default="nccl"),
                    "workerCount": _integer("Worker pods besides the master.", minimum=1),
                    "workerResources": _training_resources("Resources of each worker."),
                    "masterResources": _training_resources("Resources of the master."),
                },
            ),
            "hyperparameters": _free_form("Free-form: learningRate, batchSize, optimizer..."),
        },
        required=["modelName"],
    )


def model_version_spec() -> Schema:
    return _object(
        "A registered model version and its approval.",
        {
            "modelName": string("Registered model name.", minLength=1),
            "version": string('Version, e.g. "2.1".', minLength=1),
            "modelUri": string("Where the version is loaded from, e.g. models:/fraud_detector/3.2."),
            "role": string("The part the version plays in its model's rollout.", enum=["stable", "canary"]),
            "source": _object(
                "What produced the version.",
                {
                    "type": string("Origin, e.g. training."),
                    "trainingRef": _object(
                        "The ModelTraining run that produced it.",
                        {"name": string("ModelTraining name."), "namespace": string("Its namespace.")},
                    ),
                },
            ),
            "artifacts": _array(
                "Stored artifacts.",
                _object(
                    "One artifact.",
                    {
                        "type": string("Artifact kind, e.g. model-weights, config, metrics."),
                        "path": string("Artifact URI.", minLength=1),
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
            "approvedBy": string("Who approved it."),
            "deployment": _object(
                "Where the version is deployed.",
                {"canary": _boolean("Serving as a canary."), "production": _boolean("Serving as stable.")},
            ),
        },
        required=["modelName", "version"],
    )


def inference_service_spec() -> Schema:
    return _object(
        "How a model is served.",
        {
            "modelRef": _ref("The model and version to serve.", required=["name"]),
            "servingRuntime": string(
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
                            {"name": string("Metric name.", minLength=1), "threshold": _number("Threshold.")},
                            required=["name", "threshold"],
                        ),
                    ),
                    "autoPromote": _boolean("Promote when every gate passes."),
                    "promotionDelay": string("Dwell before promotion, e.g. 10m.", pattern=DURATION_PATTERN),
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


def data_pipeline_spec() -> Schema:
    return _object(
        "Data ingestion and feature computation.",
        {
            "source": _object(
                "Where data comes from.",
                {
                    "type": string("Source kind, e.g. kafka, s3, database.", minLength=1),
                    "topic": string("Kafka topic."),
                    "consumerGroup": string("Kafka consumer group."),
                    "windowSize": string("Aggregation window, e.g. 5m.", pattern=DURATION_PATTERN),
                },
                required=["type"],
            ),
            "transformations": _array(
                "Ordered transformation steps.",
                _object(
                    "One step.",
                    {
                        "name": string("Step name.", minLength=1),
                        "type": string("Step language.", enum=["python", "sql"]),
                        "script": string("Python script (type python)."),
                        "query": string("SQL query (type sql)."),
                        "config": _free_form("Step-specific settings."),
                    },
                    required=["name", "type"],
                ),
            ),
            "output": _object(
                "Where results go.",
                {
                    "type": string("Sink kind, e.g. feature-store.", minLength=1),
                    "store": string("Store name, e.g. feast."),
                    "project": string("Feature-store project."),
                    "entities": _array("Entities the features are keyed by.", string("Entity name.")),
                },
                required=["type"],
            ),
            "schedule": _object(
                "When the pipeline runs.",
                {"cron": string("Cron expression."), "backfill": _boolean("Backfill missed runs.")},
            ),
        },
        required=["source", "output"],
    )


def rollout_status() -> dict[str, Schema]:
    """What `mlplatform rollout` records through the status subresource, as Flagger does in a Canary's.
    Pulumi declares `spec` only, so these writes never show as drift."""
    return {
        "canaryVersion": string("The canary version this rollout state describes."),
        "weight": _integer("The canary weight the state describes, in percent.", minimum=0, maximum=100),
        "stepStartedAt": string(
            "When the current step (this weight) started; its dwell counts from here.", format="date-time"
        ),
        "failedChecks": _integer("Consecutive failed gate checks at this step.", minimum=0),
        "lastVerdict": _free_form("The last gate verdict with its measured values, as the judge recorded it."),
        # Declared so that `kubectl explain` and the schema name every field the rollout tool writes
        # (status keeps unknown fields, so it would survive undeclared too; tested end to end).
        "judgeEvidence": _free_form(
            "The judge's sequential tests where the canary's previous step left them (versioned; the judge owns it)."
        ),
        "abort": _object(
            "Set when the canary was rolled back.",
            {
                "reason": string("Why, with the numbers."),
                "at": string("When.", format="date-time"),
                # Without it in the schema the API server prunes it, and `rollout guard` cannot name the PR.
                "pr": string("The rollback PR's branch, where the push to main was refused."),
            },
        ),
    }
