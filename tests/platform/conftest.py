"""Fixtures shared by the platform tests, each run once per test session: the cluster component's two runs
and the model registry's three."""

from __future__ import annotations

import pytest

from mlplatform.platform.cluster_config import ClusterConfig
from mlplatform.platform.registry_config import LifecycleConfig, MlflowConfig
from mlplatform.tools.offline.engine import Recording
from tests.support.cluster_program import run_cluster
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


@pytest.fixture(scope="session")
def cluster_dev() -> Recording:
    """Defaults: two AZs, one NAT gateway, private endpoint only."""
    return run_cluster()


@pytest.fixture(scope="session")
def cluster_prod() -> Recording:
    """Three AZs, a NAT gateway per AZ and a public endpoint limited to one CIDR."""
    return run_cluster(
        build(
            ClusterConfig,
            name="mlp-prod",
            availability_zones=3,
            single_nat_gateway=False,
            endpoint_public_access=True,
            public_access_cidrs=["203.0.113.0/24"],
            control_plane_log_types=["api", "audit", "authenticator", "controllerManager", "scheduler"],
        )
    )
