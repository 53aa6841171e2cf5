"""Delivery: CI trust pinned to repository subjects, pinned images in prod, pinned Helm charts,
a bake at least as long as the slowest gating alarm takes to fire."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from policy.core import (
    Finding,
    Rule,
    Stack,
    as_list,
    get_path,
    is_sequence,
    iter_statements,
    parse_json,
)
from policy.rules.common import (
    HELM_RELEASE,
    IAM_ROLE,
    WORKLOADS,
    container_label,
    containers_of,
    define,
)

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
ELB_NAMESPACES = ("AWS/ApplicationELB", "AWS/NetworkELB")
ELB_METRIC_DELAY_SECONDS = 120
"""How late load balancer metrics reach CloudWatch (about 1-2 minutes): the worst case."""
BAKE_MARGIN_SECONDS = 60
DEFAULT_BAKE_MINUTES = 10
"""``mlstack:delivery.bakeMinutes`` when the stack file does not set it (its schema default)."""


_GITHUB_SUBJECT = re.compile(r"^repo:[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+:[^*?]+$")


def _trusts_github(statement: Mapping[str, Any]) -> bool:
    federated = [str(f) for f in as_list(get_path(statement, "Principal", "Federated"))]
    return any(f.endswith(f"oidc-provider/{GITHUB_OIDC_HOST}") for f in federated)


def ci_oidc_subject_pinned(stack: Stack) -> Iterator[Finding]:
    for role in stack.of_type(IAM_ROLE):
        for statement in iter_statements(role.props.get("assumeRolePolicy")):
            if not _trusts_github(statement):
                continue
            condition = statement.get("Condition")
            equals = get_path(condition, "StringEquals")
            if isinstance(condition, Mapping) and any(
                str(op).startswith("StringLike") for op in condition
            ):
                yield role.urn, f"GitHub role {role.name}: trusts subjects by pattern (StringLike)"
            if not isinstance(equals, Mapping):
                yield role.urn, f"GitHub role {role.name}: no StringEquals on :sub and :aud"
                continue
            subjects = [str(s) for s in as_list(equals.get(f"{GITHUB_OIDC_HOST}:sub", []))]
            if not subjects:
                yield role.urn, f"GitHub role {role.name}: :sub is not pinned"
            for subject in subjects:
                if not _GITHUB_SUBJECT.match(subject):
                    yield (
                        role.urn,
                        f"GitHub role {role.name}: subject {subject!r} is not one exact "
                        "repo:<owner>/<name>:<context>",
                    )
            if as_list(equals.get(f"{GITHUB_OIDC_HOST}:aud")) != ["sts.amazonaws.com"]:
                yield role.urn, f"GitHub role {role.name}: audience is not sts.amazonaws.com"


def _image_problem(image: str) -> str | None:
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "has no tag (means :latest)"
    if last.rsplit(":", 1)[1] == "latest":
        return "uses :latest"
    return None


def _helm_latest_tags(values: Any, path: str = "") -> Iterator[str]:
    if isinstance(values, Mapping):
        for key, value in values.items():
            where = f"{path}.{key}" if path else str(key)
            tag_latest = key == "tag" and str(value) == "latest"
            bad_image = key == "image" and isinstance(value, str) and _image_problem(value)
            if tag_latest or bad_image:
                yield where
            else:
                yield from _helm_latest_tags(value, where)
    elif is_sequence(values):
        for index, value in enumerate(values):
            yield from _helm_latest_tags(value, f"{path}[{index}]")


def no_latest_images_in_prod(stack: Stack) -> Iterator[Finding]:
    for workload in stack.of_type(*WORKLOADS):
        for container in containers_of(workload):
            image = str(container.get("image") or "")
            problem = _image_problem(image) if image else "has no image"
            if problem:
                yield (
                    workload.urn,
                    f"{container_label(workload, container)}: image {image!r} {problem}",
                )
    for release in stack.of_type(HELM_RELEASE):
        for where in _helm_latest_tags(parse_json(release.props.get("values"))):
            yield release.urn, f"Helm release {release.name}: values.{where} is latest/untagged"


def helm_charts_pinned(stack: Stack) -> Iterator[Finding]:
    for release in stack.of_type(HELM_RELEASE):
        version = str(release.props.get("version") or "")
        if not version or any(ch in version for ch in "*^~<>x| ") or version == "latest":
            yield release.urn, f"Helm release {release.name}: chart version {version!r} not pinned"


def alarm_gates(props: Mapping[str, Any]) -> bool:
    """An alarm's bake role (``mlstack.delivery.bake.alarm_gates``): its ``bake`` tag, else
    gate when critical or without severity."""
    tags = props.get("tags") or {}
    role = tags.get("bake")
    if role is not None:
        return role == "gate"
    return tags.get("severity") in (None, "critical")


def time_to_alarm(props: Mapping[str, Any]) -> tuple[int, int, int]:
    """(datapoints needed, period seconds, metric delay seconds) of an alarm: from a
    sustained breach, it reaches ALARM after that many bad periods once the metric lands."""
    queries = [q for q in props.get("metricQueries") or [] if isinstance(q, Mapping)]
    metrics = [q["metric"] for q in queries if isinstance(q.get("metric"), Mapping)]
    period = int(
        props.get("period") or max((int(m.get("period") or 0) for m in metrics), default=60)
    )
    namespaces = {props.get("namespace"), *(m.get("namespace") for m in metrics)}
    delay = ELB_METRIC_DELAY_SECONDS if namespaces & set(ELB_NAMESPACES) else 0
    datapoints = int(props.get("datapointsToAlarm") or props.get("evaluationPeriods") or 1)
    return datapoints, period, delay


def _bake_minutes(stack: Stack) -> tuple[str, float]:
    """(where, minutes): the stack file's ``bakeMinutes``, else the schema default."""
    from policy.rules.lifecycle import _load_stack_file

    loaded = _load_stack_file(stack)
    if loaded is None:
        return "mlstack:delivery.bakeMinutes not set (no stack file):", DEFAULT_BAKE_MINUTES
    path, data = loaded
    config = data.get("config") if isinstance(data, Mapping) else None
    delivery = (config or {}).get("mlstack:delivery") if isinstance(config, Mapping) else None
    value = delivery.get("bakeMinutes") if isinstance(delivery, Mapping) else None
    return f"{path}:", float(value if value is not None else DEFAULT_BAKE_MINUTES)


