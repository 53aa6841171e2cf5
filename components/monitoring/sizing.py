"""Requests and limits of every monitoring container, sized from scrape load and retention.

Prometheus (docs/monitoring.md, "Sizing"): its memory holds the head block (every active
series with its last hours of samples) plus the block indexes the queries of the retention
window read; its CPU follows the ingested samples per second.

* memory request (MiB) = 512 + active series x (8 KiB + retention days x 64 B) / 1 MiB
* memory limit = 1.5 x the request (queries and compaction burst above the steady state)
* CPU request (millicores) = 200 + samples per second / 50, where samples per second =
  active series / scrape interval

The other components do not grow with retention or series: fixed sizes below. No CPU limit
anywhere (throttling a scraper loses samples); every container has a memory limit, so none
runs BestEffort and none grows without bound on the system nodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

BASE_MEMORY_MIB = 512
HEAD_BYTES_PER_SERIES = 8 * 1024
INDEX_BYTES_PER_SERIES_DAY = 64
LIMIT_FACTOR = 1.5
BASE_CPU_MILLI = 200
SAMPLES_PER_SECOND_PER_MILLI = 50
MIN_ACTIVE_SERIES = 10_000
MAX_ACTIVE_SERIES = 5_000_000
DEFAULT_ACTIVE_SERIES = {"dev": 100_000, "prod": 300_000}
"""Expected active series per environment when the stack file sets none (prod scrapes
more pods, more nodes and keeps more rule results)."""


@dataclass(frozen=True)
class Resources:
    """One container's requests and memory limit."""

    cpu_milli: int
    memory_mib: int
    memory_limit_mib: int

    def to_k8s(self) -> dict[str, Any]:
        return {
            "requests": {"cpu": f"{self.cpu_milli}m", "memory": f"{self.memory_mib}Mi"},
            "limits": {"memory": f"{self.memory_limit_mib}Mi"},
        }


ALERTMANAGER = Resources(50, 128, 256)
GRAFANA = Resources(100, 256, 512)
GRAFANA_SIDECAR = Resources(50, 96, 192)
"""Each of Grafana's dashboard and datasource sidecars (they cache ConfigMaps)."""
OPERATOR = Resources(100, 128, 256)
CONFIG_RELOADER = Resources(10, 32, 64)
"""The operator's config-reloader sidecar in the Prometheus and Alertmanager pods."""
WEBHOOK_PATCH_JOB = Resources(10, 32, 64)
KUBE_STATE_METRICS = Resources(50, 128, 256)
NODE_EXPORTER = Resources(20, 32, 64)
"""Runs on every node, GPU nodes included: kept small."""


@dataclass(frozen=True)
class MonitoringSizing:
    """What each monitoring container gets."""

    prometheus: Resources
    alertmanager: Resources = ALERTMANAGER
    grafana: Resources = GRAFANA
    grafana_sidecar: Resources = GRAFANA_SIDECAR
    operator: Resources = OPERATOR
    config_reloader: Resources = CONFIG_RELOADER
    webhook_patch_job: Resources = WEBHOOK_PATCH_JOB
    kube_state_metrics: Resources = KUBE_STATE_METRICS
    node_exporter: Resources = NODE_EXPORTER


def _round_up(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)


def prometheus_resources(
    active_series: int, retention_minutes: int, scrape_interval_seconds: int
) -> Resources:
    """Prometheus' requests and limit by the formula of the module docstring."""
    days = retention_minutes / 1440
    per_series = HEAD_BYTES_PER_SERIES + days * INDEX_BYTES_PER_SERIES_DAY
    memory = _round_up(BASE_MEMORY_MIB + active_series * per_series / 2**20, 64)
    samples_per_second = active_series / scrape_interval_seconds
    cpu = _round_up(BASE_CPU_MILLI + samples_per_second / SAMPLES_PER_SECOND_PER_MILLI, 10)
    return Resources(cpu, memory, _round_up(memory * LIMIT_FACTOR, 64))


def size(
    active_series: int, retention_minutes: int, scrape_interval_seconds: int
) -> MonitoringSizing:
    """Every container's resources for this scrape load and retention."""
    return MonitoringSizing(
        prometheus=prometheus_resources(active_series, retention_minutes, scrape_interval_seconds)
    )
