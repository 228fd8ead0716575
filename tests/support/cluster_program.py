"""The Cluster component run alone under the recording mocks.

`tests/platform/conftest.py` turns its two runs (dev defaults, a prod-like config) into fixtures.
"""

from __future__ import annotations

import pulumi

from mlplatform.platform.cluster import Cluster, ClusterArgs
from mlplatform.platform.cluster_config import ClusterConfig, SystemPoolConfig
from mlplatform.tools.offline.engine import Recording, run_program
from tests.support.helpers import build

TAGS = {"Project": "mlplatform", "Environment": "dev", "ManagedBy": "pulumi"}


def run_cluster(config: ClusterConfig | None = None, system_pool: SystemPoolConfig | None = None) -> Recording:
    def program():
        cluster = Cluster(
            "cluster",
            ClusterArgs(
                config=config or build(ClusterConfig, name="mlp-test", public_access_cidrs=["198.51.100.0/24"]),
                system_pool=system_pool or build(SystemPoolConfig),
                tags=TAGS,
            ),
        )
        pulumi.export("kubeconfig", cluster.kubeconfig)
        pulumi.export("oidcProviderUrl", cluster.oidc_provider_url)
        pulumi.export("oidcProviderArn", cluster.oidc_provider_arn)
        pulumi.export("privateSubnetIds", cluster.private_subnet_ids)
        pulumi.export("publicSubnetIds", cluster.public_subnet_ids)

    return run_program(program, project="mlplatform", stack="dev")
