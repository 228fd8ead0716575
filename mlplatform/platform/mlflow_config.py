"""The platform's `mlplatform:mlflow` config: the MLflow server, its database and the
artifact bucket's lifecycle.

Kept apart from `config.py` (which embeds it in `PlatformConfig`); the rules that
depend on the cluster mode (RDS needs mode aws, an existing cluster names its
bucket) and on the environment live with `PlatformConfig`, which knows both.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mlplatform.config_types import PinnedImage, PositiveInt
from mlplatform.configuration import ConfigModel, CrossFieldError


class LifecycleConfig(ConfigModel):
    noncurrent_version_expiration_days: PositiveInt = Field(
        30, description="Delete overwritten artifact versions after this many days."
    )
    transition_to_ia_days: int | None = Field(
        90, ge=30, description="Move artifacts to S3 Standard-IA after this many days (min 30); null to disable."
    )
    abort_incomplete_multipart_days: PositiveInt = Field(7, description="Abort stalled multipart uploads.")
    expiration_days: int | None = Field(
        None, ge=1, description="Delete artifacts outright after this many days; null keeps them."
    )

    @model_validator(mode="after")
    def _expire_after_transition(self) -> LifecycleConfig:
        if self.expiration_days is not None and self.transition_to_ia_days is not None:
            if self.expiration_days <= self.transition_to_ia_days:
                raise CrossFieldError(
                    "expirationDays must be later than transitionToIaDays", "expirationDays", "transitionToIaDays"
                )
        return self


class MlflowConfig(ConfigModel):
    image: PinnedImage = Field(
        "ghcr.io/mlflow/mlflow:v3.15.1-full",
        pattern=r"^[\w./-]+(:[\w.-]+)?(@sha256:[a-f0-9]{64})?$",
        description="MLflow server image, pinned; the `-full` variant carries the Postgres driver and boto3.",
    )
    backend: Literal["rds", "in-cluster"] = Field(
        "rds", description="Postgres backend store: Amazon RDS (mode aws only) or an in-cluster Postgres."
    )
    replicas: int = Field(1, ge=1, le=10, description="MLflow server replicas.")
    rds_instance_class: str = Field("db.t4g.medium", pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$", description="RDS class.")
    rds_allocated_storage_gib: int = Field(20, ge=20, le=65536, description="RDS storage.")
    rds_multi_az: bool = Field(False, description="RDS Multi-AZ standby.")
    deletion_protection: bool = Field(False, description="Protect the database (and bucket) from deletion.")
    postgres_image: PinnedImage = Field("postgres:17.6", description="In-cluster Postgres image (backend in-cluster).")
    postgres_storage_gib: int = Field(20, ge=1, description="In-cluster Postgres volume size.")
    artifact_bucket: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="Mode existing: the S3-compatible bucket for artifacts (required there). "
        "Mode aws: an explicit name for the bucket the program creates (default: generated).",
    )
    s3_endpoint_url: str | None = Field(
        None, pattern=r"^https?://", description="Mode existing: S3-compatible endpoint (MinIO, Ceph...)."
    )
    s3_credentials_secret: str | None = Field(
        None,
        description="Mode existing: name of a Secret in the MLflow namespace with AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY for the S3-compatible store.",
    )
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig, description="Artifact bucket lifecycle.")
