"""Every pinned version in one place: EKS add-ons, Helm charts, container images.

Stacks may override a value through config; otherwise dev and prod run exactly
these. Bump a version here and the PR diff shows it on every stack at once.
Add-on versions were taken from ``aws eks describe-addon-versions`` listings for
each Kubernetes minor version; re-check them there when bumping the cluster.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class AddonPins:
    """EKS managed add-on versions for one Kubernetes minor version."""

    vpc_cni: str
    coredns: str
    kube_proxy: str
    aws_ebs_csi_driver: str
    eks_pod_identity_agent: str
    eks_node_monitoring_agent: str
    """Node health conditions (``AcceleratedHardwareReady``, ``KernelReady``...) that node
    auto repair acts on; see :data:`NODE_MONITORING_AGENT_PIN_SOURCE`."""


@dataclass(frozen=True)
class SupportWindow:
    """One Kubernetes minor version on Amazon EKS: released, end of standard support (then
    extended support, at a higher price per cluster hour), end of extended support."""

    released: dt.date
    standard_support_end: dt.date
    extended_support_end: dt.date


SupportStatus = Literal["standard", "extended", "unsupported", "unreleased"]

EKS_SUPPORT_SOURCE = (
    "Amazon EKS Kubernetes release calendar (docs.aws.amazon.com/eks/latest/userguide/"
    "kubernetes-versions.html: 14 months standard support after the EKS release, then 12 "
    "months extended support), dates as listed by endoflife.date/amazon-eks, read 2026-12-01"
)
EKS_SUPPORT: dict[str, SupportWindow] = {
    "1.31": SupportWindow(dt.date(2024, 9, 26), dt.date(2025, 11, 26), dt.date(2026, 11, 26)),
    "1.32": SupportWindow(dt.date(2025, 1, 23), dt.date(2026, 3, 23), dt.date(2027, 3, 23)),
    "1.33": SupportWindow(dt.date(2025, 5, 29), dt.date(2026, 7, 29), dt.date(2027, 7, 29)),
    "1.34": SupportWindow(dt.date(2025, 10, 2), dt.date(2026, 12, 2), dt.date(2027, 12, 2)),
    "1.35": SupportWindow(dt.date(2026, 1, 27), dt.date(2027, 3, 27), dt.date(2028, 3, 27)),
}
"""Per minor: the EKS support dates (source: :data:`EKS_SUPPORT_SOURCE`). Read by
``mlstack cost`` (extended support is priced per cluster hour) and by preflight."""


def support_status(minor: str, on: dt.date) -> SupportStatus:
    """Where ``minor`` stands on EKS on day ``on`` (``unsupported`` for unknown minors)."""
    window = EKS_SUPPORT.get(minor)
    if window is None or on > window.extended_support_end:
        return "unsupported"
    if on < window.released:
        return "unreleased"
    return "standard" if on <= window.standard_support_end else "extended"


NODE_MONITORING_AGENT = "v1.4.0-eksbuild.2"
NODE_MONITORING_AGENT_PIN_SOURCE = (
    "NOT verified against describe-addon-versions for any minor (no AWS access when pinned, "
    "2026-12-07): v1.4.0-eksbuild.2 is the version a public EKS 1.33 configuration pins; the "
    "agent's chart (github.com/aws/eks-node-monitoring-agent) needs no IAM role. "
    "`mlstack preflight` (eks.addon-version[eks-node-monitoring-agent]) confirms it per minor "
    "before the first deploy"
)
"""The node monitoring agent's pin, the same for every minor until a listing says otherwise."""

