"""``CiIdentity``: GitHub Actions' OIDC provider and the ``preview`` and ``deploy`` roles.

GitHub mints an OIDC token per job whose ``sub`` claim names the repository and
what the job runs for; AWS exchanges it for role credentials only when the
trust policy's conditions match exactly (``StringEquals``, never ``Like``):

* ``preview`` (read-only: ``ReadOnlyAccess``, reading the Pulumi state and
  taking its lock, decrypting stack secrets, viewing Kubernetes objects):
  ``repo:<owner>/<name>:pull_request`` and the default branch
  ``repo:<owner>/<name>:ref:refs/heads/<branch>`` (scheduled drift checks).
* ``deploy`` (what ``pulumi up`` needs: ``PowerUserAccess``, IAM only on
  resources tagged with this stack, the state bucket and secrets key, cluster
  admin in Kubernetes): the default branch and
  ``repo:<owner>/<name>:environment:<env>`` for each protected environment.
  It may not change the CI roles themselves (explicit deny), so widening CI's
  own access takes an administrator's ``pulumi up``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.iam import actions, documents
from components.validation import require_valid

TYPE_TOKEN = "mlstack:delivery:CiIdentity"
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
GITHUB_OIDC_URL = f"https://{GITHUB_OIDC_HOST}"
STS_AUDIENCE = "sts.amazonaws.com"
LOCK_PREFIX = ".pulumi/locks/"
"""Where Pulumi's S3 (DIY) backend keeps stack locks; preview takes one too."""
PASSED_TO_SERVICES: tuple[str, ...] = (
    "ec2.amazonaws.com",
    "eks.amazonaws.com",
    "pods.eks.amazonaws.com",
    "vpc-flow-logs.amazonaws.com",
)
"""Services the stack hands its roles to (node groups, cluster, Pod Identity, flow logs)."""
SERVICE_LINKED_ROLES: tuple[str, ...] = (
    "autoscaling.amazonaws.com",
    "eks-nodegroup.amazonaws.com",
    "eks.amazonaws.com",
    "elasticloadbalancing.amazonaws.com",
    "spot.amazonaws.com",
)
"""Service-linked roles an EKS platform needs on first use in an account."""

_REPOSITORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$")
_ENVIRONMENT = re.compile(r"^[A-Za-z0-9._-]{1,255}$")


def pull_request_subject(repository: str) -> str:
    """The ``sub`` of a job run for a pull request (no environment) in ``repository``."""
    return f"repo:{repository}:pull_request"


def branch_subject(repository: str, branch: str) -> str:
    """The ``sub`` of a job run for a push to (or dispatch on) ``branch``."""
    return f"repo:{repository}:ref:refs/heads/{branch}"


def environment_subject(repository: str, environment: str) -> str:
    """The ``sub`` of a job that names a GitHub ``environment``."""
    return f"repo:{repository}:environment:{environment}"


def github_trust(provider_arn: str, subjects: Sequence[str]) -> documents.PolicyDocument:
    """Trust GitHub's OIDC tokens for STS whose ``sub`` is exactly one of ``subjects``."""
    return documents.document(
        {
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": actions.ASSUME_ROLE_WEB_IDENTITY,
            "Condition": {
                "StringEquals": {
                    f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE,
                    f"{GITHUB_OIDC_HOST}:sub": sorted(subjects),
                }
            },
        }
    )


@dataclass(frozen=True)
class CiIdentityArgs:
    """Inputs of :class:`CiIdentity`.

    ``repository``: ``owner/name`` on GitHub. ``default_branch`` (default ``main``):
    pushes there may deploy and run drift checks. ``environments`` (default none):
    GitHub environments whose jobs may deploy. ``stack`` and ``project`` (default
    ``mlstack``): the tags the deploy role's IAM rights are scoped to (the AWS
    provider's default tags put them on every resource). ``role_name_prefix``:
    roles are named ``<prefix>-ci-preview`` / ``<prefix>-ci-deploy``.
    ``existing_oidc_provider_arn`` (default None: create it): GitHub's provider
    exists once per account. ``state_bucket`` / ``secrets_key_arn`` (default None):
    the S3 state backend and the KMS key of the secrets provider.
    ``eks_cluster_name`` (default None: no Kubernetes access): grants
    ``AmazonEKSViewPolicy`` to preview and ``AmazonEKSClusterAdminPolicy`` to deploy.
    """

    repository: str
    stack: str
    role_name_prefix: str
    default_branch: str = "main"
    environments: Sequence[str] = ()
    project: str = "mlstack"
    partition: str = "aws"
    existing_oidc_provider_arn: str | None = None
    state_bucket: str | None = None
    secrets_key_arn: str | None = None
    eks_cluster_name: pulumi.Input[str] | None = None

    def problems(self) -> list[str]:
        found: list[str] = []
        if not _REPOSITORY.match(self.repository):
            found.append(f"repository: {self.repository!r}: expected owner/name")
        if not self.default_branch or self.default_branch.startswith("refs/"):
            found.append(f"default_branch: {self.default_branch!r}: a branch name without refs/")
        bad = [env for env in self.environments if not _ENVIRONMENT.match(env)]
        if bad:
            found.append(f"environments: {bad}: letters, digits, '.', '_', '-' only")
        if not self.stack:
            found.append("stack: '': required (the tag the deploy role is scoped to)")
        if not re.match(r"^[\w+=,.@-]{1,52}$", self.role_name_prefix):
            found.append(f"role_name_prefix: {self.role_name_prefix!r}: 1-52 of [A-Za-z0-9_+=,.@-]")
        if (
            self.existing_oidc_provider_arn is not None
            and not self.existing_oidc_provider_arn.endswith(f":oidc-provider/{GITHUB_OIDC_HOST}")
        ):
            found.append(
                f"existing_oidc_provider_arn: {self.existing_oidc_provider_arn!r}: "
                f"must be the provider of {GITHUB_OIDC_HOST}"
            )
        return found

    @property
    def preview_subjects(self) -> list[str]:
        return sorted(
            {
                pull_request_subject(self.repository),
                branch_subject(self.repository, self.default_branch),
            }
        )

    @property
    def deploy_subjects(self) -> list[str]:
        subjects = {branch_subject(self.repository, self.default_branch)}
        subjects |= {environment_subject(self.repository, env) for env in self.environments}
        return sorted(subjects)


