"""Operations: required tags, log retention, alarms that notify someone."""

from __future__ import annotations

from collections.abc import Iterator

from policy.core import (
    AWS_PROVIDER,
    Finding,
    Rule,
    Stack,
    as_list,
    provider_tags,
    truthy,
)
from policy.rules.common import (
    LOG_GROUP,
    METRIC_ALARM,
    define,
)

REQUIRED_TAGS = ("project", "stack", "environment", "owner")


def required_tags(stack: Stack) -> Iterator[Finding]:
    good: set[str] = set()
    for provider in stack.of_type(AWS_PROVIDER):
        tags = provider_tags(provider)
        missing = [t for t in REQUIRED_TAGS if not tags.get(t)]
        if missing:
            yield provider.urn, f"AWS provider {provider.name}: default tags miss {missing}"
        else:
            good.add(provider.urn)
    for resource in stack.resources:
        if not resource.custom or not resource.type.startswith("aws:"):
            continue
        if resource.provider not in good:
            yield (
                resource.urn,
                f"{resource.name}: not created through an AWS provider carrying the "
                f"required default tags {list(REQUIRED_TAGS)}",
            )


def log_retention_set(stack: Stack) -> Iterator[Finding]:
    for group in stack.of_type(LOG_GROUP):
        days = group.props.get("retentionInDays")
        if not days or days == 0:
            yield group.urn, f"log group {group.name}: kept forever (no retentionInDays)"


def alarms_have_actions(stack: Stack) -> Iterator[Finding]:
    for alarm in stack.of_type(METRIC_ALARM):
        enabled = alarm.props.get("actionsEnabled")
        if (enabled is not None and not truthy(enabled)) or not as_list(
            alarm.props.get("alarmActions")
        ):
            yield alarm.urn, f"alarm {alarm.name}: notifies no one (no alarmActions)"


RULES: list[Rule] = [
    define(
        "required-tags",
        "AWS resources go through a provider whose default tags carry project, stack, "
        "environment and owner.",
        severity="medium",
        enforcement="mandatory",
        types=(),
        check=required_tags,
    ),
    define(
        "log-retention-set",
        "Log groups have a retention period.",
        severity="low",
        enforcement="advisory",
        types=(LOG_GROUP,),
        check=log_retention_set,
    ),
    define(
        "alarms-have-actions",
        "Prod alarms notify someone.",
        severity="medium",
        enforcement="advisory",
        types=(METRIC_ALARM,),
        check=alarms_have_actions,
        prod_only=True,
    ),
]
