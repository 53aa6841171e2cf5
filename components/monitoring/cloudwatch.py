"""CloudWatch alarms per inference service on its ALB target group, and a CloudWatch
dashboard of them.

Each service behind an Application Load Balancer gets four alarms in
``AWS/ApplicationELB``, dimensioned by ``TargetGroup`` *and* ``LoadBalancer`` (the
ARN suffixes ``targetgroup/<name>/<id>`` and ``app/<name>/<id>``): target 5XX count,
p99 ``TargetResponseTime`` above the service's SLO, any ``UnHealthyHostCount``, and
``HealthyHostCount`` below the service's minimum. These watch the service from outside
the cluster, so they still fire when Prometheus itself is down.

An alarm notifies the alert topic when its severity is one the stack pages on;
otherwise it has no actions (it still shows on the dashboard and in the console).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.monitoring.alert_rules import CRITICAL, INFO, WARNING

NAMESPACE = "AWS/ApplicationELB"


@dataclass(frozen=True)
class AlbAlarmTarget:
    """One service's load-balancer identity, as the serving layer exposes it."""

    service: str
    target_group_arn_suffix: pulumi.Input[str]
    load_balancer_arn_suffix: pulumi.Input[str]
    min_healthy: int
    """Healthy targets the service must keep; 0 means it may scale to zero."""
    p99_latency_slo_seconds: float


@dataclass(frozen=True)
class AlbAlarmSettings:
    """How the ALB alarms evaluate. Defaults: 1-minute periods, 3 bad minutes out of 5."""

    period_seconds: int = 60
    evaluation_periods: int = 5
    datapoints_to_alarm: int = 3
    target_5xx_per_period: int = 10
    """5XX responses from targets per period that count as a bad period."""

    def problems(self) -> list[str]:
        found: list[str] = []
        if self.period_seconds not in (10, 30) and (
            self.period_seconds < 60 or self.period_seconds % 60
        ):
            found.append(f"period_seconds: {self.period_seconds}: 10, 30 or a multiple of 60")
        if not 1 <= self.datapoints_to_alarm <= self.evaluation_periods:
            found.append(
                f"datapoints_to_alarm: {self.datapoints_to_alarm}: between 1 and "
                f"evaluation_periods ({self.evaluation_periods})"
            )
        if self.target_5xx_per_period < 1:
            found.append(f"target_5xx_per_period: {self.target_5xx_per_period}: at least 1")
        return found


@dataclass(frozen=True)
class AlarmSpec:
    """One alarm, before it becomes a resource (pure data, easy to test)."""

    role: str
    metric_name: str
    comparison: str
    threshold: float
    severity: str
    treat_missing_data: str
    description: str
    statistic: str | None = None
    extended_statistic: str | None = None


def alarm_specs(target: AlbAlarmTarget, settings: AlbAlarmSettings) -> list[AlarmSpec]:
    """The four alarms of one service."""
    svc = target.service
    minutes = settings.period_seconds * settings.evaluation_periods // 60
    return [
        AlarmSpec(
            role="target-5xx",
            metric_name="HTTPCode_Target_5XX_Count",
            statistic="Sum",
            comparison="GreaterThanThreshold",
            threshold=settings.target_5xx_per_period,
            severity=CRITICAL,
            treat_missing_data="notBreaching",
            description=f"{svc}: targets returned more than {settings.target_5xx_per_period} "
            f"5XX per {settings.period_seconds}s in {settings.datapoints_to_alarm} of the "
            f"last {minutes} min.",
        ),
        AlarmSpec(
            role="p99-latency",
            metric_name="TargetResponseTime",
            extended_statistic="p99",
            comparison="GreaterThanThreshold",
            threshold=target.p99_latency_slo_seconds,
            severity=WARNING,
            treat_missing_data="notBreaching",
            description=f"{svc}: p99 target response time above the "
            f"{target.p99_latency_slo_seconds}s SLO.",
        ),
        AlarmSpec(
            role="unhealthy-hosts",
            metric_name="UnHealthyHostCount",
            statistic="Maximum",
            comparison="GreaterThanThreshold",
            threshold=0,
            severity=WARNING,
            treat_missing_data="notBreaching",
            description=f"{svc}: at least one target fails its health check.",
        ),
        _healthy_below_min(target),
    ]


def _healthy_below_min(target: AlbAlarmTarget) -> AlarmSpec:
    """The floor alarm. A service that may scale to zero keeps the alarm (same shape in every
    stack, state visible on the dashboard) at severity info, which never pages: at zero
    replicas "no healthy target" is the expected state, not an outage."""
    svc = target.service
    if target.min_healthy == 0:
        return AlarmSpec(
            role="healthy-below-min",
            metric_name="HealthyHostCount",
            statistic="Minimum",
            comparison="LessThanThreshold",
            threshold=1,
            severity=INFO,
            treat_missing_data="notBreaching",
            description=f"{svc}: no healthy target (informational: the service may scale "
            "to zero, so this never pages).",
        )
    return AlarmSpec(
        role="healthy-below-min",
        metric_name="HealthyHostCount",
        statistic="Minimum",
        comparison="LessThanThreshold",
        threshold=target.min_healthy,
        severity=CRITICAL,
        # No datapoints means no healthy target reported at all.
        treat_missing_data="breaching",
        description=f"{svc}: fewer than {target.min_healthy} healthy targets.",
    )


def alarm_name(prefix: str, service: str, role: str) -> str:
    return f"{prefix}-{service}-{role}"


