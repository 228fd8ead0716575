"""The training run's identity: its own ServiceAccount and, on a platform with IRSA, an IAM role.

The role can read the run's dataset and nothing else: `s3:GetObject` on keys
under the dataset's prefix and `s3:ListBucket` limited to that prefix. It
trusts exactly one subject, `system:serviceaccount:<team namespace>:<model>-training`,
so another workload (in the same namespace or not) cannot assume it.

Whether the role exists follows from the platform's outputs alone: a platform
on EKS exports its OIDC provider (`workloadIdentity.kind: irsa`); a platform on
an existing cluster does not, and the run then gets its dataset credentials some
other way (e.g. a node role or a mounted secret of its own).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from mlplatform import labels
from mlplatform.platform.iam import irsa_trust_policy
from mlplatform.platform_contract import IrsaIdentity

ROLE_ARN_ANNOTATION = "eks.amazonaws.com/role-arn"
# IAM's limit for a role name prefix; the provider appends a unique suffix.
MAX_ROLE_PREFIX = 38


def training_service_account_name(model_name: str) -> str:
    return f"{model_name}-training"


def dataset_read_policy(partition: str, bucket: str, prefix: str) -> dict:
    """Read-only access to the keys under `prefix` in `bucket`.

    The prefix is an S3 key prefix, matched as S3 matches it: `2024-06/` covers
    that folder, `2024-06` would also cover `2024-06-old/`. An empty prefix is
    the whole bucket.
    """
    list_statement: dict = {
        "Sid": "ListDataset",
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": f"arn:{partition}:s3:::{bucket}",
    }
    if prefix:
        list_statement["Condition"] = {"StringLike": {"s3:prefix": [f"{prefix}*"]}}
    return {
        "Version": "2012-10-17",
        "Statement": [
            list_statement,
            {
                "Sid": "ReadDataset",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"arn:{partition}:s3:::{bucket}/{prefix}*",
            },
        ],
    }


@dataclass
class TrainingIdentityArgs:
    model_name: str
    namespace: str
    """The team namespace the run goes to."""
    irsa: IrsaIdentity | None
    """The platform's OIDC provider; None: no IAM role (platform on an existing cluster)."""
    dataset: tuple[str, str] | None
    """(bucket, prefix) of an S3 dataset; None: no S3 data to read, so no role."""
    tags: Mapping[str, str] = field(default_factory=dict)


class TrainingIdentity(pulumi.ComponentResource):
    """The run's ServiceAccount, plus its IAM role and read-only dataset policy under IRSA.

    The ServiceAccount does not automount an API token: training never talks to
    the Kubernetes API. The EKS pod identity webhook projects its own web-identity
    token for IRSA, independent of that setting.

    Pass an AWS provider in `opts.providers` when `irsa` is set; its region comes
    from the platform's outputs.
    """

    service_account: k8s.core.v1.ServiceAccount
    service_account_name: str
    # An aws.iam.Role; annotated by its base class because Pulumi resolves these
    # annotations at runtime, and pulumi_aws is imported only when a role is made.
    role: pulumi.CustomResource | None

    def __init__(self, name: str, args: TrainingIdentityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlplatform:model:TrainingIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.service_account_name = sa_name = training_service_account_name(args.model_name)
        self.role = None
        annotations: dict[str, pulumi.Input[str]] | None = None
        grants: list[pulumi.Resource] = []

        if args.irsa is not None and args.dataset is not None:
            # Imported here: a platform without IRSA (mode existing) must not make its
            # model stacks load, or need, the AWS provider.
            import pulumi_aws as aws

            bucket, prefix = args.dataset
            self.role = aws.iam.Role(
                f"{name}-training",
                name_prefix=f"{args.model_name[: MAX_ROLE_PREFIX - len('-train-')]}-train-",
                description=f"Training of {args.model_name}: reads s3://{bucket}/{prefix}",
                assume_role_policy=irsa_trust_policy(
                    args.irsa.oidc_provider_arn, args.irsa.oidc_provider_url, args.namespace, sa_name
                ),
                tags=dict(args.tags),
                opts=child,
            )
            dataset_policy = aws.iam.RolePolicy(
                f"{name}-training-dataset",
                role=self.role.id,
                policy=pulumi.Output.json_dumps(dataset_read_policy(args.irsa.partition, bucket, prefix)),
                opts=child,
            )
            grants.append(dataset_policy)
            annotations = {ROLE_ARN_ANNOTATION: self.role.arn}

        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-training",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=sa_name,
                namespace=args.namespace,
                labels={**labels.k8s_labels("training", name=args.model_name), "app": args.model_name},
                annotations=annotations,
            ),
            automount_service_account_token=False,
            # A pod that starts with the role but before its policy would fail its first read.
            opts=pulumi.ResourceOptions(parent=self, depends_on=grants),
        )

        self.register_outputs(
            {
                "serviceAccount": self.service_account.metadata.name,
                "roleArn": self.role.arn if self.role is not None else None,
            }
        )
