"""``Keda``: the KEDA autoscaler, installed once per cluster from its pinned Helm chart.

Inference services scale on their runtime's queue signal through KEDA
``ScaledObject``s (Prometheus trigger, optional cron wake window). KEDA's operator,
metrics server and admission webhooks run on the system nodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components.cluster.eks import SYSTEM_NODE_LABEL
from components.validation import require_valid
from components.versions import KEDA_CHART

TYPE_TOKEN = "mlstack:serving:Keda"


@dataclass(frozen=True)
class KedaArgs:
    """Inputs of :class:`Keda`. Defaults: pinned chart, namespace ``keda``, 1 replica of
    each KEDA deployment on the system nodes."""

    chart_version: str = KEDA_CHART.version
    namespace: str = "keda"
    replicas: int = 1
    node_selector: Mapping[str, str] = field(default_factory=lambda: dict([SYSTEM_NODE_LABEL]))
    wait_for: Sequence[pulumi.Resource] = ()
    """Resources to wait for first (the system node group: KEDA needs nodes)."""

    def problems(self) -> list[str]:
        found: list[str] = []
        if not 1 <= self.replicas <= 3:
            found.append(f"replicas: {self.replicas}: allowed 1..3")
        if not self.chart_version:
            found.append("chart_version: empty: an exact chart version is required")
        return found

    def values(self) -> dict[str, object]:
        """Helm values; HA settings (PDBs) only when more than one replica runs."""
        # Helm merges these over the chart's defaults, whose limits hold cpu: 1: a null
        # deletes that key (a CPU limit throttles the operator; requests size it).
        resources = {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": None, "memory": "1000Mi"},
        }
        values: dict[str, object] = {
            "crds": {"install": True},
            "nodeSelector": dict(self.node_selector),
            "operator": {"replicaCount": self.replicas},
            "metricsServer": {"replicaCount": self.replicas},
            "webhooks": {"replicaCount": self.replicas},
            "resources": {
                "operator": resources,
                "metricServer": resources,
                "webhooks": resources,
            },
            # Metrics on, and a ServiceMonitor for each so Prometheus scrapes them (the
            # monitoring layer selects every ServiceMonitor in the cluster).
            "prometheus": {
                "operator": {"enabled": True, "serviceMonitor": {"enabled": True}},
                "metricServer": {"enabled": True, "serviceMonitor": {"enabled": True}},
                "webhooks": {"enabled": True, "serviceMonitor": {"enabled": True}},
            },
        }
        if self.replicas > 1:
            values["podDisruptionBudget"] = {
                "operator": {"minAvailable": 1},
                "metricServer": {"minAvailable": 1},
                "webhooks": {"minAvailable": 1},
            }
        return values


class Keda(pulumi.ComponentResource):
    """The KEDA Helm release. Depend on :attr:`release` before creating ScaledObjects."""

    release: k8s.helm.v3.Release
    namespace: str

    def __init__(self, name: str, args: KedaArgs, opts: pulumi.ResourceOptions | None = None):
        require_valid("Keda", name, args.problems())
        super().__init__(TYPE_TOKEN, name, None, opts)
        self.namespace = args.namespace
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            k8s.helm.v3.ReleaseArgs(
                name="keda",
                chart=KEDA_CHART.chart,
                version=args.chart_version,
                repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=KEDA_CHART.repository),
                namespace=args.namespace,
                create_namespace=True,
                values=args.values(),
                cleanup_on_fail=True,
                max_history=10,
                timeout=600,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.wait_for)),
        )
        self.register_outputs({"release": self.release.name, "namespace": args.namespace})
