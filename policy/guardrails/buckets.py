"""S3 buckets: encrypted at rest, with every public-access block on.

A bucket's encryption and public-access block are separate resources in the AWS provider, so
this is a stack rule: it links each to its bucket through the `bucket` input's dependencies (the
bucket's id is unknown in a preview) or its literal name."""

from __future__ import annotations

from .model import Resource, Violation

BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BLOCKS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def _targets(resource: Resource, bucket: Resource) -> bool:
    named = bucket.props.get("bucket")
    return bucket.urn in (resource.property_dependencies.get("bucket") or []) or (
        named is not None and resource.props.get("bucket") == named
    )


def check_buckets(resources: list[Resource]) -> list[Violation]:
    violations = []
    for bucket in (r for r in resources if r.type in BUCKETS):
        encrypted = bool(bucket.props.get("serverSideEncryptionConfiguration")) or any(
            r.type in ENCRYPTION and _targets(r, bucket) for r in resources
        )
        blocks = [r for r in resources if r.type == PUBLIC_ACCESS_BLOCK and _targets(r, bucket)]
        if not encrypted:
            violations.append(
                Violation(f"S3 bucket {bucket.name} has no server-side encryption configuration", bucket.urn)
            )
        if not blocks:
            violations.append(Violation(f"S3 bucket {bucket.name} has no public access block", bucket.urn))
        for block in blocks:
            off = [key for key in BLOCKS if block.props.get(key) is not True]
            if off:
                violations.append(
                    Violation(f"S3 bucket {bucket.name}'s public access block leaves {off} off", block.urn)
                )
    return violations
