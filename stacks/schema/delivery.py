"""``mlstack:delivery``: CI identities for GitHub Actions. Extension point (Delivery issue)."""

from __future__ import annotations

from stacks.schema.base import ConfigModel


class DeliveryConfig(ConfigModel):
    """CI identity settings (fields added by the Delivery issue)."""