def bake_covers_alarm_time(stack: Stack) -> Iterator[Finding]:
    where, minutes = _bake_minutes(stack)
    gating = [a for a in stack.of_type(METRIC_ALARM) if alarm_gates(a.props)]
    if not gating:
        return

    def seconds(alarm: Any) -> int:
        datapoints, period, delay = time_to_alarm(alarm.props)
        return datapoints * period + delay

    slowest = max(gating, key=lambda a: (seconds(a), a.name))
    datapoints, period, delay = time_to_alarm(slowest.props)
    total = seconds(slowest)
    required = -(-(total + BAKE_MARGIN_SECONDS) // 60)
    if minutes < required:
        name = slowest.props.get("name") or slowest.name
        yield (
            None,
            f"{where} mlstack:delivery.bakeMinutes = {minutes:g}; the slowest gating alarm "
            f"{name} reaches ALARM {datapoints} x {period}s + {delay}s load balancer metric "
            f"delay = {total}s after a breach starts; allowed: at least {required} "
            f"({total}s + {BAKE_MARGIN_SECONDS}s, in whole minutes)",
        )


RULES: list[Rule] = [
    define(
        "ci-oidc-subject-pinned",
        "GitHub Actions roles trust exact repo:<owner>/<name>:<context> subjects, STS audience.",
        severity="high",
        enforcement="mandatory",
        types=(IAM_ROLE,),
        check=ci_oidc_subject_pinned,
    ),
    define(
        "no-latest-images-in-prod",
        "Prod images are pinned to a tag other than latest, or a digest.",
        severity="high",
        enforcement="mandatory",
        types=(*WORKLOADS, HELM_RELEASE),
        check=no_latest_images_in_prod,
        prod_only=True,
    ),
    define(
        "helm-charts-pinned",
        "Helm releases pin an exact chart version.",
        severity="medium",
        enforcement="mandatory",
        types=(HELM_RELEASE,),
        check=helm_charts_pinned,
    ),
    Rule(
        "bake-covers-alarm-time",
        "mlstack:delivery.bakeMinutes is at least the slowest gating alarm's time to ALARM "
        "(datapoints to alarm x period + load balancer metric delay) plus one minute.",
        "medium",
        "mandatory",
        (METRIC_ALARM,),
        bake_covers_alarm_time,
        remediation="Raise mlstack:delivery.bakeMinutes to the minutes the message names, or "
        "make the alarm fire sooner (fewer datapoints to alarm, shorter period).",
    ),
]
