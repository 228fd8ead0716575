"""The MLflow tracking server and model registry: Postgres backend store, S3 artifacts.

One concern per module: `store` (the artifact store's prefix and port), `artifacts`
(the S3 bucket and the IRSA role that opens it), `database` (in-cluster Postgres and
the database password), `rds` (RDS Postgres), `server` (the MLflow Deployment, its
Service, ServiceAccount and backend Secret); `component` wires them into the
`ModelRegistry` component. `artifacts` and `rds` need pulumi_aws, so the component
imports them only in mode aws.
"""

from mlplatform.platform.registry.component import AwsRegistryInfra, ModelRegistry, ModelRegistryArgs

__all__ = ["AwsRegistryInfra", "ModelRegistry", "ModelRegistryArgs"]
