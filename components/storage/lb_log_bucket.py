"""``LoadBalancerLogBucket``: the bucket the stack's load balancers write access logs to.

Created by the stack itself, so a load balancer can never point at a bucket that does
not exist (ELB test-writes to the bucket when access logs are turned on, and a missing
bucket or policy fails the load balancer: it never gets an address).

* Encryption: SSE-S3 (``AES256``). The Application Load Balancer guide ("Enable access
  logs", bucket requirements) states that SSE-S3 is the only server-side encryption
  option ALB access logs support; SSE-KMS is not.
* Public access blocked (all four settings), ``BucketOwnerEnforced``; TLS-only policy.
* Delivery policy (:func:`delivery_statements`), the current documented form: in the
  Regions ELB served before August 2022 the Region's Elastic Load Balancing account
  (:data:`ELB_ACCOUNTS`) may ``s3:PutObject`` under ``<prefix>/AWSLogs/<account>/``; in
  newer Regions the ``logdelivery.elasticloadbalancing.amazonaws.com`` service principal
  does. NLB (TLS listener) logs come through ``delivery.logs.amazonaws.com``, limited to
  this account's log sources.
* Lifecycle: objects expire after ``retention_days``; incomplete uploads are aborted.
* ``protect`` (prod): the bucket is protected and retained on delete, its settings are
  retained, ``force_destroy`` is off; otherwise the bucket is emptied on destroy.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.iam import actions, documents
from components.iam.documents import PolicyDocument
from components.storage.hardening import block_public_access
from components.storage.policies import MIN_TLS_VERSION
from components.validation import require_valid

TYPE_TOKEN = "mlstack:storage:LoadBalancerLogBucket"
ELB_LOG_DELIVERY_SERVICE = "logdelivery.elasticloadbalancing.amazonaws.com"
VENDED_LOG_DELIVERY_SERVICE = "delivery.logs.amazonaws.com"

ELB_ACCOUNTS: dict[str, str] = {
    "us-east-1": "127311923021",
    "us-east-2": "033677994240",
    "us-west-1": "027434742980",
    "us-west-2": "797873946194",
    "af-south-1": "098369216593",
    "ap-east-1": "754344448648",
    "ap-south-1": "718504428378",
    "ap-northeast-1": "582318560864",
    "ap-northeast-2": "600734575887",
    "ap-northeast-3": "383597477331",
    "ap-southeast-1": "114774131450",
    "ap-southeast-2": "783225319266",
    "ap-southeast-3": "589379963580",
    "ca-central-1": "985666609251",
    "eu-central-1": "054676820928",
    "eu-west-1": "156460612806",
    "eu-west-2": "652711504416",
    "eu-west-3": "009996457667",
    "eu-south-1": "635631232127",
    "eu-north-1": "897822967062",
    "me-south-1": "076674570225",
    "sa-east-1": "507241528517",
    "us-gov-west-1": "048591011584",
    "us-gov-east-1": "190560391635",
    "cn-north-1": "638102146993",
    "cn-northwest-1": "037604701340",
}
"""Elastic Load Balancing account per Region available before August 2022. Source: Elastic
Load Balancing User Guide, "Enable access logs for your Application Load Balancer", step 2
(attach a policy to the bucket); the same table backs the AWS provider's
``aws_elb_service_account`` data source. Regions not listed use the service principal."""


def delivery_principal(region: str, partition: str = "aws") -> dict[str, str]:
    """Who delivers ALB access logs in ``region``: the Region's ELB account (Regions
    before August 2022) or the log-delivery service principal (newer Regions)."""
    account = ELB_ACCOUNTS.get(region)
    if account is not None:
        return {"AWS": f"arn:{partition}:iam::{account}:root"}
    return {"Service": ELB_LOG_DELIVERY_SERVICE}


def delivery_statements(
    bucket_arn: str, prefix: str, account_id: str, region: str, partition: str = "aws"
) -> list[dict[str, object]]:
    """The statements that let ELB write this account's logs under ``prefix``."""
    logs = f"{bucket_arn}/{prefix}/AWSLogs/{account_id}/*"
    return [
        {
            "Sid": "ElbAccessLogDelivery",
            "Effect": "Allow",
            "Principal": delivery_principal(region, partition),
            "Action": "s3:PutObject",
            "Resource": logs,
        },
        {
            "Sid": "NlbAccessLogDelivery",
            "Effect": "Allow",
            "Principal": {"Service": VENDED_LOG_DELIVERY_SERVICE},
            "Action": "s3:PutObject",
            "Resource": logs,
            "Condition": {
                "StringEquals": {
                    "s3:x-amz-acl": "bucket-owner-full-control",
                    "aws:SourceAccount": account_id,
                },
                "ArnLike": {"aws:SourceArn": f"arn:{partition}:logs:{region}:{account_id}:*"},
            },
        },
        {
            "Sid": "NlbAccessLogAclCheck",
            "Effect": "Allow",
            "Principal": {"Service": VENDED_LOG_DELIVERY_SERVICE},
            "Action": "s3:GetBucketAcl",
            "Resource": bucket_arn,
            "Condition": {
                "StringEquals": {"aws:SourceAccount": account_id},
                "ArnLike": {"aws:SourceArn": f"arn:{partition}:logs:{region}:{account_id}:*"},
            },
        },
    ]


