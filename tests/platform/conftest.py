"""Fixtures shared by the platform tests: the model registry's three runs, once per test session."""

from __future__ import annotations

import pytest

from mlplatform.platform.registry_config import LifecycleConfig, MlflowConfig
from mlplatform.tools.offline.engine import Recording
from tests.support.helpers import build
from tests.support.registry_program import FULL_IMAGE, aws_infra, run_registry


@pytest.fixture(scope="session")
def aws_dev() -> Recording:
    return run_registry(build(MlflowConfig, image=FULL_IMAGE), aws_infra())


@pytest.fixture(scope="session")
def aws_prod() -> Recording:
    lifecycle = LifecycleConfig(
        noncurrent_version_expiration_days=10, transition_to_ia_days=None, abort_incomplete_multipart_days=2,
        expiration_days=400,
    )  # fmt: skip
    config = build(
        MlflowConfig, image=FULL_IMAGE, rds_multi_az=True, deletion_protection=True, replicas=2, lifecycle=lifecycle
    )
    return run_registry(config, aws_infra())


@pytest.fixture(scope="session")
def existing() -> Recording:
    config = build(
        MlflowConfig,
        image=FULL_IMAGE,
        backend="in-cluster",
        postgres_storage_gib=50,
        artifact_bucket="ml-artifacts",
        s3_endpoint_url="https://minio.storage.svc:9000",
        s3_credentials_secret="minio-credentials",
    )
    return run_registry(config, None)
