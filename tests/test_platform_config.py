"""The platform's config is validated before anything is declared, with errors a user can act on."""

from __future__ import annotations

import re

import pytest

from mlplatform.configuration import ConfigError, validate_config
from mlplatform.platform.config import CONFIG_NAMESPACE, PlatformConfig
from tests.support.helpers import ROOT, deep_merge, platform_config, run_platform


def _validate(values: dict) -> PlatformConfig:
    return validate_config(PlatformConfig, values, stack="dev", namespace=CONFIG_NAMESPACE)


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
        {"cluster": {"mode": "existing"}, "mlflow": {"backend": "rds", "artifactBucket": "b-1"}},
        "mlplatform:",
        "needs cluster.mode 'aws'",
        id="rds-without-aws",
    ),
    pytest.param(
        {"cluster": {"mode": "existing"}, "mlflow": {"backend": "in-cluster"}},
        "mlplatform:",
        "mlflow.artifactBucket is required",
        id="existing-without-bucket",
    ),
    pytest.param(
        {"mlflow": {"lifecycle": {"transitionToIaDays": 10}}},
        "mlplatform:mlflow.lifecycle.transitionToIaDays",
        "greater than or equal to 30",
        id="ia-too-early",
    ),
    pytest.param(
        {"environment": "prod"},
        "mlplatform:",
        "mesh.ha, mlflow.deletionProtection, mlflow.rdsMultiAz",
        id="prod-without-ha",
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
]


@pytest.mark.parametrize(("overrides", "key", "allowed"), INVALID_CONFIGS)
def test_invalid_config_fails_before_any_resource(overrides, key, allowed):
    """A bad stack config stops the real entry point with the stack, key and rule named, and registers nothing."""
    with pytest.raises(ConfigError) as excinfo:
        run_platform(platform_config(**overrides), stack="dev")
    message = str(excinfo.value)
    assert "stack 'dev'" in message
    assert key in message
    assert allowed in message
    assert excinfo.value.recording.resources == []


def test_error_shows_the_bad_value():
    """The user sees what they wrote, not just where."""
    with pytest.raises(ConfigError, match=r"mlplatform:nodePools\.gpu\.scaling\.maxSize = 0:"):
        _validate(platform_config(nodePools={"gpu": {"scaling": {"minSize": 0, "desiredSize": 0, "maxSize": 0}}}))


def test_every_problem_is_reported_at_once():
    """Fixing one key at a time through repeated `pulumi preview` runs wastes a reviewer's afternoon."""
    with pytest.raises(ConfigError) as excinfo:
        _validate(platform_config(cluster={"mode": "gcp"}, crds={"group": "x"}))
    assert len(excinfo.value.problems) == 2


def test_defaults_are_a_valid_dev_platform():
    """Only the public endpoint's CIDRs need naming: the rest is a working dev platform with a GPU pool that
    scales to zero."""
    config = _validate({"cluster": {"publicAccessCidrs": ["203.0.113.0/24"]}})
    assert config.cluster.mode == "aws"
    assert config.cluster.endpoint_public_access is True


def test_an_empty_namespace_asks_for_the_endpoint_cidrs():
    """No CIDR is a safe guess for who may reach the API; the message says what to write."""
    with pytest.raises(ConfigError, match="publicAccessCidrs is empty"):
        _validate({})


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "::/0"])
def test_prod_refuses_an_endpoint_open_to_every_address(cidr):
    """In prod the API answers only the networks named; an open endpoint is a config error there."""
    with pytest.raises(
        ConfigError, match=r"mlplatform:cluster\.publicAccessCidrs / mlplatform:environment: .*open to every"
    ):
        _validate(
            _prod(
                cluster={"publicAccessCidrs": [cidr]},
                monitoring={"alerting": {"noReceiversReason": "test of the endpoint rule"}},
            )
        )


def test_dev_may_open_the_endpoint_to_every_address_when_written_out():
    config = _validate(platform_config(cluster={"publicAccessCidrs": ["0.0.0.0/0"]}))
    assert config.cluster.public_access_cidrs == ["0.0.0.0/0"]


def test_private_only_with_where_up_runs_from_is_accepted():
    config = _validate(
        platform_config(
            cluster={"endpointPublicAccess": False, "publicAccessCidrs": None, "privateAccessCidrs": ["10.100.0.0/24"]}
        )
    )
    assert config.cluster.endpoint_public_access is False
    assert config.node_pools.gpu.scaling.min_size == 0
    assert config.node_pools.gpu.ami_type == "AL2023_x86_64_NVIDIA"
    assert config.mesh.ha is False


