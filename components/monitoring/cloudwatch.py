"""CloudWatch alarms per inference target group and per load balancer, and a CloudWatch
dashboard of them.

The target groups and load balancers are Pulumi resources of the same stack, so the
alarms reference their ARN suffixes directly and exist from the first deploy on.

Each target group of a service behind the Application Load Balancer gets four alarms in
``AWS/ApplicationELB``, dimensioned by ``TargetGroup`` *and* ``LoadBalancer`` (the
ARN suffixes ``targetgroup/<name>/<id>`` and ``app/<name>/<id>``): target 5XX ratio
(metric math over ``HTTPCode_Target_5XX_Count`` / ``RequestCount``), p99
``TargetResponseTime`` above the service's SLO, any ``UnHealthyHostCount``, and
``HealthyHostCount`` below the service's minimum. A target group behind an NLB gets the
two host alarms in ``AWS/NetworkELB``. Per load balancer: the ALB's own 5XX ratio
(``HTTPCode_ELB_5XX_Count``), an NLB's TCP resets (``TCP_ELB_Reset_Count``,
``TCP_Target_Reset_Count``). These watch the service from outside the cluster, so they
still fire when Prometheus itself is down.

An alarm notifies the alert topic when its severity is one the stack pages on;
otherwise it has no actions (it still shows on the dashboard and in the console).

Each alarm's tag ``bake`` (``gate`` | ``observe``) is its role in ``mlstack bake``: a
gating alarm in ALARM fails the bake (and rolls the update back), an observed one is
reported only. Critical alarms gate, and so does ``unhealthy-hosts`` (a new version's
targets failing their health checks); the rest observe.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_aws as aws

from components.monitoring.alert_rules import CRITICAL, INFO, WARNING

NAMESPACE = "AWS/ApplicationELB"
NLB_NAMESPACE = "AWS/NetworkELB"
NAMESPACES = {"alb": NAMESPACE, "nlb": NLB_NAMESPACE}
LbKind = Literal["alb", "nlb"]
BakeRole = Literal["gate", "observe"]


@dataclass(frozen=True)
class AlbAlarmTarget:
    """One service's load-balancer identity, as the serving layer exposes it."""

    service: str
    target_group_arn_suffix: pulumi.Input[str]
    load_balancer_arn_suffix: pulumi.Input[str]
    min_healthy: int
    """Healthy targets the service must keep; 0 means it may scale to zero."""
    p99_latency_slo_seconds: float
    kind: LbKind = "alb"


@dataclass(frozen=True)
class LoadBalancerAlarmTarget:
    """One load balancer (the shared ALB or an NLB) for its own alarms."""

    name: str
    kind: LbKind
    arn_suffix: pulumi.Input[str]


@dataclass(frozen=True)
class AlbAlarmSettings:
    """How the ALB alarms evaluate. Defaults: 1-minute periods, 3 bad minutes out of 5."""

    period_seconds: int = 60
    evaluation_periods: int = 5
    datapoints_to_alarm: int = 3
    target_5xx_percent: float = 5.0
    """Percent of requests answered 5XX (by targets, or by the ALB itself) in a bad period."""
    min_requests_per_period: int = 20
    """Fewer requests in a period never make it bad (one failed request of two is no outage)."""
    tcp_resets_per_period: int = 100
    """NLB: TCP resets (by the NLB or the targets) per period that count as a bad period."""

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
        if not 0 < self.target_5xx_percent <= 100:
            found.append(f"target_5xx_percent: {self.target_5xx_percent}: in (0, 100]")
        if self.min_requests_per_period < 1:
            found.append(f"min_requests_per_period: {self.min_requests_per_period}: at least 1")
        if self.tcp_resets_per_period < 1:
            found.append(f"tcp_resets_per_period: {self.tcp_resets_per_period}: at least 1")
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
    ratio_of: tuple[str, str] | None = None
    """(errors metric, requests metric): the alarm is on 100 * errors / requests."""
    bake: BakeRole | None = None
    """Role in ``mlstack bake``; None: ``gate`` when critical, else ``observe``."""

    @property
    def bake_role(self) -> BakeRole:
        if self.bake is not None:
            return self.bake
        return "gate" if self.severity == CRITICAL else "observe"


