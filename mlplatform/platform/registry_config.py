"""The platform's `mlplatform:mlflow` config: the MLflow server, its database and the
artifact bucket's lifecycle.

Kept apart from `config.py` (which embeds it in `PlatformConfig`); the rules that
depend on the cluster mode (RDS needs mode aws, an existing cluster names its
bucket) and on the environment live with `PlatformConfig`, which knows both.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mlplatform.config_types import DnsSubdomain, PinnedImage, PositiveInt, ScratchConfig
from mlplatform.configuration import SECRET, ConfigModel, CrossFieldError, is_secret_placeholder

DATABASE_PASSWORD_MIN_LENGTH = 16
# RDS Postgres' limit for the master password; the in-cluster Postgres has none that matters.
DATABASE_PASSWORD_MAX_LENGTH = 128
# RFC 3986's unreserved characters: nothing SQLAlchemy's URI parser, MLflow's
# configparser (`%`) or RDS (`/`, `@`, `"`, space) treats specially, so the password
# goes into the backend URI as it is, for either backend.
DATABASE_PASSWORD_CHARACTERS = re.compile(r"^[A-Za-z0-9._~-]+$")


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
        expiration, transition = self.expiration_days, self.transition_to_ia_days
        if expiration is not None and transition is not None and expiration <= transition:
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
    database_password: str | None = Field(
        None,
        description=f"The MLflow database password, from your vault, instead of one generated with pulumi-random "
        f"(so no random plugin is needed). Either backend: the in-cluster Postgres, or RDS's master password. "
        f"{DATABASE_PASSWORD_MIN_LENGTH} to {DATABASE_PASSWORD_MAX_LENGTH} characters of letters, digits and "
        "`-._~`. Must be a Pulumi secret (`pulumi config set --secret --path mlflow.databasePassword`). Changing "
        "it later: RDS takes the new one in place; an in-cluster Postgres keeps the one it was initialised with, "
        "so change it in the database too (`ALTER USER`).",
        json_schema_extra=SECRET,
    )
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
    s3_credentials_secret: DnsSubdomain | None = Field(
        None,
        description="Mode existing: name of a Secret in the MLflow namespace with AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY for the S3-compatible store.",
    )
    lifecycle: LifecycleConfig = Field(
        default_factory=LifecycleConfig.defaults, description="Artifact bucket lifecycle."
    )
    scratch: ScratchConfig = Field(
        default_factory=lambda: ScratchConfig(
            ephemeral_storage_request="1Gi", ephemeral_storage_limit="6Gi", empty_dir_size_limit="2Gi"
        ),
        description="Local disk of each server pod. The server proxies artifact uploads through /tmp, so its "
        "`emptyDir` holds the largest artifact uploaded at once.",
    )

    @field_validator("database_password")
    @classmethod
    def _usable_password(cls, value: str | None) -> str | None:
        # Messages describe the value (its length), never show it: it is a secret.
        if value is None or is_secret_placeholder(value):
            return value
        if not DATABASE_PASSWORD_MIN_LENGTH <= len(value) <= DATABASE_PASSWORD_MAX_LENGTH:
            raise ValueError(
                f"the password has {len(value)} characters; allowed: {DATABASE_PASSWORD_MIN_LENGTH} to "
                f"{DATABASE_PASSWORD_MAX_LENGTH}"
            )
        if not DATABASE_PASSWORD_CHARACTERS.match(value):
            raise ValueError(
                "the password has characters that would need escaping in the database URI; allowed: letters, "
                "digits and -._~"
            )
        return value
