"""A model stack's `mlmodel:training` config: the training run and its dataset.

Kept apart from `config.py` (which embeds it in `ModelStackConfig`); the rule that
a run needs the owning team lives with `ModelStackConfig`, which knows the team.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mlplatform.config_types import ImageRef, Resources, ResourceSpec, ScratchConfig
from mlplatform.configuration import ConfigModel, CrossFieldError

S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/(?P<prefix>\S*))?$")

# The URI scheme each dataSource.type reads; `local` is a path inside the pod.
DATA_SOURCE_SCHEMES = {"s3": "s3://", "gcs": "gs://"}


def hyperparameter_env_name(key: str) -> str:
    """`learningRate`, `learning_rate` and `learning-rate` all become `HP_LEARNING_RATE`."""
    snake = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", key)
    snake = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", snake)
    snake = re.sub(r"[^A-Za-z0-9]+", "_", snake).strip("_").upper()
    return f"HP_{snake}"


def hyperparameter_env_names(hyperparameters: Mapping[str, object]) -> dict[str, str]:
    """Each hyperparameter's env var name and its key; a key without one, or two keys with one, are refused."""
    by_name: dict[str, str] = {}
    for key in hyperparameters:
        env_name = hyperparameter_env_name(key)
        if env_name == "HP_":
            raise ValueError(f"key {key!r} has no letter or digit to name a variable")
        if env_name in by_name:
            raise ValueError(f"keys {by_name[env_name]!r} and {key!r} both become {env_name}; rename one")
        by_name[env_name] = key
    return by_name


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
            raise CrossFieldError(f"type 's3' needs a path 's3://<bucket>/<prefix>', got {self.path!r}", "type", "path")
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
            raise CrossFieldError(f"type '{self.type}' reads {scheme} URIs, but path is {self.path!r}", "type", "path")
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
    scratch: ScratchConfig = Field(
        default_factory=lambda: ScratchConfig(
            ephemeral_storage_request="4Gi", ephemeral_storage_limit="20Gi", empty_dir_size_limit="16Gi"
        ),
        description="Local disk per pod: /tmp holds downloaded data and intermediate files; checkpoints go to "
        "their volume, not here.",
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
        hyperparameter_env_names(hyperparameters)
        return hyperparameters