def _ratio(role: str, errors: str, who: str, svc: str, settings: AlbAlarmSettings) -> AlarmSpec:
    minutes = settings.period_seconds * settings.evaluation_periods // 60
    return AlarmSpec(
        role=role,
        metric_name=errors,
        comparison="GreaterThanThreshold",
        threshold=settings.target_5xx_percent,
        severity=CRITICAL,
        treat_missing_data="notBreaching",
        description=f"{svc}: {who} answered more than {settings.target_5xx_percent:g}% of "
        f"requests with 5XX (periods of at least {settings.min_requests_per_period} "
        f"requests) in {settings.datapoints_to_alarm} of the last {minutes} min.",
        ratio_of=(errors, "RequestCount"),
    )


def ratio_expression(settings: AlbAlarmSettings) -> str:
    """Metric math of a 5XX ratio alarm over the queries ``errors`` and ``requests``."""
    return (
        f"IF(requests >= {settings.min_requests_per_period}, 100 * FILL(errors, 0) / requests, 0)"
    )


def alarm_specs(target: AlbAlarmTarget, settings: AlbAlarmSettings) -> list[AlarmSpec]:
    """The alarms of one target group: four behind the ALB, the two host alarms behind
    an NLB."""
    svc = target.service
    if target.kind == "nlb":
        return [_unhealthy(svc), _healthy_below_min(target)]
    return [
        _ratio("target-5xx", "HTTPCode_Target_5XX_Count", "targets", svc, settings),
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
        _unhealthy(svc),
        _healthy_below_min(target),
    ]


def _unhealthy(svc: str) -> AlarmSpec:
    return AlarmSpec(
        role="unhealthy-hosts",
        metric_name="UnHealthyHostCount",
        statistic="Maximum",
        comparison="GreaterThanThreshold",
        threshold=0,
        severity=WARNING,
        treat_missing_data="notBreaching",
        description=f"{svc}: at least one target fails its health check.",
        bake="gate",
    )


def load_balancer_alarm_specs(
    target: LoadBalancerAlarmTarget, settings: AlbAlarmSettings
) -> list[AlarmSpec]:
    """The alarms of one load balancer: the ALB's own 5XX ratio; an NLB's TCP resets."""
    if target.kind == "alb":
        return [_ratio("elb-5xx", "HTTPCode_ELB_5XX_Count", "the ALB", target.name, settings)]
    return [
        AlarmSpec(
            role=f"{who}-resets",
            metric_name=metric,
            statistic="Sum",
            comparison="GreaterThanThreshold",
            threshold=settings.tcp_resets_per_period,
            severity=WARNING,
            treat_missing_data="notBreaching",
            description=f"{target.name}: more than {settings.tcp_resets_per_period} TCP "
            f"resets sent by the {who} per {settings.period_seconds}s.",
        )
        for who, metric in (("elb", "TCP_ELB_Reset_Count"), ("target", "TCP_Target_Reset_Count"))
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


def _alarm(
    parent: pulumi.Resource,
    resource_name: str,
    *,
    physical_name: str,
    spec: AlarmSpec,
    namespace: str,
    dimensions: dict[str, pulumi.Input[str]],
    settings: AlbAlarmSettings,
    actions: list[pulumi.Input[str]],
    tags: dict[str, str],
) -> aws.cloudwatch.MetricAlarm:
    common: dict[str, Any] = {
        "name": physical_name,
        "alarm_description": spec.description,
        "evaluation_periods": settings.evaluation_periods,
        "datapoints_to_alarm": settings.datapoints_to_alarm,
        "threshold": spec.threshold,
        "comparison_operator": spec.comparison,
        "treat_missing_data": spec.treat_missing_data,
        "alarm_actions": actions,
        "ok_actions": actions,
        "tags": tags,
    }
    if spec.ratio_of is not None:
        errors, requests = spec.ratio_of

        def query(query_id: str, metric: str) -> aws.cloudwatch.MetricAlarmMetricQueryArgs:
            return aws.cloudwatch.MetricAlarmMetricQueryArgs(
                id=query_id,
                return_data=False,
                metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                    namespace=namespace,
                    metric_name=metric,
                    dimensions=dimensions,
                    period=settings.period_seconds,
                    stat="Sum",
                ),
            )

        args = aws.cloudwatch.MetricAlarmArgs(
            metric_queries=[
                query("errors", errors),
                query("requests", requests),
                aws.cloudwatch.MetricAlarmMetricQueryArgs(
                    id="ratio",
                    expression=ratio_expression(settings),
                    label=f"{errors} percent",
                    return_data=True,
                ),
            ],
            **common,
        )
    else:
        args = aws.cloudwatch.MetricAlarmArgs(
            namespace=namespace,
            metric_name=spec.metric_name,
            statistic=spec.statistic,
            extended_statistic=spec.extended_statistic,
            dimensions=dimensions,
            period=settings.period_seconds,
            **common,
        )
    return aws.cloudwatch.MetricAlarm(
        resource_name, args, opts=pulumi.ResourceOptions(parent=parent)
    )


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
    """The alarms of one target group; those whose severity pages notify ``topic_arn``."""
    return [
        _alarm(
            parent,
            f"{name}-{target.service}-{spec.role}",
            physical_name=alarm_name(name_prefix, target.service, spec.role),
            spec=spec,
            namespace=NAMESPACES[target.kind],
            dimensions={
                "TargetGroup": target.target_group_arn_suffix,
                "LoadBalancer": target.load_balancer_arn_suffix,
            },
            settings=settings,
            actions=[topic_arn] if spec.severity in page_severities else [],
            tags={"severity": spec.severity, "service": target.service, "bake": spec.bake_role},
        )
        for spec in alarm_specs(target, settings)
    ]


