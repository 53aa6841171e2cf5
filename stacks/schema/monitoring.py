"""``mlstack:monitoring``: metrics, alerts, notifications. Extension point (Monitoring issue)."""

from __future__ import annotations

from stacks.schema.base import ConfigModel


class MonitoringConfig(ConfigModel):
    """Monitoring settings (fields added by the Monitoring issue)."""
