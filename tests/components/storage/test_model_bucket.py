"""ModelArtifactBucket through the offline synth of the real stacks (and a grant program)."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from components.iam import actions, documents
from components.storage.layout import model_prefix, name_prefix
from components.storage.model_bucket import ModelArtifactBucket, ModelArtifactBucketArgs
from mlstack.render_checks import check_graph
from mlstack.synth import ResourceGraph, ResourceNode, SynthError, synth_config
from stacks.composition import model_bucket
from stacks.config import StackConfig
from tests.conftest import SynthEdited

COMPONENT = "mlstack:storage:ModelArtifactBucket"
BUCKET = "aws:s3/bucket:Bucket"


def _one(graph: ResourceGraph, type_token: str, name: str = "artifacts") -> ResourceNode:
    suffix = {
        "aws:s3/bucketVersioning:BucketVersioning": "versioning",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
            "encryption"
        ),
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": "public-access-block",
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls": "ownership",
        "aws:s3/bucketPolicy:BucketPolicy": "policy",
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": "lifecycle",
        BUCKET: "bucket",
        "aws:kms/key:Key": "key",
    }[type_token]
    return graph.one(type_token, f"{name}-{suffix}")


def _statements(node: ResourceNode, key: str = "policy") -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in json.loads(node.inputs[key])["Statement"]}


def test_every_child_is_parented_to_the_component_and_named_after_it(
    any_graph: ResourceGraph,
) -> None:
    component = any_graph.one(COMPONENT, "artifacts")
    children = any_graph.children(component.urn)
    assert len(children) >= 9
    assert all(child.name.startswith("artifacts-") for child in children)
    provider = any_graph.one("pulumi:providers:aws", "aws")
    assert all(child.provider == provider.urn for child in children if child.custom)


def test_bucket_is_versioned_encrypted_with_its_own_rotating_key_and_private(
    any_graph: ResourceGraph,
) -> None:
    bucket = _one(any_graph, BUCKET)
    bucket_id = "artifacts-bucket-id"  # the mock id; the real id is the bucket name
    versioning = _one(any_graph, "aws:s3/bucketVersioning:BucketVersioning")
    assert versioning.inputs["bucket"] == bucket_id
    assert versioning.inputs["versioningConfiguration"]["status"] == "Enabled"

    key = _one(any_graph, "aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True
    assert key.parent == bucket.parent
    sse = _one(
        any_graph,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    )
    (rule,) = sse.inputs["rules"]
    assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    assert rule["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"].endswith(
        "key/key-artifacts-key"
    )
    assert rule["bucketKeyEnabled"] is True

    block = _one(any_graph, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls"):
        assert block.inputs[flag] is True
    assert block.inputs["restrictPublicBuckets"] is True
    ownership = _one(any_graph, "aws:s3/bucketOwnershipControls:BucketOwnershipControls")
    assert ownership.inputs["rule"]["objectOwnership"] == "BucketOwnerEnforced"
    alias = any_graph.one("aws:kms/alias:Alias", "artifacts-key-alias")
    assert alias.inputs["name"] == f"alias/mlstack-{any_graph.stack}-models"


def test_bucket_policy_denies_plain_http_old_tls_and_foreign_encryption(
    any_graph: ResourceGraph,
) -> None:
    policy = _one(any_graph, "aws:s3/bucketPolicy:BucketPolicy")
    statements = _statements(policy)
    arn = "arn:aws:s3:::artifacts-bucket-id"

    insecure = statements["DenyInsecureTransport"]
    assert insecure["Effect"] == "Deny" and insecure["Principal"] == "*"
    assert insecure["Action"] == "s3:*"
    assert insecure["Resource"] == [arn, f"{arn}/*"]
    assert insecure["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statements["DenyOutdatedTls"]["Condition"] == {
        "NumericLessThan": {"s3:TlsVersion": "1.2"}
    }
    other_key = statements["DenyOtherKmsKeys"]["Condition"]["StringNotEquals"]
    assert other_key["s3:x-amz-server-side-encryption-aws-kms-key-id"].endswith(
        "key/key-artifacts-key"
    )
    assert statements["DenyOtherEncryption"]["Condition"]["Null"] == {
        "s3:x-amz-server-side-encryption": "false"
    }
    public_block = _one(any_graph, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert public_block.urn in policy.dependencies


def test_lifecycle_aborts_stale_uploads_and_expires_noncurrent_versions(
    stack_configs: dict[str, StackConfig], any_graph: ResourceGraph
) -> None:
    cfg = stack_configs[any_graph.stack].artifacts
    lifecycle = _one(any_graph, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    rules = {rule["id"]: rule for rule in lifecycle.inputs["rules"]}
    abort = rules["abort-incomplete-multipart-uploads"]
    assert abort["abortIncompleteMultipartUpload"]["daysAfterInitiation"] == (
        cfg.abort_incomplete_multipart_upload_days
    )
    expire = rules["expire-noncurrent-versions"]
    assert expire["noncurrentVersionExpiration"]["noncurrentDays"] == (
        cfg.noncurrent_version_expiration_days
    )
    assert expire["expiration"] == {"expiredObjectDeleteMarker": True}
    assert all(
        rule["status"] == "Enabled" and rule["filter"] == {"prefix": ""} for rule in rules.values()
    )
    versioning = _one(any_graph, "aws:s3/bucketVersioning:BucketVersioning")
    assert versioning.urn in lifecycle.dependencies


def test_stack_files_differ_in_the_expected_knobs(
    dev_graph: ResourceGraph, prod_graph: ResourceGraph
) -> None:
    def noncurrent_days(graph: ResourceGraph) -> int:
        lifecycle = _one(graph, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
        rule = next(r for r in lifecycle.inputs["rules"] if r["id"] == "expire-noncurrent-versions")
        return rule["noncurrentVersionExpiration"]["noncurrentDays"]

    assert noncurrent_days(dev_graph) < noncurrent_days(prod_graph)
    assert _one(dev_graph, BUCKET).inputs["forceDestroy"] is True
    assert _one(prod_graph, BUCKET).inputs["forceDestroy"] is False


def test_prod_protects_and_retains_stateful_resources_dev_does_not(
    dev_graph: ResourceGraph, prod_graph: ResourceGraph
) -> None:
    for type_token in (BUCKET, "aws:kms/key:Key"):
        prod, dev = _one(prod_graph, type_token), _one(dev_graph, type_token)
        assert (prod.protect, prod.retain_on_delete) == (True, True)
        assert (dev.protect, dev.retain_on_delete) == (False, False)
    logs = prod_graph.one(BUCKET, "artifacts-logs-bucket")
    assert (logs.protect, logs.retain_on_delete) == (True, True)
    dev_logs = dev_graph.one(BUCKET, "artifacts-logs-bucket")
    assert (dev_logs.protect, dev_logs.retain_on_delete) == (False, False)
    assert dev_logs.inputs["forceDestroy"] is True
    settings = [
        "aws:s3/bucketVersioning:BucketVersioning",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "aws:s3/bucketPolicy:BucketPolicy",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    ]
    for type_token in settings:  # a retained bucket keeps its hardening
        assert _one(prod_graph, type_token).retain_on_delete is True
        assert _one(dev_graph, type_token).retain_on_delete is False


def test_requests_are_logged_into_a_private_expiring_log_bucket(
    any_graph: ResourceGraph, stack_configs: dict[str, StackConfig]
) -> None:
    prod_graph = any_graph  # both stacks log; same shape, different retention
    retention = stack_configs[any_graph.stack].artifacts.access_logging.retention_days
    lifecycle = prod_graph.one(
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
        "artifacts-logs-lifecycle",
    )
    expire = next(r for r in lifecycle.inputs["rules"] if r["id"] == "expire-access-logs")
    assert expire["expiration"] == {"days": retention}
    logging = prod_graph.one("aws:s3/bucketLogging:BucketLogging", "artifacts-access-logging")
    assert logging.inputs["bucket"] == "artifacts-bucket-id"
    assert logging.inputs["targetBucket"] == "artifacts-logs-bucket-id"
    assert logging.inputs["targetPrefix"] == "model-bucket/"

    sse = prod_graph.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "artifacts-logs-encryption",
    )
    assert sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"] == {
        "sseAlgorithm": "AES256"
    }
    block = prod_graph.one(
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "artifacts-logs-public-access-block",
    )
    assert block.inputs["blockPublicPolicy"] is True
    delivery = _statements(
        prod_graph.one("aws:s3/bucketPolicy:BucketPolicy", "artifacts-logs-policy")
    )["AllowServerAccessLogDelivery"]
    assert delivery["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert delivery["Action"] == list(actions.S3_PUT_OBJECT)
    assert delivery["Resource"] == ["arn:aws:s3:::artifacts-logs-bucket-id/model-bucket/*"]
    assert delivery["Condition"] == {
        "ArnLike": {"aws:SourceArn": "arn:aws:s3:::artifacts-bucket-id"},
        "StringEquals": {"aws:SourceAccount": "123456789012"},
    }


def test_without_access_logging_no_log_resources_are_created(synth_edited: SynthEdited) -> None:
    graph = synth_edited("dev", {"artifacts.accessLogging.enabled": False})
    assert graph.by_type("aws:s3/bucketLogging:BucketLogging") == []
    assert [b.name for b in graph.by_type(BUCKET)] == ["artifacts-bucket"]
    assert not [r for r in graph.resources if r.name.startswith("artifacts-logs")]


def test_logging_into_an_existing_bucket_and_a_fixed_bucket_name(
    synth_edited: SynthEdited,
) -> None:
    graph = synth_edited(
        "prod",
        {
            "artifacts.accessLogging.targetBucket": "central-access-logs",
            "artifacts.bucketName": "acme-prod-models",
        },
    )
    logging = graph.one("aws:s3/bucketLogging:BucketLogging", "artifacts-access-logging")
    assert logging.inputs["targetBucket"] == "central-access-logs"
    assert [b.name for b in graph.by_type(BUCKET)] == ["artifacts-bucket"]
    bucket = graph.one(BUCKET, "artifacts-bucket")
    assert bucket.inputs["bucket"] == "acme-prod-models"
    assert "bucketPrefix" not in bucket.inputs


def test_bucket_name_is_a_stack_output(any_graph: ResourceGraph) -> None:
    assert any_graph.outputs["modelBucketName"] == "artifacts-bucket-id"


def test_bucket_renders_clean(
    any_graph: ResourceGraph, stack_configs: dict[str, StackConfig]
) -> None:
    findings = check_graph(any_graph, stack_configs[any_graph.stack].cluster.version)
    mine = [f for f in findings if "artifacts" in f.urn]
    assert mine == []


# --------------------------------------------------------------------------- grants

READ_PREFIX = model_prefix("resnet50", "v3")
WRITE_PREFIX = name_prefix("llama-3-8b-instruct")


def _grant_program(cfg: StackConfig, stack: str) -> None:
    """The real bucket of a stack, plus two roles granted through its owner-side methods."""
    provider = aws.Provider("aws", aws.ProviderArgs(region=cfg.region))
    bucket = model_bucket(cfg, stack, opts=pulumi.ResourceOptions(providers={"aws": provider}))
    trust = documents.to_json(documents.service_trust("ec2.amazonaws.com"))
    role_opts = pulumi.ResourceOptions(provider=provider)
    reader = aws.iam.Role("triton", aws.iam.RoleArgs(assume_role_policy=trust), opts=role_opts)
    writer = aws.iam.Role("ci", aws.iam.RoleArgs(assume_role_policy=trust), opts=role_opts)
    bucket.grant_read(reader, READ_PREFIX, "triton-model-read")
    bucket.grant_write(writer, WRITE_PREFIX, "ci-model-write")


@pytest.fixture(scope="module")
def grant_graph(stack_configs: dict[str, StackConfig]) -> ResourceGraph:
    return synth_config(stack_configs["prod"], "prod", program_fn=_grant_program)


def _grant(graph: ResourceGraph, name: str) -> dict[str, dict[str, Any]]:
    return _statements(graph.one("aws:iam/rolePolicy:RolePolicy", name))


def test_read_grant_is_scoped_to_the_prefix_and_decrypts_through_s3_only(
    grant_graph: ResourceGraph,
) -> None:
    statements = _grant(grant_graph, "triton-model-read")
    arn = "arn:aws:s3:::artifacts-bucket-id"
    assert statements["ReadModelObjects"]["Action"] == ["s3:GetObject"]
    assert statements["ReadModelObjects"]["Resource"] == [f"{arn}/models/resnet50/v3/*"]
    assert statements["ListModelPrefix"]["Action"] == ["s3:ListBucket"]
    assert statements["ListModelPrefix"]["Resource"] == [arn]
    assert statements["ListModelPrefix"]["Condition"] == {
        "StringLike": {"s3:prefix": ["models/resnet50/v3/*"]}
    }
    key = statements["UseModelKeyThroughS3"]
    assert key["Action"] == ["kms:Decrypt"]
    assert key["Resource"] == ["arn:aws:kms:us-east-1:123456789012:key/key-artifacts-key"]
    assert key["Condition"] == {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}
    every_action = [a for s in statements.values() for a in s["Action"]]
    assert not any("Delete" in a or "Put" in a or a.endswith("*") for a in every_action)


def test_write_grant_can_push_but_never_delete(grant_graph: ResourceGraph) -> None:
    statements = _grant(grant_graph, "ci-model-write")
    objects = statements["WriteModelObjects"]
    assert objects["Action"] == list(actions.MODEL_OBJECTS_WRITE)
    assert objects["Resource"] == ["arn:aws:s3:::artifacts-bucket-id/models/llama-3-8b-instruct/*"]
    assert statements["UseModelKeyThroughS3"]["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert not any("Delete" in a for s in statements.values() for a in s["Action"])


def test_grants_attach_to_their_role_and_pass_the_iam_checks(grant_graph: ResourceGraph) -> None:
    for policy_name, role_name in (("triton-model-read", "triton"), ("ci-model-write", "ci")):
        policy = grant_graph.one("aws:iam/rolePolicy:RolePolicy", policy_name)
        role = grant_graph.one("aws:iam/role:Role", role_name)
        assert policy.parent == role.urn
        assert policy.inputs["role"] == role_name
        assert policy.provider == grant_graph.one("pulumi:providers:aws", "aws").urn
    findings = [f for f in check_graph(grant_graph, "1.33") if f.check == "iam"]
    assert findings == []


def test_grant_with_a_prefix_outside_the_layout_fails_the_synth(
    stack_configs: dict[str, StackConfig],
) -> None:
    prefix = "models/../"

    def program(cfg: StackConfig, stack: str) -> None:
        provider = aws.Provider("aws", aws.ProviderArgs(region=cfg.region))
        bucket = model_bucket(cfg, stack, opts=pulumi.ResourceOptions(providers={"aws": provider}))
        role = aws.iam.Role(
            "r",
            aws.iam.RoleArgs(assume_role_policy="{}"),
            opts=pulumi.ResourceOptions(provider=provider),
        )
        bucket.grant_read(role, prefix, "r-read")

    with pytest.raises(SynthError, match=f"grant_read prefix '{prefix}'"):
        synth_config(stack_configs["dev"], "dev", program_fn=program)


def test_invalid_args_fail_with_every_problem_listed(stack_configs: dict[str, StackConfig]) -> None:
    def program(cfg: StackConfig, stack: str) -> None:
        ModelArtifactBucket(
            "artifacts",
            ModelArtifactBucketArgs(
                region=cfg.region,
                bucket_name="Bad_Name",
                noncurrent_version_expiration_days=0,
                key_deletion_window_days=3,
                force_destroy=True,
                protect=True,
            ),
        )

    with pytest.raises(SynthError) as failure:
        synth_config(stack_configs["dev"], "dev", program_fn=program)
    message = str(failure.value)
    for expected in (
        "bucket_name: 'Bad_Name'",
        "noncurrent_version_expiration_days: 0",
        "key_deletion_window_days: 3",
        "force_destroy: True",
    ):
        assert expected in message
