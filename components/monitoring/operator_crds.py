"""``PrometheusOperatorCrds``: the Prometheus Operator CRDs, as their own Helm release.

kube-prometheus-stack keeps these CRDs in its ``crds/`` directory, which Helm installs
once and never upgrades: a chart bump would run a new operator on old CRDs. The
``prometheus-operator-crds`` chart ships the same CRDs as templates, so every upgrade
applies them. The release is installed before anything that creates a
``monitoring.coreos.com`` object (the monitoring layer, KEDA's and the exporters'
ServiceMonitors) and, on destroy, removed after them.

The chart alone deletes its CRDs on uninstall, and with them every Prometheus,
Alertmanager, ServiceMonitor and PrometheusRule. The release sets the chart's
``crds.annotations`` (applied to every CRD it renders) to ``helm.sh/resource-policy: keep``:
``helm uninstall``, and so a delete or replacement of this release, leaves the CRDs and the
monitoring objects in place (Helm's ``filterManifestsToKeep``, pkg/action/resource_policy.go).
A destroy therefore leaves the ten ``*.monitoring.coreos.com`` CRDs in the cluster, removed
with the cluster itself (docs/operations.md, teardown).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.compute import helm
from components.validation import require_valid
from components.versions import CHARTS, ChartPin

TYPE_TOKEN = "mlstack:monitoring:PrometheusOperatorCrds"
GROUP = "monitoring.coreos.com"
KEEP = {"helm.sh/resource-policy": "keep"}
"""Helm leaves an object carrying this annotation in place on uninstall."""


def chart_values() -> dict[str, Any]:
    """The release's values: every CRD the chart renders carries :data:`KEEP`."""
    return {"crds": {"annotations": dict(KEEP)}}


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
            values=chart_values(),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        self.register_outputs({"release": self.release.name})
