"""Monitoring: metrics, SLO alerts, dashboards, CloudWatch alarms, the alert topic."""

from components.monitoring.component import (
    DcgmScrape,
    Monitoring,
    MonitoringArgs,
    ServiceTarget,
)
from components.monitoring.notifications import Subscriber

__all__ = ["DcgmScrape", "Monitoring", "MonitoringArgs", "ServiceTarget", "Subscriber"]
