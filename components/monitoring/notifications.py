"""The alert topic: one KMS-encrypted SNS topic that CloudWatch alarms and Alertmanager
both publish to, with the subscriptions (email, HTTPS) owners receive alerts through.

The key policy and the topic policy let the CloudWatch alarm service publish (only for
this account's alarms whose names start with the stack's prefix); the topic refuses
publishing over plain HTTP. Identities inside the account (Alertmanager's role) get
access through their own IAM policy, see :func:`publisher_policy`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import pulumi
import pulumi_aws as aws

from components.iam import actions, documents
from components.redact import redact_url

EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$"
)
CLOUDWATCH_PRINCIPAL = "cloudwatch.amazonaws.com"


@dataclass(frozen=True)
class Subscriber:
    """Who receives alerts: an email address or an HTTPS endpoint (e.g. a pager's webhook)."""

    protocol: Literal["email", "https"]
    endpoint: str

    def problems(self) -> list[str]:
        return subscriber_problems(self.protocol, self.endpoint)

    @property
    def key(self) -> str:
        """Stable short id for resource names (order of subscribers does not matter)."""
        digest = hashlib.sha256(f"{self.protocol}:{self.endpoint}".encode()).hexdigest()
        return f"{self.protocol}-{digest[:8]}"


def subscriber_problems(protocol: str, endpoint: str) -> list[str]:
    """What is wrong with one subscription endpoint (empty when valid)."""
    if protocol == "email":
        if not EMAIL.match(endpoint) or len(endpoint) > 254:
            return [f"{endpoint!r} is not an email address"]
        return []
    if protocol == "https":
        shown = redact_url(endpoint)  # never echo a password or token of the URL
        try:
            parts = urlsplit(endpoint)
            host = parts.hostname
        except ValueError:
            return [f"{shown!r} is not an https:// URL with a host"]
        if parts.scheme != "https" or not host or " " in endpoint:
            return [f"{shown!r} is not an https:// URL with a host"]
        if parts.username or parts.password:
            return [
                f"{shown!r}: put no credentials in the URL (they would land in state and "
                "in SNS); allowed: an https:// URL without user:password@ (a token the "
                "receiver needs belongs in its own secret store)"
            ]
        return []
    return [f"protocol {protocol!r}: allowed email, https"]


def key_policy(topic_arn: str, alarm_name_prefix: str) -> documents.PolicyDocument:
    """The topic key's policy: the account administers it; CloudWatch alarms may use it."""
    _, partition, _, region, account, *_ = topic_arn.split(":")
    return documents.document(
        {
            "Sid": "AccountAdministersKey",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"},
            "Action": list(actions.KMS_KEY_ACCOUNT_ADMIN),
            "Resource": "*",
        },
        {
            "Sid": "CloudWatchAlarmsEncrypt",
            "Effect": "Allow",
            "Principal": {"Service": CLOUDWATCH_PRINCIPAL},
            "Action": list(actions.KMS_SNS_PUBLISHER),
            "Resource": "*",
            "Condition": _alarm_condition(partition, region, account, alarm_name_prefix),
        },
    )


def topic_policy(topic_arn: str, alarm_name_prefix: str) -> documents.PolicyDocument:
    """The topic's policy: CloudWatch alarms of this stack publish; no plain-HTTP publishing."""
    _, partition, _, region, account, *_ = topic_arn.split(":")
    return documents.document(
        {
            "Sid": "CloudWatchAlarmsPublish",
            "Effect": "Allow",
            "Principal": {"Service": CLOUDWATCH_PRINCIPAL},
            "Action": list(actions.SNS_PUBLISH),
            "Resource": topic_arn,
            "Condition": _alarm_condition(partition, region, account, alarm_name_prefix),
        },
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": list(actions.SNS_PUBLISH),
            "Resource": topic_arn,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
    )


def _alarm_condition(partition: str, region: str, account: str, prefix: str) -> dict[str, Any]:
    return {
        "StringEquals": {"aws:SourceAccount": account},
        "ArnLike": {
            "aws:SourceArn": f"arn:{partition}:cloudwatch:{region}:{account}:alarm:{prefix}*"
        },
    }


def publisher_policy(topic_arn: str, key_arn: str) -> documents.PolicyDocument:
    """An identity policy that may publish to the topic and nothing else."""
    return documents.document(
        documents.allow(actions.SNS_PUBLISH, [topic_arn], sid="PublishAlerts"),
        documents.allow(actions.KMS_SNS_PUBLISHER, [key_arn], sid="EncryptForTopic"),
    )


@dataclass(frozen=True)
class AlertTopic:
    """What :func:`create_alert_topic` made."""

    key: aws.kms.Key
    topic: aws.sns.Topic
    subscriptions: tuple[aws.sns.TopicSubscription, ...]


def create_alert_topic(
    parent: pulumi.Resource,
    name: str,
    *,
    topic_name: str,
    alarm_name_prefix: str,
    subscribers: Sequence[Subscriber],
    protect: bool,
    key_deletion_days: int,
) -> AlertTopic:
    """The KMS key, the topic, its policies and one subscription per subscriber.

    CloudWatch may publish only for alarms whose names start with ``alarm_name_prefix``.
    """
    child = pulumi.ResourceOptions(parent=parent)
    stateful = pulumi.ResourceOptions(parent=parent, protect=protect, retain_on_delete=protect)
    # Fixed physical names (topic, alias): a replacement must delete the old one first.
    fixed_name = pulumi.ResourceOptions(parent=parent, delete_before_replace=True)
    key = aws.kms.Key(
        f"{name}-topic-key",
        aws.kms.KeyArgs(
            description=f"Encrypts the {topic_name} alert topic",
            enable_key_rotation=True,
            deletion_window_in_days=key_deletion_days,
        ),
        opts=stateful,
    )
    aws.kms.Alias(
        f"{name}-topic-key-alias",
        aws.kms.AliasArgs(name=f"alias/{topic_name}", target_key_id=key.key_id),
        opts=fixed_name,
    )
    topic = aws.sns.Topic(
        f"{name}-topic",
        aws.sns.TopicArgs(name=topic_name, kms_master_key_id=key.arn),
        opts=pulumi.ResourceOptions.merge(stateful, fixed_name),
    )
    prefix = alarm_name_prefix
    aws.kms.KeyPolicy(
        f"{name}-topic-key-policy",
        aws.kms.KeyPolicyArgs(
            key_id=key.key_id,
            policy=topic.arn.apply(lambda arn: documents.to_json(key_policy(arn, prefix))),
        ),
        opts=child,
    )
    aws.sns.TopicPolicy(
        f"{name}-topic-policy",
        aws.sns.TopicPolicyArgs(
            arn=topic.arn,
            policy=topic.arn.apply(lambda arn: documents.to_json(topic_policy(arn, prefix))),
        ),
        opts=child,
    )
    subscriptions = tuple(
        aws.sns.TopicSubscription(
            f"{name}-subscriber-{sub.key}",
            aws.sns.TopicSubscriptionArgs(
                topic=topic.arn, protocol=sub.protocol, endpoint=sub.endpoint
            ),
            opts=child,
        )
        for sub in sorted(subscribers, key=lambda s: s.key)
    )
    return AlertTopic(key=key, topic=topic, subscriptions=subscriptions)
