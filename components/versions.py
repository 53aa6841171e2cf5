"""Every pinned version in one place: EKS add-ons, Helm charts, container images.

Stacks may override a value through config; otherwise dev and prod run exactly
these. Bump a version here and the PR diff shows it on every stack at once.
Add-on versions were taken from ``aws eks describe-addon-versions`` listings for
each Kubernetes minor version; re-check them there when bumping the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AddonPins:
    """EKS managed add-on versions for one Kubernetes minor version."""

    vpc_cni: str
    coredns: str
    kube_proxy: str
    aws_ebs_csi_driver: str
    eks_pod_identity_agent: str


EKS_ADDONS: dict[str, AddonPins] = {
    "1.31": AddonPins(
        vpc_cni="v1.19.5-eksbuild.1",
        coredns="v1.11.4-eksbuild.2",
        kube_proxy="v1.31.7-eksbuild.7",
        aws_ebs_csi_driver="v1.44.0-eksbuild.1",
        eks_pod_identity_agent="v1.3.7-eksbuild.2",
    ),
    "1.32": AddonPins(
        vpc_cni="v1.19.5-eksbuild.1",
        coredns="v1.11.4-eksbuild.2",
        kube_proxy="v1.32.3-eksbuild.7",
        aws_ebs_csi_driver="v1.44.0-eksbuild.1",
        eks_pod_identity_agent="v1.3.7-eksbuild.2",
    ),
    "1.33": AddonPins(
        vpc_cni="v1.20.1-eksbuild.1",
        coredns="v1.12.1-eksbuild.2",
        kube_proxy="v1.33.0-eksbuild.2",
        aws_ebs_csi_driver="v1.45.0-eksbuild.2",
        eks_pod_identity_agent="v1.3.7-eksbuild.2",
    ),
    "1.34": AddonPins(
        vpc_cni="v1.20.3-eksbuild.1",
        coredns="v1.12.3-eksbuild.1",
        kube_proxy="v1.34.0-eksbuild.2",
        aws_ebs_csi_driver="v1.48.0-eksbuild.2",
        eks_pod_identity_agent="v1.3.8-eksbuild.2",
    ),
}


@dataclass(frozen=True)
class ChartPin:
    """A Helm chart at an exact version, from an exact repository."""

    chart: str
    version: str
    repository: str


CHARTS: dict[str, ChartPin] = {}
"""Helm charts by role (filled by the components that install them)."""

IMAGES: dict[str, str] = {}
"""Container images by role, each with an exact tag (filled by the serving components)."""

CHARTS["kube-prometheus-stack"] = ChartPin(
    chart="kube-prometheus-stack",
    # Tag kube-prometheus-stack-88.5.3 of prometheus-community/helm-charts: prometheus-operator
    # v0.93.1, Alertmanager v0.34.0 (aws-sdk-go-v2: Pod Identity credentials work).
    version="88.5.3",
    repository="https://prometheus-community.github.io/helm-charts",
)
