"""``PrometheusOperatorCrds``: the Prometheus Operator CRDs, as their own Helm release.

kube-prometheus-stack keeps these CRDs in its ``crds/`` directory, which Helm installs
once and never upgrades: a chart bump would run a new operator on old CRDs. The
``prometheus-operator-crds`` chart ships the same CRDs as templates, so every upgrade
applies them. The release is installed before anything that creates a
``monitoring.coreos.com`` object (the monitoring layer, KEDA's and the exporters'
ServiceMonitors) and, on destroy, removed after them. ``helm uninstall`` of this chart
keeps the CRDs (``helm.sh/resource-policy: keep``), so monitoring data objects are never
cascade-deleted by accident.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components.compute import helm
from components.validation import require_valid
from components.versions import CHARTS, ChartPin

TYPE_TOKEN = "mlstack:monitoring:PrometheusOperatorCrds"
GROUP = "monitoring.coreos.com"


@dataclass(frozen=True)
class PrometheusOperatorCrdsArgs:
    """Inputs of :class:`PrometheusOperatorCrds`. Default: the pinned chart, in
    ``kube-system`` (the release only holds cluster-scoped CRDs)."""

    chart: ChartPin = field(default_factory=lambda: CHARTS["prometheus-operator-crds"])
    namespace: str = "kube-system"
    depends_on: Sequence[pulumi.Resource] = ()

    def problems(self) -> list[str]:
        return [] if self.chart.version else ["chart.version: '': an exact version is required"]


class PrometheusOperatorCrds(pulumi.ComponentResource):
    """The CRD release; depend on :attr:`release` before creating monitoring objects."""

    release: k8s.helm.v3.Release

    def __init__(
        self,
        name: str,
        args: PrometheusOperatorCrdsArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        require_valid("PrometheusOperatorCrds", name, args.problems())
        super().__init__(TYPE_TOKEN, name, None, opts)
        self.release = helm.release(
            f"{name}-release",
            args.chart,
            release_name="prometheus-operator-crds",
            namespace=args.namespace,
            values={},
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        self.register_outputs({"release": self.release.name})
