"""Alert topic: subscriber validation and the IAM / key / topic policy documents."""

from __future__ import annotations

import pytest

from components.monitoring.notifications import (
    Subscriber,
    key_policy,
    publisher_policy,
    subscriber_problems,
    topic_policy,
)
from mlstack.render_checks import policy_problems

TOPIC = "arn:aws:sns:us-east-1:123456789012:mlstack-prod-alerts"
KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd"


@pytest.mark.parametrize(
    ("protocol", "endpoint"),
    [
        ("email", "oncall@example.com"),
        ("email", "ml.platform+alerts@corp.example.co.uk"),
        ("https", "https://events.pagerduty.com/integration/abc/enqueue"),
        ("https", "https://hooks.example.com:8443/sns?team=ml"),
    ],
)
def test_valid_subscribers_pass(protocol: str, endpoint: str) -> None:
    assert subscriber_problems(protocol, endpoint) == []


@pytest.mark.parametrize(
    ("protocol", "endpoint", "message"),
    [
        ("email", "oncall@", "not an email address"),
        ("email", "oncall example.com", "not an email address"),
        ("email", "https://example.com", "not an email address"),
        ("https", "http://hooks.example.com/x", "not an https:// URL"),
        ("https", "https://", "not an https:// URL"),
        ("https", "hooks.example.com/x", "not an https:// URL"),
        ("https", "https://user:pw@hooks.example.com/x", "no credentials"),
        ("sms", "+15555550100", "allowed email, https"),
    ],
)
def test_malformed_subscribers_are_refused_with_the_value(
    protocol: str, endpoint: str, message: str
) -> None:
    problems = subscriber_problems(protocol, endpoint)
    assert len(problems) == 1
    assert message in problems[0]


def test_subscriber_key_is_stable_and_distinguishes_endpoints() -> None:
    a = Subscriber("email", "a@example.com")
    assert a.key == Subscriber("email", "a@example.com").key
    assert a.key != Subscriber("email", "b@example.com").key
    assert a.key.startswith("email-")


def test_publisher_policy_allows_only_publish_on_the_topic_and_its_key() -> None:
    doc = publisher_policy(TOPIC, KEY)
    assert policy_problems(doc) == []
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    assert by_sid["PublishAlerts"]["Action"] == ["sns:Publish"]
    assert by_sid["PublishAlerts"]["Resource"] == [TOPIC]
    assert by_sid["EncryptForTopic"]["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert by_sid["EncryptForTopic"]["Resource"] == [KEY]
    assert len(doc["Statement"]) == 2


def test_key_policy_lets_only_this_accounts_alarms_use_the_key() -> None:
    doc = key_policy(TOPIC, "mlstack-prod-")
    assert policy_problems(doc) == []
    cw = next(s for s in doc["Statement"] if s["Sid"] == "CloudWatchAlarmsEncrypt")
    assert cw["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert cw["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}
    assert cw["Condition"]["ArnLike"]["aws:SourceArn"] == (
        "arn:aws:cloudwatch:us-east-1:123456789012:alarm:mlstack-prod-*"
    )
    root = next(s for s in doc["Statement"] if s["Sid"] == "AccountAdministersKey")
    assert root["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}


def test_topic_policy_allows_alarms_and_denies_plain_http() -> None:
    doc = topic_policy(TOPIC, "mlstack-prod-")
    assert policy_problems(doc) == []
    effects = {s["Sid"]: s["Effect"] for s in doc["Statement"]}
    assert effects == {"CloudWatchAlarmsPublish": "Allow", "DenyInsecureTransport": "Deny"}
    deny = doc["Statement"][1]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert all(s["Resource"] == TOPIC for s in doc["Statement"])


def test_policies_follow_the_partition_of_the_topic() -> None:
    gov = "arn:aws-us-gov:sns:us-gov-west-1:123456789012:x-alerts"
    doc = key_policy(gov, "x-")
    assert doc["Statement"][0]["Principal"]["AWS"].startswith("arn:aws-us-gov:iam::")
