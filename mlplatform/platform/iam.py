"""IAM documents that more than one platform component needs."""

from __future__ import annotations

import pulumi


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
        issuer = provider_url.removeprefix("https://")
        return {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            f"{issuer}:sub": f"system:serviceaccount:{ns}:{service_account}",
                            f"{issuer}:aud": "sts.amazonaws.com",
                        }
                    },
                }
            ],
        }

    return pulumi.Output.json_dumps(
        pulumi.Output.all(oidc_provider_arn, oidc_provider_url, namespace).apply(document)
    )
