"""IAM documents that more than one platform component needs."""

from __future__ import annotations

import pulumi

# The audience AWS STS expects in a web-identity token.
STS_AUDIENCE = "sts.amazonaws.com"


def irsa_trust_policy(
    oidc_provider_arn: pulumi.Input[str],
    oidc_provider_url: pulumi.Input[str],
    namespace: pulumi.Input[str],
    service_account: str,
) -> pulumi.Output[str]:
    """The trust policy that lets exactly one Kubernetes ServiceAccount assume a role (IRSA).

    Both the subject and the audience are pinned: without `:aud`, a token minted for
    another audience by the same cluster could be exchanged for the role.
    """

    def document(values: list[str]) -> dict:
        provider_arn, provider_url, ns = values
        return web_identity_trust(
            provider_arn, provider_url.removeprefix("https://"), f"system:serviceaccount:{ns}:{service_account}"
        )

    return pulumi.Output.json_dumps(pulumi.Output.all(oidc_provider_arn, oidc_provider_url, namespace).apply(document))


def web_identity_trust(provider_arn: str, issuer: str, subject: str | list[str]) -> dict:
    """A trust policy for tokens of one OIDC issuer: `sub` exactly `subject` (or one of a list)
    and `aud` pinned to STS. `StringEquals`, never `StringLike`, so no wildcard can widen who
    may assume the role; IRSA roles and the CI roles both build their trust with it."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{issuer}:sub": subject,
                        f"{issuer}:aud": STS_AUDIENCE,
                    }
                },
            }
        ],
    }
