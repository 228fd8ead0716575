"""The platform's config is validated before anything is declared, with errors a user can act on.

The production rules are in `test_platform_config_prod.py`, the credential scan in
`test_platform_config_credentials.py`."""

from __future__ import annotations

import pytest

from mlplatform.configuration import ConfigError
from mlplatform.tools.offline.engine import recording_of
from tests.support.helpers import existing_cluster_config, platform_config, run_platform, validate_platform

EXISTING_CLUSTER = {"mode": "existing"}
# Each case: overrides on a valid config, the key path the message must name, and a
# fragment saying what is allowed or what is wrong.
INVALID_CONFIGS = [
    pytest.param({"cluster": {"mode": "gcp"}}, "mlplatform:cluster.mode", "'aws' or 'existing'", id="unknown-mode"),
    pytest.param({"cluster": {"region": "mars-1"}}, "mlplatform:cluster.region", "pattern", id="bad-region"),
    pytest.param(
        {"cluster": {"kubernetesVersion": "1.3"}},
        "mlplatform:cluster.kubernetesVersion",
        "pattern",
        id="bad-k8s-version",
    ),
    pytest.param(
        {"cluster": {"vpcCidr": "10.0.0.0/24"}}, "mlplatform:cluster.vpcCidr", "at least a /20", id="vpc-too-small"
    ),
    pytest.param(
        {"cluster": {"vpcCidr": "10.0.0.1/16"}}, "mlplatform:cluster.vpcCidr", "host bits", id="vpc-not-network"
    ),
    pytest.param(
        {"cluster": {"endpointPublicAccess": True, "publicAccessCidrs": None}},
        "mlplatform:cluster",
        "publicAccessCidrs is empty",
        id="public-endpoint-without-cidrs",
    ),
    pytest.param(
        {"cluster": {"endpointPublicAccess": False, "publicAccessCidrs": None}},
        "mlplatform:cluster.endpointPublicAccess / mlplatform:cluster.privateAccessCidrs",
        "say where `pulumi up` runs from",
        id="private-only-without-where-up-runs",
    ),
    pytest.param(
        {"cluster": {"privateAccessCidrs": ["10.0.0.0/8", "nope"]}},
        "mlplatform:cluster.privateAccessCidrs",
        "does not appear to be an IPv4 or IPv6 network",
        id="private-cidr-not-a-network",
    ),
    pytest.param(
        {"cluster": {"regoin": "us-east-1"}},
        "mlplatform:cluster.regoin",
        "allowed keys here:",
        id="misspelt-nested-key",
    ),
    pytest.param({"nodepools": {}}, "mlplatform:nodepools", "allowed keys here:", id="misspelt-top-level-key"),
    pytest.param(
        {"nodePools": {"gpu": {"scaling": {"minSize": -1}}}},
        "mlplatform:nodePools.gpu.scaling.minSize",
        "greater than or equal to 0",
        id="negative-min",
    ),
    pytest.param(
        {"nodePools": {"gpu": {"scaling": {"minSize": 5, "desiredSize": 5, "maxSize": 2}}}},
        "mlplatform:nodePools.gpu.scaling",
        "minSize <= desiredSize <= maxSize",
        id="min-above-max",
    ),
    pytest.param(
        {"nodePools": {"gpu": {"instanceTypes": ["m6i.large"]}}},
        "mlplatform:nodePools.gpu.instanceTypes",
        "not NVIDIA GPU instance types",
        id="cpu-instance-in-gpu-pool",
    ),
    pytest.param(
        {"nodePools": {"gpu": {"instanceTypes": []}}},
        "mlplatform:nodePools.gpu.instanceTypes",
        "at least 1",
        id="no-gpu-instance-types",
    ),
    pytest.param(
        {"nodePools": {"gpu": {"capacityType": "spot"}}},
        "mlplatform:nodePools.gpu.capacityType",
        "'ON_DEMAND' or 'SPOT'",
        id="lowercase-capacity-type",
    ),
    pytest.param(
        {"nodePools": {"gpu": {"amiType": "AL2_x86_64_GPU"}}},
        "mlplatform:nodePools.gpu.amiType",
        "AL2023_x86_64_NVIDIA",
        id="retired-ami-type",
    ),
    pytest.param(
        {"nodePools": {"gpu": {"diskSizeGib": 10}}},
        "mlplatform:nodePools.gpu.diskSizeGib",
        "greater than or equal to 50",
        id="gpu-disk-too-small",
    ),
    pytest.param(
        {"charts": {"linkerdCrds": {"repo": "https://helm.linkerd.io/edge", "version": ""}}},
        "mlplatform:charts.linkerdCrds.version",
        "one exact release",
        id="unpinned-chart",
    ),
    pytest.param(
        {"charts": {"kubePrometheusStack": {"repo": "ftp://charts", "version": "1"}}},
        "mlplatform:charts.kubePrometheusStack.repo",
        "pattern",
        id="chart-repo-scheme",
    ),
    pytest.param(
        {"mesh": {"issuerValidityHours": 90000}},
        "mlplatform:mesh.issuerValidityHours",
        "less than or equal to 17520",
        id="issuer-too-long",
    ),
    pytest.param({"mesh": {"ha": "maybe"}}, "mlplatform:mesh.ha", "valid boolean", id="ha-not-bool"),
    pytest.param(
        {"mlflow": {"backend": "mysql"}}, "mlplatform:mlflow.backend", "'rds' or 'in-cluster'", id="unknown-backend"
    ),
    pytest.param(
        {"mlflow": {"lifecycle": {"transitionToIaDays": 10}}},
        "mlplatform:mlflow.lifecycle.transitionToIaDays",
        "greater than or equal to 30",
        id="ia-too-early",
    ),
    pytest.param(
        {"namespaces": {"teams": [{"name": "team-a", "gpuRequests": 8, "gpuLimits": 4}]}},
        "mlplatform:namespaces.teams[0]",
        "gpuLimits (4) must be >= gpuRequests (8)",
        id="quota-limits-below-requests",
    ),
    pytest.param(
        {"namespaces": {"training": "ml-serving"}},
        "mlplatform:namespaces",
        "repeated: ['ml-serving']",
        id="namespace-collision",
    ),
    pytest.param(
        {"namespaces": {"teams": [{"name": "Team_A"}]}},
        "mlplatform:namespaces.teams[0].name",
        "pattern",
        id="namespace-not-dns",
    ),
    pytest.param({"crds": {"group": "mlgroup"}}, "mlplatform:crds.group", "pattern", id="crd-group-without-dot"),
    pytest.param(
        {"devicePlugin": {"timeSlicingReplicas": 0}},
        "mlplatform:devicePlugin.timeSlicingReplicas",
        "greater than or equal to 1",
        id="time-slicing-zero",
    ),
    # One case per cross-section rule of `PlatformConfig`, each in its own named validator; the key is the
    # namespace, and the message names the keys involved.
    pytest.param(
        {"cluster": EXISTING_CLUSTER, "storage": {"efs": True}},
        "mlplatform:",
        "storage.efs only applies to cluster.mode 'aws'",
        id="existing-efs",
    ),
    pytest.param(
        {
            "cluster": EXISTING_CLUSTER,
            "mlflow": {"artifactBucket": "b-1"},
            "storage": {"ebsCsiAddonVersion": "v1.30.0-eksbuild.1"},
        },
        "mlplatform:",
        "storage.ebsCsiAddonVersion only apply to cluster.mode 'aws' (EKS add-ons)",
        id="existing-addons",
    ),
    pytest.param(
        {"cluster": EXISTING_CLUSTER, "mlflow": {"backend": "rds", "artifactBucket": "b-1"}},
        "mlplatform:",
        "needs cluster.mode 'aws'",
        id="existing-rds",
    ),
    pytest.param(
        {"cluster": EXISTING_CLUSTER, "mlflow": {"backend": "in-cluster"}},
        "mlplatform:",
        "mlflow.artifactBucket is required",
        id="existing-bucket",
    ),
    pytest.param(
        {"mlflow": {"s3EndpointUrl": "https://minio.example.com"}},
        "mlplatform:",
        "mlflow.s3EndpointUrl only apply to cluster.mode 'existing'",
        id="aws-endpoint",
    ),
    pytest.param(
        {"cluster": {"gpuNodes": True}},
        "mlplatform:",
        "cluster.gpuNodes describes an existing cluster",
        id="aws-gpu-nodes",
    ),
    pytest.param(
        {"storage": {"efs": False, "readWriteManyClass": "shared"}},
        "mlplatform:",
        "turn efs on or drop the name",
        id="aws-rwx-without-efs",
    ),
    pytest.param(
        {"storage": {"readWriteOnceClass": "same", "readWriteManyClass": "same"}},
        "mlplatform:",
        "they need two names",
        id="aws-same-class",
    ),
    pytest.param(
        {"storage": {"efs": False, "efsCsiAddonVersion": "v2.0.0-eksbuild.1"}},
        "mlplatform:",
        "efsCsiAddonVersion is set but storage.efs is false",
        id="aws-efs-addon",
    ),
    pytest.param(
        {"mesh": {"ha": True}, "nodePools": {"system": {"scaling": {"minSize": 2, "desiredSize": 2, "maxSize": 4}}}},
        "mlplatform:",
        "nodePools.system.scaling.minSize must be >= 3, got 2",
        id="aws-ha-small-pool",
    ),
    pytest.param(
        {"environment": "prod"},
        "mlplatform:",
        "environment 'prod' requires mesh.ha, mlflow.deletionProtection, mlflow.rdsMultiAz to be true",
        id="prod",
    ),
]

