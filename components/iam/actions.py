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
KMS_SNS_PUBLISHER: tuple[str, ...] = ("kms:Decrypt", "kms:GenerateDataKey")
"""What a publisher needs on the KMS key of an encrypted SNS topic (exact actions, as in
the SNS docs' service-principal examples: the policy pack refuses wildcard data actions)."""
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

# --- GPU node pools: Karpenter controller (statements of the controller policy Karpenter
# documents for v1.14, getting-started CloudFormation template), cluster-autoscaler.
KARPENTER_LAUNCH: tuple[str, ...] = ("ec2:CreateFleet", "ec2:RunInstances")
KARPENTER_LAUNCH_TAGGED: tuple[str, ...] = (
    "ec2:CreateFleet",
    "ec2:CreateLaunchTemplate",
    "ec2:RunInstances",
)
KARPENTER_CREATE_TAGS: tuple[str, ...] = ("ec2:CreateTags",)
KARPENTER_DELETE: tuple[str, ...] = ("ec2:DeleteLaunchTemplate", "ec2:TerminateInstances")
KARPENTER_REGIONAL_READ: tuple[str, ...] = (
    "ec2:DescribeCapacityReservations",
    "ec2:DescribeImages",
    "ec2:DescribeInstanceStatus",
    "ec2:DescribeInstanceTypeOfferings",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeInstances",
    "ec2:DescribeLaunchTemplates",
    "ec2:DescribePlacementGroups",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSpotPriceHistory",
    "ec2:DescribeSubnets",
)
KARPENTER_SSM_READ: tuple[str, ...] = ("ssm:GetParameter",)
KARPENTER_PRICING_READ: tuple[str, ...] = ("pricing:GetProducts",)
KARPENTER_PROFILE_CREATE: tuple[str, ...] = ("iam:CreateInstanceProfile",)
KARPENTER_PROFILE_TAG: tuple[str, ...] = ("iam:TagInstanceProfile",)
KARPENTER_PROFILE_MANAGE: tuple[str, ...] = (
    "iam:AddRoleToInstanceProfile",
    "iam:DeleteInstanceProfile",
    "iam:RemoveRoleFromInstanceProfile",
)
KARPENTER_PROFILE_LIST: tuple[str, ...] = ("iam:ListInstanceProfiles",)
KARPENTER_PROFILE_READ: tuple[str, ...] = ("iam:GetInstanceProfile",)
PASS_ROLE: tuple[str, ...] = ("iam:PassRole",)
EKS_DESCRIBE_CLUSTER: tuple[str, ...] = ("eks:DescribeCluster",)
SQS_CONSUME: tuple[str, ...] = ("sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage")
SQS_SEND: tuple[str, ...] = ("sqs:SendMessage",)
SQS_ALL = "sqs:*"

CLUSTER_AUTOSCALER_READ: tuple[str, ...] = (
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeLaunchConfigurations",
    "autoscaling:DescribeScalingActivities",
    "autoscaling:DescribeTags",
    "ec2:DescribeImages",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:GetInstanceTypesFromInstanceRequirements",
)
CLUSTER_AUTOSCALER_SCALE: tuple[str, ...] = (
    "autoscaling:SetDesiredCapacity",
    "autoscaling:TerminateInstanceInAutoScalingGroup",
)
EKS_DESCRIBE_NODEGROUP: tuple[str, ...] = ("eks:DescribeNodegroup",)


# ------------------------------------------------------------- AWS Load Balancer Controller
# From the controller's documented policy (docs/install/iam_policy.json, v3.5.0), minus
# the WAF, WAFv2, Shield, Cognito and IAM-server-certificate features mlstack turns off
# (controller flags enableWaf/enableWafv2/enableShield=false, certificates by ARN).

LBC_DESCRIBE: tuple[str, ...] = (
    "acm:DescribeCertificate",
    "acm:ListCertificates",
    "ec2:DescribeAccountAttributes",
    "ec2:DescribeAddresses",
    "ec2:DescribeAvailabilityZones",
    "ec2:DescribeCoipPools",
    "ec2:DescribeInstances",
    "ec2:DescribeInternetGateways",
    "ec2:DescribeIpamPools",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeTags",
    "ec2:DescribeVpcPeeringConnections",
    "ec2:DescribeVpcs",
    "ec2:GetCoipPoolUsage",
    "ec2:GetSecurityGroupsForVpc",
    "elasticloadbalancing:DescribeCapacityReservation",
    "elasticloadbalancing:DescribeListenerAttributes",
    "elasticloadbalancing:DescribeListenerCertificates",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeLoadBalancerAttributes",
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeRules",
    "elasticloadbalancing:DescribeSSLPolicies",
    "elasticloadbalancing:DescribeTags",
    "elasticloadbalancing:DescribeTargetGroupAttributes",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:DescribeTrustStores",
)
"""Read-only calls; these actions support no resource-level scoping."""

