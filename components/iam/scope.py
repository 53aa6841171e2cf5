"""Where the stack's roles live and how far they can ever reach: path + permissions boundary.

Every role the stack creates (nodes, control plane, add-ons, controllers, model
loaders, flow logs) is built by :func:`scoped_role`: it sits under the stack's IAM
path (``/mlstack/<stack>/``) and carries the stack's permissions boundary. The CI
deploy role may create roles only under that path and only with that boundary
(``iam:PermissionsBoundary`` on ``CreateRole``), may attach only the AWS-managed
policies in :data:`ATTACHABLE_MANAGED_POLICIES` (``iam:PolicyARN``), and may not
change the boundary itself. So a deploy credential cannot mint a role stronger than
the boundary, whatever it puts into that role's policies.

The CI roles themselves are the exception (:data:`BOUNDARY_EXEMPT_ROLES`): an
administrator creates them, the deploy role is denied any change to them, and their
rights (IAM management, cluster admin) are exactly what the boundary withholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.iam import actions, documents

TYPE_TOKEN = "mlstack:iam:PermissionsBoundary"

ATTACHABLE_MANAGED_POLICIES: tuple[str, ...] = (
    actions.EBS_CSI_DRIVER_POLICY,
    actions.ECR_PULL_ONLY_POLICY,
    actions.EKS_CLUSTER_POLICY,
    actions.EKS_CNI_POLICY,
    actions.EKS_WORKER_NODE_POLICY,
)
"""AWS-managed policies (``arn:<partition>:iam::aws:policy/<name>``) the deploy role may
attach to or detach from the stack's roles; a test holds this equal to the plans' use."""

BOUNDARY_EXEMPT_ROLES: tuple[str, ...] = ("ci-preview", "ci-drift", "ci-deploy")
"""Resource names of the CI roles (created by an administrator, never by the deploy role)."""


def iam_path(project: str, stack: str) -> str:
    """The IAM path of the stack's roles and policies, e.g. ``/mlstack/prod/``."""
    return f"/{project}/{stack}/"


@dataclass(frozen=True)
class RoleScope:
    """The path and permissions boundary every role of one stack carries."""

    path: str
    permissions_boundary_arn: pulumi.Input[str]

    def problems(self) -> list[str]:
        if not (self.path.startswith("/") and self.path.endswith("/")) or "//" in self.path:
            return [f"path: {self.path!r}: must start and end with '/', e.g. /mlstack/dev/"]
        return []


def scoped_role(
    name: str,
    *,
    assume_role_policy: pulumi.Input[str],
    description: str,
    scope: RoleScope | None,
    opts: pulumi.ResourceOptions,
    max_session_duration: int | None = None,
) -> aws.iam.Role:
    """An ``aws.iam.Role`` under ``scope``'s path with its permissions boundary.

    ``scope=None`` (components used on their own, tests) creates a plain role; the
    composition always passes the stack's scope.
    """
    return aws.iam.Role(
        name,
        aws.iam.RoleArgs(
            assume_role_policy=assume_role_policy,
            description=description,
            max_session_duration=max_session_duration,
            path=scope.path if scope else None,
            permissions_boundary=scope.permissions_boundary_arn if scope else None,
        ),
        opts=opts,
    )


def boundary_statements(partition: str, region: str) -> list[dict[str, Any]]:
    """The ceiling of every stack role: the controllers' and nodes' services, data actions
    only in this account (S3, KMS, SQS, SNS, logs) or on AWS-published images and
    parameters (ECR, SSM), and of IAM only what Karpenter and the LB Controller use
    (instance profiles, passing roles, service-linked roles). No other IAM or STS."""
    own = {"StringEquals": {"aws:ResourceAccount": "${aws:PrincipalAccount}"}}
    return [
        documents.allow(actions.BOUNDARY_SERVICES, ["*"], "Services"),
        documents.allow(actions.BOUNDARY_IAM, ["*"], "InstanceProfilesAndPassRole"),
        {
            **documents.allow(
                actions.BOUNDARY_OWN_DATA,
                [
                    f"arn:{partition}:s3:::*",
                    f"arn:{partition}:kms:{region}:*:key/*",
                    f"arn:{partition}:sqs:{region}:*:*",
                    f"arn:{partition}:sns:{region}:*:*",
                ],
                "OwnAccountData",
            ),
            "Condition": own,
        },
        documents.allow(
            actions.BOUNDARY_IMAGES,
            [f"arn:{partition}:ecr:*:*:repository/*"],
            "PullImages",
        ),
        documents.allow(actions.BOUNDARY_ECR_TOKEN, ["*"], "EcrToken"),
        documents.allow(
            actions.BOUNDARY_PARAMETERS,
            [f"arn:{partition}:ssm:{region}::parameter/aws/service/*"],
            "PublicParameters",
        ),
    ]


@dataclass(frozen=True)
class PermissionsBoundaryArgs:
    """``path``: the stack's IAM path. ``partition``/``region``: where the stack runs."""

    path: str
    partition: str
    region: str


class PermissionsBoundary(pulumi.ComponentResource):
    """The managed policy every stack role carries as its permissions boundary."""

    arn: pulumi.Output[str]
    scope: RoleScope

    def __init__(
        self, name: str, args: PermissionsBoundaryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        policy = aws.iam.Policy(
            f"{name}-policy",
            aws.iam.PolicyArgs(
                path=args.path,
                description=f"Permissions boundary of every role under {args.path}",
                policy=documents.to_json(
                    documents.document(*boundary_statements(args.partition, args.region))
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.arn = policy.arn
        self.scope = RoleScope(path=args.path, permissions_boundary_arn=policy.arn)
        self.register_outputs({"arn": self.arn})


def action_allowed(action: str, patterns: Sequence[str]) -> bool:
    """Whether IAM action ``action`` matches one of ``patterns`` (``*`` wildcards, any case)."""
    import fnmatch

    return any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in patterns)