# Refusals the validator names with the key, and what the user wrote or what is allowed. Each case:
# config values, the key paths given as Pulumi secrets, and a pattern for the message.
REFUSED = [
    # The user sees what they wrote, not just where.
    pytest.param(
        platform_config(nodePools={"gpu": {"scaling": {"minSize": 0, "desiredSize": 0, "maxSize": 0}}}),
        (),
        r"mlplatform:nodePools\.gpu\.scaling\.maxSize = 0:",
        id="shows-the-bad-value",
    ),
    # No CIDR is a safe guess for who may reach the API; the message says what to write.
    pytest.param({}, (), "publicAccessCidrs is empty", id="empty-namespace-asks-for-endpoint-cidrs"),
]


@pytest.mark.parametrize(("values", "secret_keys", "pattern"), REFUSED)
def test_refused_naming_the_key(values, secret_keys, pattern):
    with pytest.raises(ConfigError, match=pattern):
        validate_platform(values, secret_keys=secret_keys)


@pytest.mark.parametrize(("overrides", "key", "allowed"), INVALID_CONFIGS)
def test_invalid_config_fails_before_any_resource(overrides, key, allowed):
    """A bad stack config stops the real entry point with the stack, key and rule named, and registers nothing."""
    with pytest.raises(ConfigError) as excinfo:
        run_platform(platform_config(**overrides), stack="dev")
    message = str(excinfo.value)
    assert "stack 'dev'" in message
    assert key in message
    assert allowed in message
    assert recording_of(excinfo.value).resources == []


