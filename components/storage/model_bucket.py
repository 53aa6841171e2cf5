"""``ModelArtifactBucket``: the hardened S3 bucket that holds model versions.

Creates a rotating KMS key (with an alias) and one S3 bucket with: versioning on,
SSE-KMS default encryption under that key with S3 bucket keys, all four public
access blocks, ``BucketOwnerEnforced`` (ACLs off), a bucket policy that denies
plain HTTP, TLS < 1.2 and uploads under any other encryption or key, and a
lifecycle that aborts incomplete multipart uploads and expires noncurrent
versions. Optionally server access logging, into a log bucket it creates
(SSE-S3, private, expiring) or into an existing one.

Keys follow ``components.storage.layout``: content-addressed blobs
``models/<name>/blobs/sha256/<digest>`` and one ``models/<name>/manifests/<version>.json``
per version, written last; the policy denies any write under ``models/`` without
``If-None-Match`` (nothing there is ever replaced). The owner grants access:
:meth:`grant_read` and :meth:`grant_write` attach a policy to a role, scoped to one
model's prefix, with the KMS actions the key needs.

``protect=True`` (prod) protects and retains the bucket, the key and the log bucket,
and retains (never deletes) the bucket's settings resources, so a retained bucket
stays hardened. ``force_destroy`` (dev only; refused with ``protect``) lets a
``pulumi destroy`` empty the bucket.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.iam import documents
from components.storage import layout, policies
from components.storage.hardening import block_public_access
from components.storage.layout import bucket_name_problem, name_prefix
from components.validation import require_valid

__all__ = [
    "AccessLogSettings",
    "ModelArtifactBucket",
    "ModelArtifactBucketArgs",
    "name_prefix",
]

TYPE_TOKEN = "mlstack:storage:ModelArtifactBucket"
BUCKET_PREFIX_MAX_LENGTH = 37
"""Longest ``bucket_prefix`` the provider accepts (it appends a 26-character suffix)."""

_BUCKET_PREFIX = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_KEY_ALIAS = re.compile(r"^[A-Za-z0-9/_-]{1,250}$")
_LOG_PREFIX = re.compile(r"^([A-Za-z0-9!_.*'()-]+/)*$")


@dataclass(frozen=True)
class AccessLogSettings:
    """S3 server access logging of the artifact bucket. Default: off (the stacks turn it on).

    ``enabled`` with no ``target_bucket`` creates a log bucket (SSE-S3, the only default
    encryption log delivery supports; private; objects expire after ``retention_days``).
    With ``target_bucket`` logs go to that existing bucket, whose policy must already
    allow ``logging.s3.amazonaws.com``.
    """

    enabled: bool = False
    target_bucket: str | None = None
    target_prefix: str = "model-bucket/"
    retention_days: int = 365


@dataclass(frozen=True)
class ModelArtifactBucketArgs:
    """Inputs of :class:`ModelArtifactBucket`.

    ``region``/``partition`` scope the KMS grants (``kms:ViaService``). ``bucket_name``
    fixes the physical name; without it the provider picks ``<bucket_prefix><suffix>``.
    ``key_alias`` defaults to the bucket name or prefix.
    """

    region: str
    partition: str = "aws"
    bucket_name: str | None = None
    bucket_prefix: str = "mlstack-models-"
    key_alias: str | None = None
    noncurrent_version_expiration_days: int = 90
    """Days an overwritten or deleted object version is kept before S3 removes it."""
    abort_incomplete_multipart_upload_days: int = 7
    """Days after which S3 discards the parts of an upload that never completed."""
    key_deletion_window_days: int = 30
    access_logs: AccessLogSettings = field(default_factory=AccessLogSettings)
    force_destroy: bool = False
    protect: bool = False

    @property
    def alias_name(self) -> str:
        base = self.key_alias or self.bucket_name or self.bucket_prefix.rstrip("-")
        return base if base.startswith("alias/") else f"alias/{base}"

    def problems(self) -> list[str]:
        """Everything wrong with these args, as 'field: value: allowed' lines."""
        found: list[str] = []
        if self.bucket_name is not None:
            problem = bucket_name_problem(self.bucket_name)
            if problem:
                found.append(f"bucket_name: {self.bucket_name!r}: {problem}")
        elif len(self.bucket_prefix) > BUCKET_PREFIX_MAX_LENGTH or not _BUCKET_PREFIX.fullmatch(
            self.bucket_prefix
        ):
            found.append(
                f"bucket_prefix: {self.bucket_prefix!r}: 1-{BUCKET_PREFIX_MAX_LENGTH} lowercase "
                "letters, digits or '-', starting with a letter or digit"
            )
        alias = self.alias_name.removeprefix("alias/")
        if not _KEY_ALIAS.fullmatch(alias) or alias.startswith("aws/"):
            found.append(
                f"key_alias: {self.alias_name!r}: letters, digits, '/', '_' or '-', not aws/..."
            )
        if not 1 <= self.noncurrent_version_expiration_days <= 36500:
            found.append(
                f"noncurrent_version_expiration_days: {self.noncurrent_version_expiration_days}: "
                "allowed 1-36500"
            )
        if not 1 <= self.abort_incomplete_multipart_upload_days <= 365:
            found.append(
                "abort_incomplete_multipart_upload_days: "
                f"{self.abort_incomplete_multipart_upload_days}: allowed 1-365"
            )
        if not 7 <= self.key_deletion_window_days <= 30:
            found.append(f"key_deletion_window_days: {self.key_deletion_window_days}: allowed 7-30")
        if self.force_destroy and self.protect:
            found.append(
                "force_destroy: True: not allowed on a protected bucket (protect=True); "
                "force_destroy is for throwaway dev stacks"
            )
        logs = self.access_logs
        if logs.enabled:
            if not _LOG_PREFIX.fullmatch(logs.target_prefix):
                found.append(
                    f"access_logs.target_prefix: {logs.target_prefix!r}: empty, or key "
                    "segments each ending in '/'"
                )
            if logs.target_bucket is not None:
                problem = bucket_name_problem(logs.target_bucket, allow_dots=True)
                if problem:
                    found.append(f"access_logs.target_bucket: {logs.target_bucket!r}: {problem}")
            elif self.bucket_name is not None and len(self.bucket_name) > 58:
                found.append(
                    f"bucket_name: {self.bucket_name!r}: at most 58 characters when the log "
                    "bucket <bucket_name>-logs is created"
                )
            elif self.bucket_name is None and len(self.bucket_prefix) > (
                BUCKET_PREFIX_MAX_LENGTH - len("logs-")
            ):
                found.append(
                    f"bucket_prefix: {self.bucket_prefix!r}: at most "
                    f"{BUCKET_PREFIX_MAX_LENGTH - 5} characters when the log bucket is created"
                )
            if not 1 <= logs.retention_days <= 36500:
                found.append(f"access_logs.retention_days: {logs.retention_days}: allowed 1-36500")
        return found


class ModelArtifactBucket(pulumi.ComponentResource):
    """The model-artifact bucket, its KMS key, and owner-side grants to it."""

    bucket_name: pulumi.Output[str]
    """Physical bucket name."""
    bucket_arn: pulumi.Output[str]
    key_arn: pulumi.Output[str]
    """ARN of the bucket's KMS key."""
    log_bucket_name: pulumi.Output[str] | None
    """Bucket receiving the access logs (None when logging is off)."""

    def __init__(
        self, name: str, args: ModelArtifactBucketArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        require_valid("ModelArtifactBucket", name, args.problems())
        self._name = name
        self._args = args
        stateful = pulumi.ResourceOptions(
            parent=self, protect=args.protect, retain_on_delete=args.protect
        )

        key = aws.kms.Key(
            f"{name}-key",
            aws.kms.KeyArgs(
                description="Model artifacts (SSE-KMS of the model bucket)",
                enable_key_rotation=True,
                deletion_window_in_days=args.key_deletion_window_days,
            ),
            opts=stateful,
        )
        aws.kms.Alias(
            f"{name}-key-alias",
            aws.kms.AliasArgs(name=args.alias_name, target_key_id=key.key_id),
            # Fixed name: a replacement deletes the old alias first.
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            aws.s3.BucketArgs(
                bucket=args.bucket_name,
                bucket_prefix=None if args.bucket_name else args.bucket_prefix,
                force_destroy=args.force_destroy,
            ),
            opts=stateful,
        )
        self.bucket_name = bucket.id
        self.bucket_arn = pulumi.Output.concat("arn:", args.partition, ":s3:::", bucket.id)
        self.key_arn = key.arn

        public_block = self._harden(name, bucket.id, "")
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            aws.s3.BucketVersioningInitArgs(
                bucket=bucket.id,
                versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                    status="Enabled"
                ),
            ),
            opts=self._settings(),
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            aws.s3.BucketServerSideEncryptionConfigurationInitArgs(
                bucket=bucket.id,
                rules=[
                    aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                        apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                            sse_algorithm="aws:kms", kms_master_key_id=key.arn
                        ),
                        bucket_key_enabled=True,
                    )
                ],
            ),
            opts=self._settings(),
        )
        aws.s3.BucketPolicy(
            f"{name}-policy",
            aws.s3.BucketPolicyArgs(
                bucket=bucket.id,
                policy=pulumi.Output.all(self.bucket_arn, key.arn).apply(
                    lambda v: documents.to_json(policies.bucket_policy(v[0], v[1]))
                ),
            ),
            opts=self._settings(depends_on=[public_block]),
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            aws.s3.BucketLifecycleConfigurationArgs(
                bucket=bucket.id,
                rules=[
                    _abort_uploads_rule(args.abort_incomplete_multipart_upload_days),
                    aws.s3.BucketLifecycleConfigurationRuleArgs(
                        id="expire-noncurrent-versions",
                        status="Enabled",
                        filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                        noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                            noncurrent_days=args.noncurrent_version_expiration_days
                        ),
                        expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                            expired_object_delete_marker=True
                        ),
                    ),
                ],
            ),
            opts=self._settings(depends_on=[versioning]),
        )

        self.log_bucket_name = None
        if args.access_logs.enabled:
            self.log_bucket_name = self._access_logging(bucket, key)

        self.register_outputs(
            {"bucketName": self.bucket_name, "bucketArn": self.bucket_arn, "keyArn": self.key_arn}
        )

    # ------------------------------------------------------------------ building blocks

    def _settings(self, depends_on: list[pulumi.Resource] | None = None) -> pulumi.ResourceOptions:
        """Options of a bucket settings resource: retained (never reverted) when protected."""
        return pulumi.ResourceOptions(
            parent=self, retain_on_delete=self._args.protect, depends_on=depends_on or []
        )

    def _harden(self, name: str, bucket_id: pulumi.Input[str], role: str) -> pulumi.Resource:
        """Public access blocks + BucketOwnerEnforced on one bucket; returns the block."""
        return block_public_access(f"{name}{role}", bucket_id, self._settings())

    def _access_logging(self, bucket: aws.s3.Bucket, key: aws.kms.Key) -> pulumi.Output[str]:
        name, args = self._name, self._args
        logs = args.access_logs
        depends: list[pulumi.Resource] = []
        if logs.target_bucket is not None:
            target: pulumi.Output[str] = pulumi.Output.from_input(logs.target_bucket)
        else:
            log_bucket = aws.s3.Bucket(
                f"{name}-logs-bucket",
                aws.s3.BucketArgs(
                    bucket=f"{args.bucket_name}-logs" if args.bucket_name else None,
                    bucket_prefix=None if args.bucket_name else f"{args.bucket_prefix}logs-",
                    force_destroy=args.force_destroy,
                ),
                opts=pulumi.ResourceOptions(
                    parent=self, protect=args.protect, retain_on_delete=args.protect
                ),
            )
            target = log_bucket.id
            log_arn = pulumi.Output.concat("arn:", args.partition, ":s3:::", log_bucket.id)
            block = self._harden(name, log_bucket.id, "-logs")
            aws.s3.BucketServerSideEncryptionConfiguration(
                f"{name}-logs-encryption",
                aws.s3.BucketServerSideEncryptionConfigurationInitArgs(
                    bucket=log_bucket.id,
                    rules=[
                        aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                            apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                                sse_algorithm="AES256"
                            ),
                        )
                    ],
                ),
                opts=self._settings(),
            )
            aws.s3.BucketLifecycleConfiguration(
                f"{name}-logs-lifecycle",
                aws.s3.BucketLifecycleConfigurationArgs(
                    bucket=log_bucket.id,
                    rules=[
                        _abort_uploads_rule(args.abort_incomplete_multipart_upload_days),
                        aws.s3.BucketLifecycleConfigurationRuleArgs(
                            id="expire-access-logs",
                            status="Enabled",
                            filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                            expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                                days=logs.retention_days
                            ),
                        ),
                    ],
                ),
                opts=self._settings(),
            )
            # The account id is the fifth field of the key's ARN: no invoke needed.
            account_id = key.arn.apply(lambda arn: arn.split(":")[4])
            log_policy = aws.s3.BucketPolicy(
                f"{name}-logs-policy",
                aws.s3.BucketPolicyArgs(
                    bucket=log_bucket.id,
                    policy=pulumi.Output.all(log_arn, self.bucket_arn, account_id).apply(
                        lambda v: documents.to_json(
                            policies.log_bucket_policy(v[0], logs.target_prefix, v[1], v[2])
                        )
                    ),
                ),
                opts=self._settings(depends_on=[block]),
            )
            depends = [log_policy]
        aws.s3.BucketLogging(
            f"{name}-access-logging",
            aws.s3.BucketLoggingInitArgs(
                bucket=bucket.id,
                target_bucket=target,
                target_prefix=logs.target_prefix,
                target_object_key_format=aws.s3.BucketLoggingTargetObjectKeyFormatArgs(
                    partitioned_prefix=aws.s3.BucketLoggingTargetObjectKeyFormatPartitionedPrefixArgs(
                        partition_date_source="EventTime"
                    )
                ),
            ),
            opts=self._settings(depends_on=depends),
        )
        return target

    # ------------------------------------------------------------------ grants

    def grant_read(self, role: aws.iam.Role, prefix: str, name: str) -> aws.iam.RolePolicy:
        """Let ``role`` list and read objects under ``prefix`` (and decrypt them).

        ``prefix``: ``name_prefix(name)`` (``models/<name>/``: the model's blobs and
        manifests, i.e. every version of it), or ``models/``. ``name``: the Pulumi name of the
        created ``aws.iam.RolePolicy``, unique in the stack; it is parented to ``role``
        so it lives and dies with the role it grants to.
        """
        return self._grant("read", role, prefix, name)

    def grant_write(self, role: aws.iam.Role, prefix: str, name: str) -> aws.iam.RolePolicy:
        """Let ``role`` push under ``prefix``: list, read, put, abort uploads (never delete),
        with ``kms:GenerateDataKey`` + ``kms:Decrypt``. Same arguments as :meth:`grant_read`."""
        return self._grant("write", role, prefix, name)

    def _grant(
        self, mode: policies.GrantMode, role: aws.iam.Role, prefix: str, name: str
    ) -> aws.iam.RolePolicy:
        problem = layout.grant_prefix_problem(prefix)
        if problem:
            raise ValueError(
                f"ModelArtifactBucket {self._name!r}: grant_{mode} prefix {prefix!r}: {problem}"
            )
        args = self._args
        document = pulumi.Output.all(self.bucket_arn, self.key_arn).apply(
            lambda v: documents.to_json(
                policies.grant_policy(
                    mode, v[0], v[1], prefix, region=args.region, partition=args.partition
                )
            )
        )
        return aws.iam.RolePolicy(
            name,
            aws.iam.RolePolicyArgs(role=role.name, policy=document),
            opts=pulumi.ResourceOptions(parent=role),
        )


def _abort_uploads_rule(days: int) -> aws.s3.BucketLifecycleConfigurationRuleArgs:
    return aws.s3.BucketLifecycleConfigurationRuleArgs(
        id="abort-incomplete-multipart-uploads",
        status="Enabled",
        filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
        abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
            days_after_initiation=days
        ),
    )