def create_alarms(
    parent: pulumi.Resource,
    name: str,
    *,
    name_prefix: str,
    target: AlbAlarmTarget,
    settings: AlbAlarmSettings,
    topic_arn: pulumi.Input[str],
    page_severities: Sequence[str],
) -> list[aws.cloudwatch.MetricAlarm]:
    """The alarms of one service; those whose severity pages notify ``topic_arn``."""
    alarms: list[aws.cloudwatch.MetricAlarm] = []
    for spec in alarm_specs(target, settings):
        actions = [topic_arn] if spec.severity in page_severities else []
        alarms.append(
            aws.cloudwatch.MetricAlarm(
                f"{name}-{target.service}-{spec.role}",
                aws.cloudwatch.MetricAlarmArgs(
                    name=alarm_name(name_prefix, target.service, spec.role),
                    alarm_description=spec.description,
                    namespace=NAMESPACE,
                    metric_name=spec.metric_name,
                    statistic=spec.statistic,
                    extended_statistic=spec.extended_statistic,
                    dimensions={
                        "TargetGroup": target.target_group_arn_suffix,
                        "LoadBalancer": target.load_balancer_arn_suffix,
                    },
                    period=settings.period_seconds,
                    evaluation_periods=settings.evaluation_periods,
                    datapoints_to_alarm=settings.datapoints_to_alarm,
                    threshold=spec.threshold,
                    comparison_operator=spec.comparison,
                    treat_missing_data=spec.treat_missing_data,
                    alarm_actions=actions,
                    ok_actions=actions,
                    tags={"severity": spec.severity, "service": target.service},
                ),
                opts=pulumi.ResourceOptions(parent=parent),
            )
        )
    return alarms


# --------------------------------------------------------------------------- dashboard


@dataclass(frozen=True)
class ResolvedTarget:
    """An :class:`AlbAlarmTarget` with its suffixes resolved to strings (dashboard input)."""

    service: str
    target_group: str
    load_balancer: str
    p99_latency_slo_seconds: float


def dashboard_body(
    region: str,
    topic_name: str,
    targets: Sequence[ResolvedTarget],
    alarm_arns: Sequence[str],
) -> dict[str, Any]:
    """The CloudWatch dashboard: per service traffic, errors, latency, hosts; alarm status;
    delivery of the alert topic."""
    widgets: list[dict[str, Any]] = []
    y = 0

    def metric_widget(title: str, metrics: list[list[Any]], x: int, stat: str) -> dict[str, Any]:
        return {
            "type": "metric",
            "x": x,
            "y": y,
            "width": 8,
            "height": 6,
            "properties": {
                "title": title,
                "region": region,
                "view": "timeSeries",
                "stat": stat,
                "period": 60,
                "metrics": metrics,
            },
        }

    if alarm_arns:
        widgets.append(
            {
                "type": "alarm",
                "x": 0,
                "y": y,
                "width": 24,
                "height": 4,
                "properties": {"title": "Alarms", "alarms": sorted(alarm_arns)},
            }
        )
        y += 4
    for t in targets:
        dims = ["TargetGroup", t.target_group, "LoadBalancer", t.load_balancer]
        widgets += [
            metric_widget(
                f"{t.service}: requests and target 5XX",
                [
                    [NAMESPACE, "RequestCount", *dims],
                    [NAMESPACE, "HTTPCode_Target_5XX_Count", *dims],
                ],
                0,
                "Sum",
            ),
            metric_widget(
                f"{t.service}: target response time (SLO {t.p99_latency_slo_seconds}s)",
                [
                    [NAMESPACE, "TargetResponseTime", *dims, {"stat": "p50"}],
                    [NAMESPACE, "TargetResponseTime", *dims, {"stat": "p99"}],
                ],
                8,
                "p99",
            ),
            metric_widget(
                f"{t.service}: targets",
                [
                    [NAMESPACE, "HealthyHostCount", *dims],
                    [NAMESPACE, "UnHealthyHostCount", *dims],
                ],
                16,
                "Minimum",
            ),
        ]
        y += 6
    widgets.append(
        metric_widget(
            "Alert topic delivery",
            [
                ["AWS/SNS", "NumberOfMessagesPublished", "TopicName", topic_name],
                ["AWS/SNS", "NumberOfNotificationsFailed", "TopicName", topic_name],
            ],
            0,
            "Sum",
        )
    )
    return {"widgets": widgets}


def create_dashboard(
    parent: pulumi.Resource,
    name: str,
    *,
    dashboard_name: str,
    region: str,
    topic_name: str,
    targets: Sequence[AlbAlarmTarget],
    alarms: Sequence[aws.cloudwatch.MetricAlarm],
) -> aws.cloudwatch.Dashboard:
    """The dashboard; its body waits for the suffixes and alarm ARNs to resolve."""
    suffixes = [
        pulumi.Output.all(t.target_group_arn_suffix, t.load_balancer_arn_suffix) for t in targets
    ]

    def render(values: list[Any]) -> str:
        resolved_pairs, arns = values[: len(targets)], values[len(targets) :]
        resolved = [
            ResolvedTarget(t.service, pair[0], pair[1], t.p99_latency_slo_seconds)
            for t, pair in zip(targets, resolved_pairs, strict=True)
        ]
        return json.dumps(dashboard_body(region, topic_name, resolved, arns), sort_keys=True)

    body = pulumi.Output.all(*suffixes, *[a.arn for a in alarms]).apply(render)
    return aws.cloudwatch.Dashboard(
        f"{name}-cloudwatch-dashboard",
        aws.cloudwatch.DashboardArgs(dashboard_name=dashboard_name, dashboard_body=body),
        opts=pulumi.ResourceOptions(parent=parent),
    )
