"""AWS identities for Kubernetes service accounts: EKS Pod Identity or IRSA.

Either way the role's trust policy names exactly one namespace and one service
account: IRSA through the OIDC ``sub`` claim, Pod Identity through the session tags
EKS adds when it assumes the role (``kubernetes-namespace``,
``kubernetes-service-account``, ``eks-cluster-name``). So the role cannot be handed
to another workload by a second association.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_aws as aws

from components.iam import documents
from components.iam.scope import RoleScope, scoped_role

IdentityMode = Literal["podIdentity", "irsa"]
IRSA_ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"


@dataclass(frozen=True)
class WorkloadIdentity:
    """How service accounts of one cluster get AWS credentials."""

    mode: IdentityMode
    cluster_name: pulumi.Input[str]
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer_url: pulumi.Input[str]
    role_scope: RoleScope | None = None
    """IAM path and permissions boundary of the roles (None: plain roles)."""


def pod_identity_trust_for(
    cluster_name: str, namespace: str, service_account: str
) -> documents.PolicyDocument:
    """Trust EKS Pod Identity for one service account of one cluster (session tags)."""
    return documents.pod_identity_trust(cluster_name, namespace, service_account)


@dataclass(frozen=True)
class WorkloadRole:
    """A role for one service account, and the annotations that service account needs."""

    role: aws.iam.Role
    service_account_annotations: dict[str, pulumi.Input[str]]
    association: aws.eks.PodIdentityAssociation | None


def workload_role(
    name: str,
    identity: WorkloadIdentity,
    *,
    namespace: str,
    service_account: str,
    description: str,
    parent: pulumi.Resource,
) -> WorkloadRole:
    """Create ``{name}-role`` trusted by exactly ``namespace/service_account`` (and, for
    Pod Identity, ``{name}-pod-identity``, the association)."""
    child = pulumi.ResourceOptions(parent=parent)
    if identity.mode == "irsa":
        trust = pulumi.Output.all(identity.oidc_provider_arn, identity.oidc_issuer_url).apply(
            lambda v: documents.to_json(
                documents.irsa_trust(str(v[0]), str(v[1]), namespace, service_account)
            )
        )
    else:
        trust = pulumi.Output.from_input(identity.cluster_name).apply(
            lambda cluster: documents.to_json(
                pod_identity_trust_for(cluster, namespace, service_account)
            )
        )
    role = scoped_role(
        f"{name}-role",
        assume_role_policy=trust,
        description=description,
        scope=identity.role_scope,
        opts=child,
        max_session_duration=3600,
    )
    if identity.mode == "irsa":
        return WorkloadRole(role, {IRSA_ROLE_ANNOTATION: role.arn}, None)
    association = aws.eks.PodIdentityAssociation(
        f"{name}-pod-identity",
        aws.eks.PodIdentityAssociationArgs(
            cluster_name=identity.cluster_name,
            namespace=namespace,
            service_account=service_account,
            role_arn=role.arn,
        ),
        opts=child,
    )
    return WorkloadRole(role, {}, association)
