"""The credential scan: an AWS key or a private key in a plain-text config value is refused, without echoing it."""

from __future__ import annotations

import pytest

from mlplatform.configuration import ConfigError
from tests.support.helpers import deep_merge, platform_config, validate_platform

AWS_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
EXISTING = {"cluster": {"mode": "existing"}, "mlflow": {"backend": "in-cluster", "artifactBucket": "b-1"}}

# Refusals the validator names with the key, and what the user wrote or what is allowed. Each case:
# config values, the key paths given as Pulumi secrets, and a pattern for the message.
REFUSED = [
    # Every plain-text field is scanned, not only names: an `AKIA...` id in tags is as public as anywhere.
    pytest.param(
        platform_config(tags={"owner": "AKIAIOSFODNN7EXAMPLE"}),
        (),
        r"mlplatform:tags\.owner = \[redacted\]: the value looks like an AWS access key id",
        id="access-key-id-in-plain-text",
    ),
    # The API server would refuse these Secret names mid-update; config time refuses them first.
    *(
        pytest.param(
            deep_merge(platform_config(**EXISTING), {"mlflow": {"s3CredentialsSecret": name}}),
            (),
            r"mlplatform:mlflow\.s3CredentialsSecret",
            id=f"secret-name-{name[:12]}",
        )
        for name in ("Mlflow_S3", "s3..creds", "-s3", "a" * 254)
    ),
]


@pytest.mark.parametrize(("values", "secret_keys", "pattern"), REFUSED)
def test_refused_naming_the_key(values, secret_keys, pattern):
    with pytest.raises(ConfigError, match=pattern):
        validate_platform(values, secret_keys=secret_keys)


def test_a_secret_key_pasted_as_a_secret_name_is_refused_without_echoing_it():
    """`mlflow.s3CredentialsSecret` names a Kubernetes Secret; an access key there is neither a valid name nor
    something that may sit in plain text in Git. Both are said, and the key itself is never printed."""
    values = deep_merge(platform_config(**EXISTING), {"mlflow": {"s3CredentialsSecret": AWS_SECRET_KEY}})
    with pytest.raises(ConfigError) as caught:
        validate_platform(values)
    message = str(caught.value)
    assert (
        "mlplatform:mlflow.s3CredentialsSecret = [redacted]: the value looks like an AWS secret access key" in message
    )
    assert "pattern" in message  # and it is not a DNS-1123 subdomain
    assert "wJalr" not in message and "EXAMPLEKEY" not in message


def test_a_dns_subdomain_secret_name_is_accepted():
    config = validate_platform(
        deep_merge(platform_config(**EXISTING), {"mlflow": {"s3CredentialsSecret": "mlflow-s3.creds"}})
    )
    assert config.mlflow.s3_credentials_secret == "mlflow-s3.creds"


def test_a_credential_given_as_a_secret_is_not_flagged():
    """The same text under a Pulumi secret is where it belongs."""
    config = validate_platform(platform_config(tags={"owner": "AKIAIOSFODNN7EXAMPLE"}), secret_keys={"tags"})
    assert config.tags["owner"].startswith("AKIA")


def test_certificates_are_not_mistaken_for_secret_keys():
    """A PEM certificate's last base64 line can be exactly 40 mixed-case characters; certificates are public."""
    from mlplatform.config_fields import credential_kind

    certificate = (
        "-----BEGIN CERTIFICATE-----\nMIIB"
        + "x" * 60
        + "\nAbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCd\n-----END CERTIFICATE-----\n"
    )
    assert credential_kind(certificate) is None
    assert credential_kind("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----") == "a private key"
