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
    }


def dcgm_values(args: NvidiaGpuAddonsArgs) -> dict[str, Any]:
    return {
        "tolerations": args.tolerations(),
        "affinity": _affinity(sorted(p.pool_name for p in args.pools), exclude_own_plugin=False),
        "serviceMonitor": {"enabled": args.service_monitor},
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