def test_every_problem_is_reported_at_once():
    """Fixing one key at a time through repeated `pulumi preview` runs wastes a reviewer's afternoon."""
    with pytest.raises(ConfigError) as excinfo:
        validate_platform(platform_config(cluster={"mode": "gcp"}, crds={"group": "x"}))
    assert len(excinfo.value.problems) == 2


def test_defaults_are_a_valid_dev_platform():
    """Only the public endpoint's CIDRs need naming: the rest is a working dev platform with a GPU pool that
    scales to zero."""
    config = validate_platform({"cluster": {"publicAccessCidrs": ["203.0.113.0/24"]}})
    assert config.cluster.mode == "aws"
    assert config.cluster.endpoint_public_access is True


def test_dev_may_open_the_endpoint_to_every_address_when_written_out():
    config = validate_platform(platform_config(cluster={"publicAccessCidrs": ["0.0.0.0/0"]}))
    assert config.cluster.public_access_cidrs == ["0.0.0.0/0"]


def test_private_only_with_where_up_runs_from_is_accepted():
    config = validate_platform(
        platform_config(
            cluster={"endpointPublicAccess": False, "publicAccessCidrs": None, "privateAccessCidrs": ["10.100.0.0/24"]}
        )
    )
    assert config.cluster.endpoint_public_access is False
    assert config.node_pools.gpu.scaling.min_size == 0
    assert config.node_pools.gpu.ami_type == "AL2023_x86_64_NVIDIA"
    assert config.mesh.ha is False


def test_existing_cluster_mode_accepts_in_cluster_backend():
    """Mode `existing` runs on any conformant cluster with an in-cluster Postgres and a named bucket."""
    config = validate_platform(existing_cluster_config())
    assert config.cluster.mode == "existing"
