"""The platform's `mlplatform:ci` config: who in GitHub Actions may assume which AWS role.

Kept apart from `config.py` (which embeds it in `PlatformConfig`); the rules that
depend on the cluster (a private endpoint needs a runner inside the VPC) live with
`PlatformConfig`, which knows the cluster, and call `check_reachable` here.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from mlplatform.configuration import ConfigModel

GITHUB_OIDC_URL = "https://token.actions.githubusercontent.com"
# The longest platform update, sized in `CiConfig.deploy_session_seconds`' description.
DEPLOY_SESSION_SECONDS = 3 * 3600
GITHUB_OIDC_ISSUER = GITHUB_OIDC_URL.removeprefix("https://")

# GitHub owner: letters, digits and single inner hyphens, at most 39 characters;
# repository: letters, digits, `.`, `_`, `-`. No wildcard can pass: the value
# becomes the `sub` claim the roles trust, and a `*` there would trust strangers.
REPOSITORY_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}/[A-Za-z0-9._-]{1,100}$"
# A branch or environment name as it appears in the claim; `*`, `?` and spaces refused.
ClaimName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$")]
# A self-hosted runner label: what `runs-on` names.
RunnerLabel = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]


class CiConfig(ConfigModel):
    """GitHub Actions' identity in AWS and in the cluster, without static keys.

    Three roles, each trusted only for one kind of job of one repository: `preview`
    (pull requests, read-only), `deploy` (platform stacks: cluster admin) and
    `deployModels` (model stacks: edit in the serving and team namespaces only).
    """

    enabled: bool = Field(
        False,
        description="Create GitHub's OIDC provider, the CI roles and their EKS access entries (mode aws only).",
    )
    github_repository: str | None = Field(
        None,
        description="`owner/name` of the repository whose workflows may assume the roles; it is written into "
        "the roles' `sub` conditions, so a wrong value locks CI out (or lets another repository in).",
    )
    deploy_branch: ClaimName | None = Field(
        None,
        description="Also trust deploy jobs that run on this branch without a GitHub environment "
        "(`repo:<repo>:ref:refs/heads/<branch>`). Off by default: the workflows run every deploy job in an "
        "environment, which adds branch rules and required reviewers.",
    )
    environments: list[ClaimName] = Field(
        default_factory=lambda: ["dev", "staging", "prod"],
        description="GitHub environments whose jobs may assume the deploy roles "
        "(`repo:<repo>:environment:<env>`); the deploy workflow names each job's environment after its "
        "stack's `environment`.",
    )
    runner_label: RunnerLabel | None = Field(
        None,
        description="Label of the self-hosted runners inside the VPC. Required when "
        "`cluster.endpointPublicAccess` is false: hosted runners cannot reach a private endpoint.",
    )
    deploy_session_seconds: int = Field(
        DEPLOY_SESSION_SECONDS,
        ge=3600,
        le=43200,
        description="Maximum session of the `deploy` and `deployModels` roles, in seconds; the workflows' "
        "`role-duration-seconds` must not exceed it. Default 3 hours: a first platform `up` creates EKS "
        "(10-15 min), a Multi-AZ RDS (up to 40 min), the node groups (5-10 min) and waits on the Helm "
        "releases in order (up to 30 min): about 95 minutes at worst, with half again as margin.",
    )
    oidc_provider_arn: str | None = Field(
        None,
        pattern=r"^arn:aws[a-z-]*:iam::\d{12}:oidc-provider/token\.actions\.githubusercontent\.com$",
        description="An existing IAM OIDC provider for GitHub in this account (IAM allows one per URL); "
        "null creates it.",
    )

    @field_validator("github_repository")
    @classmethod
    def _repository(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(REPOSITORY_PATTERN, value):
            raise ValueError(
                f"'{value}' is not a GitHub repository `owner/name` (letters, digits, '-' in the owner; "
                "letters, digits, '.', '_', '-' in the name; no wildcards)"
            )
        return value

    @field_validator("environments")
    @classmethod
    def _distinct(cls, values: list[str]) -> list[str]:
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise ValueError(f"environments repeated: {repeated}")
        return values

    @model_validator(mode="after")
    def _complete(self) -> CiConfig:
        if not self.enabled:
            return self
        if self.github_repository is None:
            raise ValueError("ci.enabled is true but ci.githubRepository is not set (`owner/name`)")
        if not self.environments and self.deploy_branch is None:
            raise ValueError(
                "ci.environments is empty and ci.deployBranch is not set: no deploy job could assume a role"
            )
        return self

    def pull_request_subject(self) -> str:
        """The `sub` claim of a job triggered by a pull request (preview)."""
        return f"repo:{self.github_repository}:pull_request"

    def deploy_subjects(self) -> list[str]:
        """The `sub` claims of deploy jobs: one per environment, plus the deploy branch if set."""
        subjects = [f"repo:{self.github_repository}:environment:{env}" for env in self.environments]
        if self.deploy_branch is not None:
            subjects.append(f"repo:{self.github_repository}:ref:refs/heads/{self.deploy_branch}")
        return subjects


def check_reachable(ci: CiConfig, *, mode: str, endpoint_public_access: bool) -> None:
    """Refuse the combinations under which CI could never reach the cluster."""
    if not ci.enabled:
        return
    if mode != "aws":
        raise ValueError(
            "ci.enabled needs cluster.mode 'aws': it declares IAM roles and EKS access entries; with an "
            "existing cluster grant CI access there"
        )
    if not endpoint_public_access and ci.runner_label is None:
        raise ValueError(
            "cluster.endpointPublicAccess is false and ci.runnerLabel is not set: GitHub-hosted runners cannot "
            "reach a private API endpoint; name the label of self-hosted runners in the VPC, or make the "
            "endpoint public with cluster.publicAccessCidrs"
        )