def log_bucket_policy(
    bucket_arn: str, prefix: str, account_id: str, region: str, partition: str = "aws"
) -> PolicyDocument:
    """TLS only (and TLS >= 1.2), plus ELB log delivery."""
    both = [bucket_arn, f"{bucket_arn}/*"]
    deny = [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": actions.S3_ALL,
            "Resource": both,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Sid": "DenyOutdatedTls",
            "Effect": "Deny",
            "Principal": "*",
            "Action": actions.S3_ALL,
            "Resource": both,
            "Condition": {"NumericLessThan": {"s3:TlsVersion": MIN_TLS_VERSION}},
        },
    ]
    return documents.document(
        *deny, *delivery_statements(bucket_arn, prefix, account_id, region, partition)
    )


@dataclass(frozen=True)
class LoadBalancerLogBucketArgs:
    """Inputs of :class:`LoadBalancerLogBucket`. ``account_id``: this account (the
    ``AWSLogs/<account>/`` path ELB writes under). ``bucket_prefix``: at most 37 chars."""

    region: str
    account_id: pulumi.Input[str]
    bucket_prefix: str
    partition: str = "aws"
    prefix: str = "alb"
    retention_days: int = 90
    protect: bool = False

    def problems(self) -> list[str]:
        found: list[str] = []
        if not 1 <= self.retention_days <= 3650:
            found.append(f"retention_days: {self.retention_days}: allowed 1..3650")
        if not self.prefix or self.prefix.startswith("/") or self.prefix.endswith("/"):
            found.append(f"prefix: {self.prefix!r}: a key prefix without leading/trailing '/'")
        if "AWSLogs" in self.prefix:
            found.append(f"prefix: {self.prefix!r}: must not contain AWSLogs")
        if len(self.bucket_prefix) > 37:
            found.append(f"bucket_prefix: {self.bucket_prefix!r}: at most 37 characters")
        return found


class LoadBalancerLogBucket(pulumi.ComponentResource):
    """The access-log bucket of the stack's load balancers."""

    bucket_name: pulumi.Output[str]
    policy: aws.s3.BucketPolicy
    """Load balancers depend on it: ELB checks write access when logs are turned on."""

    def __init__(
        self,
        name: str,
        args: LoadBalancerLogBucketArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        require_valid("LoadBalancerLogBucket", name, args.problems())
        super().__init__(TYPE_TOKEN, name, None, opts)
        settings = pulumi.ResourceOptions(parent=self, retain_on_delete=args.protect)
        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            aws.s3.BucketArgs(bucket_prefix=args.bucket_prefix, force_destroy=not args.protect),
            opts=pulumi.ResourceOptions(
                parent=self, protect=args.protect, retain_on_delete=args.protect
            ),
        )
        self.bucket_name = bucket.id
        arn = pulumi.Output.concat("arn:", args.partition, ":s3:::", bucket.id)
        block = block_public_access(name, bucket.id, settings)
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            aws.s3.BucketVersioningInitArgs(
                bucket=bucket.id,
                versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                    status="Enabled"
                ),
            ),
            opts=settings,
        )
        encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            aws.s3.BucketServerSideEncryptionConfigurationInitArgs(
                bucket=bucket.id,
                rules=[
                    aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                        apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                            sse_algorithm="AES256"
                        ),
                    )
                ],
            ),
            opts=settings,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            aws.s3.BucketLifecycleConfigurationArgs(
                bucket=bucket.id,
                rules=[
                    aws.s3.BucketLifecycleConfigurationRuleArgs(
                        id="expire-access-logs",
                        status="Enabled",
                        filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                        expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                            days=args.retention_days
                        ),
                        noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                            noncurrent_days=1
                        ),
                        abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                            days_after_initiation=1
                        ),
                    )
                ],
            ),
            opts=pulumi.ResourceOptions(
                parent=self, retain_on_delete=args.protect, depends_on=[versioning]
            ),
        )
        self.policy = aws.s3.BucketPolicy(
            f"{name}-policy",
            aws.s3.BucketPolicyArgs(
                bucket=bucket.id,
                policy=pulumi.Output.all(arn, args.account_id).apply(
                    lambda v: documents.to_json(
                        log_bucket_policy(
                            str(v[0]), args.prefix, str(v[1]), args.region, args.partition
                        )
                    )
                ),
            ),
            opts=pulumi.ResourceOptions(
                parent=self, retain_on_delete=args.protect, depends_on=[block, encryption]
            ),
        )
        self.register_outputs({"bucketName": self.bucket_name})