def test_prod_stack_file_turns_on_ha_multi_az_and_deletion_protection():
    """`Pulumi.prod.yaml` is valid and carries the production switches the validator insists on."""
    config = _prod_stack_file()
    assert config.environment == "prod"
    assert config.mesh.ha is True
    assert config.mlflow.rds_multi_az is True
    assert config.mlflow.deletion_protection is True
    assert config.cluster.availability_zones >= 3
    assert config.cluster.single_nat_gateway is False
    assert config.cluster.public_access_cidrs and not config.cluster.open_to_the_internet()


def _prod_stack_file() -> PlatformConfig:
    from mlplatform.tools.stackfile.reader import read_stack_config

    stack_config = read_stack_config(ROOT / "Pulumi.prod.yaml", CONFIG_NAMESPACE)
    values = {k.split(":", 1)[1]: v for k, v in stack_config.values.items() if k.startswith("mlplatform:")}
    secrets = {p.split(":", 1)[1] for p in stack_config.secret_paths}
    return validate_config(PlatformConfig, values, stack="prod", namespace=CONFIG_NAMESPACE, secret_keys=secrets)


def test_prod_stack_file_enables_ci_and_alerting():
    """The reference production setup has the CI roles the shipped workflows assume and alerts that reach
    someone, with receivers given as secrets."""
    config = _prod_stack_file()
    assert config.ci.enabled is True
    assert config.ci.github_repository
    assert config.monitoring.alerting.receivers_configured
    assert config.monitoring.alerting.no_receivers_reason is None


def _prod(**overrides) -> dict:
    return platform_config(
        environment="prod",
        mesh={"ha": True},
        mlflow={"deletionProtection": True, "rdsMultiAz": True},
        nodePools={"system": {"scaling": {"minSize": 3, "desiredSize": 3, "maxSize": 6}}},
        **overrides,
    )


def test_prod_without_a_receiver_is_refused_naming_the_key():
    """A prod platform whose alerts go to the null receiver pages nobody; config time says which key to set."""
    with pytest.raises(ConfigError, match=r"mlplatform:monitoring\.alerting / mlplatform:environment: .*no receiver"):
        _validate(_prod())


def test_prod_may_opt_out_of_receivers_with_a_reason():
    """An explicit, written reason is the only way a prod stack runs without receivers."""
    config = _validate(
        _prod(monitoring={"alerting": {"noReceiversReason": "alerts federated to the central Prometheus"}})
    )
    assert config.monitoring.alerting.receivers_configured is False


def test_opt_out_reason_with_a_receiver_is_refused():
    """A stale opt-out next to a real receiver would mislead the next reader."""
    with pytest.raises(ConfigError, match="noReceiversReason"):
        validate_config(
            PlatformConfig,
            _prod(
                monitoring={
                    "alerting": {"webhookUrl": "https://hooks.example.com/x", "noReceiversReason": "because reasons"}
                }
            ),
            stack="prod",
            namespace=CONFIG_NAMESPACE,
            secret_keys={"monitoring.alerting.webhookUrl"},
        )


def test_existing_cluster_mode_accepts_in_cluster_backend():
    """Mode `existing` runs on any conformant cluster with an in-cluster Postgres and a named bucket."""
    config = _validate(
        platform_config(
            cluster={"mode": "existing", "context": "kind-ml"},
            mlflow={
                "backend": "in-cluster",
                "artifactBucket": "mlflow-artifacts",
                "s3EndpointUrl": "http://minio.minio:9000",
            },
        )
    )
    assert config.cluster.mode == "existing"


