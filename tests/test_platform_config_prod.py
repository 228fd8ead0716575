"""The production rules: HA, deletion protection, an endpoint that is not open to all, alerts that reach someone."""

from __future__ import annotations

from typing import Any

import pytest

from mlplatform.configuration import ConfigError
from mlplatform.platform.config import CONFIG_NAMESPACE, PlatformConfig
from tests.support.helpers import ROOT, platform_config, validate_platform


def _prod(**overrides: Any) -> dict[str, Any]:
    return platform_config(
        environment="prod",
        mesh={"ha": True},
        mlflow={"deletionProtection": True, "rdsMultiAz": True},
        nodePools={"system": {"scaling": {"minSize": 3, "desiredSize": 3, "maxSize": 6}}},
        **overrides,
    )


# Refusals the validator names with the key, and what the user wrote or what is allowed. Each case:
# config values, the key paths given as Pulumi secrets, and a pattern for the message.
REFUSED = [
    # In prod the API answers only the networks named; an open endpoint is a config error there.
    *(
        pytest.param(
            _prod(
                cluster={"publicAccessCidrs": [cidr]},
                monitoring={"alerting": {"noReceiversReason": "test of the endpoint rule"}},
            ),
            (),
            r"mlplatform:cluster\.publicAccessCidrs / mlplatform:environment: .*open to every",
            id=f"prod-endpoint-open-to-{cidr}",
        )
        for cidr in ("0.0.0.0/0", "::/0")
    ),
    # A prod platform whose alerts go to the null receiver pages nobody; config time says which key to set.
    pytest.param(
        _prod(),
        (),
        r"mlplatform:monitoring\.alerting / mlplatform:environment: .*no receiver",
        id="prod-without-a-receiver",
    ),
    # A stale opt-out next to a real receiver would mislead the next reader.
    pytest.param(
        _prod(
            monitoring={
                "alerting": {"webhookUrl": "https://hooks.example.com/x", "noReceiversReason": "because reasons"}
            }
        ),
        ("monitoring.alerting.webhookUrl",),
        "noReceiversReason",
        id="opt-out-reason-with-a-receiver",
    ),
]


@pytest.mark.parametrize(("values", "secret_keys", "pattern"), REFUSED)
def test_refused_naming_the_key(values, secret_keys, pattern):
    with pytest.raises(ConfigError, match=pattern):
        validate_platform(values, secret_keys=secret_keys)


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
    return validate_platform(values, stack="prod", secret_keys=secrets)


def test_prod_stack_file_enables_ci_and_alerting():
    """The reference production setup has the CI roles the shipped workflows assume and alerts that reach
    someone, with receivers given as secrets."""
    config = _prod_stack_file()
    assert config.ci.enabled is True
    assert config.ci.github_repository
    assert config.monitoring.alerting.receivers_configured
    assert config.monitoring.alerting.no_receivers_reason is None


def test_prod_may_opt_out_of_receivers_with_a_reason():
    """An explicit, written reason is the only way a prod stack runs without receivers."""
    config = validate_platform(
        _prod(monitoring={"alerting": {"noReceiversReason": "alerts federated to the central Prometheus"}})
    )
    assert config.monitoring.alerting.receivers_configured is False