LBC_SERVICE_LINKED_ROLE: tuple[str, ...] = ("iam:CreateServiceLinkedRole",)
LBC_SG_CREATE: tuple[str, ...] = ("ec2:CreateSecurityGroup",)
LBC_SG_TAG_ON_CREATE: tuple[str, ...] = ("ec2:CreateTags",)
LBC_SG_TAGS: tuple[str, ...] = ("ec2:CreateTags", "ec2:DeleteTags")
LBC_SG_RULES: tuple[str, ...] = (
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:RevokeSecurityGroupIngress",
)
LBC_SG_DELETE: tuple[str, ...] = ("ec2:DeleteSecurityGroup",)
LBC_LB_CREATE: tuple[str, ...] = (
    "elasticloadbalancing:CreateLoadBalancer",
    "elasticloadbalancing:CreateTargetGroup",
)
LBC_LB_TAG_ON_CREATE: tuple[str, ...] = ("elasticloadbalancing:AddTags",)
LBC_LB_TAGS: tuple[str, ...] = (
    "elasticloadbalancing:AddTags",
    "elasticloadbalancing:RemoveTags",
)
LBC_LB_MODIFY: tuple[str, ...] = (
    "elasticloadbalancing:DeleteLoadBalancer",
    "elasticloadbalancing:DeleteTargetGroup",
    "elasticloadbalancing:ModifyCapacityReservation",
    "elasticloadbalancing:ModifyIpPools",
    "elasticloadbalancing:ModifyListenerAttributes",
    "elasticloadbalancing:ModifyLoadBalancerAttributes",
    "elasticloadbalancing:ModifyTargetGroup",
    "elasticloadbalancing:ModifyTargetGroupAttributes",
    "elasticloadbalancing:SetIpAddressType",
    "elasticloadbalancing:SetSecurityGroups",
    "elasticloadbalancing:SetSubnets",
)
LBC_LISTENERS: tuple[str, ...] = (
    "elasticloadbalancing:AddListenerCertificates",
    "elasticloadbalancing:CreateListener",
    "elasticloadbalancing:CreateRule",
    "elasticloadbalancing:DeleteListener",
    "elasticloadbalancing:DeleteRule",
    "elasticloadbalancing:ModifyListener",
    "elasticloadbalancing:ModifyRule",
    "elasticloadbalancing:RemoveListenerCertificates",
    "elasticloadbalancing:SetRulePriorities",
)
LBC_TARGETS: tuple[str, ...] = (
    "elasticloadbalancing:DeregisterTargets",
    "elasticloadbalancing:RegisterTargets",
)

# Model-artifact bucket (components.storage): grants scoped to a models/<prefix> and its key.
MODEL_BUCKET_LIST: tuple[str, ...] = ("s3:ListBucket",)
"""List keys under a granted prefix (the grant adds an ``s3:prefix`` condition)."""
MODEL_OBJECTS_READ: tuple[str, ...] = ("s3:GetObject",)
"""Read (and HEAD) objects under a granted prefix."""
MODEL_OBJECTS_WRITE: tuple[str, ...] = (
    "s3:AbortMultipartUpload",
    "s3:GetObject",
    "s3:PutObject",
)
"""What ``mlstack model push`` needs under a prefix: HEAD/compare, (multipart) put, abort.
No delete: a writer can never remove a version."""
MODEL_KEY_READ: tuple[str, ...] = ("kms:Decrypt",)
"""Decrypt objects of the bucket's key (through S3 only: kms:ViaService)."""
MODEL_KEY_WRITE: tuple[str, ...] = ("kms:Decrypt", "kms:GenerateDataKey")
"""Encrypt new objects; Decrypt is needed to complete multipart uploads."""
S3_ALL = "s3:*"
S3_PUT_OBJECT: tuple[str, ...] = ("s3:PutObject",)
"""Server access log delivery (logging.s3.amazonaws.com) into the log bucket."""

# --- Delivery: CI identities (components/delivery/ci_identity.py) ---------------------------

