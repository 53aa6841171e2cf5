"""Against real AWS (read-only): what offline checks cannot know."""

from __future__ import annotations

import boto3
import pytest

from components.versions import EKS_ADDONS

pytestmark = pytest.mark.aws

ADDON_NAMES = {
    "vpc_cni": "vpc-cni",
    "coredns": "coredns",
    "kube_proxy": "kube-proxy",
    "aws_ebs_csi_driver": "aws-ebs-csi-driver",
    "eks_pod_identity_agent": "eks-pod-identity-agent",
}


@pytest.mark.parametrize("kubernetes_version", sorted(EKS_ADDONS))
def test_pinned_addon_versions_exist_for_their_kubernetes_version(kubernetes_version: str) -> None:
    eks = boto3.client("eks", region_name="us-east-1")
    pins = EKS_ADDONS[kubernetes_version]
    missing = []
    for field, addon in ADDON_NAMES.items():
        pinned = getattr(pins, field)
        response = eks.describe_addon_versions(
            addonName=addon, kubernetesVersion=kubernetes_version
        )
        available = {v["addonVersion"] for a in response["addons"] for v in a["addonVersions"]}
        if pinned not in available:
            missing.append(f"{addon} {pinned}")
    assert missing == [], f"not offered for Kubernetes {kubernetes_version}: {missing}"


@pytest.mark.parametrize("region", ["us-east-1", "us-west-2"])
def test_stack_availability_zones_exist(region: str) -> None:
    from stacks.config import load_config_file

    ec2 = boto3.client("ec2", region_name=region)
    zones = {z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]}
    for stack in ("dev", "prod"):
        cfg = load_config_file(stack)
        if cfg.region == region:
            assert set(cfg.network.availability_zones) <= zones
