"""IAM action lists, sorted, one constant per purpose. Policies import from here only."""

from __future__ import annotations

FLOW_LOGS_DELIVERY: tuple[str, ...] = (
    "logs:CreateLogStream",
    "logs:DescribeLogStreams",
    "logs:PutLogEvents",
)
"""What VPC flow logs need on their own log group."""

SNS_PUBLISH: tuple[str, ...] = ("sns:Publish",)
"""What a publisher (Alertmanager, CloudWatch alarms) needs on the alert topic."""
KMS_SNS_PUBLISHER: tuple[str, ...] = ("kms:Decrypt", "kms:GenerateDataKey*")
"""What a publisher needs on the KMS key of an encrypted SNS topic."""
KMS_KEY_ACCOUNT_ADMIN: tuple[str, ...] = ("kms:*",)
"""The account root's statement in a key policy (lets IAM policies grant the key)."""

ASSUME_ROLE_WEB_IDENTITY = "sts:AssumeRoleWithWebIdentity"
POD_IDENTITY_ASSUME: tuple[str, ...] = ("sts:AssumeRole", "sts:TagSession")
SERVICE_ASSUME: tuple[str, ...] = ("sts:AssumeRole",)

# AWS-managed policies attached by ARN suffix (partition added by the caller).
EKS_CLUSTER_POLICY = "AmazonEKSClusterPolicy"
EKS_WORKER_NODE_POLICY = "AmazonEKSWorkerNodePolicy"
ECR_PULL_ONLY_POLICY = "AmazonEC2ContainerRegistryPullOnly"
EKS_CNI_POLICY = "AmazonEKS_CNI_Policy"
EBS_CSI_DRIVER_POLICY = "service-role/AmazonEBSCSIDriverPolicy"


def _check_sorted() -> None:
    for name, value in list(globals().items()):
        if name.isupper() and isinstance(value, tuple):
            assert list(value) == sorted(value), f"{name} must be sorted"


_check_sorted()
