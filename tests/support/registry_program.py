"""The model registry component run alone under the recording mocks, and readers of what it declared.

`tests/platform/conftest.py` turns the three runs (AWS dev, AWS prod, an existing cluster) into fixtures.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi

from mlplatform.platform.registry import AwsRegistryInfra, ModelRegistry, ModelRegistryArgs
from mlplatform.platform.registry_config import MlflowConfig
from mlplatform.tools.offline.engine import RecordedResource, Recording, run_program
from tests.support.types import K8S_DEPLOYMENT

NAMESPACE = "ml-registry"
VPC_CIDR = "10.40.0.0/16"
OIDC_URL = "oidc.eks.us-west-2.amazonaws.com/id/0123456789ABCDEF"
OIDC_ARN = f"arn:aws:iam::123456789012:oidc-provider/{OIDC_URL}"
FULL_IMAGE = "ghcr.io/mlflow/mlflow:v3.15.1-full"


def aws_infra() -> AwsRegistryInfra:
    return AwsRegistryInfra(
        vpc_id="vpc-0abc",
        vpc_cidr=VPC_CIDR,
        private_subnet_ids=["subnet-a", "subnet-b"],
        oidc_provider_arn=OIDC_ARN,
        oidc_provider_url=OIDC_URL,
    )


def run_registry(config: MlflowConfig, aws: AwsRegistryInfra | None) -> Recording:
    def program():
        registry = ModelRegistry(
            "mlflow",
            ModelRegistryArgs(config=config, namespace=NAMESPACE, aws=aws, tags={"Project": "mlplatform"}),
        )
        pulumi.export("trackingUri", registry.tracking_uri)
        pulumi.export("backendStoreUri", registry.backend_store_uri)
        pulumi.export("artifactRoot", registry.artifact_root)
        pulumi.export("bucketName", registry.bucket_name)
        pulumi.export("databaseEndpoint", registry.database_endpoint)

    return run_program(program, project="mlplatform", stack="dev")


def policy_document(resource: RecordedResource, key: str) -> dict[str, Any]:
    return json.loads(resource.inputs[key])


def only_container(recording: Recording, type_token: str = K8S_DEPLOYMENT) -> dict[str, Any]:
    (container,) = recording.one(type_token).inputs["spec"]["template"]["spec"]["containers"]
    return container


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}
