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
KARPENTER_ZONAL_SHIFT_READ: tuple[str, ...] = ("arc-zonal-shift:GetManagedResource",)
"""Whether ARC zonal shift moved this cluster out of a zone (Karpenter avoids it)."""
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
# TargetGroupBinding only (components.serving.load_balancer.CONTROLLER_STATEMENTS): Pulumi
# owns the load balancers, listeners, rules, target groups and security groups.

LBC_TARGETS: tuple[str, ...] = (
    "elasticloadbalancing:DeregisterTargets",
    "elasticloadbalancing:RegisterTargets",
)
LBC_TGB_DESCRIBE: tuple[str, ...] = (
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeVpcs",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
)
"""What the TargetGroupBinding reconciler reads (the controller's TargetGroupBinding-only
subset, docs/deploy/installation.md, minus the two Modify actions: Pulumi owns the target
group settings) and ``ec2:DescribeInstances``: the controller calls it only to infer its VPC
(``--aws-vpc-id`` unset) or to resolve pod/node ENIs for a binding's ``spec.networking``;
mlstack sets ``vpcId`` and no binding has ``networking`` (``load_balancer.NOT_GRANTED``)."""

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
"""Writing state objects (deploy only: preview and drift take no lock)."""

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
    "iam:ListPolicyVersions",
    "iam:ListRolePolicies",
    "iam:ListRoleTags",
)
"""IAM reads `pulumi up` makes for the roles and policies of the stack."""

CI_IAM_LIST: tuple[str, ...] = ("iam:ListOpenIDConnectProviders",)
"""Listing calls that support no resource ARN (only ``Resource: "*"``)."""

CI_IAM_CREATE_TAGGED: tuple[str, ...] = (
    "iam:CreateInstanceProfile",
    "iam:CreateOpenIDConnectProvider",
    "iam:CreatePolicy",
)
"""Creating IAM resources other than roles; allowed only with the stack's tags in the request."""

CI_IAM_CREATE_ROLE: tuple[str, ...] = ("iam:CreateRole",)
"""Creating a role: the stack's tags in the request and the stack's permissions boundary."""

CI_IAM_TAG: tuple[str, ...] = (
    "iam:TagInstanceProfile",
    "iam:TagOpenIDConnectProvider",
    "iam:TagPolicy",
    "iam:TagRole",
    "iam:UntagInstanceProfile",
    "iam:UntagOpenIDConnectProvider",
    "iam:UntagPolicy",
    "iam:UntagRole",
)
"""Tagging: on resources already carrying the stack's tags, and the scope tags (project,
stack) may only ever be set to the stack's own values."""

CI_IAM_ROLE_POLICIES: tuple[str, ...] = (
    "iam:DeleteRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:PutRolePolicy",
)
"""Changing a role's inline policies or boundary: only roles that carry the stack's boundary."""

CI_IAM_ATTACH: tuple[str, ...] = ("iam:AttachRolePolicy", "iam:DetachRolePolicy")
"""Attaching managed policies: only the allow-listed ones (``iam:PolicyARN``), only to roles
that carry the stack's boundary."""

CI_BOUNDARY_PROTECT: tuple[str, ...] = (
    "iam:CreatePolicyVersion",
    "iam:DeletePolicy",
    "iam:DeletePolicyVersion",
    "iam:SetDefaultPolicyVersion",
)
"""Denied to the deploy role on the permissions boundary policy (an administrator changes it)."""

CI_IAM_MANAGE_TAGGED: tuple[str, ...] = (
    "iam:AddClientIDToOpenIDConnectProvider",
    "iam:AddRoleToInstanceProfile",
    "iam:CreatePolicyVersion",
    "iam:DeleteInstanceProfile",
    "iam:DeleteOpenIDConnectProvider",
    "iam:DeletePolicy",
    "iam:DeletePolicyVersion",
    "iam:DeleteRole",
    "iam:RemoveClientIDFromOpenIDConnectProvider",
    "iam:RemoveRoleFromInstanceProfile",
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
    "iam:UpdateAssumeRolePolicy",
    "iam:UpdateRole",
)
"""Denied to the deploy role on the CI roles themselves: no self-escalation from CI."""

