"""A model's training run: a GPU Job, its checkpoint volume and a ModelTraining record.

One run is one Job, named after the run id. The run id is the run's identity:
an unchanged id never recreates the Job (its pod template is immutable and a
finished run must not start again), a new id is a new Job. To re-run, change
the run id.

Distributed runs (`workers > 1`) are an Indexed Job plus a headless Service,
with torchrun on every pod. The Job controller gives each pod a completion
index (its node rank) and, with the Service as the pods' subdomain, a stable
DNS name `<job>-<index>.<service>`, so pod 0 is the rendezvous master. This
is built into Kubernetes (Indexed Jobs are GA since 1.24), so the platform
needs no training operator such as Kubeflow's PyTorchJob. The trade-off: no
gang scheduling and no elastic scaling. Pods may start minutes apart (the
cluster autoscaler adds GPU nodes one by one) and the others wait in torchrun's
rendezvous meanwhile; a run wants all its GPUs free at once, and a quota too
small for the whole gang leaves the scheduled part idling until its deadline.

Failures: pods are never restarted in place (`restartPolicy: Never`), so a
failed pod and its logs stay for inspection and every failure counts against
the Job's limit. Pods disrupted by the cluster (preemption, node drain, spot
reclaim: the `DisruptionTarget` condition) are retried without counting. A
distributed run retries per index (`backoffLimitPerIndex`), because one crash
usually takes every worker of the gang down with it and a global
`backoffLimit` would be spent by a single incident; any index that exhausts
its retries fails the run (`maxFailedIndexes: 0`), since a gang missing a rank
can never finish.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlplatform import labels
from mlplatform.model.training_config import TrainingConfig, hyperparameter_env_names
from mlplatform.security import restricted_container_security_context, restricted_pod_security_context, scratch_dir

# An Indexed Job's pods are named `<job>-<index>`, which must stay a DNS label
# (the API server rejects the Job otherwise). With at most 64 workers the
# highest index is 63, so three characters are kept free. The same cap applies
# to every run, so a name depends on the model and the run id only.
MAX_JOB_NAME = 60
HASH_LENGTH = 8
RUN_ID_ANNOTATION = "mlplatform.io/run-id"
JOB_ANNOTATION = "mlplatform.io/training-job"
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
RENDEZVOUS_PORT = 29500
CHECKPOINT_DIR = "/checkpoints"
CONTAINER = "trainer"
# Our own label on the pod template; the rendezvous Service selects on it.
INSTANCE_LABEL = "app.kubernetes.io/instance"
RUN_AS = 1000


def _sanitise(value: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", value.lower())).strip("-")


def training_job_name(model_name: str, run_id: str) -> str:
    """`<model>-train-<run id>`, DNS-1123 safe and at most `MAX_JOB_NAME` long.

    A run id that had to be altered (case, `.` or `_`) or cut short gets a hash
    of the original as suffix, so two run ids never share a Job name.
    """
    slug = _sanitise(run_id)
    candidate = f"{model_name}-train-{slug}"
    if slug == run_id and len(candidate) <= MAX_JOB_NAME:
        return candidate
    digest = hashlib.sha256(f"{model_name}/{run_id}".encode()).hexdigest()[:HASH_LENGTH]
    stem = candidate[: MAX_JOB_NAME - HASH_LENGTH - 1].rstrip("-")
    return f"{stem}-{digest}"


def _env_value(value: str | int | float | bool) -> str:
    # JSON spelling for booleans (`true`), which most argument parsers accept.
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _hyperparameter_env(hyperparameters: Mapping[str, Any]) -> list[k8s.core.v1.EnvVarArgs]:
    by_name = hyperparameter_env_names(hyperparameters)
    return [
        k8s.core.v1.EnvVarArgs(name=env_name, value=_env_value(hyperparameters[key]))
        for env_name, key in sorted(by_name.items())
    ]


@dataclass
class TrainingRunArgs:
    model_name: str
    namespace: pulumi.Input[str]
    config: TrainingConfig
    gpu_node_selector: pulumi.Input[Mapping[str, str]]
    """The GPU pool's nodeSelector, from the platform's outputs."""
    gpu_taint: pulumi.Input[Mapping[str, str]]
    """The GPU pool's taint ({key, value, effect}), from the platform's outputs."""
    tracking_uri: pulumi.Input[str]
    """The platform's MLflow tracking URI."""
    crd_api_version: str
    """`<group>/v1` of the platform's ML CRDs, for the ModelTraining record. A plain
    string, not an Output: it is part of the record's type token and URN, which
    exist before any Output resolves (see `PlatformOutputs.crd_api_version`)."""
    service_account_name: pulumi.Input[str] | None = None
    """The run's own ServiceAccount (`TrainingIdentity`); None: the namespace's default."""
    checkpoint_storage_class: pulumi.Input[str] | None = None
    """The platform's class for `config.checkpoint_access_mode`, from its outputs; None:
    the cluster's default class (a platform on an existing cluster that names none)."""