def state_statements(
    bucket: str | None, key_arn: str | None, partition: str, *, write: bool
) -> list[dict[str, Any]]:
    """Access to the Pulumi state bucket and secrets key. Preview (``write=False``) may
    only read state and write lock objects; deploy may write state and encrypt."""
    statements: list[dict[str, Any]] = []
    if bucket:
        bucket_arn = f"arn:{partition}:s3:::{bucket}"
        statements.append(documents.allow(actions.CI_STATE_BUCKET_READ, [bucket_arn], "StateList"))
        statements.append(
            documents.allow(actions.CI_STATE_OBJECT_READ, [f"{bucket_arn}/*"], "StateRead")
        )
        writable = f"{bucket_arn}/*" if write else f"{bucket_arn}/{LOCK_PREFIX}*"
        statements.append(
            documents.allow(
                actions.CI_STATE_OBJECT_WRITE, [writable], "StateWrite" if write else "StateLock"
            )
        )
    if key_arn:
        key_actions = actions.CI_SECRETS_DECRYPT + (actions.CI_SECRETS_ENCRYPT if write else ())
        statements.append(documents.allow(key_actions, [key_arn], "SecretsProvider"))
    return statements


def deploy_iam_statements(
    account_id: str,
    partition: str,
    project: str,
    stack: str,
    ci_role_arns: Sequence[str],
) -> list[dict[str, Any]]:
    """IAM for ``pulumi up``: reads, and changes only to resources tagged with the stack."""
    iam = f"arn:{partition}:iam::{account_id}"
    iam_resources = [
        f"{iam}:role/*",
        f"{iam}:policy/*",
        f"{iam}:instance-profile/*",
        f"{iam}:oidc-provider/*",
    ]
    tagged = {"aws:ResourceTag/project": project, "aws:ResourceTag/stack": stack}
    requested = {"aws:RequestTag/project": project, "aws:RequestTag/stack": stack}
    return [
        documents.allow(actions.CI_IAM_READ, iam_resources, "IamRead"),
        {
            **documents.allow(actions.CI_IAM_CREATE_TAGGED, iam_resources, "IamCreateTagged"),
            "Condition": {"StringEquals": requested},
        },
        {
            **documents.allow(actions.CI_IAM_MANAGE_TAGGED, iam_resources, "IamManageTagged"),
            "Condition": {"StringEquals": tagged},
        },
        {
            **documents.allow(actions.CI_IAM_PASS_ROLE, [f"{iam}:role/*"], "PassStackRoles"),
            "Condition": {
                "StringEquals": {**tagged, "iam:PassedToService": list(PASSED_TO_SERVICES)}
            },
        },
        {
            **documents.allow(
                actions.CI_IAM_SERVICE_LINKED, [f"{iam}:role/aws-service-role/*"], "ServiceLinked"
            ),
            "Condition": {"StringEquals": {"iam:AWSServiceName": list(SERVICE_LINKED_ROLES)}},
        },
        {
            "Sid": "NoSelfEscalation",
            "Effect": "Deny",
            "Action": list(actions.CI_SELF_PROTECT),
            "Resource": sorted(ci_role_arns),
        },
    ]


