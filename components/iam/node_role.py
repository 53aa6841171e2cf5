"""The IAM role every kind of EKS worker node uses (system, managed GPU, Karpenter).

Nodes get exactly two AWS-managed policies: the EKS worker policy and ECR pull-only.
The CNI policy is not on the node: vpc-cni gets it through IRSA (see
``components.cluster.eks``), so pods on the node cannot borrow it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.iam import actions, documents
from components.iam.scope import RoleScope, scoped_role

NODE_MANAGED_POLICIES: tuple[tuple[str, str], ...] = (
    ("worker", actions.EKS_WORKER_NODE_POLICY),
    ("ecr-pull", actions.ECR_PULL_ONLY_POLICY),
)
"""(resource-name suffix, AWS-managed policy name) attached to every node role."""


@dataclass(frozen=True)
class NodeRole:
    """A node role and its policy attachments (depend on these before launching nodes)."""

    role: aws.iam.Role
    attachments: tuple[aws.iam.RolePolicyAttachment, ...]


def node_role(
    prefix: str,
    *,
    description: str,
    partition: str,
    parent: pulumi.Resource,
    scope: RoleScope | None = None,
) -> NodeRole:
    """Create ``{prefix}-role`` trusted by EC2 (under ``scope``'s path and boundary) and
    ``{prefix}-<suffix>`` attachments."""
    child = pulumi.ResourceOptions(parent=parent)
    role = scoped_role(
        f"{prefix}-role",
        assume_role_policy=documents.to_json(documents.service_trust("ec2.amazonaws.com")),
        description=description,
        scope=scope,
        opts=child,
    )
    attachments = tuple(
        aws.iam.RolePolicyAttachment(
            f"{prefix}-{suffix}",
            aws.iam.RolePolicyAttachmentArgs(
                role=role.name, policy_arn=f"arn:{partition}:iam::aws:policy/{policy}"
            ),
            opts=child,
        )
        for suffix, policy in NODE_MANAGED_POLICIES
    )
    return NodeRole(role=role, attachments=attachments)
