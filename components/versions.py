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
MODEL_LOADER_IMAGE = "public.ecr.aws/aws-cli/aws-cli:2.36.7"
"""AWS CLI v2 on Amazon Linux 2023; the image ships jq, sha256sum and find, which the
model-loader script uses."""

CHARTS.update(
    {
        "keda": KEDA_CHART,
        "aws-load-balancer-controller": AWS_LOAD_BALANCER_CONTROLLER_CHART,
    }
)
IMAGES.update({"vllm": VLLM_IMAGE, "triton": TRITON_IMAGE, "model-loader": MODEL_LOADER_IMAGE})

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
