"""``NvidiaGpuAddons``: the NVIDIA device plugin and the DCGM exporter for all GPU pools.

* Device plugin (advertises ``nvidia.com/gpu``): tolerates every GPU pool's taints and
  runs only on pools whose AMI does not ship a plugin of its own. Bottlerocket NVIDIA
  variants run one on the host, so its pods are kept off nodes labelled
  ``mlstack.io/ami-family=bottlerocket``: never two device plugins on one node.
* DCGM exporter (GPU metrics on :9400): same tolerations, every GPU pool. Its
  ServiceMonitor is off until the monitoring layer installs the Prometheus Operator CRDs.

Both run in their own namespace, labelled for the ``privileged`` Pod Security level they
need (host paths to the kubelet's device-plugin and pod-resources sockets).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.compute import helm
from components.compute.gpu_node_pool import (
    AMI_FAMILY_LABEL,
    POOL_LABEL,
    Taint,
    toleration_dict,
)
from components.validation import require_valid
from components.versions import CHARTS, ChartPin

TYPE_TOKEN = "mlstack:compute:NvidiaGpuAddons"

DCGM_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock (MHz)."),
    ("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock (MHz)."),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (C)."),
    ("DCGM_FI_DEV_MEMORY_TEMP", "gauge", "Memory temperature (C)."),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (W)."),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Energy since boot (mJ)."),
    ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "PCIe retries."),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (%)."),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory copy utilization (%)."),
    ("DCGM_FI_DEV_XID_ERRORS", "gauge", "Last XID error."),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer free (MiB)."),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer used (MiB)."),
    # Off in the exporter's default list; GpuEccUncorrectable and the ECC panel read them.
    ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "counter", "Single-bit volatile ECC errors."),
    ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "counter", "Double-bit volatile ECC errors."),
    ("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "counter", "Rows remapped (uncorrectable)."),
    ("DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge", "Row remapping failed."),
    ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge", "Graphics engine active ratio."),
    ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "gauge", "Tensor pipe active ratio."),
    ("DCGM_FI_PROF_DRAM_ACTIVE", "gauge", "Device memory interface active ratio."),
)
"""What the DCGM exporter emits (field, Prometheus type, help): the chart's
``customMetrics`` replaces its whole default list, so this holds every metric the alert
rules and dashboards read (``components.monitoring.metrics.DCGM_METRICS``, checked by a
test) plus the usual health and utilization fields."""

DEVICE_PLUGIN_RESOURCES = {
    "requests": {"cpu": "10m", "memory": "32Mi"},
    "limits": {"memory": "128Mi"},
}
"""The device plugin's requests (the chart sets none): it only answers the kubelet."""


def dcgm_counters_csv() -> str:
    """``DCGM_COUNTERS`` in the exporter's CSV format (field, type, help)."""
    return "".join(f"{field}, {kind}, {text}\n" for field, kind, text in DCGM_COUNTERS)


OWN_PLUGIN_AMI_FAMILIES = ("bottlerocket",)
"""AMI families whose image already runs the NVIDIA device plugin."""


@dataclass(frozen=True)
class GpuPoolNodes:
    """What the add-ons need to know about one pool: its name, AMI family and taints."""

    pool_name: str
    ami_family: str
    taints: Sequence[Taint] = ()


