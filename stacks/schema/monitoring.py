"""``mlstack:monitoring``: metrics retention and storage, alert thresholds, who gets paged.

Threshold defaults come from :class:`components.monitoring.alert_rules.AlertThresholds`
and :class:`components.monitoring.cloudwatch.AlbAlarmSettings` (one source of truth).
Rules that span keys (prod needs a subscriber; retention must cover the alert windows)
live in ``stacks.config.ENVIRONMENT_RULES`` so their errors name the exact key.
"""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator, model_validator

from components.monitoring.alert_rules import SEVERITIES, AlertThresholds
from components.monitoring.cloudwatch import AlbAlarmSettings
from components.monitoring.notifications import subscriber_problems
from components.monitoring.prometheus_stack import retention_minutes
from components.monitoring.sizing import DEFAULT_ACTIVE_SERIES, MAX_ACTIVE_SERIES, MIN_ACTIVE_SERIES
from stacks.schema.base import ConfigModel, fixed, knob
from stacks.schema.secrets import SecretValue

_T = AlertThresholds()
_ALB = AlbAlarmSettings()
_MINUTES = {"ge": 1, "le": 10080}


class SubscriberConfig(ConfigModel):
    """One recipient of alerts on the alert topic."""

    protocol: Literal["email", "https"] = knob(description="email or https.")
    endpoint: str = knob(description="Email address, or https:// URL of a webhook.")

    @model_validator(mode="after")
    def _valid_endpoint(self) -> SubscriberConfig:
        problems = subscriber_problems(self.protocol, self.endpoint)
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ThresholdsConfig(ConfigModel):
    """Prometheus alert thresholds (percent 0-100, windows in minutes)."""

    error_ratio_percent: float = knob(
        _T.error_ratio_percent, gt=0, le=100, description="Failing share of requests, %."
    )
    rate_window_minutes: int = knob(
        _T.rate_window_minutes, **_MINUTES, description="rate() window of SLO alerts."
    )
    slo_for_minutes: int = knob(
        _T.slo_for_minutes, **_MINUTES, description="How long SLO conditions must hold."
    )
    queue_waiting_per_replica: float = knob(
        _T.queue_waiting_per_replica, gt=0, description="Waiting requests per replica (vLLM)."
    )
    queue_time_seconds: float = knob(
        _T.queue_time_seconds, gt=0, le=600, description="Mean queue time, s (Triton)."
    )
    replicas_at_max_for_minutes: int = knob(
        _T.replicas_at_max_for_minutes, **_MINUTES, description="Time pinned at max replicas."
    )
    gpu_util_high_percent: float = knob(
        _T.gpu_util_high_percent, gt=0, le=100, description="Pool utilization = saturated, %."
    )
    gpu_util_high_window_minutes: int = knob(
        _T.gpu_util_high_window_minutes, **_MINUTES, description="Averaging window, high."
    )
    gpu_util_low_percent: float = knob(
        _T.gpu_util_low_percent, gt=0, le=100, description="Pool utilization = wasted, %."
    )
    gpu_util_low_window_minutes: int = knob(
        _T.gpu_util_low_window_minutes, **_MINUTES, description="Averaging window, low."
    )
    gpu_memory_full_percent: float = knob(
        _T.gpu_memory_full_percent, gt=0, le=100, description="Framebuffer use per GPU, %."
    )
    gpu_pending_for_minutes: int = knob(
        _T.gpu_pending_for_minutes, **_MINUTES, description="GPU pods unschedulable this long."
    )

    @model_validator(mode="after")
    def _low_below_high(self) -> ThresholdsConfig:
        if self.gpu_util_low_percent >= self.gpu_util_high_percent:
            raise ValueError(
                f"gpuUtilLowPercent ({self.gpu_util_low_percent}) must be below "
                f"gpuUtilHighPercent ({self.gpu_util_high_percent})"
            )
        return self

    def to_thresholds(self) -> AlertThresholds:
        return AlertThresholds(**self.model_dump())