EXISTING_CLUSTER = {"mode": "existing"}
# One case per cross-section rule of `PlatformConfig`, each in its own named validator.
CROSS_SECTION_RULES = [
    pytest.param(
        {"cluster": EXISTING_CLUSTER, "storage": {"efs": True}},
        "storage.efs only applies to cluster.mode 'aws'",
        id="existing-efs",
    ),
    pytest.param(
        {
            "cluster": EXISTING_CLUSTER,
            "mlflow": {"artifactBucket": "b-1"},
            "storage": {"ebsCsiAddonVersion": "v1.30.0-eksbuild.1"},
        },
        "storage.ebsCsiAddonVersion only apply to cluster.mode 'aws' (EKS add-ons)",
        id="existing-addons",
    ),
    pytest.param(
        {"cluster": EXISTING_CLUSTER, "mlflow": {"backend": "rds", "artifactBucket": "b-1"}},
        "needs cluster.mode 'aws'",
        id="existing-rds",
    ),
    pytest.param(
        {"cluster": EXISTING_CLUSTER, "mlflow": {"backend": "in-cluster"}},
        "mlflow.artifactBucket is required",
        id="existing-bucket",
    ),
    pytest.param(
        {"mlflow": {"s3EndpointUrl": "https://minio.example.com"}},
        "mlflow.s3EndpointUrl only apply to cluster.mode 'existing'",
        id="aws-endpoint",
    ),
    pytest.param({"cluster": {"gpuNodes": True}}, "cluster.gpuNodes describes an existing cluster", id="aws-gpu-nodes"),
    pytest.param(
        {"storage": {"efs": False, "readWriteManyClass": "shared"}},
        "turn efs on or drop the name",
        id="aws-rwx-without-efs",
    ),
    pytest.param(
        {"storage": {"readWriteOnceClass": "same", "readWriteManyClass": "same"}},
        "they need two names",
        id="aws-same-class",
    ),
    pytest.param(
        {"storage": {"efs": False, "efsCsiAddonVersion": "v2.0.0-eksbuild.1"}},
        "efsCsiAddonVersion is set but storage.efs is false",
        id="aws-efs-addon",
    ),
    pytest.param(
        {"mesh": {"ha": True}, "nodePools": {"system": {"scaling": {"minSize": 2, "desiredSize": 2, "maxSize": 4}}}},
        "nodePools.system.scaling.minSize must be >= 3, got 2",
        id="aws-ha-small-pool",
    ),
    pytest.param(
        {"environment": "prod"},
        "environment 'prod' requires mesh.ha, mlflow.deletionProtection, mlflow.rdsMultiAz to be true",
        id="prod",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), CROSS_SECTION_RULES)
def test_each_cross_section_rule_refuses_its_case(overrides, message):
    """Each rule that spans sections names the keys involved; a valid config passes them all."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        _validate(platform_config(**overrides))


AWS_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
EXISTING = {"cluster": {"mode": "existing"}, "mlflow": {"backend": "in-cluster", "artifactBucket": "b-1"}}


def test_a_secret_key_pasted_as_a_secret_name_is_refused_without_echoing_it():
    """`mlflow.s3CredentialsSecret` names a Kubernetes Secret; an access key there is neither a valid name nor
    something that may sit in plain text in Git. Both are said, and the key itself is never printed."""
    values = deep_merge(platform_config(**EXISTING), {"mlflow": {"s3CredentialsSecret": AWS_SECRET_KEY}})
    with pytest.raises(ConfigError) as caught:
        _validate(values)
    message = str(caught.value)
    assert (
        "mlplatform:mlflow.s3CredentialsSecret = [redacted]: the value looks like an AWS secret access key" in message
    )
    assert "pattern" in message  # and it is not a DNS-1123 subdomain
    assert "wJalr" not in message and "EXAMPLEKEY" not in message


@pytest.mark.parametrize("name", ["Mlflow_S3", "s3..creds", "-s3", "a" * 254])
def test_secret_names_are_dns_subdomains(name):
    """The API server would refuse these Secret names mid-update; config time refuses them first."""
    with pytest.raises(ConfigError, match=r"mlplatform:mlflow\.s3CredentialsSecret"):
        _validate(deep_merge(platform_config(**EXISTING), {"mlflow": {"s3CredentialsSecret": name}}))


def test_a_dns_subdomain_secret_name_is_accepted():
    config = _validate(deep_merge(platform_config(**EXISTING), {"mlflow": {"s3CredentialsSecret": "mlflow-s3.creds"}}))
    assert config.mlflow.s3_credentials_secret == "mlflow-s3.creds"


def test_an_access_key_id_in_any_plain_text_field_is_refused():
    """Every plain-text field is scanned, not only names: an `AKIA...` id in tags is as public as anywhere."""
    with pytest.raises(
        ConfigError, match=r"mlplatform:tags\.owner = \[redacted\]: the value looks like an AWS access key id"
    ):
        _validate(platform_config(tags={"owner": "AKIAIOSFODNN7EXAMPLE"}))


def test_a_credential_given_as_a_secret_is_not_flagged():
    """The same text under a Pulumi secret is where it belongs."""
    config = validate_config(
        PlatformConfig,
        platform_config(tags={"owner": "AKIAIOSFODNN7EXAMPLE"}),
        stack="dev",
        namespace=CONFIG_NAMESPACE,
        secret_keys={"tags"},
    )
    assert config.tags["owner"].startswith("AKIA")


def test_certificates_are_not_mistaken_for_secret_keys():
    """A PEM certificate's last base64 line can be exactly 40 mixed-case characters; certificates are public."""
    from mlplatform.credentials import credential_kind

    certificate = (
        "-----BEGIN CERTIFICATE-----\nMIIB"
        + "x" * 60
        + "\nAbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCd\n-----END CERTIFICATE-----\n"
    )
    assert credential_kind(certificate) is None
    assert credential_kind("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----") == "a private key"
