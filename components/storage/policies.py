"""Policy documents of the model-artifact bucket, as plain dicts (pure, testable).

* :func:`bucket_policy`: the artifact bucket's resource policy (TLS only, TLS >= 1.2,
  no object encrypted with anything but the bucket's own KMS key, and no write under
  ``models/`` without ``If-None-Match``: blobs and manifests are never replaced).
* :func:`log_bucket_policy`: the access-log bucket (S3 log delivery from the artifact
  bucket of this account only; TLS only).
* :func:`grant_policy`: an identity policy for a role, scoped to one ``models/...``
  prefix and to the bucket's key used through S3.
"""

from __future__ import annotations

from typing import Any, Literal

from components.iam import actions, documents
from components.iam.documents import PolicyDocument
from components.storage import layout

LOG_DELIVERY_SERVICE = "logging.s3.amazonaws.com"
MIN_TLS_VERSION = "1.2"

GrantMode = Literal["read", "write"]


def _deny(sid: str, action: str | list[str], resources: list[str], condition: dict[str, Any]):
    return {
        "Sid": sid,
        "Effect": "Deny",
        "Principal": "*",
        "Action": action,
        "Resource": resources,
        "Condition": condition,
    }


def _transport_statements(bucket_arn: str) -> list[dict[str, Any]]:
    both = [bucket_arn, f"{bucket_arn}/*"]
    return [
        _deny(
            "DenyInsecureTransport",
            actions.S3_ALL,
            both,
            {"Bool": {"aws:SecureTransport": "false"}},
        ),
        _deny(
            "DenyOutdatedTls",
            actions.S3_ALL,
            both,
            {"NumericLessThan": {"s3:TlsVersion": MIN_TLS_VERSION}},
        ),
    ]


def bucket_policy(bucket_arn: str, key_arn: str) -> PolicyDocument:
    """The artifact bucket's policy.

    Uploads that ask for another algorithm (``x-amz-server-side-encryption`` set and
    not ``aws:kms``) or another key are denied; uploads that ask for nothing get the
    bucket default (SSE-KMS with ``key_arn`` and a bucket key).
    """
    objects = [f"{bucket_arn}/*"]
    put = list(actions.S3_PUT_OBJECT)
    return documents.document(
        *_transport_statements(bucket_arn),
        # PutObject and CompleteMultipartUpload under models/ must carry If-None-Match
        # (create, never replace); CreateMultipartUpload and UploadPart take no
        # conditional header and are exempted by s3:ObjectCreationOperation (AWS S3 user
        # guide, "Enforce conditional writes on Amazon S3 buckets"). A CopyObject into
        # models/ is refused as a consequence (documented there too).
        _deny(
            "DenyReplacingModelObjects",
            put,
            [f"{bucket_arn}/{layout.MODELS_ROOT}*"],
            {
                "Null": {"s3:if-none-match": "true"},
                "Bool": {"s3:ObjectCreationOperation": "true"},
            },
        ),
        _deny(
            "DenyOtherEncryption",
            put,
            objects,
            {
                "Null": {"s3:x-amz-server-side-encryption": "false"},
                "StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"},
            },
        ),
        _deny(
            "DenyOtherKmsKeys",
            put,
            objects,
            {
                "Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "false"},
                "StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": key_arn},
            },
        ),
    )


def log_bucket_policy(
    log_bucket_arn: str, target_prefix: str, source_bucket_arn: str, account_id: str
) -> PolicyDocument:
    """Let S3 deliver the artifact bucket's access logs, and nothing else, into the log bucket."""
    return documents.document(
        {
            "Sid": "AllowServerAccessLogDelivery",
            "Effect": "Allow",
            "Principal": {"Service": LOG_DELIVERY_SERVICE},
            "Action": list(actions.S3_PUT_OBJECT),
            "Resource": [f"{log_bucket_arn}/{target_prefix}*"],
            "Condition": {
                "ArnLike": {"aws:SourceArn": source_bucket_arn},
                "StringEquals": {"aws:SourceAccount": account_id},
            },
        },
        *_transport_statements(log_bucket_arn),
    )


def s3_service_endpoint(region: str, partition: str) -> str:
    """The ``kms:ViaService`` value of S3 in a region (``s3.<region>.amazonaws.com``)."""
    suffix = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return f"s3.{region}.{suffix}"


def grant_policy(
    mode: GrantMode, bucket_arn: str, key_arn: str, prefix: str, *, region: str, partition: str
) -> PolicyDocument:
    """Identity policy: list and read (``read``) or also write (``write``) under ``prefix``.

    ``prefix`` is checked by the caller (``models/`` or ``models/<name>/``). The key may
    be used only through S3 in ``region``.
    """
    writes = mode == "write"
    via_s3 = {"StringEquals": {"kms:ViaService": s3_service_endpoint(region, partition)}}
    list_statement = documents.allow(actions.MODEL_BUCKET_LIST, [bucket_arn], sid="ListModelPrefix")
    list_statement["Condition"] = {"StringLike": {"s3:prefix": [f"{prefix}*"]}}
    key_statement = documents.allow(
        actions.MODEL_KEY_WRITE if writes else actions.MODEL_KEY_READ,
        [key_arn],
        sid="UseModelKeyThroughS3",
    )
    key_statement["Condition"] = via_s3
    return documents.document(
        list_statement,
        documents.allow(
            actions.MODEL_OBJECTS_WRITE if writes else actions.MODEL_OBJECTS_READ,
            [f"{bucket_arn}/{prefix}*"],
            sid="WriteModelObjects" if writes else "ReadModelObjects",
        ),
        key_statement,
    )