EKS_ADDONS: dict[str, AddonPins] = {
    "1.31": AddonPins(
        vpc_cni="v1.19.5-eksbuild.1",
        coredns="v1.11.4-eksbuild.2",
        kube_proxy="v1.31.7-eksbuild.7",
        aws_ebs_csi_driver="v1.44.0-eksbuild.1",
        eks_pod_identity_agent="v1.3.7-eksbuild.2",
        eks_node_monitoring_agent=NODE_MONITORING_AGENT,
    ),
    "1.32": AddonPins(
        vpc_cni="v1.19.5-eksbuild.1",
        coredns="v1.11.4-eksbuild.2",
        kube_proxy="v1.32.3-eksbuild.7",
        aws_ebs_csi_driver="v1.44.0-eksbuild.1",
        eks_pod_identity_agent="v1.3.7-eksbuild.2",
        eks_node_monitoring_agent=NODE_MONITORING_AGENT,
    ),
    "1.33": AddonPins(
        vpc_cni="v1.20.1-eksbuild.1",
        coredns="v1.12.1-eksbuild.2",
        kube_proxy="v1.33.0-eksbuild.2",
        aws_ebs_csi_driver="v1.45.0-eksbuild.2",
        eks_pod_identity_agent="v1.3.7-eksbuild.2",
        eks_node_monitoring_agent=NODE_MONITORING_AGENT,
    ),
    "1.34": AddonPins(
        vpc_cni="v1.20.3-eksbuild.1",
        coredns="v1.12.3-eksbuild.1",
        kube_proxy="v1.34.0-eksbuild.2",
        aws_ebs_csi_driver="v1.48.0-eksbuild.2",
        eks_pod_identity_agent="v1.3.8-eksbuild.2",
        eks_node_monitoring_agent=NODE_MONITORING_AGENT,
    ),
    "1.35": AddonPins(
        vpc_cni="v1.21.1-eksbuild.1",
        coredns="v1.13.1-eksbuild.1",
        kube_proxy="v1.35.0-eksbuild.2",
        aws_ebs_csi_driver="v1.53.0-eksbuild.1",
        eks_pod_identity_agent="v1.3.10-eksbuild.1",
        eks_node_monitoring_agent=NODE_MONITORING_AGENT,
    ),
}
ADDON_PINS_VERIFIED: dict[str, str] = {
    "1.31": "aws eks describe-addon-versions listing (when the pins were written), except "
    "eks_node_monitoring_agent (NODE_MONITORING_AGENT_PIN_SOURCE)",
    "1.32": "aws eks describe-addon-versions listing (when the pins were written), except "
    "eks_node_monitoring_agent (NODE_MONITORING_AGENT_PIN_SOURCE)",
    "1.33": "aws eks describe-addon-versions listing (when the pins were written), except "
    "eks_node_monitoring_agent (NODE_MONITORING_AGENT_PIN_SOURCE)",
    "1.34": "aws eks describe-addon-versions listing (when the pins were written), except "
    "eks_node_monitoring_agent (NODE_MONITORING_AGENT_PIN_SOURCE)",
    "1.35": "NOT verified against describe-addon-versions (no AWS access when pinned, "
    "2026-12-01): versions follow the add-ons' release notes for Kubernetes 1.35; "
    "`mlstack preflight` must confirm them in the account before the first deploy",
}
"""Where each minor's add-on pins come from (be honest: a pin no listing confirmed says so).
The ``eks_node_monitoring_agent`` pin of every minor is the exception: no listing confirmed
it (:data:`NODE_MONITORING_AGENT_PIN_SOURCE`)."""


EKS_STANDARD_SUPPORT_END: dict[str, dt.date] = {
    minor: window.standard_support_end for minor, window in EKS_SUPPORT.items()
}
"""Last day of EKS standard support per Kubernetes minor version (``mlstack preflight``)."""


@dataclass(frozen=True)
class ChartPin:
    """A Helm chart at an exact version, from an exact repository."""

    chart: str
    version: str
    repository: str

    @property
    def chart_ref(self) -> str:
        """What Helm is asked for: ``oci://.../name`` for OCI registries, else the name."""
        if self.repository.startswith("oci://"):
            return f"{self.repository.rstrip('/')}/{self.chart}"
        return self.chart


CHARTS: dict[str, ChartPin] = {
    # GPU node pools. Karpenter: release notes / docs of aws/karpenter-provider-aws
    # (1.14.x supports Kubernetes 1.31-1.36); the CRD chart ships the same version.
    "karpenter": ChartPin("karpenter", "1.14.1", "oci://public.ecr.aws/karpenter"),
    "karpenter-crd": ChartPin("karpenter-crd", "1.14.1", "oci://public.ecr.aws/karpenter"),
    # cluster-autoscaler chart; the image is pinned per Kubernetes minor in IMAGES.
    "cluster-autoscaler": ChartPin(
        "cluster-autoscaler", "9.59.0", "https://kubernetes.github.io/autoscaler"
    ),
    "nvidia-device-plugin": ChartPin(
        "nvidia-device-plugin", "0.19.3", "https://nvidia.github.io/k8s-device-plugin"
    ),
    "dcgm-exporter": ChartPin(
        "dcgm-exporter", "4.8.2", "https://nvidia.github.io/dcgm-exporter/helm-charts"
    ),
}
"""Helm charts by role (filled by the components that install them)."""

IMAGES: dict[str, str] = {
    # cluster-autoscaler must match the cluster's Kubernetes minor version.
    "cluster-autoscaler/1.31": "registry.k8s.io/autoscaling/cluster-autoscaler:v1.31.5",
    "cluster-autoscaler/1.32": "registry.k8s.io/autoscaling/cluster-autoscaler:v1.32.7",
    "cluster-autoscaler/1.33": "registry.k8s.io/autoscaling/cluster-autoscaler:v1.33.6",
    "cluster-autoscaler/1.34": "registry.k8s.io/autoscaling/cluster-autoscaler:v1.34.5",
    # 1.35: the first patch of the 1.35 line; not checked against the registry here.
    "cluster-autoscaler/1.35": "registry.k8s.io/autoscaling/cluster-autoscaler:v1.35.0",
}
"""Container images by role, each with an exact tag (filled by the serving components)."""

