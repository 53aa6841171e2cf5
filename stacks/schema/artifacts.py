"""``mlstack:artifacts``: the model-artifact bucket (``components.storage.ModelArtifactBucket``).

Cross-key rules (``forceDestroy`` only in dev, access logs on in prod) live in
``stacks.config.ENVIRONMENT_RULES``.
"""

from __future__ import annotations

from pydantic import field_validator

from components.storage.layout import bucket_name_problem
from stacks.schema.base import ConfigModel, fixed, knob

BUCKET_NAME_MAX_LENGTH = 58
"""Room for the ``-logs`` suffix of the log bucket created next to a named bucket."""


class AccessLoggingConfig(ConfigModel):
    """S3 server access logs of the artifact bucket."""

    enabled: bool = fixed(
        True,
        description=(
            "Record every request to the bucket. Required in prod; the same in every stack "
            "(stacks differ in values, never in shape)."
        ),
    )
    target_bucket: str | None = knob(
        None,
        description=(
            "Existing bucket receiving the logs (its policy must allow "
            "logging.s3.amazonaws.com). Default: a private log bucket created alongside. "
            "Set it in every stack or in none, so that stacks keep one shape."
        ),
    )
    target_prefix: str = fixed(
        "model-bucket/",
        description="Key prefix of the log objects, e.g. model-bucket/ (or empty).",
        pattern=r"^([A-Za-z0-9!_.*'()-]+/)*$",
    )
    retention_days: int = knob(
        365, ge=1, le=36500, description="Days log objects are kept in the created log bucket."
    )

    @field_validator("target_bucket")
    @classmethod
    def _target_bucket_name(cls, value: str | None) -> str | None:
        if value is not None:
            problem = bucket_name_problem(value, allow_dots=True)
            if problem:
                raise ValueError(f"not an S3 bucket name: {problem}")
        return value


class ArtifactsConfig(ConfigModel):
    """The bucket holding model blobs and manifests (versioned, SSE-KMS, private)."""

    bucket_name: str | None = knob(
        None,
        description=(
            "Physical bucket name (globally unique, no dots, at most 58 characters). "
            "Default: mlstack-<stack>-models-<random suffix>."
        ),
    )
    noncurrent_version_expiration_days: int = knob(
        90,
        ge=1,
        le=36500,
        description="Days an overwritten or deleted object version stays recoverable.",
    )
    abort_incomplete_multipart_upload_days: int = fixed(
        7, ge=1, le=365, description="Days before the parts of an unfinished upload are discarded."
    )
    key_deletion_window_days: int = fixed(
        30, ge=7, le=30, description="Waiting period before the bucket's KMS key is deleted."
    )
    access_logging: AccessLoggingConfig = knob(
        default_factory=AccessLoggingConfig, description="Server access logs."
    )
    force_destroy: bool = knob(
        False,
        description=(
            "Let `pulumi destroy` delete a non-empty bucket. Allowed only in dev stacks "
            "that do not protect stateful resources."
        ),
    )

    @field_validator("bucket_name")
    @classmethod
    def _bucket_name(cls, value: str | None) -> str | None:
        if value is None:
            return value
        problem = bucket_name_problem(value)
        if problem:
            raise ValueError(f"not an S3 bucket name mlstack accepts: {problem}")
        if len(value) > BUCKET_NAME_MAX_LENGTH:
            raise ValueError(
                f"at most {BUCKET_NAME_MAX_LENGTH} characters (the log bucket adds -logs)"
            )
        return value
