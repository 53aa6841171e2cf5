"""``mlstack:artifacts``: the model-artifact bucket. Extension point (Model artifacts issue)."""

from __future__ import annotations

from stacks.schema.base import ConfigModel


class ArtifactsConfig(ConfigModel):
    """Model-artifact bucket settings (fields added by the Model artifacts issue)."""