# --------------------------------------------------------------------------- serving
# Chart versions from each chart's Chart.yaml at the listed repository; image tags are
# the upstream release tags (re-check the registries when bumping).

KEDA_CHART = ChartPin(
    chart="keda", version="2.20.2", repository="https://kedacore.github.io/charts"
)
"""KEDA 2.20.2 (chart and app version match)."""

AWS_LOAD_BALANCER_CONTROLLER_CHART = ChartPin(
    chart="aws-load-balancer-controller",
    version="3.5.0",
    repository="https://aws.github.io/eks-charts",
)
"""AWS Load Balancer Controller v3.5.0 (chart 3.5.0)."""

VLLM_IMAGE = "docker.io/vllm/vllm-openai:v0.28.0"
TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:26.04-py3"
MODEL_LOADER_IMAGE_TAG = "mlstack-0.1.0-loader.1"
"""Tag of the model-loader image (``loader/Dockerfile``, ``mlstack model fetch``) in the
stack's own ECR repository (``ModelLoaderRepository``, immutable tags: a tag, once
pushed, always names the same image). Bump it whenever the loader's code or Dockerfile
changes; ``mlstack loader push <stack>`` builds and pushes exactly this tag."""
MODEL_LOADER_IMAGE_DIGEST: str | None = None
"""The digest (``sha256:<64 hex>``) ``mlstack loader push`` printed for
``MODEL_LOADER_IMAGE_TAG``; with it, pods pull ``<repo>:<tag>@<digest>`` (the digest
wins). None until the first build has run (the image cannot be built offline): pods
then pull the immutable tag."""


def model_loader_image(repository_url: str) -> str:
    """The loader image reference in ``repository_url`` (pinned by digest once recorded)."""
    reference = f"{repository_url}:{MODEL_LOADER_IMAGE_TAG}"
    return f"{reference}@{MODEL_LOADER_IMAGE_DIGEST}" if MODEL_LOADER_IMAGE_DIGEST else reference


CHARTS.update(
    {
        "keda": KEDA_CHART,
        "aws-load-balancer-controller": AWS_LOAD_BALANCER_CONTROLLER_CHART,
    }
)
IMAGES.update({"vllm": VLLM_IMAGE, "triton": TRITON_IMAGE})

IMAGE_SIZES_GIB: dict[str, tuple[float, str]] = {
    "vllm": (10.0, "assumed for the vLLM preset image (not read from its registry)"),
    "triton": (8.0, "assumed for the Triton preset image (not read from its registry)"),
}
"""Compressed size of each preset image, for the start-up estimate only (never a limit).
Assumptions (CUDA + PyTorch + server images are 8-12 GiB compressed), not registry
reads: set ``models[].imageSizeGib`` from ``aws ecr describe-images`` (imageSizeInBytes)
once the image is in the pull-through cache."""

CHARTS["kube-prometheus-stack"] = ChartPin(
    chart="kube-prometheus-stack",
    # Tag kube-prometheus-stack-88.5.3 of prometheus-community/helm-charts: prometheus-operator
    # v0.93.1, Alertmanager v0.34.0 (aws-sdk-go-v2: Pod Identity credentials work).
    version="88.5.3",
    repository="https://prometheus-community.github.io/helm-charts",
)

CHARTS["prometheus-operator-crds"] = ChartPin(
    chart="prometheus-operator-crds",
    # Release prometheus-operator-crds-31.0.1 of prometheus-community/helm-charts ships the
    # CRDs of prometheus-operator v0.93.1, the operator kube-prometheus-stack 88.5.3 runs.
    # Its CRDs are templates, so `helm upgrade` (a chart bump) upgrades them; keep the two
    # at the same operator version when bumping either.
    version="31.0.1",
    repository="https://prometheus-community.github.io/helm-charts",
)

AWS_LOAD_BALANCER_CONTROLLER_CRDS_SHA256: dict[str, dict[str, str]] = {
    "3.5.0": {
        "crds/crds.yaml": "cb00e9a8ee22cc51307bbed799faff306ab4d23a9fd201d26fcd53ab035777d9",
        "crds/gateway-crds.yaml": (
            "fce68bbfc74b4ed7dbea675f46981cbef1fffc8981cf19c0c1e7a2e9d6464862"
        ),
    },
}
"""Chart version -> sha256 of each file Helm installs from the chart's crds/
(``crds/kustomization.yaml`` is in the chart's .helmignore, so not in the package). The
release installs them (no ``skipCrds``): no host beyond the Helm repository. A test
recomputes them from the pinned chart's source; a chart bump that changes them must
update them here and apply the new CRDs by hand, since Helm never upgrades crds/
(docs/operations.md, "CRDs and chart bumps")."""