class CiIdentity(pulumi.ComponentResource):
    """GitHub's OIDC provider (created or reused) and the preview and deploy roles."""

    oidc_provider_arn: pulumi.Output[str]
    preview_role_arn: pulumi.Output[str]
    deploy_role_arn: pulumi.Output[str]
    preview_role: aws.iam.Role
    deploy_role: aws.iam.Role

    def __init__(
        self, name: str, args: CiIdentityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        require_valid("CiIdentity", name, args.problems())
        child = pulumi.ResourceOptions(parent=self)
        # The roles have fixed names (the workflows name them): replace delete-first.
        fixed_name = pulumi.ResourceOptions(parent=self, delete_before_replace=True)
        self.cluster_access: list[pulumi.Resource] = []
        """The CI roles' access entries and policy associations: every Kubernetes object
        must be deleted before them (a destroy in CI needs them until the end)."""
        managed = f"arn:{args.partition}:iam::aws:policy/"

        if args.existing_oidc_provider_arn is not None:
            self.oidc_provider_arn = pulumi.Output.from_input(args.existing_oidc_provider_arn)
        else:
            provider = aws.iam.OpenIdConnectProvider(
                f"{name}-github-oidc",
                aws.iam.OpenIdConnectProviderArgs(
                    url=GITHUB_OIDC_URL, client_id_lists=[STS_AUDIENCE]
                ),
                opts=child,
            )
            self.oidc_provider_arn = provider.arn

        def trust(subjects: list[str]) -> pulumi.Output[str]:
            return self.oidc_provider_arn.apply(
                lambda arn: documents.to_json(github_trust(arn, subjects))
            )

        self.preview_role = aws.iam.Role(
            f"{name}-preview",
            aws.iam.RoleArgs(
                name=f"{args.role_name_prefix}-ci-preview",
                description=f"GitHub Actions preview and drift checks for {args.repository}",
                assume_role_policy=trust(args.preview_subjects),
                max_session_duration=3600,
            ),
            opts=fixed_name,
        )
        self.deploy_role = aws.iam.Role(
            f"{name}-deploy",
            aws.iam.RoleArgs(
                name=f"{args.role_name_prefix}-ci-deploy",
                description=f"GitHub Actions pulumi up for {args.repository}",
                assume_role_policy=trust(args.deploy_subjects),
                max_session_duration=3600 * 2,
            ),
            opts=fixed_name,
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-preview-readonly",
            aws.iam.RolePolicyAttachmentArgs(
                role=self.preview_role.name,
                policy_arn=managed + actions.READ_ONLY_ACCESS_POLICY,
            ),
            opts=child,
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-deploy-poweruser",
            aws.iam.RolePolicyAttachmentArgs(
                role=self.deploy_role.name,
                policy_arn=managed + actions.POWER_USER_ACCESS_POLICY,
            ),
            opts=child,
        )

        preview_state = state_statements(
            args.state_bucket, args.secrets_key_arn, args.partition, write=False
        )
        if preview_state:
            aws.iam.RolePolicy(
                f"{name}-preview-state",
                aws.iam.RolePolicyArgs(
                    role=self.preview_role.id,
                    policy=documents.to_json(documents.document(*preview_state)),
                ),
                opts=child,
            )

        deploy_state = state_statements(
            args.state_bucket, args.secrets_key_arn, args.partition, write=True
        )
        account_id = self.oidc_provider_arn.apply(lambda arn: arn.split(":")[4])
        deploy_policy = pulumi.Output.all(
            account_id, self.preview_role.arn, self.deploy_role.arn
        ).apply(
            lambda v: documents.to_json(
                documents.document(
                    *deploy_state,
                    *deploy_iam_statements(
                        v[0], args.partition, args.project, args.stack, [v[1], v[2]]
                    ),
                )
            )
        )
        aws.iam.RolePolicy(
            f"{name}-deploy-iam",
            aws.iam.RolePolicyArgs(role=self.deploy_role.id, policy=deploy_policy),
            opts=child,
        )

        if args.eks_cluster_name is not None:
            grants = (
                ("preview", self.preview_role, actions.EKS_VIEW_ACCESS_POLICY),
                ("deploy", self.deploy_role, "AmazonEKSClusterAdminPolicy"),
            )
            for role_name, role, access_policy in grants:
                entry = aws.eks.AccessEntry(
                    f"{name}-{role_name}-eks",
                    aws.eks.AccessEntryArgs(
                        cluster_name=args.eks_cluster_name, principal_arn=role.arn, type="STANDARD"
                    ),
                    opts=child,
                )
                self.cluster_access.append(entry)
                association = aws.eks.AccessPolicyAssociation(
                    f"{name}-{role_name}-eks-policy",
                    aws.eks.AccessPolicyAssociationArgs(
                        cluster_name=args.eks_cluster_name,
                        principal_arn=entry.principal_arn,
                        policy_arn=(
                            f"arn:{args.partition}:eks::aws:cluster-access-policy/{access_policy}"
                        ),
                        access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                    ),
                    opts=child,
                )
                self.cluster_access.append(association)

        self.preview_role_arn = self.preview_role.arn
        self.deploy_role_arn = self.deploy_role.arn
        self.register_outputs(
            {
                "oidcProviderArn": self.oidc_provider_arn,
                "previewRoleArn": self.preview_role_arn,
                "deployRoleArn": self.deploy_role_arn,
            }
        )


def trust_subjects(policy_json: str) -> list[str]:
    """The ``sub`` values a rendered trust policy accepts (for tests and reviews)."""
    doc = json.loads(policy_json)
    found: list[str] = []
    for statement in doc["Statement"]:
        value = (
            statement.get("Condition", {})
            .get("StringEquals", {})
            .get(f"{GITHUB_OIDC_HOST}:sub", [])
        )
        found += [value] if isinstance(value, str) else list(value)
    return sorted(found)
