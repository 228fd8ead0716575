"""The MLflow tracking server and model registry: Postgres backend store, S3 artifacts.

One concern per module: `artifacts` (the S3 bucket and the IRSA role that opens it),
`database` (RDS or in-cluster Postgres), `server` (the MLflow Deployment, its
Service, ServiceAccount and backend Secret); `component` wires them into the
`ModelRegistry` component.
"""

from mlplatform.platform.registry.component import AwsRegistryInfra, ModelRegistry, ModelRegistryArgs

__all__ = ["AwsRegistryInfra", "ModelRegistry", "ModelRegistryArgs"]
