"""An AWS role for one Kubernetes service account through EKS Pod Identity.

Controllers (Karpenter, cluster-autoscaler, Alertmanager) each get: a role whose trust
names exactly their cluster, namespace and service account (session tags), one inline
policy, and the Pod Identity association that hands the role to that service account.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.iam import documents
from components.iam.scope import RoleScope, scoped_role


@dataclass(frozen=True)
class ServiceAccountRole:
    """The role, its inline policy and the association (depend on it before the pods start)."""

    role: aws.iam.Role
    policy: aws.iam.RolePolicy
    association: aws.eks.PodIdentityAssociation


@dataclass(frozen=True)
class ServiceAccountRoleNames:
    """Resource names of the three parts (kept per caller so URNs never move)."""

    role: str
    policy: str
    association: str


def pod_identity_role(
    names: ServiceAccountRoleNames,
    *,
    cluster_name: pulumi.Input[str],
    namespace: str,
    service_account: str,
    description: str,
    policy: pulumi.Input[str],
    parent: pulumi.Resource,
    association_depends_on: Sequence[pulumi.Resource] = (),
    scope: RoleScope | None = None,
) -> ServiceAccountRole:
    """Create the role, its inline ``policy`` (JSON text) and the association."""
    child = pulumi.ResourceOptions(parent=parent)
    role = scoped_role(
        names.role,
        assume_role_policy=pulumi.Output.from_input(cluster_name).apply(
            lambda cluster: documents.to_json(
                documents.pod_identity_trust(cluster, namespace, service_account)
            )
        ),
        description=description,
        scope=scope,
        opts=child,
    )
    inline = aws.iam.RolePolicy(
        names.policy,
        aws.iam.RolePolicyArgs(role=role.id, policy=policy),
        opts=child,
    )
    association = aws.eks.PodIdentityAssociation(
        names.association,
        aws.eks.PodIdentityAssociationArgs(
            cluster_name=cluster_name,
            namespace=namespace,
            service_account=service_account,
            role_arn=role.arn,
        ),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(association_depends_on)),
    )
    return ServiceAccountRole(role=role, policy=inline, association=association)
