"""The training run: GPU placement, run identity, distributed rendezvous, the record."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pulumi
import pytest

from mlplatform import labels
from mlplatform.model.training import (
    COMPLETION_INDEX_ANNOTATION,
    MAX_JOB_NAME,
    TrainingRun,
    TrainingRunArgs,
    model_training_spec,
    training_job_name,
)
from mlplatform.model.training_config import TrainingConfig, hyperparameter_env_name
from mlplatform.platform.crds import crd_manifest
from mlplatform.tools.offline.engine import RecordedResource, Recording, run_program
from tests.support.helpers import build
from tests.support.types import K8S_JOB, K8S_PERSISTENT_VOLUME_CLAIM, K8S_SERVICE, MODEL_TRAINING_RUN, custom_resource

JOB = K8S_JOB
SERVICE = K8S_SERVICE
PVC = K8S_PERSISTENT_VOLUME_CLAIM
GROUP = "ml.example.com"
RECORD = custom_resource(f"{GROUP}/v1", "ModelTraining")
MODEL = "fraud-detector"
PLATFORM = "acme/mlplatform/dev"
# Deliberately not the values in mlplatform.labels: the run must take the platform's outputs.
SELECTOR = {"mlplatform.io/node-pool": "gpu-a100"}
TAINT = {"key": "dedicated", "value": "training", "effect": "NoSchedule"}
TRACKING_URI = "http://mlflow.mlflow.svc.cluster.local:5000"
PLATFORM_OUTPUTS = {
    "gpuNodeSelector": SELECTOR,
    "gpuTaint": TAINT,
    "mlflowTrackingUri": TRACKING_URI,
    "namespaces": {"training": "ml-training"},
}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _config(**overrides: Any) -> TrainingConfig:
    base: dict[str, Any] = {
        "run_id": "r42",
        "image": "registry.example.com/fraud/train:1.4.0",
        "gpus": 2,
        "epochs": 20,
        "data_source": {"type": "s3", "path": "s3://fraud-data/2024-06"},
        "hyperparameters": {"learningRate": 0.001, "batch_size": 64, "optimizer": "adam", "amp": True},
    }
    return TrainingConfig(**{**base, **overrides})


def _run(config: TrainingConfig) -> Recording:
    def program() -> None:
        # The platform's values arrive as Outputs of a StackReference, as in the model stack.
        ref = pulumi.StackReference(PLATFORM)
        TrainingRun(
            MODEL,
            TrainingRunArgs(
                model_name=MODEL,
                namespace=ref.get_output("namespaces").apply(lambda ns: ns["training"]),
                config=config,
                gpu_node_selector=ref.get_output("gpuNodeSelector"),
                gpu_taint=ref.get_output("gpuTaint"),
                tracking_uri=ref.get_output("mlflowTrackingUri"),
                crd_api_version=f"{GROUP}/v1",
            ),
        )

    return run_program(
        program, project="mlmodel", stack="fraud-detector-dev", stack_references={PLATFORM: PLATFORM_OUTPUTS}
    )


def _pod(job: RecordedResource) -> dict[str, Any]:
    return job.inputs["spec"]["template"]["spec"]


def _container(job: RecordedResource) -> dict[str, Any]:
    (container,) = _pod(job)["containers"]
    return container


def _env(job: RecordedResource) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in _container(job)["env"]}


@pytest.fixture(scope="module")
def single() -> Recording:
    return _run(_config())


@pytest.fixture(scope="module")
def distributed() -> Recording:
    return _run(_config(run_id="ddp-7", workers=4, gpus=1))


# -- GPU placement ------------------------------------------------------------
def test_training_lands_on_the_gpu_pool(single: Recording) -> None:
    """Without the pool's selector, toleration and GPU limit the pod never schedules or gets no GPU."""
    job = single.one(JOB)
    pod = _pod(job)
    assert pod["nodeSelector"] == SELECTOR, job.urn
    toleration = {"key": "dedicated", "operator": "Equal", "value": "training", "effect": "NoSchedule"}
    assert pod["tolerations"] == [toleration]
    assert _container(job)["resources"]["limits"][labels.GPU_RESOURCE] == "2"


def test_cpu_only_run_stays_off_the_gpu_pool() -> None:
    """A gloo run without GPUs must not hold a GPU node."""
    job = _run(_config(gpus=0, workers=2, backend="gloo")).one(JOB)
    pod = _pod(job)
    assert "nodeSelector" not in pod and "tolerations" not in pod
    assert labels.GPU_RESOURCE not in _container(job)["resources"]["limits"]


