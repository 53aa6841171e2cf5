"""What every bucket the stack creates gets: no public access, no ACLs."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


def block_public_access(
    name: str, bucket_id: pulumi.Input[str], opts: pulumi.ResourceOptions
) -> aws.s3.BucketPublicAccessBlock:
    """All four public access blocks and ``BucketOwnerEnforced`` ownership (ACLs off) on
    one bucket, as ``<name>-public-access-block`` and ``<name>-ownership``. Returns the
    block: a bucket policy depends on it, or S3 may refuse the policy as public."""
    block = aws.s3.BucketPublicAccessBlock(
        f"{name}-public-access-block",
        aws.s3.BucketPublicAccessBlockArgs(
            bucket=bucket_id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
        ),
        opts=opts,
    )
    aws.s3.BucketOwnershipControls(
        f"{name}-ownership",
        aws.s3.BucketOwnershipControlsArgs(
            bucket=bucket_id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
        ),
        opts=opts,
    )
    return block
