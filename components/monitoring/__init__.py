"""Monitoring: metrics, SLO alerts, dashboards, CloudWatch alarms, the alert topic."""

from components.monitoring.component import (
    MONITORING_NAMESPACE,
    AlbTargetGroupRef,
    DcgmScrape,
    LoadBalancerRef,
    Monitoring,
    MonitoringArgs,
    ServiceTarget,
)
from components.monitoring.notifications import Subscriber

__all__ = [
    "MONITORING_NAMESPACE",
    "AlbTargetGroupRef",
    "DcgmScrape",
    "LoadBalancerRef",
    "Monitoring",
    "MonitoringArgs",
    "ServiceTarget",
    "Subscriber",
]
