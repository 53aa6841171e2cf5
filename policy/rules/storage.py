"""Data at rest.

Buckets (encryption, public access, TLS, versioning), EBS, KMS, SNS/SQS, and the
protection of stateful resources in prod.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from policy.core import (
    Finding,
    Rule,
    Stack,
    as_list,
    get_path,
    iter_statements,
    truthy,
)
from policy.rules.common import (
    BUCKET_PAB,
    BUCKET_POLICY,
    BUCKET_SSE,
    BUCKET_VERSIONING,
    BUCKETS,
    EBS_VOLUME,
    EC2_INSTANCE,
    EC2_NODE_CLASS,
    EKS_CLUSTER,
    KMS_KEY,
    LAUNCH_TEMPLATE,
    SNS_TOPIC,
    SQS_QUEUE,
    STORAGE_CLASS,
    actions_of,
    define,
    linked,
)

STATEFUL_TYPES = (
    KMS_KEY,
    EKS_CLUSTER,
    *BUCKETS,
    EBS_VOLUME,
    "aws:dynamodb/table:Table",
    "aws:efs/fileSystem:FileSystem",
    "aws:rds/instance:Instance",
    "aws:rds/cluster:Cluster",
    "aws:ecr/repository:Repository",
    "aws:secretsmanager/secret:Secret",
)
"""Resources whose loss loses data or identity; protected in prod."""


def kms_key_rotation(stack: Stack) -> Iterator[Finding]:
    for key in stack.of_type(KMS_KEY):
        spec = key.props.get("customerMasterKeySpec") or key.props.get("keySpec")
        if spec not in (None, "SYMMETRIC_DEFAULT"):
            continue  # AWS rotates only symmetric keys automatically
        if not truthy(key.props.get("enableKeyRotation")):
            yield key.urn, f"KMS key {key.name}: automatic rotation is off"


def ebs_encrypted(stack: Stack) -> Iterator[Finding]:
    for template in stack.of_type(LAUNCH_TEMPLATE):
        for mapping in as_list(template.props.get("blockDeviceMappings")):
            ebs = get_path(mapping, "ebs")
            if isinstance(ebs, Mapping) and not truthy(ebs.get("encrypted")):
                yield (
                    template.urn,
                    f"launch template {template.name}: volume {get_path(mapping, 'deviceName')} "
                    "is not encrypted",
                )
    for volume in stack.of_type(EBS_VOLUME):
        if not truthy(volume.props.get("encrypted")):
            yield volume.urn, f"EBS volume {volume.name} is not encrypted"
    for instance in stack.of_type(EC2_INSTANCE):
        root = instance.props.get("rootBlockDevice")
        if not (isinstance(root, Mapping) and truthy(root.get("encrypted"))):
            yield instance.urn, f"instance {instance.name}: root volume is not encrypted"
    for node_class in stack.of_type(EC2_NODE_CLASS):
        for mapping in as_list(get_path(node_class.props, "spec", "blockDeviceMappings")):
            ebs = get_path(mapping, "ebs")
            if isinstance(ebs, Mapping) and not truthy(ebs.get("encrypted")):
                yield (
                    node_class.urn,
                    f"EC2NodeClass {node_class.name}: volume {get_path(mapping, 'deviceName')} "
                    "is not encrypted",
                )
    for storage_class in stack.of_type(STORAGE_CLASS):
        if storage_class.props.get("provisioner") != "ebs.csi.aws.com":
            continue
        if not truthy(get_path(storage_class.props, "parameters", "encrypted")):
            yield storage_class.urn, f"StorageClass {storage_class.name}: encrypted is not 'true'"


def s3_bucket_encryption(stack: Stack) -> Iterator[Finding]:
    allowed = {"aws:kms", "aws:kms:dsse", "AES256"}
    for bucket in stack.of_type(*BUCKETS):
        algorithms: list[Any] = []
        inline = bucket.props.get("serverSideEncryptionConfiguration")
        for rule in as_list(get_path(inline, "rule")) + as_list(get_path(inline, "rules")):
            algorithms.append(get_path(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm"))
        for config in linked(stack, bucket, BUCKET_SSE, "bucket"):
            for rule in as_list(config.props.get("rules")):
                algorithms.append(
                    get_path(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm")
                )
        if not any(a in allowed for a in algorithms):
            yield bucket.urn, f"bucket {bucket.name}: no default server-side encryption"


def messaging_encrypted(stack: Stack) -> Iterator[Finding]:
    for topic in stack.of_type(SNS_TOPIC):
        if not topic.props.get("kmsMasterKeyId"):
            yield topic.urn, f"SNS topic {topic.name}: no kmsMasterKeyId"
    for queue in stack.of_type(SQS_QUEUE):
        sse = queue.props.get("sqsManagedSseEnabled")
        if not queue.props.get("kmsMasterKeyId") and sse is not None and not truthy(sse):
            yield queue.urn, f"SQS queue {queue.name}: server-side encryption disabled"


def s3_public_access_blocked(stack: Stack) -> Iterator[Finding]:
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    for bucket in stack.of_type(*BUCKETS):
        blocks = linked(stack, bucket, BUCKET_PAB, "bucket")
        if not blocks:
            yield bucket.urn, f"bucket {bucket.name}: no public access block"
            continue
        missing = [f for f in flags if not any(truthy(b.props.get(f)) for b in blocks)]
        if missing:
            yield bucket.urn, f"bucket {bucket.name}: public access block leaves {missing} off"


def _denies_insecure_transport(statement: Mapping[str, Any]) -> bool:
    if statement.get("Effect") != "Deny":
        return False
    principal = statement.get("Principal")
    if principal != "*" and get_path(principal, "AWS") not in ("*", ["*"]):
        return False
    actions = [a.lower() for a in actions_of(statement)]
    if not ({"s3:*", "*"} & set(actions)):
        return False
    condition = statement.get("Condition")
    if not isinstance(condition, Mapping):
        return False
    for operator, values in condition.items():
        if not str(operator).startswith("Bool") or not isinstance(values, Mapping):
            continue
        for key, value in values.items():
            if (
                str(key).lower() == "aws:securetransport"
                and str(as_list(value)[0] if as_list(value) else "").lower() == "false"
            ):
                return True
    return False


def s3_tls_only(stack: Stack) -> Iterator[Finding]:
    for bucket in stack.of_type(*BUCKETS):
        policies = linked(stack, bucket, BUCKET_POLICY, "bucket")
        if not any(
            _denies_insecure_transport(s)
            for p in policies
            for s in iter_statements(p.props.get("policy"))
        ):
            yield bucket.urn, f"bucket {bucket.name}: no policy denying aws:SecureTransport=false"


def s3_versioning(stack: Stack) -> Iterator[Finding]:
    for bucket in stack.of_type(*BUCKETS):
        enabled = truthy(get_path(bucket.props, "versioning", "enabled")) or any(
            get_path(v.props, "versioningConfiguration", "status") == "Enabled"
            for v in linked(stack, bucket, BUCKET_VERSIONING, "bucket")
        )
        if not enabled:
            yield bucket.urn, f"bucket {bucket.name}: versioning is not enabled"


def prod_stateful_protected(stack: Stack) -> Iterator[Finding]:
    for resource in stack.of_type(*STATEFUL_TYPES):
        if not resource.protect:
            yield resource.urn, f"{resource.type.rsplit(':', 1)[-1]} {resource.name} not protected"


RULES: list[Rule] = [
    define(
        "kms-key-rotation",
        "Symmetric KMS keys rotate automatically.",
        severity="medium",
        enforcement="mandatory",
        types=(KMS_KEY,),
        check=kms_key_rotation,
        remediation="enable_key_rotation=True.",
    ),
    define(
        "ebs-encrypted",
        "Node disks, EBS volumes and EBS storage classes are encrypted at rest.",
        severity="high",
        enforcement="mandatory",
        types=(LAUNCH_TEMPLATE, EBS_VOLUME, EC2_INSTANCE, EC2_NODE_CLASS, STORAGE_CLASS),
        check=ebs_encrypted,
    ),
    define(
        "s3-bucket-encryption",
        "Buckets have default server-side encryption (SSE-KMS or SSE-S3).",
        severity="high",
        enforcement="mandatory",
        types=BUCKETS,
        check=s3_bucket_encryption,
    ),
    define(
        "messaging-encrypted",
        "SNS topics and SQS queues encrypt messages at rest.",
        severity="medium",
        enforcement="advisory",
        types=(SNS_TOPIC, SQS_QUEUE),
        check=messaging_encrypted,
    ),
    define(
        "s3-public-access-blocked",
        "Buckets have a public access block with all four settings on.",
        severity="critical",
        enforcement="mandatory",
        types=BUCKETS,
        check=s3_public_access_blocked,
    ),
    define(
        "s3-tls-only",
        "Bucket policies deny requests that do not use TLS (aws:SecureTransport=false).",
        severity="high",
        enforcement="mandatory",
        types=BUCKETS,
        check=s3_tls_only,
    ),
    define(
        "s3-versioning",
        "Buckets keep object versions (recover overwritten model artifacts).",
        severity="medium",
        enforcement="advisory",
        types=BUCKETS,
        check=s3_versioning,
    ),
    define(
        "prod-stateful-protected",
        "Prod stateful resources (keys, buckets, cluster, volumes...) have protect set.",
        severity="high",
        enforcement="mandatory",
        types=STATEFUL_TYPES,
        check=prod_stateful_protected,
        prod_only=True,
    ),
]