def test_job_does_not_block_pulumi_up(single: Recording) -> None:
    """Training takes hours; the provider would otherwise wait for the Job to complete,
    and for its checkpoint volume to bind, which may happen only once the Job's pod is scheduled."""
    assert single.one(JOB).metadata["annotations"]["pulumi.com/skipAwait"] == "true"
    assert single.one(PVC).metadata["annotations"]["pulumi.com/skipAwait"] == "true"


def test_job_limits_come_from_config(single: Recording) -> None:
    """A runaway or crash-looping run must stop, and finished Jobs must be cleaned up."""
    spec = single.one(JOB).inputs["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]) == (2, 86400, 604800)
    assert _pod(single.one(JOB))["restartPolicy"] == "Never"


# -- run identity -------------------------------------------------------------
def test_same_run_id_keeps_the_job(single: Recording) -> None:
    """Editing a run's settings must never recreate (and so re-run) a finished Job."""
    again = _run(_config(epochs=50, image="registry.example.com/fraud/train:1.5.0")).one(JOB)
    before = single.one(JOB)
    assert again.urn == before.urn
    assert again.metadata["name"] == before.metadata["name"]
    assert "spec" in before.ignore_changes


def test_new_run_id_is_a_new_job_and_keeps_the_checkpoints(single: Recording) -> None:
    """A new run id starts a new run, which resumes from the same checkpoint volume."""
    other = _run(_config(run_id="r43"))
    assert other.one(JOB).urn != single.one(JOB).urn
    assert other.one(JOB).metadata["name"] != single.one(JOB).metadata["name"]
    assert other.one(PVC).urn == single.one(PVC).urn
    assert other.one(PVC).inputs == single.one(PVC).inputs


def test_plain_run_id_gives_a_readable_name() -> None:
    """Operators find a run's Job by its id."""
    assert training_job_name(MODEL, "r42") == "fraud-detector-train-r42"


LONG = "experiment-" + "x" * 110
ODD_RUN_IDS = [
    "Run_1",
    "run-1",
    "run.1",
    "RUN.1",
    "2024.06.01_lr-1e-3",
    LONG + "a",
    LONG + "b",
    "A" * 128,
    "a" * 128,
]


@pytest.mark.parametrize("model", [MODEL, "m" * 63])
def test_odd_and_long_run_ids_give_valid_distinct_names(model: str) -> None:
    """Kubernetes rejects invalid names, and two runs sharing a name would collide."""
    names = [training_job_name(model, run_id) for run_id in ODD_RUN_IDS]
    for run_id, name in zip(ODD_RUN_IDS, names, strict=True):
        assert DNS_LABEL.match(name) and len(name) <= 63, (run_id, name)
        # An Indexed Job's last pod is `<job>-<index>`; with 64 workers that is `-63`.
        assert len(f"{name}-63") <= 63, name
    assert len(set(names)) == len(names), names
    assert max(len(n) for n in names) <= MAX_JOB_NAME


# -- distributed --------------------------------------------------------------
def test_distributed_run_is_an_indexed_job(distributed: Recording) -> None:
    """Each worker needs a stable rank; all of them must run at once."""
    spec = distributed.one(JOB).inputs["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 4
    # One crash fails the whole gang: the retry budget is per rank, and a rank that runs out fails the run.
    assert (spec["backoffLimitPerIndex"], spec["maxFailedIndexes"]) == (2, 0)


def test_rendezvous_service_is_the_pods_subdomain(distributed: Recording) -> None:
    """Pod DNS names `<job>-<i>.<service>` exist only when the pod subdomain names a headless Service."""
    job, service = distributed.one(JOB), distributed.one(SERVICE)
    pod_template = job.inputs["spec"]["template"]
    assert service.metadata["name"] == pod_template["spec"]["subdomain"]
    assert service.metadata["namespace"] == job.metadata["namespace"] == "ml-training"
    assert service.inputs["spec"]["clusterIP"] == "None"
    assert service.inputs["spec"]["publishNotReadyAddresses"] is True
    selector = service.inputs["spec"]["selector"]
    assert selector.items() <= pod_template["metadata"]["labels"].items()


def test_workers_find_rank_zero(distributed: Recording) -> None:
    """torchrun's static rendezvous connects every worker to pod index 0."""
    job, service = distributed.one(JOB), distributed.one(SERVICE)
    master = f"{job.metadata['name']}-0.{service.metadata['name']}"
    env = _env(job)
    assert env["MASTER_ADDR"] == master
    assert env["MASTER_PORT"] == "29500"
    assert env["DIST_BACKEND"] == "nccl"
    assert env["NODE_RANK"] == {"fieldRef": {"fieldPath": f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"}}
    command = _container(job)["command"]
    assert command[0] == "torchrun" and command[-1] == "train.py"
    assert {"--nnodes=4", "--nproc-per-node=1", f"--master-addr={master}", "--master-port=29500"} <= set(command)
    assert "--node-rank=$(JOB_COMPLETION_INDEX)" in command


def test_custom_command_still_gets_rendezvous_env() -> None:
    """A user's own launcher needs the same coordinates torchrun would have had."""
    job = _run(_config(workers=2, command=["python", "-m", "fraud.train"])).one(JOB)
    assert _container(job)["command"] == ["python", "-m", "fraud.train"]
    env = _env(job)
    assert {"MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "NODE_RANK"} <= env.keys()
    assert env["WORLD_SIZE"] == "4"  # two pods, two GPUs (processes) each


def test_single_worker_run_has_no_rendezvous(single: Recording) -> None:
    """A one-pod run needs no Service, no index and no rendezvous env."""
    assert single.of_type(SERVICE) == []
    job = single.one(JOB)
    assert "completionMode" not in job.inputs["spec"]
    assert "subdomain" not in _pod(job)
    assert "MASTER_ADDR" not in _env(job)
    assert _container(job)["command"] == ["python", "train.py"]


# -- pod contents -------------------------------------------------------------
def test_env_carries_the_platform_and_run(single: Recording) -> None:
    """The script logs to the platform's MLflow and reads its run from the environment."""
    env = _env(single.one(JOB))
    assert env["MLFLOW_TRACKING_URI"] == TRACKING_URI
    assert env["MLFLOW_EXPERIMENT_NAME"] == MODEL
    assert env["TRAINING_RUN_ID"] == "r42"
    assert env["EPOCHS"] == "20"
    assert (env["DATA_SOURCE_TYPE"], env["DATA_PATH"]) == ("s3", "s3://fraud-data/2024-06")
    assert env["CHECKPOINT_DIR"] == "/checkpoints"
    hp = {k: v for k, v in env.items() if k.startswith("HP_")}
    assert hp == {"HP_LEARNING_RATE": "0.001", "HP_BATCH_SIZE": "64", "HP_OPTIMIZER": "adam", "HP_AMP": "true"}


@pytest.mark.parametrize(
    ("key", "env_name"),
    [("learningRate", "HP_LEARNING_RATE"), ("learning-rate", "HP_LEARNING_RATE"), ("HTTPTimeout", "HP_HTTP_TIMEOUT")],
)
def test_hyperparameter_names_become_upper_snake(key: str, env_name: str) -> None:
    """Scripts read a predictable variable whatever spelling the config used."""
    assert hyperparameter_env_name(key) == env_name


def test_hyperparameters_that_collide_are_refused() -> None:
    """Two keys feeding one variable would silently drop one of them; the config model refuses them."""
    with pytest.raises(ValueError, match="'learningRate' and 'learning_rate' both become HP_LEARNING_RATE"):
        _config(hyperparameters={"learningRate": 0.1, "learning_rate": 0.2})


def test_pod_is_locked_down(single: Recording) -> None:
    """Training images run third-party code; the pod gets no root, no writes to its image, no capabilities."""
    job = single.one(JOB)
    pod, container = _pod(job), _container(job)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]


def test_pod_has_writable_scratch_shared_memory_and_checkpoints(single: Recording) -> None:
    """A read-only root needs /tmp; DataLoader workers need a large /dev/shm; runs resume from /checkpoints."""
    job, pvc = single.one(JOB), single.one(PVC)
    volumes = {v["name"]: v for v in _pod(job)["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in _container(job)["volumeMounts"]}
    assert volumes[mounts["/tmp"]]["emptyDir"] == {"sizeLimit": "16Gi"}
    assert volumes[mounts["/dev/shm"]]["emptyDir"] == {"medium": "Memory"}
    claim = volumes[mounts["/checkpoints"]]["persistentVolumeClaim"]["claimName"]
    assert claim == pvc.metadata["name"] == f"{MODEL}-checkpoints"
    assert pvc.inputs["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc.inputs["spec"]["resources"]["requests"]["storage"] == "100Gi"


def test_pod_opts_out_of_the_mesh(single: Recording) -> None:
    """A mesh proxy sidecar would keep the pod running after training ends, so the Job never completes."""
    annotations = single.one(JOB).inputs["spec"]["template"]["metadata"]["annotations"]
    assert annotations["linkerd.io/inject"] == "disabled"


def test_objects_carry_the_shared_labels(single: Recording) -> None:
    """Dashboards and `kubectl -l` select training by these labels."""
    job = single.one(JOB)
    expected = {**labels.k8s_labels("training", name=MODEL, instance=job.metadata["name"]), "app": MODEL}
    assert job.metadata["labels"] == expected
    assert job.inputs["spec"]["template"]["metadata"]["labels"] == expected


def test_children_belong_to_the_component(distributed: Recording) -> None:
    """Children parented to the component show up, and are deleted, with it."""
    (component,) = distributed.of_type(MODEL_TRAINING_RUN)
    children = {r.type for r in distributed.children_of(component)}
    assert children == {JOB, SERVICE, PVC, RECORD}


# -- the ModelTraining record -------------------------------------------------
def _validate_against_crd(record: RecordedResource) -> None:
    schema = crd_manifest("ModelTraining", GROUP)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    jsonschema.validate(record.inputs, schema)


@pytest.mark.parametrize("fixture", ["single", "distributed"])
def test_record_validates_against_the_crd(fixture: str, request: pytest.FixtureRequest) -> None:
    """The API server rejects a ModelTraining that its CRD's schema does not accept."""
    record = request.getfixturevalue(fixture).one(RECORD)
    _validate_against_crd(record)


@pytest.mark.parametrize("overrides", [{}, {"workers": 4, "gpus": 1}, {"workers": 2, "gpus": 0, "backend": "gloo"}])
def test_record_spec_validates_with_exact_types(overrides: dict[str, Any]) -> None:
    """The mocks turn integers into floats; the spec as sent must be valid with its real types."""
    schema = crd_manifest("ModelTraining", GROUP)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = model_training_spec(MODEL, _config(**overrides))
    jsonschema.validate({"apiVersion": f"{GROUP}/v1", "kind": "ModelTraining", "metadata": {}, "spec": spec}, schema)
    assert isinstance(spec["epochs"], int) and isinstance(spec["resources"]["gpuCount"], int)


def test_record_describes_the_run(distributed: Recording) -> None:
    """`kubectl get modeltrainings` shows what ran and which Job ran it."""
    record, job = distributed.one(RECORD), distributed.one(JOB)
    assert record.inputs["apiVersion"] == f"{GROUP}/v1" and record.inputs["kind"] == "ModelTraining"
    assert record.metadata["annotations"]["mlplatform.io/training-job"] == job.metadata["name"]
    spec = record.inputs["spec"]
    assert spec["modelName"] == MODEL and spec["framework"] == "pytorch" and spec["epochs"] == 20
    assert spec["dataSource"] == {"type": "s3", "path": "s3://fraud-data/2024-06"}
    assert spec["resources"] == {"gpuCount": 1, "memory": "16Gi", "cpu": "4"}
    # The reference design counts one master plus N workers: four pods are master + 3.
    assert spec["distributed"]["enabled"] is True and spec["distributed"]["workerCount"] == 3
    assert spec["hyperparameters"]["learningRate"] == 0.001
    assert "spec" in record.ignore_changes


def test_invalid_record_is_caught_by_the_schema_check(single: Recording) -> None:
    """The schema check must be able to fail, or it proves nothing."""
    record = single.one(RECORD)
    broken = RecordedResource(
        urn=record.urn,
        type=record.type,
        name=record.name,
        custom=True,
        raw_inputs={**record.inputs, "spec": {**record.inputs["spec"], "framework": "jax"}},
    )
    with pytest.raises(jsonschema.ValidationError, match="jax"):
        _validate_against_crd(broken)


def test_crd_api_version_must_be_plain() -> None:
    """The record's type token is built from its apiVersion before any Output resolves."""

    def program() -> None:
        TrainingRun(
            MODEL,
            TrainingRunArgs(
                model_name=MODEL,
                namespace="ml-training",
                config=_config(),
                gpu_node_selector=SELECTOR,
                gpu_taint=TAINT,
                tracking_uri=TRACKING_URI,
                crd_api_version=pulumi.Output.from_input("x/v1"),  # type: ignore[arg-type]
            ),
        )

    with pytest.raises(TypeError, match="crd_api_version must be a plain string"):
        run_program(program, project="mlmodel", stack="dev")


def test_training_scratch_is_bounded(single: Recording) -> None:
    """A run that fills /tmp is the one evicted, not its neighbours on the node; the scheduler counts its disk."""
    pod = single.one(K8S_JOB).inputs["spec"]["template"]["spec"]
    resources = pod["containers"][0]["resources"]
    assert resources["requests"]["ephemeral-storage"] == "4Gi"
    assert resources["limits"]["ephemeral-storage"] == "20Gi"
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
    assert tmp["emptyDir"]["sizeLimit"] == "16Gi"


def test_scratch_request_above_limit_is_refused() -> None:
    from pydantic import ValidationError

    from mlplatform.config_types import ScratchConfig

    with pytest.raises(ValidationError, match="ephemeralStorageRequest 8Gi is above ephemeralStorageLimit 4Gi"):
        build(ScratchConfig, ephemeral_storage_request="8Gi", ephemeral_storage_limit="4Gi")
    with pytest.raises(ValidationError, match="emptyDirSizeLimit 5Gi is above ephemeralStorageLimit 4Gi"):
        build(ScratchConfig, empty_dir_size_limit="5Gi")
