"""``mlstack:serving``: shared serving settings. Extension point (Inference services issue)."""

from __future__ import annotations

from stacks.schema.base import ConfigModel


class ServingConfig(ConfigModel):
    """Load balancer and autoscaler settings (fields added by the Inference services issue)."""
