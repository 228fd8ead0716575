"""MLflow's artifact store in mode aws: a private, versioned S3 bucket and the IRSA role
that is the only identity allowed to read and write it.

Imported by the component only in mode aws (it needs pulumi_aws); what both modes
share about the artifact store is in `store`.

The bucket is stateful: its logical name (`<registry>-artifacts`) must never change,
and the caller passes the protection options (`stateful`) that deletion protection asks
for. The other resources here (public access block, versioning, ...) carry no data and
are parented like any other child.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws

from mlplatform.platform.iam import irsa_trust_policy
from mlplatform.platform.registry_config import MlflowConfig


def artifact_bucket(
    name: str,
    config: MlflowConfig,
    tags: Mapping[str, str],
    *,
    parent: pulumi.Resource,
    stateful: pulumi.ResourceOptions,
) -> aws.s3.Bucket:
    """The bucket, locked down: no public access, TLS only, versioned, SSE-S3, lifecycle from config."""
    child = pulumi.ResourceOptions(parent=parent)
    # No force_destroy: deleting the stack must not silently delete every model artifact.
    bucket = aws.s3.Bucket(f"{name}-artifacts", bucket=config.artifact_bucket, tags=dict(tags), opts=stateful)
    public_access = aws.s3.BucketPublicAccessBlock(
        f"{name}-artifacts-public-access",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=child,
    )
    aws.s3.BucketOwnershipControls(
        f"{name}-artifacts-ownership",
        bucket=bucket.id,
        rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
        opts=child,
    )
    versioning = aws.s3.BucketVersioning(
        f"{name}-artifacts-versioning",
        bucket=bucket.id,
        versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
        opts=child,
    )
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-artifacts-encryption",
        bucket=bucket.id,
        rules=[
            {
                # SSE-S3: no KMS key to manage, and no kms:* grants the IRSA role would need.
                "apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"},
                "bucket_key_enabled": True,
            }
        ],
        opts=child,
    )
    aws.s3.BucketLifecycleConfiguration(
        f"{name}-artifacts-lifecycle",
        bucket=bucket.id,
        rules=lifecycle_rules(config),
        # Noncurrent-version rules only make sense once versioning is on.
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[versioning]),
    )
    aws.s3.BucketPolicy(
        f"{name}-artifacts-tls-only",
        bucket=bucket.id,
        policy=pulumi.Output.json_dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "DenyInsecureTransport",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [bucket.arn, pulumi.Output.concat(bucket.arn, "/*")],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ],
            }
        ),
        # S3 rejects policy writes that race the public access block being applied.
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[public_access]),
    )
    return bucket


def bucket_access_role(
    name: str,
    *,
    oidc_provider_arn: pulumi.Input[str],
    oidc_provider_url: pulumi.Input[str],
    namespace: pulumi.Input[str],
    service_account: str,
    bucket: aws.s3.Bucket,
    tags: Mapping[str, str],
    parent: pulumi.Resource,
) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
    """The IRSA role of the MLflow server's ServiceAccount: object access to this bucket, nothing else.

    Returns the policy too: the server must wait for it before its first upload."""
    role = aws.iam.Role(
        f"{name}-irsa",
        description="MLflow server: read and write its artifact bucket (IRSA).",
        assume_role_policy=irsa_trust_policy(oidc_provider_arn, oidc_provider_url, namespace, service_account),
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    policy = aws.iam.RolePolicy(
        f"{name}-irsa-s3",
        role=role.id,
        policy=pulumi.Output.json_dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "ListArtifactBucket",
                        "Effect": "Allow",
                        "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                        "Resource": bucket.arn,
                    },
                    {
                        "Sid": "ReadWriteArtifacts",
                        "Effect": "Allow",
                        "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                        "Resource": pulumi.Output.concat(bucket.arn, "/*"),
                    },
                ],
            }
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return role, policy


def lifecycle_rules(config: MlflowConfig) -> list[aws.s3.BucketLifecycleConfigurationRuleArgs]:
    """Artifact lifecycle from config; each rule applies to the whole bucket."""
    lifecycle = config.lifecycle
    every_object = aws.s3.BucketLifecycleConfigurationRuleFilterArgs()
    rules = [
        aws.s3.BucketLifecycleConfigurationRuleArgs(
            id="expire-noncurrent-versions",
            status="Enabled",
            filter=every_object,
            noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                noncurrent_days=lifecycle.noncurrent_version_expiration_days
            ),
        ),
        aws.s3.BucketLifecycleConfigurationRuleArgs(
            id="abort-incomplete-multipart-uploads",
            status="Enabled",
            filter=every_object,
            abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                days_after_initiation=lifecycle.abort_incomplete_multipart_days
            ),
        ),
    ]
    if lifecycle.transition_to_ia_days is not None:
        rules.append(
            aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="transition-to-standard-ia",
                status="Enabled",
                filter=every_object,
                transitions=[
                    aws.s3.BucketLifecycleConfigurationRuleTransitionArgs(
                        days=lifecycle.transition_to_ia_days, storage_class="STANDARD_IA"
                    )
                ],
            )
        )
    if lifecycle.expiration_days is not None:
        rules.append(
            aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="expire-artifacts",
                status="Enabled",
                filter=every_object,
                expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=lifecycle.expiration_days),
            )
        )
    return rules
