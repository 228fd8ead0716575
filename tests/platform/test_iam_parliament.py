"""Every IAM policy document the dev and prod stacks declare, checked by an independent linter:
parliament (Duo Labs), offline. Its findings are 0, or listed below with the reason each is accepted."""

from __future__ import annotations

import json
from typing import Any

import pytest
from parliament import analyze_policy_string

from mlplatform.tools.offline.engine import Recording
from tests.support.types import AWS_IAM_POLICY, AWS_IAM_ROLE, AWS_IAM_ROLE_POLICY, AWS_KMS_KEY, AWS_S3_BUCKET_POLICY

# (resource type, input holding a policy document, whether it is a role's trust policy)
POLICY_INPUTS = (
    (AWS_IAM_ROLE, "assumeRolePolicy", True),
    (AWS_IAM_ROLE_POLICY, "policy", False),
    (AWS_IAM_POLICY, "policy", False),
    (AWS_S3_BUCKET_POLICY, "policy", False),
    (AWS_KMS_KEY, "policy", False),
)

# Findings on trust policies, accepted for every role, and why.
ACCEPTED_IN_TRUST_POLICIES = {
    # parliament lints identity policies; a trust policy names a Principal and never a Resource.
    "MALFORMED": "Statement contains neither Resource nor NotResource",
    # parliament knows a fixed list of identity providers; the EKS cluster's OIDC issuer and GitHub's
    # (token.actions.githubusercontent.com) are not on it. Both trusts pin `aud` and `sub` (tests/platform).
    "UNKNOWN_FEDERATION_SOURCE": None,
}
# (resource name, issue, detail) accepted elsewhere, and why.
ACCEPTED: dict[tuple[str, str, str], str] = {
    (
        "autoscaler-policy",
        "RESOURCE_STAR",
        "['eks:DescribeNodegroup']",
    ): "read-only; the cluster-autoscaler describes the node groups for scale-from-zero templates, whose ARNs "
    "carry a suffix EKS generates",
    (
        "autoscaler-policy",
        "RESOURCE_STAR",
        "['autoscaling:SetDesiredCapacity', 'autoscaling:TerminateInstanceInAutoScalingGroup']",
    ): "limited by a Condition on the `k8s.io/cluster-autoscaler/<cluster>: owned` tag, as upstream's policy "
    "is; Auto Scaling group ARNs carry a generated id",
}


def _documents(recording: Recording) -> list[tuple[str, bool, dict[str, Any]]]:
    found = []
    for type_token, key, trust in POLICY_INPUTS:
        for resource in recording.of_type(type_token):
            value = resource.inputs.get(key)
            if value:
                found.append((resource.name, trust, json.loads(value) if isinstance(value, str) else value))
    return found


def _accepted(name: str, trust: bool, issue: str, detail: str) -> bool:
    if trust and issue in ACCEPTED_IN_TRUST_POLICIES:
        expected = ACCEPTED_IN_TRUST_POLICIES[issue]
        return expected is None or expected == detail
    return (name, issue, detail) in ACCEPTED


@pytest.mark.parametrize("stack", ["dev_platform", "prod_platform"])
def test_parliament_finds_nothing_unexplained(stack: str, request: pytest.FixtureRequest) -> None:
    recording = request.getfixturevalue(stack)
    documents = _documents(recording)
    assert len(documents) >= 8, "the stacks declare roles, inline policies and a bucket policy"
    findings = []
    for name, trust, document in documents:
        for finding in analyze_policy_string(json.dumps(document)).findings:
            if not _accepted(name, trust, finding.issue, str(finding.detail)):
                findings.append((name, finding.issue, finding.detail))
    assert findings == []