class TrainingRun(pulumi.ComponentResource):
    """One training run: Job (Indexed plus a rendezvous Service when distributed),
    the model's checkpoint PVC and a ModelTraining record.

    The checkpoint PVC is per model, not per run, so a new run can resume from
    the last one's checkpoints. Changing the run id deletes the previous run's
    Job, Service and record: the stack declares the current run; the history
    of runs lives in MLflow.

    A known gap: `ttlSecondsAfterFinished` lets Kubernetes delete a finished
    Job. Pulumi does not notice until a `pulumi refresh`, which drops the Job
    from the state; the next `pulumi up` would then create it again and repeat
    the run. After a run has finished, change the run id or remove the
    `training` section rather than refreshing with the old id in place.
    """

    job: k8s.batch.v1.Job
    job_name: str
    service: k8s.core.v1.Service | None
    checkpoints: k8s.core.v1.PersistentVolumeClaim
    record: k8s.apiextensions.CustomResource

    def __init__(self, name: str, args: TrainingRunArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:model:TrainingRun", name, None, opts)
        config = args.config
        model = args.model_name
        if not isinstance(args.crd_api_version, str):
            raise TypeError("TrainingRunArgs.crd_api_version must be a plain string such as 'ml.example.com/v1'")
        distributed = config.workers > 1
        self.job_name = job_name = training_job_name(model, config.run_id)
        self.service = None

        model_labels = {**labels.k8s_labels("training", name=model), "app": model}
        run_labels = {**labels.k8s_labels("training", name=model, instance=job_name), "app": model}

        # Not named after the run: it outlives runs so a new one can resume.
        self.checkpoints = k8s.core.v1.PersistentVolumeClaim(
            f"{name}-checkpoints",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=f"{model}-checkpoints",
                namespace=args.namespace,
                labels=model_labels,
                # Like the Job, the volume is the run's business, not `up`'s: a
                # WaitForFirstConsumer class binds it only once the Job's pod is
                # scheduled, and without a default class it never binds, so the
                # provider's wait for Bound would fail `up` after its timeout.
                annotations=dict(labels.SKIP_AWAIT_ANNOTATION),
            ),
            spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                # ReadWriteMany by default: every worker of a distributed run writes
                # to it, from different nodes, and the next run may land anywhere.
                access_modes=[config.checkpoint_access_mode],
                storage_class_name=args.checkpoint_storage_class,
                resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                    requests={"storage": f"{config.checkpoint_storage_gib}Gi"}
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

        env = [
            k8s.core.v1.EnvVarArgs(name="MLFLOW_TRACKING_URI", value=args.tracking_uri),
            k8s.core.v1.EnvVarArgs(name="MLFLOW_EXPERIMENT_NAME", value=model),
            # MLflow assigns its own run ids; this one ties the MLflow run to the Job.
            k8s.core.v1.EnvVarArgs(name="TRAINING_RUN_ID", value=config.run_id),
            k8s.core.v1.EnvVarArgs(name="EPOCHS", value=str(config.epochs)),
            k8s.core.v1.EnvVarArgs(name="DATA_SOURCE_TYPE", value=config.data_source.type),
            k8s.core.v1.EnvVarArgs(name="DATA_PATH", value=config.data_source.path),
            k8s.core.v1.EnvVarArgs(name="CHECKPOINT_DIR", value=CHECKPOINT_DIR),
            # The root filesystem is read-only; libraries cache under $HOME.
            k8s.core.v1.EnvVarArgs(name="HOME", value="/tmp"),
            *_hyperparameter_env(config.hyperparameters),
        ]
        command = list(config.command) if config.command else ["python", "train.py"]
        ports = None
        if distributed:
            # The Service doubles as the pods' subdomain: pod i resolves as `<job>-i.<service>`.
            service_name = job_name
            master_addr = f"{job_name}-0.{service_name}"
            nproc = max(config.gpus, 1)
            env += [
                k8s.core.v1.EnvVarArgs(name="MASTER_ADDR", value=master_addr),
                k8s.core.v1.EnvVarArgs(name="MASTER_PORT", value=str(RENDEZVOUS_PORT)),
                k8s.core.v1.EnvVarArgs(name="WORLD_SIZE", value=str(config.workers * nproc)),
                k8s.core.v1.EnvVarArgs(name="NNODES", value=str(config.workers)),
                k8s.core.v1.EnvVarArgs(name="NPROC_PER_NODE", value=str(nproc)),
                k8s.core.v1.EnvVarArgs(
                    name="NODE_RANK",
                    value_from=k8s.core.v1.EnvVarSourceArgs(
                        field_ref=k8s.core.v1.ObjectFieldSelectorArgs(
                            field_path=f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"
                        )
                    ),
                ),
                k8s.core.v1.EnvVarArgs(name="DIST_BACKEND", value=config.backend),
            ]
            if not config.command:
                # The Job controller sets JOB_COMPLETION_INDEX in every container of
                # an Indexed Job, so the kubelet expands it in the command.
                command = [
                    "torchrun",
                    f"--nnodes={config.workers}",
                    f"--nproc-per-node={nproc}",
                    "--node-rank=$(JOB_COMPLETION_INDEX)",
                    f"--master-addr={master_addr}",
                    f"--master-port={RENDEZVOUS_PORT}",
                    "train.py",
                ]
            ports = [k8s.core.v1.ContainerPortArgs(name="rendezvous", container_port=RENDEZVOUS_PORT)]
            self.service = k8s.core.v1.Service(
                f"{name}-rendezvous-{config.run_id}",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=service_name, namespace=args.namespace, labels=run_labels),
                spec=k8s.core.v1.ServiceSpecArgs(
                    cluster_ip="None",
                    # Workers look the master up while it is still starting, before
                    # any readiness; without this its DNS record would not exist yet.
                    publish_not_ready_addresses=True,
                    selector={INSTANCE_LABEL: job_name},
                    ports=[k8s.core.v1.ServicePortArgs(name="rendezvous", port=RENDEZVOUS_PORT)],
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )

        requests: dict[str, str] = {"cpu": config.resources.requests.cpu, "memory": config.resources.requests.memory}
        limits: dict[str, str] = {"cpu": config.resources.limits.cpu, "memory": config.resources.limits.memory}
        node_selector: pulumi.Input[Mapping[str, str]] | None = None
        tolerations: pulumi.Input[list[dict[str, str]]] | None = None
        if config.gpus > 0:
            # Requested as well as limited, explicitly: the team namespace's quota
            # caps `requests.nvidia.com/gpu`, and it should not rest on the API
            # server copying the limit into the request.
            requests[labels.GPU_RESOURCE] = limits[labels.GPU_RESOURCE] = str(config.gpus)
            node_selector = args.gpu_node_selector
            tolerations = pulumi.Output.from_input(args.gpu_taint).apply(lambda t: [labels.toleration_for(t)])
        # A CPU-only run (gloo) stays off the GPU pool: it would hold a GPU node idle.

        container = k8s.core.v1.ContainerArgs(
            name=CONTAINER,
            image=config.image,
            command=command,
            env=env,
            ports=ports,
            resources=k8s.core.v1.ResourceRequirementsArgs(
                requests={**requests, **config.scratch.requests()},
                limits={**limits, **config.scratch.limits()},
            ),
            security_context=restricted_container_security_context(),
            volume_mounts=[
                k8s.core.v1.VolumeMountArgs(name="checkpoints", mount_path=CHECKPOINT_DIR),
                k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
                k8s.core.v1.VolumeMountArgs(name="dshm", mount_path="/dev/shm"),
            ],
        )
        pod_spec = k8s.core.v1.PodSpecArgs(
            restart_policy="Never",
            subdomain=job_name if distributed else None,
            node_selector=node_selector,
            # A plain dict where PodSpecArgs types TolerationArgs: see mlplatform/model/serving.py.
            tolerations=tolerations,  # pyright: ignore[reportArgumentType]
            service_account_name=args.service_account_name,
            # Training reads data and writes to MLflow, never the Kubernetes API.
            automount_service_account_token=False,
            security_context=restricted_pod_security_context(RUN_AS),
            containers=[container],
            volumes=[
                k8s.core.v1.VolumeArgs(
                    name="checkpoints",
                    persistent_volume_claim=k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(
                        claim_name=self.checkpoints.metadata.name
                    ),
                ),
                k8s.core.v1.VolumeArgs(name="tmp", empty_dir=scratch_dir(config.scratch)),
                # The container runtime's 64Mi /dev/shm is too small for PyTorch
                # DataLoader workers; a memory-backed volume counts against the
                # pod's memory limit instead.
                k8s.core.v1.VolumeArgs(name="dshm", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(medium="Memory")),
            ],
        )
        # Preemption, drains and spot reclaims say nothing about the code: retry them for free.
        failure_policy = k8s.batch.v1.PodFailurePolicyArgs(
            rules=[
                k8s.batch.v1.PodFailurePolicyRuleArgs(
                    action="Ignore",
                    on_pod_conditions=[
                        k8s.batch.v1.PodFailurePolicyOnPodConditionsPatternArgs(type="DisruptionTarget", status="True")
                    ],
                )
            ]
        )
        template = k8s.core.v1.PodTemplateSpecArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(
                labels=run_labels,
                # A mesh proxy would outlive the trainer and keep the Job from ever
                # completing, and NCCL's peer traffic has no use for it.
                annotations={"linkerd.io/inject": "disabled"},
            ),
            spec=pod_spec,
        )
        if distributed:
            job_spec = k8s.batch.v1.JobSpecArgs(
                completion_mode="Indexed",
                completions=config.workers,
                parallelism=config.workers,
                backoff_limit_per_index=config.backoff_limit,
                max_failed_indexes=0,
                # The same retry budget for the gang as a whole.
                backoff_limit=config.backoff_limit * config.workers,
                pod_failure_policy=failure_policy,
                active_deadline_seconds=config.active_deadline_seconds,
                ttl_seconds_after_finished=config.ttl_seconds_after_finished,
                template=template,
            )
        else:
            job_spec = k8s.batch.v1.JobSpecArgs(
                backoff_limit=config.backoff_limit,
                pod_failure_policy=failure_policy,
                active_deadline_seconds=config.active_deadline_seconds,
                ttl_seconds_after_finished=config.ttl_seconds_after_finished,
                template=template,
            )

        self.job = k8s.batch.v1.Job(
            f"{name}-job-{config.run_id}",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=job_name,
                namespace=args.namespace,
                labels=run_labels,
                # Skip the provider's await: it would otherwise block `pulumi up`
                # until the Job completes, and training runs for hours.
                annotations={**labels.SKIP_AWAIT_ANNOTATION, RUN_ID_ANNOTATION: config.run_id},
            ),
            spec=job_spec,
            # The run id is the run's identity. A Job's pod template is immutable, so
            # any spec edit (epochs, image, a new tracking URI from the platform)
            # would make Pulumi replace the Job and start a finished run over. Such
            # edits apply to the next run id instead.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["spec"]),
        )

        self.record = k8s.apiextensions.CustomResource(
            f"{name}-record-{config.run_id}",
            api_version=args.crd_api_version,
            kind="ModelTraining",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=job_name,
                namespace=args.namespace,
                labels=run_labels,
                annotations={JOB_ANNOTATION: job_name, RUN_ID_ANNOTATION: config.run_id},
            ),
            spec=model_training_spec(model, config),
            # The record describes what the Job runs, so it is frozen with it.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.job], ignore_changes=["spec"]),
        )

        self.register_outputs(
            {
                "jobName": job_name,
                "job": self.job,
                "service": self.service,
                "checkpoints": self.checkpoints,
                "record": self.record,
            }
        )


def model_training_spec(model_name: str, config: TrainingConfig) -> dict[str, Any]:
    """The ModelTraining spec of the reference design for one run.

    The design counts "one master and N workers": rank 0 is the master, so
    `workerCount` is the pods besides it. Every pod has the same resources.
    """
    per_pod = {
        "gpuCount": config.gpus,
        "memory": config.resources.requests.memory,
        "cpu": config.resources.requests.cpu,
    }
    distributed: dict[str, Any] = {"enabled": config.workers > 1, "backend": config.backend}
    if config.workers > 1:
        distributed |= {
            "workerCount": config.workers - 1,
            "masterResources": dict(per_pod),
            "workerResources": dict(per_pod),
        }
    return {
        "modelName": model_name,
        "framework": config.framework,
        "epochs": config.epochs,
        "dataSource": {"type": config.data_source.type, "path": config.data_source.path},
        "resources": per_pod,
        "distributed": distributed,
        "hyperparameters": dict(config.hyperparameters),
    }
