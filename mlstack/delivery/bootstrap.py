"""``mlstack bootstrap``: the S3 state backend and KMS secrets key, idempotently.

Creates, where missing:

* a KMS key (rotation on) with an alias, for Pulumi's ``awskms://`` secrets provider;
* an S3 bucket for Pulumi state: versioning on, default encryption with that key
  (bucket key on), all four public-access blocks, owner-enforced object
  ownership, a bucket policy refusing plain HTTP, and noncurrent versions kept
  for ``noncurrent_days`` days;
* optionally GitHub's OIDC provider (one per account), which the stacks'
  ``mlstack:delivery.oidcProviderArn`` can then reuse.

An existing bucket is never changed: when any safety setting is missing the
bootstrap refuses, listing every problem, so a bucket someone else relies on is
not silently reconfigured. Running it twice changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import boto3
import boto3.session
from botocore.exceptions import BotoCoreError, ClientError

from mlstack import aws
from mlstack.errors import MlstackError
from stacks.schema.secrets import DEFAULT_SECRETS_ALIAS

GITHUB_OIDC_URL = "https://token.actions.githubusercontent.com"
STS_AUDIENCE = "sts.amazonaws.com"
DEFAULT_ALIAS = DEFAULT_SECRETS_ALIAS
TAGS = {"project": "mlstack", "purpose": "pulumi-state"}


class BootstrapRefusedError(MlstackError):
    """An existing resource is unsafe to use as-is; nothing was changed."""


@dataclass
class BootstrapResult:
    """What exists after the bootstrap, and what this run created."""

    bucket: str
    region: str
    key_arn: str
    key_alias: str
    oidc_provider_arn: str | None = None
    created: list[str] = field(default_factory=list)

    @property
    def login_command(self) -> str:
        return f"pulumi login 's3://{self.bucket}?region={self.region}&awssdk=v2'"

    def init_command(self, stack: str) -> str:
        provider = f"awskms://{self.key_alias}?region={self.region}"
        return f'pulumi stack init {stack} --secrets-provider="{provider}"'

    def render(self, stacks: tuple[str, ...] = ("dev", "prod")) -> str:
        lines = [
            ("created: " + ", ".join(self.created)) if self.created else "nothing to create",
            f"state bucket: s3://{self.bucket} ({self.region})",
            f"secrets key:  {self.key_arn} ({self.key_alias})",
        ]
        if self.oidc_provider_arn:
            lines.append(f"GitHub OIDC:  {self.oidc_provider_arn}")
        lines += ["", "next:", f"  {self.login_command}"]
        lines += [f"  {self.init_command(stack)}" for stack in stacks]
        lines += [
            "  (each writes the stack's own encryptedkey into Pulumi.<stack>.yaml: commit it)"
        ]
        lines += [
            "",
            "and in Pulumi.<stack>.yaml (mlstack:delivery):",
            f"  stateBucket: {self.bucket}",
            f"  secretsKeyArn: {self.key_arn}",
        ]
        if self.oidc_provider_arn:
            lines.append(f"  oidcProviderArn: {self.oidc_provider_arn}")
        return "\n".join(lines)


def _ensure_key(kms: Any, alias: str, created: list[str]) -> str:
    try:
        found = kms.describe_key(KeyId=alias)["KeyMetadata"]
    except ClientError as exc:
        if aws.error_code(exc) != "NotFoundException":
            raise
        found = None
    if found is not None:
        problems = []
        if found.get("KeyState") != "Enabled":
            problems.append(f"state is {found.get('KeyState')}, need Enabled")
        if found.get("KeyUsage", "ENCRYPT_DECRYPT") != "ENCRYPT_DECRYPT":
            problems.append(f"usage is {found.get('KeyUsage')}, need ENCRYPT_DECRYPT")
        if found.get("KeySpec", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT":
            problems.append(f"spec is {found.get('KeySpec')}, need SYMMETRIC_DEFAULT")
        if problems:
            raise BootstrapRefusedError(f"KMS key {alias} exists but: " + "; ".join(problems))
        return str(found["Arn"])
    key = kms.create_key(
        Description="mlstack: Pulumi secrets provider and state bucket encryption",
        KeyUsage="ENCRYPT_DECRYPT",
        KeySpec="SYMMETRIC_DEFAULT",
        Tags=[{"TagKey": k, "TagValue": v} for k, v in TAGS.items()],
    )["KeyMetadata"]
    kms.enable_key_rotation(KeyId=key["KeyId"])
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    created.append(f"KMS key {alias}")
    return str(key["Arn"])


def bucket_problems(s3: Any, bucket: str) -> list[str]:
    """Every unsafe setting of an existing state bucket (empty list: safe)."""
    problems: list[str] = []
    versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    if versioning != "Enabled":
        problems.append(f"versioning is {versioning or 'off'}, need Enabled")
    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
            "Rules"
        ]
        algorithms = {
            r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules
        }
        if not algorithms & {"aws:kms", "aws:kms:dsse", "AES256"}:
            problems.append("no default encryption")
    except ClientError as exc:
        if aws.error_code(exc) != "ServerSideEncryptionConfigurationNotFoundError":
            raise
        problems.append("no default encryption")
    try:
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        missing = sorted(k for k in _PUBLIC_BLOCK if not block.get(k))
        if missing:
            problems.append(f"public access block off: {', '.join(missing)}")
    except ClientError as exc:
        if aws.error_code(exc) != "NoSuchPublicAccessBlockConfiguration":
            raise
        problems.append("no public access block")
    try:
        status = s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]
        if status.get("IsPublic"):
            problems.append("the bucket policy makes it public")
    except ClientError as exc:
        if aws.error_code(exc) not in ("NoSuchBucketPolicy", "NoSuchPolicy"):
            raise
    acl = s3.get_bucket_acl(Bucket=bucket)
    for grant in acl.get("Grants", []):
        uri = grant.get("Grantee", {}).get("URI", "")
        if uri.endswith(("/global/AllUsers", "/global/AuthenticatedUsers")):
            problems.append(f"the ACL grants {grant.get('Permission')} to {uri.rsplit('/', 1)[1]}")
    return problems


_PUBLIC_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}


def _tls_only_policy(bucket: str, partition: str) -> str:
    arn = f"arn:{partition}:s3:::{bucket}"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyPlainHttp",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [arn, f"{arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )


def _create_bucket(
    s3: Any, bucket: str, *, region: str, key_arn: str, noncurrent_days: int, partition: str
) -> None:
    create: dict[str, Any] = {"Bucket": bucket, "ObjectOwnership": "BucketOwnerEnforced"}
    if region != "us-east-1":
        create["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**create)
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=_PUBLIC_BLOCK)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": key_arn,
                    },
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    s3.put_bucket_policy(Bucket=bucket, Policy=_tls_only_policy(bucket, partition))
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "expire-old-state-versions",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "NoncurrentVersionExpiration": {"NoncurrentDays": noncurrent_days},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
                }
            ]
        },
    )
    s3.put_bucket_tagging(
        Bucket=bucket, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in TAGS.items()]}
    )


def _ensure_github_oidc(iam: Any, created: list[str]) -> str:
    host = GITHUB_OIDC_URL.removeprefix("https://")
    for provider in iam.list_open_id_connect_providers().get("OpenIDConnectProviderList", []):
        arn = str(provider["Arn"])
        if arn.endswith(f":oidc-provider/{host}"):
            clients = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn).get(
                "ClientIDList", []
            )
            if STS_AUDIENCE not in clients:
                raise BootstrapRefusedError(
                    f"the GitHub OIDC provider {arn} exists without the {STS_AUDIENCE} audience"
                )
            return arn
    arn = iam.create_open_id_connect_provider(
        Url=GITHUB_OIDC_URL,
        ClientIDList=[STS_AUDIENCE],
        Tags=[{"Key": k, "Value": v} for k, v in TAGS.items()],
    )["OpenIDConnectProviderArn"]
    created.append("GitHub OIDC provider")
    return str(arn)


def bootstrap(
    bucket: str,
    region: str,
    *,
    key_alias: str = DEFAULT_ALIAS,
    noncurrent_days: int = 90,
    github_oidc: bool = False,
    session: Any = None,
    endpoint_url: str | None = None,
) -> BootstrapResult:
    """Create what is missing; refuse an unsafe existing bucket or key (changing nothing)."""
    if not key_alias.startswith("alias/") or key_alias.startswith("alias/aws/"):
        raise MlstackError(f"--key-alias {key_alias!r}: must start with alias/ (not alias/aws/)")
    if noncurrent_days < 1:
        raise MlstackError(f"--noncurrent-days {noncurrent_days}: must be at least 1")
    session = session or boto3.session.Session()
    s3 = aws.make_client(session, "s3", region=region, endpoint_url=endpoint_url)
    kms = aws.make_client(session, "kms", region=region, endpoint_url=endpoint_url)
    try:
        return _bootstrap(
            session,
            s3,
            kms,
            bucket,
            region,
            key_alias=key_alias,
            noncurrent_days=noncurrent_days,
            github_oidc=github_oidc,
            endpoint_url=endpoint_url,
        )
    except BotoCoreError as exc:
        no_credentials = aws.credentials_error(exc)
        if no_credentials is not None:
            raise no_credentials from exc
        network = aws.network_error(exc)
        if network is not None:
            raise network from exc
        raise MlstackError(f"AWS call failed: {exc}") from exc


def _bootstrap(
    session: Any,
    s3: Any,
    kms: Any,
    bucket: str,
    region: str,
    *,
    key_alias: str,
    noncurrent_days: int,
    github_oidc: bool,
    endpoint_url: str | None,
) -> BootstrapResult:
    partition = session.get_partition_for_region(region)
    created: list[str] = []

    exists = True
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = aws.error_code(exc)
        if code in ("404", "NoSuchBucket", "NotFound"):
            exists = False
        elif code in ("403", "AccessDenied", "Forbidden"):
            raise BootstrapRefusedError(
                f"bucket {bucket} exists but this account cannot read it (owned by another "
                "account?); choose another name"
            ) from exc
        else:
            raise
    if exists:
        location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or "us-east-1"
        problems = bucket_problems(s3, bucket)
        if location != region:
            problems.insert(0, f"it is in {location}, not {region}")
        if problems:
            raise BootstrapRefusedError(
                f"bucket {bucket} exists with unsafe settings; nothing changed:\n  - "
                + "\n  - ".join(problems)
            )
    key_arn = _ensure_key(kms, key_alias, created)
    if not exists:
        _create_bucket(
            s3,
            bucket,
            region=region,
            key_arn=key_arn,
            noncurrent_days=noncurrent_days,
            partition=partition,
        )
        created.append(f"S3 bucket {bucket}")
    oidc_arn = None
    if github_oidc:
        iam = aws.make_client(session, "iam", endpoint_url=endpoint_url)
        oidc_arn = _ensure_github_oidc(iam, created)
    return BootstrapResult(
        bucket=bucket,
        region=region,
        key_arn=key_arn,
        key_alias=key_alias,
        oidc_provider_arn=oidc_arn,
        created=created,
    )
