"""``mlstack:models``: served models. Extension point for Model artifacts / Inference services."""

from __future__ import annotations

from stacks.schema.base import ConfigModel, fixed


class ModelConfig(ConfigModel):
    """One served model (fields added by the Model artifacts and Inference services issues)."""

    name: str = fixed(description="Model name, a DNS-1123 label.")