def create_load_balancer_alarms(
    parent: pulumi.Resource,
    name: str,
    *,
    name_prefix: str,
    target: LoadBalancerAlarmTarget,
    settings: AlbAlarmSettings,
    topic_arn: pulumi.Input[str],
    page_severities: Sequence[str],
) -> list[aws.cloudwatch.MetricAlarm]:
    """The alarms of one load balancer."""
    return [
        _alarm(
            parent,
            f"{name}-{target.name}-{spec.role}",
            physical_name=alarm_name(name_prefix, target.name, spec.role),
            spec=spec,
            namespace=NAMESPACES[target.kind],
            dimensions={"LoadBalancer": target.arn_suffix},
            settings=settings,
            actions=[topic_arn] if spec.severity in page_severities else [],
            tags={"severity": spec.severity, "load-balancer": target.name, "bake": spec.bake_role},
        )
        for spec in load_balancer_alarm_specs(target, settings)
    ]


# --------------------------------------------------------------------------- dashboard


@dataclass(frozen=True)
class ResolvedTarget:
    """An :class:`AlbAlarmTarget` with its suffixes resolved to strings (dashboard input)."""

    service: str
    target_group: str
    load_balancer: str
    p99_latency_slo_seconds: float
    kind: LbKind = "alb"


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
        if t.kind == "nlb":
            widgets.append(
                metric_widget(
                    f"{t.service}: targets (NLB)",
                    [
                        [NLB_NAMESPACE, "HealthyHostCount", *dims],
                        [NLB_NAMESPACE, "UnHealthyHostCount", *dims],
                    ],
                    0,
                    "Minimum",
                )
            )
            y += 6
            continue
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
            ResolvedTarget(t.service, pair[0], pair[1], t.p99_latency_slo_seconds, t.kind)
            for t, pair in zip(targets, resolved_pairs, strict=True)
        ]
        return json.dumps(dashboard_body(region, topic_name, resolved, arns), sort_keys=True)

    body = pulumi.Output.all(*suffixes, *[a.arn for a in alarms]).apply(render)
    return aws.cloudwatch.Dashboard(
        f"{name}-cloudwatch-dashboard",
        aws.cloudwatch.DashboardArgs(dashboard_name=dashboard_name, dashboard_body=body),
        opts=pulumi.ResourceOptions(parent=parent),
    )
