"""NvidiaGpuAddons: the DCGM exporter's counters list and the device plugin's requests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from components.compute.nvidia import (
    DCGM_COUNTERS,
    DEVICE_PLUGIN_RESOURCES,
    dcgm_counters_csv,
)
from components.monitoring import metrics
from mlstack.synth import ResourceGraph
from mlstack.upstream import HINT, find_upstream

UPSTREAM_COUNTERS = (
    find_upstream() or Path("../shared/upstream")
) / "charts/dcgm-exporter-4.8.2.default-counters.csv"
"""The upstream default counters (``mlstack.upstream.find_upstream``)."""
RELEASE = "kubernetes:helm.sh/v3:Release"
DCGM_NAME = re.compile(r"DCGM_FI_[A-Z0-9_]+")


def _upstream_fields() -> tuple[set[str], set[str]]:
    """(exported by default, every field the file names incl. commented-out ones)."""
    if not UPSTREAM_COUNTERS.is_file():
        pytest.skip(f"upstream reference data not found at {UPSTREAM_COUNTERS}: {HINT}")
    exported: set[str] = set()
    known: set[str] = set()
    for line in UPSTREAM_COUNTERS.read_text().splitlines():
        found = DCGM_NAME.search(line)
        if not found:
            continue
        known.add(found.group(0))
        if not line.lstrip().startswith("#"):
            exported.add(found.group(0))
    return exported, known


def _used_by_rules_and_dashboards(graph: ResourceGraph) -> set[str]:
    """Every DCGM field named anywhere in the monitoring layer's objects (PrometheusRules,
    dashboard ConfigMaps): rendered, not the module constants."""
    used: set[str] = set()
    for node in graph.resources:
        if node.type.startswith("kubernetes:") and node.type != RELEASE:
            used |= set(DCGM_NAME.findall(str(node.inputs)))
    return used


def _dcgm_release(graph: ResourceGraph):
    return next(r for r in graph.by_type(RELEASE) if r.inputs["chart"] == "dcgm-exporter")


def test_the_exporter_emits_every_metric_the_rules_and_dashboards_use(
    any_graph: ResourceGraph,
) -> None:
    used = _used_by_rules_and_dashboards(any_graph)
    assert "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL" in used  # GpuEccUncorrectable + the ECC panel
    assert used >= metrics.DCGM_METRICS
    csv = _dcgm_release(any_graph).inputs["values"]["customMetrics"]
    emitted = {line.split(",")[0].strip() for line in csv.splitlines() if line.strip()}
    assert used <= emitted


def test_the_upstream_default_list_would_miss_the_ecc_alert(dev_graph: ResourceGraph) -> None:
    """Why the list is ours: the default exports no double-bit ECC counter."""
    exported, _ = _upstream_fields()
    assert _used_by_rules_and_dashboards(dev_graph) - exported == {"DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"}


def test_every_counter_is_a_field_the_exporter_knows() -> None:
    _, known = _upstream_fields()
    fields = [field for field, _, _ in DCGM_COUNTERS]
    assert set(fields) <= known
    assert len(fields) == len(set(fields))
    assert all(kind in ("gauge", "counter") for _, kind, _ in DCGM_COUNTERS)


def test_the_counters_csv_has_one_line_per_field_in_the_exporter_format() -> None:
    lines = dcgm_counters_csv().splitlines()
    assert len(lines) == len(DCGM_COUNTERS)
    assert all(re.fullmatch(r"DCGM_FI_\w+, (gauge|counter), .+", line) for line in lines)


def test_the_device_plugin_requests_resources(dev_graph: ResourceGraph) -> None:
    plugin = next(
        r for r in dev_graph.by_type(RELEASE) if r.inputs["chart"] == "nvidia-device-plugin"
    )
    assert plugin.inputs["values"]["resources"] == DEVICE_PLUGIN_RESOURCES
    assert set(DEVICE_PLUGIN_RESOURCES["requests"]) == {"cpu", "memory"}
