"""``mlstack bootstrap`` against a real moto server on 127.0.0.1 (no AWS account)."""

from __future__ import annotations

import json

import boto3
import pytest

from mlstack.cli import main
from mlstack.delivery.bootstrap import BootstrapRefusedError, bootstrap

REGION = "eu-west-1"
BUCKET = "acme-pulumi-state"


@pytest.fixture
def aws(moto_reset: str, aws_env: None) -> str:
    return moto_reset


def _s3(endpoint: str):
    return boto3.client("s3", region_name=REGION, endpoint_url=endpoint)


def test_creates_versioned_encrypted_private_bucket_and_rotating_key(aws: str) -> None:
    result = bootstrap(BUCKET, REGION, endpoint_url=aws)

    s3 = _s3(aws)
    assert s3.get_bucket_location(Bucket=BUCKET)["LocationConstraint"] == REGION
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    rule = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": result.key_arn,
    }
    block = s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    policy = json.loads(s3.get_bucket_policy(Bucket=BUCKET)["Policy"])
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert policy["Statement"][0]["Effect"] == "Deny"
    lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"][0]
    assert lifecycle["NoncurrentVersionExpiration"]["NoncurrentDays"] == 90

    kms = boto3.client("kms", region_name=REGION, endpoint_url=aws)
    key = kms.describe_key(KeyId="alias/mlstack-pulumi-secrets")["KeyMetadata"]
    assert key["Arn"] == result.key_arn
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True
    assert result.created == ["KMS key alias/mlstack-pulumi-secrets", f"S3 bucket {BUCKET}"]


def test_prints_exact_login_and_stack_init_commands(aws: str) -> None:
    result = bootstrap(BUCKET, REGION, endpoint_url=aws)
    text = result.render(("dev", "prod"))
    assert f"pulumi login 's3://{BUCKET}?region={REGION}&awssdk=v2'" in text
    assert (
        'pulumi stack init prod --secrets-provider="awskms://alias/mlstack-pulumi-secrets'
        f'?region={REGION}"'
    ) in text
    assert f"secretsKeyArn: {result.key_arn}" in text


def test_says_stack_init_writes_the_stacks_own_encryptedkey_to_commit(aws: str) -> None:
    text = bootstrap(BUCKET, REGION, endpoint_url=aws).render(("dev",))
    assert "writes the stack's own encryptedkey into Pulumi.<stack>.yaml: commit it" in text


def test_second_run_creates_nothing_and_returns_the_same_key(aws: str) -> None:
    first = bootstrap(BUCKET, REGION, endpoint_url=aws)
    second = bootstrap(BUCKET, REGION, endpoint_url=aws)
    assert second.created == []
    assert second.key_arn == first.key_arn
    kms = boto3.client("kms", region_name=REGION, endpoint_url=aws)
    assert len(kms.list_keys()["Keys"]) == 1
    assert "nothing to create" in second.render()


def test_refuses_existing_bucket_with_unsafe_settings_listing_every_problem(aws: str) -> None:
    s3 = _s3(aws)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_public_access_block(
        Bucket=BUCKET,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": False,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": False,
        },
    )
    with pytest.raises(BootstrapRefusedError) as caught:
        bootstrap(BUCKET, REGION, endpoint_url=aws)
    message = str(caught.value)
    assert "versioning is off" in message
    assert "IgnorePublicAcls, RestrictPublicBuckets" in message
    # Nothing was changed or created: versioning still off, no key.
    assert "Status" not in s3.get_bucket_versioning(Bucket=BUCKET)
    kms = boto3.client("kms", region_name=REGION, endpoint_url=aws)
    assert kms.list_keys()["Keys"] == []


def test_refuses_bucket_with_public_acl_and_suspended_versioning(aws: str) -> None:
    s3 = _s3(aws)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"})
    s3.put_bucket_acl(Bucket=BUCKET, ACL="public-read")
    with pytest.raises(BootstrapRefusedError) as caught:
        bootstrap(BUCKET, REGION, endpoint_url=aws)
    message = str(caught.value)
    assert "versioning is Suspended" in message
    assert "no public access block" in message
    assert "grants READ to AllUsers" in message


def test_refuses_bucket_in_another_region(aws: str) -> None:
    bootstrap(BUCKET, REGION, endpoint_url=aws)
    with pytest.raises(BootstrapRefusedError, match="it is in eu-west-1, not us-east-2"):
        bootstrap(BUCKET, "us-east-2", endpoint_url=aws)


def test_refuses_disabled_key_behind_the_alias(aws: str) -> None:
    kms = boto3.client("kms", region_name=REGION, endpoint_url=aws)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/mlstack-pulumi-secrets", TargetKeyId=key_id)
    kms.disable_key(KeyId=key_id)
    with pytest.raises(BootstrapRefusedError, match="state is Disabled"):
        bootstrap(BUCKET, REGION, endpoint_url=aws)
    assert _s3(aws).list_buckets()["Buckets"] == []


def test_github_oidc_provider_is_created_once(aws: str) -> None:
    first = bootstrap(BUCKET, REGION, endpoint_url=aws, github_oidc=True)
    second = bootstrap(BUCKET, REGION, endpoint_url=aws, github_oidc=True)
    assert first.oidc_provider_arn is not None
    assert first.oidc_provider_arn.endswith(":oidc-provider/token.actions.githubusercontent.com")
    assert second.oidc_provider_arn == first.oidc_provider_arn
    assert "GitHub OIDC provider" in first.created
    assert "GitHub OIDC provider" not in second.created
    iam = boto3.client("iam", endpoint_url=aws)
    assert len(iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]) == 1


def test_us_east_1_bucket_has_no_location_constraint(aws: str) -> None:
    bootstrap("east-state", "us-east-1", endpoint_url=aws)
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=aws)
    assert s3.get_bucket_location(Bucket="east-state").get("LocationConstraint") is None
    assert bootstrap("east-state", "us-east-1", endpoint_url=aws).created == []


def test_cli_prints_commands_and_refusal_is_one_line_exit_1(
    aws: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["bootstrap", "--bucket", BUCKET, "--region", REGION, "--endpoint-url", aws])
    out = capsys.readouterr().out
    assert code == 0
    assert "pulumi login 's3://" in out
    _s3(aws).create_bucket(
        Bucket="other-bucket", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    code = main(
        ["bootstrap", "--bucket", "other-bucket", "--region", REGION, "--endpoint-url", aws]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: bucket other-bucket exists with unsafe settings")


def test_rejects_aws_managed_alias(aws: str) -> None:
    with pytest.raises(Exception, match="must start with alias/"):
        bootstrap(BUCKET, REGION, endpoint_url=aws, key_alias="alias/aws/s3")


def test_the_printed_stack_init_line_writes_the_provider_the_stack_files_name(aws: str) -> None:
    import yaml

    from stacks.config import PROJECT_ROOT

    result = bootstrap(BUCKET, "us-west-2", endpoint_url=aws)
    for stack in ("dev", "prod"):
        document = yaml.safe_load((PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text())
        provider = document["secretsprovider"]
        assert result.init_command(stack) == (
            f'pulumi stack init {stack} --secrets-provider="{provider}"'
        )