@dataclass(frozen=True)
class NvidiaGpuAddonsArgs:
    """Inputs of :class:`NvidiaGpuAddons`. Default namespace ``nvidia-gpu``; charts from
    ``components.versions.CHARTS``; DCGM exporter on; its ServiceMonitor off."""

    pools: Sequence[GpuPoolNodes]
    namespace: str = "nvidia-gpu"
    dcgm_exporter: bool = True
    service_monitor: bool = False
    device_plugin_chart: ChartPin = field(default_factory=lambda: CHARTS["nvidia-device-plugin"])
    dcgm_chart: ChartPin = field(default_factory=lambda: CHARTS["dcgm-exporter"])
    depends_on: Sequence[pulumi.Resource] = ()

    def problems(self) -> list[str]:
        found: list[str] = []
        if not self.pools:
            found.append("pools: (): give at least one GPU pool")
        names = [p.pool_name for p in self.pools]
        if len(set(names)) != len(names):
            found.append(f"pools: {names}: duplicate pool names")
        return found

    def tolerations(self) -> list[dict[str, str]]:
        """One toleration per distinct taint over all pools, in a stable order."""
        seen: dict[tuple[str, str, str], dict[str, str]] = {}
        for pool in self.pools:
            for taint in pool.taints:
                seen.setdefault((taint.key, taint.value, taint.effect), toleration_dict(taint))
        return [seen[k] for k in sorted(seen)]

    def device_plugin_pools(self) -> list[str]:
        """Pools whose nodes need mlstack's device plugin."""
        return sorted(
            p.pool_name for p in self.pools if p.ami_family not in OWN_PLUGIN_AMI_FAMILIES
        )


def _affinity(pools: Sequence[str], *, exclude_own_plugin: bool) -> dict[str, Any]:
    expressions: list[dict[str, Any]] = [
        {"key": POOL_LABEL, "operator": "In", "values": list(pools)}
    ]
    if exclude_own_plugin:
        expressions.append(
            {"key": AMI_FAMILY_LABEL, "operator": "NotIn", "values": list(OWN_PLUGIN_AMI_FAMILIES)}
        )
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": expressions}]
            }
        }
    }


def device_plugin_values(args: NvidiaGpuAddonsArgs) -> dict[str, Any]:
    return {
        "tolerations": args.tolerations(),
        "affinity": _affinity(args.device_plugin_pools(), exclude_own_plugin=True),
        "priorityClassName": "system-node-critical",
        "gfd": {"enabled": False},
        "resources": DEVICE_PLUGIN_RESOURCES,
    }


def dcgm_values(args: NvidiaGpuAddonsArgs) -> dict[str, Any]:
    return {
        "tolerations": args.tolerations(),
        "affinity": _affinity(sorted(p.pool_name for p in args.pools), exclude_own_plugin=False),
        "serviceMonitor": {"enabled": args.service_monitor},
        # Read by templates/metrics-configmap.yaml into the ConfigMap the chart mounts at
        # its -f path; replaces (not extends) the default list.
        "customMetrics": dcgm_counters_csv(),
    }


class NvidiaGpuAddons(pulumi.ComponentResource):
    """Device plugin + DCGM exporter; see the module docstring."""

    device_plugin: k8s.helm.v3.Release | None
    dcgm_exporter: k8s.helm.v3.Release | None
    namespace: str

    def __init__(
        self, name: str, args: NvidiaGpuAddonsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        # Check plain inputs before registering anything: one error listing every problem.
        require_valid("NvidiaGpuAddons", name, args.problems())
        super().__init__(TYPE_TOKEN, name, None, opts)
        level = "privileged"
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args.namespace,
                labels={
                    "pod-security.kubernetes.io/enforce": level,
                    "pod-security.kubernetes.io/warn": level,
                },
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        self.namespace = args.namespace
        after_namespace = pulumi.ResourceOptions(
            parent=self, depends_on=[*args.depends_on, namespace]
        )
        self.device_plugin = None
        if args.device_plugin_pools():
            self.device_plugin = helm.release(
                f"{name}-device-plugin",
                args.device_plugin_chart,
                release_name="nvidia-device-plugin",
                namespace=args.namespace,
                values=device_plugin_values(args),
                opts=after_namespace,
            )
        self.dcgm_exporter = None
        if args.dcgm_exporter:
            self.dcgm_exporter = helm.release(
                f"{name}-dcgm-exporter",
                args.dcgm_chart,
                release_name="dcgm-exporter",
                namespace=args.namespace,
                values=dcgm_values(args),
                opts=after_namespace,
            )
        self.register_outputs({"namespace": args.namespace})
