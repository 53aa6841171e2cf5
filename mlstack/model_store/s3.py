"""S3 access for ``mlstack model``: clients, the bucket to use, one-line error messages.

Credentials and region come from the standard boto3 chain (environment, shared
config and profiles, SSO, container and instance roles); ``--region`` and
``--endpoint-url`` (S3-compatible stores, the moto server in tests) override it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.storage.layout import bucket_name_problem
from mlstack import aws
from mlstack.aws import error_code
from mlstack.errors import MlstackError, UsageError

S3Client = Any
"""A boto3 S3 client (botocore generates its methods at runtime, so it is untyped)."""

BUCKET_OUTPUT = "modelBucketName"
"""The stack output holding the bucket name (``stacks.composition.export_outputs``)."""
BUCKET_ENV = "MLSTACK_MODEL_BUCKET"
PULUMI_TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class Target:
    """Where model artifacts live: bucket, and how to reach it."""

    bucket: str
    endpoint_url: str | None = None
    region: str | None = None


def resolve_bucket(bucket: str | None, stack: str | None, root: Path) -> str:
    """``--bucket``, else ``$MLSTACK_MODEL_BUCKET``, else the stack output ``modelBucketName``."""
    chosen = bucket or os.environ.get(BUCKET_ENV) or None
    from_stack = chosen is None and bool(stack)
    if chosen is None and stack:
        chosen = stack_output(stack, BUCKET_OUTPUT, root)
    if chosen is None:
        raise UsageError(
            f"no bucket: pass --bucket NAME, set {BUCKET_ENV}, or pass --stack STACK to read "
            f"the stack output {BUCKET_OUTPUT} (needs the Pulumi CLI)"
        )
    problem = bucket_name_problem(chosen, allow_dots=True)
    if problem and from_stack and (pulumi := shutil.which("pulumi")):
        _check_pulumi_works(pulumi)  # it printed garbage: is it the Pulumi CLI at all?
    if problem:
        raise UsageError(f"bucket {chosen!r}: {problem}")
    return chosen


def stack_output(stack: str, output: str, root: Path) -> str:
    """One stack output, read with ``pulumi stack output`` (clear errors when it cannot)."""
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise UsageError(
            f"the Pulumi CLI is not on PATH, so the stack output {output} of stack {stack!r} "
            f"cannot be read: pass --bucket NAME (or set {BUCKET_ENV})"
        )
    command = [pulumi, "stack", "output", output, "--stack", stack, "--cwd", str(root)]
    command.append("--non-interactive")
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=PULUMI_TIMEOUT_SECONDS, check=False
        )
    except OSError as exc:
        raise UsageError(
            f"{pulumi} does not work as the Pulumi CLI: cannot start it "
            f"({exc.strerror or exc}); reinstall it, or pass --bucket NAME"
        ) from None
    except subprocess.TimeoutExpired:
        raise MlstackError(
            f"`pulumi stack output {output} --stack {stack}` did not answer within "
            f"{PULUMI_TIMEOUT_SECONDS} s"
        ) from None
    if done.returncode != 0:
        _check_pulumi_works(pulumi)  # a broken CLI is a missing prerequisite (exit 2)
        detail = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise MlstackError(
            f"`pulumi stack output {output} --stack {stack}` failed "
            f"(exit {done.returncode}): {detail}"
        )
    value = done.stdout.strip()
    if not value:
        raise MlstackError(
            f"stack {stack!r} has no output {output}: deploy it first or pass --bucket"
        )
    return value


def _check_pulumi_works(pulumi: str) -> None:
    """Raise ``PulumiCliBrokenError`` (exit 2) when ``pulumi version`` fails or prints
    no version, so a failed ``pulumi stack output`` is blamed on the right thing."""
    from mlstack.delivery.pulumi_cli import PulumiCli

    PulumiCli(Path(pulumi)).version()


def stack_region(stack: str | None, root: Path) -> str | None:
    """The region of ``Pulumi.<stack>.yaml`` when it loads, else None."""
    if not stack:
        return None
    from stacks.config import ConfigError, load_config_file

    try:
        return load_config_file(stack, root).region
    except ConfigError:
        return None


def make_client(
    endpoint_url: str | None = None, region: str | None = None, max_connections: int = 10
) -> S3Client:
    """An S3 client from the standard chain; fails early and clearly without credentials.

    Timeouts and retries are bounded (``mlstack.aws``): a silent endpoint fails in about
    a minute and a half, with one line naming it, instead of hanging.
    """
    import boto3

    aws.check_endpoint_url(endpoint_url)
    session = boto3.Session(region_name=region)
    aws.require_credentials(session)
    return aws.make_client(
        session,
        "s3",
        endpoint_url=endpoint_url,
        max_pool_connections=max(10, max_connections),
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": "path"} if endpoint_url else None,
    )


def is_not_found(exc: BaseException) -> bool:
    return error_code(exc) in ("404", "NoSuchKey", "NotFound")


def explain(exc: BaseException, bucket: str, what: str) -> MlstackError:
    """A one-line, actionable error for a failed S3 call on ``what`` in ``bucket``."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, MlstackError):
        return exc
    no_credentials = aws.credentials_error(exc)
    if no_credentials is not None:
        return no_credentials
    network = aws.network_error(exc)
    if network is not None:
        return network
    if isinstance(exc, ClientError):
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message") or ""
        if code == "NoSuchBucket" or (code in ("404", "NotFound") and what == "bucket"):
            return MlstackError(f"bucket {bucket!r} does not exist (or is in another account)")
        if code in ("403", "AccessDenied", "AllAccessDisabled"):
            return MlstackError(
                f"access denied to {what} in s3://{bucket}: the credentials lack permission "
                "(a push needs the grant_write policy on models/<name>/, a read grant_read)"
            )
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
            return MlstackError(f"AWS rejected the credentials ({code}): {message}")
        return MlstackError(f"S3 error on {what} in s3://{bucket}: {code}: {message}".rstrip(": "))
    if isinstance(exc, BotoCoreError):
        return MlstackError(f"S3 call on {what} in s3://{bucket} failed: {exc}")
    return MlstackError(f"{what}: {type(exc).__name__}: {exc}")


def check_bucket(client: S3Client, bucket: str) -> None:
    """Fail early, with a clear message, when the bucket is missing or unreachable.

    A 403 is not an error here: HeadBucket needs ``s3:ListBucket`` without a prefix,
    which the prefix-scoped grants (rightly) do not give; later calls will tell.
    """
    try:
        client.head_bucket(Bucket=bucket)
    except Exception as exc:
        network = aws.network_error(exc, aws.endpoint_of(client))
        if network is not None:
            raise network from exc
        if error_code(exc) in ("403", "AccessDenied"):
            return
        raise explain(exc, bucket, "bucket") from exc


@dataclass(frozen=True)
class ListedObject:
    key: str
    size: int
    last_modified: str


def list_objects(client: S3Client, bucket: str, prefix: str) -> Iterator[ListedObject]:
    """Every object under ``prefix`` (all pages)."""
    paginator = client.get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                modified = item.get("LastModified")
                yield ListedObject(
                    key=item["Key"],
                    size=int(item.get("Size", 0)),
                    last_modified=modified.isoformat() if modified is not None else "",
                )
    except Exception as exc:
        raise explain(exc, bucket, f"s3://{bucket}/{prefix}") from exc