class AlbAlarmsConfig(ConfigModel):
    """CloudWatch alarms on every model target group and load balancer (always on: they
    reference the stack's own target groups and load balancers)."""

    target5xx_percent: float = knob(
        _ALB.target_5xx_percent,
        gt=0,
        le=100,
        description="Percent of requests answered 5XX (targets, or the ALB itself) in a bad "
        "minute.",
    )
    evaluation_minutes: int = knob(
        _ALB.evaluation_periods, ge=1, le=60, description="Minutes each alarm looks back."
    )
    bad_minutes_to_alarm: int = knob(
        _ALB.datapoints_to_alarm, ge=1, le=60, description="Bad minutes in that span to alarm."
    )

    @model_validator(mode="after")
    def _datapoints_fit(self) -> AlbAlarmsConfig:
        if self.bad_minutes_to_alarm > self.evaluation_minutes:
            raise ValueError(
                f"badMinutesToAlarm ({self.bad_minutes_to_alarm}) cannot exceed "
                f"evaluationMinutes ({self.evaluation_minutes})"
            )
        return self

    def to_settings(self) -> AlbAlarmSettings:
        return AlbAlarmSettings(
            period_seconds=60,
            evaluation_periods=self.evaluation_minutes,
            datapoints_to_alarm=self.bad_minutes_to_alarm,
            target_5xx_percent=self.target5xx_percent,
        )


class MonitoringConfig(ConfigModel):
    """Prometheus sizing, alert thresholds and notification routing."""

    retention: str = knob(
        "15d",
        description="Prometheus retention, <n>h|d|w|y. Must cover the longest alert window.",
    )
    storage_gib: int = knob(50, ge=10, le=16384, description="Prometheus gp3 volume, GiB.")
    replicas: int = knob(1, ge=1, le=5, description="Prometheus / Alertmanager replicas.")
    active_series: int | None = knob(
        None,
        ge=MIN_ACTIVE_SERIES,
        le=MAX_ACTIVE_SERIES,
        description="Expected active series (scrape load); with retention it sizes Prometheus' "
        f"requests and limits (docs/monitoring.md#sizing). Default: "
        f"{DEFAULT_ACTIVE_SERIES['dev']} in dev, {DEFAULT_ACTIVE_SERIES['prod']} in prod.",
    )
    grafana_admin_password: SecretValue | None = knob(
        None,
        description="Grafana admin password (a `secure:` value only). Unset: the stack generates "
        "one (pulumi-random), never the chart default.",
    )
    subscribers: list[SubscriberConfig] = knob(
        default_factory=list, description="Who receives alerts. prod needs at least one."
    )
    page_severities: list[Literal["critical", "warning", "info"]] = knob(
        default_factory=lambda: ["critical"],
        description="Alert severities sent to the subscribers; must include critical.",
    )
    thresholds: ThresholdsConfig = knob(
        default_factory=ThresholdsConfig, description="Prometheus alert thresholds."
    )
    alb_alarms: AlbAlarmsConfig = knob(
        default_factory=AlbAlarmsConfig, description="CloudWatch ALB alarm settings."
    )
    runbook_base_url: str = fixed(
        "https://github.com/mlstack/mlstack/blob/main/docs/monitoring.md",
        pattern=r"^https://\S+$",
        description="Page whose #<alertname> anchors are the runbooks.",
    )
    chart_version: str | None = fixed(
        None, description="Override of the pinned kube-prometheus-stack chart version."
    )

    @field_validator("retention")
    @classmethod
    def _retention_shape(cls, value: str) -> str:
        retention_minutes(value)  # raises ValueError with the allowed shape
        return value

    @field_validator("page_severities")
    @classmethod
    def _pages_critical(cls, value: list[str]) -> list[str]:
        if "critical" not in value:
            raise ValueError(f"must include critical; allowed values: {', '.join(SEVERITIES)}")
        if len(set(value)) != len(value):
            raise ValueError("duplicate severities")
        return value

    @field_validator("subscribers")
    @classmethod
    def _unique_subscribers(cls, value: list[SubscriberConfig]) -> list[SubscriberConfig]:
        keys = [(s.protocol, s.endpoint) for s in value]
        dupes = sorted({f"{p}:{e}" for p, e in keys if keys.count((p, e)) > 1})
        if dupes:
            raise ValueError(f"duplicate subscribers: {dupes}")
        return value
