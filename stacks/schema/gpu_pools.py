"""``mlstack:gpuPools``: GPU node pools. Extension point filled by the GPU node pools issue."""

from __future__ import annotations

from stacks.schema.base import ConfigModel, fixed


class GpuPoolConfig(ConfigModel):
    """One GPU node pool (fields added by the GPU node pools issue)."""

    name: str = fixed(description="Pool name, a DNS-1123 label.")