ECR_AUTH_TOKEN: tuple[str, ...] = ("ecr:GetAuthorizationToken",)
"""Docker login to ECR; AWS offers no resource-level scoping for it."""
ECR_PUSH: tuple[str, ...] = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:CompleteLayerUpload",
    "ecr:DescribeImages",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
)
"""Push an image to one repository (and read back its digest); never delete."""
CI_SCOPE_RETAG: tuple[str, ...] = ("iam:TagRole", "iam:UntagRole")
"""Denied on the CI roles only for the scope tag keys (project, stack): other tags (owner,
mlstack:tags) follow the stack's default tags."""

# --- Permissions boundary of every stack role (components/iam/scope.py) --------------------

BOUNDARY_SERVICES: tuple[str, ...] = (
    "acm:DescribeCertificate",
    "acm:ListCertificates",
    "arc-zonal-shift:GetManagedResource",
    "autoscaling:*",
    "ec2:*",
    "eks-auth:*",
    "eks:*",
    "elasticloadbalancing:*",
    "logs:*",
    "pricing:*",
)
"""Control-plane services the nodes, add-ons and controllers call (no data services)."""
BOUNDARY_IAM: tuple[str, ...] = (
    "iam:AddRoleToInstanceProfile",
    "iam:CreateInstanceProfile",
    "iam:CreateServiceLinkedRole",
    "iam:DeleteInstanceProfile",
    "iam:GetInstanceProfile",
    "iam:ListInstanceProfiles",
    "iam:PassRole",
    "iam:RemoveRoleFromInstanceProfile",
    "iam:TagInstanceProfile",
)
"""The only IAM a stack role may ever use: Karpenter's instance profiles and node-role
pass, and the service-linked roles EKS and ELB create on first use."""
BOUNDARY_OWN_DATA: tuple[str, ...] = (
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ListGrants",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:RevokeGrant",
    "s3:AbortMultipartUpload",
    "s3:GetObject",
    "s3:ListBucket",
    "s3:PutObject",
    "sns:Publish",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:ReceiveMessage",
)
"""Data actions, only on resources of the stack's own account (``aws:ResourceAccount``)."""
BOUNDARY_IMAGES: tuple[str, ...] = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:BatchImportUpstreamImage",
    "ecr:CreateRepository",
    "ecr:GetDownloadUrlForLayer",
)
"""Image pulls (AmazonEC2ContainerRegistryPullOnly), from any account: EKS add-on images
live in AWS-owned registries; a pull-through cache creates its repositories on first pull."""
BOUNDARY_ECR_TOKEN: tuple[str, ...] = ("ecr:GetAuthorizationToken",)
BOUNDARY_PARAMETERS: tuple[str, ...] = ("ssm:GetParameter",)
"""AWS-published public parameters (Karpenter's AMI lookups under /aws/service/)."""

READ_ONLY_ACCESS_POLICY = "ReadOnlyAccess"
POWER_USER_ACCESS_POLICY = "PowerUserAccess"
EKS_VIEW_ACCESS_POLICY = "AmazonEKSViewPolicy"
"""Preview: reads Kubernetes objects but not Secrets."""
EKS_ADMIN_VIEW_ACCESS_POLICY = "AmazonEKSAdminViewPolicy"
"""Drift: reads every object incl. Secrets (Helm releases) and custom resources."""
EKS_CLUSTER_ADMIN_ACCESS_POLICY = "AmazonEKSClusterAdminPolicy"


def _check_sorted() -> None:
    for name, value in list(globals().items()):
        if name.isupper() and isinstance(value, tuple):
            assert list(value) == sorted(value), f"{name} must be sorted"


_check_sorted()

ECR_PULL_THROUGH_IMPORT: tuple[str, ...] = ("ecr:BatchImportUpstreamImage", "ecr:CreateRepository")
"""What the principal whose pull fills an ECR pull-through cache needs on the cached
repositories (ECR user guide: IAM permissions required to sync an upstream registry)."""