CI_STATE_BUCKET_READ: tuple[str, ...] = (
    "s3:GetBucketLocation",
    "s3:GetBucketVersioning",
    "s3:ListBucket",
)
"""Listing the Pulumi state bucket (both CI roles)."""

CI_STATE_OBJECT_READ: tuple[str, ...] = ("s3:GetObject", "s3:GetObjectVersion")
CI_STATE_OBJECT_WRITE: tuple[str, ...] = ("s3:DeleteObject", "s3:PutObject")
"""Writing state objects (deploy), or only the lock objects under .pulumi/locks/ (preview)."""

CI_SECRETS_DECRYPT: tuple[str, ...] = ("kms:Decrypt", "kms:DescribeKey")
CI_SECRETS_ENCRYPT: tuple[str, ...] = ("kms:Encrypt", "kms:GenerateDataKey")
"""The Pulumi awskms secrets provider: decrypt the stack's data key (both), re-key (deploy)."""

CI_IAM_READ: tuple[str, ...] = (
    "iam:GetInstanceProfile",
    "iam:GetOpenIDConnectProvider",
    "iam:GetPolicy",
    "iam:GetPolicyVersion",
    "iam:GetRole",
    "iam:GetRolePolicy",
    "iam:ListAttachedRolePolicies",
    "iam:ListInstanceProfilesForRole",
    "iam:ListOpenIDConnectProviders",
    "iam:ListPolicyVersions",
    "iam:ListRolePolicies",
    "iam:ListRoleTags",
)
"""IAM reads `pulumi up` makes for the roles and policies of the stack."""

CI_IAM_CREATE_TAGGED: tuple[str, ...] = (
    "iam:CreateInstanceProfile",
    "iam:CreateOpenIDConnectProvider",
    "iam:CreatePolicy",
    "iam:CreateRole",
    "iam:TagInstanceProfile",
    "iam:TagOpenIDConnectProvider",
    "iam:TagPolicy",
    "iam:TagRole",
)
"""Creating IAM resources; allowed only with the stack's tags in the request."""

CI_IAM_MANAGE_TAGGED: tuple[str, ...] = (
    "iam:AddClientIDToOpenIDConnectProvider",
    "iam:AddRoleToInstanceProfile",
    "iam:AttachRolePolicy",
    "iam:CreatePolicyVersion",
    "iam:DeleteInstanceProfile",
    "iam:DeleteOpenIDConnectProvider",
    "iam:DeletePolicy",
    "iam:DeletePolicyVersion",
    "iam:DeleteRole",
    "iam:DeleteRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PutRolePolicy",
    "iam:RemoveClientIDFromOpenIDConnectProvider",
    "iam:RemoveRoleFromInstanceProfile",
    "iam:UntagInstanceProfile",
    "iam:UntagOpenIDConnectProvider",
    "iam:UntagPolicy",
    "iam:UntagRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:UpdateOpenIDConnectProviderThumbprint",
    "iam:UpdateRole",
    "iam:UpdateRoleDescription",
)
"""Changing IAM resources that carry the stack's tags."""

CI_IAM_PASS_ROLE: tuple[str, ...] = ("iam:PassRole",)
CI_IAM_SERVICE_LINKED: tuple[str, ...] = ("iam:CreateServiceLinkedRole",)

CI_SELF_PROTECT: tuple[str, ...] = (
    "iam:AttachRolePolicy",
    "iam:DeleteRole",
    "iam:DeleteRolePermissionsBoundary",
    "iam:DeleteRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:PutRolePolicy",
    "iam:TagRole",
    "iam:UntagRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:UpdateRole",
)
"""Denied to the deploy role on the CI roles themselves: no self-escalation from CI."""

READ_ONLY_ACCESS_POLICY = "ReadOnlyAccess"
POWER_USER_ACCESS_POLICY = "PowerUserAccess"
EKS_VIEW_ACCESS_POLICY = "AmazonEKSViewPolicy"


def _check_sorted() -> None:
    for name, value in list(globals().items()):
        if name.isupper() and isinstance(value, tuple):
            assert list(value) == sorted(value), f"{name} must be sorted"


_check_sorted()

ECR_PULL_THROUGH_IMPORT: tuple[str, ...] = ("ecr:BatchImportUpstreamImage", "ecr:CreateRepository")
"""What the principal whose pull fills an ECR pull-through cache needs on the cached
repositories (ECR user guide: IAM permissions required to sync an upstream registry)."""
