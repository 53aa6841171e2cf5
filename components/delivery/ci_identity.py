"""``CiIdentity``: GitHub OIDC provider and the ``preview``, ``drift`` and ``deploy`` roles.

GitHub mints an OIDC token per job whose ``sub`` claim names the repository and
what the job runs for; AWS exchanges it for role credentials only when the
trust policy's conditions match exactly (``StringEquals``, never ``Like``):

* ``preview`` (``ReadOnlyAccess``, reading the Pulumi state, decrypting stack
  secrets, ``AmazonEKSViewPolicy``, which cannot read Kubernetes Secrets): only
  ``repo:<owner>/<name>:pull_request``. Preview takes no state lock.
* ``drift`` (``pulumi refresh --preview-only``: the preview rights, no state writes,
  since the DIY backend takes no lock for a preview-only refresh (pulumi >= 3.229), and
  ``AmazonEKSAdminViewPolicy``, which reads Secrets, where Helm keeps releases, and
  custom resources): only the default branch's drift workflow
  (``sub`` = ``ref:refs/heads/<branch>`` and ``job_workflow_ref`` =
  ``<owner>/<name>/.github/workflows/drift.yml@refs/heads/<branch>``; the workflow has
  no trigger but its schedule).
* ``deploy`` (what ``pulumi up`` needs: ``PowerUserAccess``, IAM only under the stack's
  path and tags, roles only with the stack's permissions boundary, managed policies
  only from an allow-list, the state bucket and secrets key, cluster admin in
  Kubernetes): only ``repo:<owner>/<name>:environment:<env>`` of the protected
  environments (the default branch alone only when a stack names no environment,
  which prod may not). It may not change the CI roles, their scope tags or the
  boundary (explicit denies), so widening CI's own access takes an administrator's
  ``pulumi up``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_aws as aws

from components.iam import actions, documents
from components.iam.scope import ATTACHABLE_MANAGED_POLICIES, RoleScope
from components.validation import require_valid

TYPE_TOKEN = "mlstack:delivery:CiIdentity"
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
GITHUB_OIDC_URL = f"https://{GITHUB_OIDC_HOST}"
STS_AUDIENCE = "sts.amazonaws.com"
DRIFT_WORKFLOW = ".github/workflows/drift.yml"
"""The only workflow the drift role trusts (on the default branch)."""
SCOPE_TAG_KEYS: tuple[str, ...] = ("project", "stack")
"""The tags the deploy role's IAM rights are scoped to."""
SESSION_SECONDS: dict[str, int] = {"preview": 3600, "drift": 3600, "deploy": 3 * 3600}
"""Each CI role's maximum session; the workflows ask for exactly this
(``role-duration-seconds``) and keep their job timeouts below it (a test checks)."""
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

RoleKind = Literal["preview", "drift", "deploy"]


def pull_request_subject(repository: str) -> str:
    """The ``sub`` of a job run for a pull request (no environment) in ``repository``."""
    return f"repo:{repository}:pull_request"


def branch_subject(repository: str, branch: str) -> str:
    """The ``sub`` of a job run for a push to (or schedule on) ``branch``."""
    return f"repo:{repository}:ref:refs/heads/{branch}"


def environment_subject(repository: str, environment: str) -> str:
    """The ``sub`` of a job that names a GitHub ``environment``."""
    return f"repo:{repository}:environment:{environment}"


def workflow_ref(repository: str, workflow: str, branch: str) -> str:
    """The ``job_workflow_ref`` claim of a job of ``workflow`` run on ``branch``."""
    return f"{repository}/{workflow}@refs/heads/{branch}"


def github_trust(
    provider_arn: str, subjects: Sequence[str], job_workflow_ref: str | None = None
) -> documents.PolicyDocument:
    """Trust GitHub's OIDC tokens for STS whose ``sub`` is exactly one of ``subjects``
    (and, if given, whose ``job_workflow_ref`` is exactly that workflow)."""
    equals: dict[str, Any] = {
        f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE,
        f"{GITHUB_OIDC_HOST}:sub": sorted(subjects),
    }
    if job_workflow_ref is not None:
        equals[f"{GITHUB_OIDC_HOST}:job_workflow_ref"] = job_workflow_ref
    return documents.document(
        {
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": actions.ASSUME_ROLE_WEB_IDENTITY,
            "Condition": {"StringEquals": equals},
        }
    )


@dataclass(frozen=True)
class CiIdentityArgs:
    """Inputs of :class:`CiIdentity`.

    ``repository``: ``owner/name`` on GitHub. ``default_branch`` (default ``main``):
    where the drift workflow runs (and deploys, when no environment is named).
    ``environments`` (default none): GitHub environments whose jobs may deploy; when
    given, the deploy role trusts only them. ``stack`` and ``project`` (default
    ``mlstack``): the tags the deploy role's IAM rights are scoped to (the AWS
    provider's default tags put them on every resource). ``role_scope``: the stack's
    IAM path and permissions boundary (the CI roles live under the path; every role
    the deploy role creates must carry the boundary). ``role_name_prefix``: roles are
    named ``<prefix>-ci-preview`` / ``-ci-drift`` / ``-ci-deploy``.
    ``existing_oidc_provider_arn`` (default None: create it): GitHub's provider exists
    once per account. ``state_bucket`` / ``secrets_key_arn`` (default None): the S3
    state backend and the KMS key of the secrets provider (also the state bucket's
    SSE-KMS key, as ``mlstack bootstrap`` creates it). ``eks_cluster_name`` (default
    None: no Kubernetes access): view (preview), admin view (drift), cluster admin
    (deploy). ``drift_workflow``: the workflow file the drift role trusts.
    """

    repository: str
    stack: str
    role_name_prefix: str
    role_scope: RoleScope
    default_branch: str = "main"
    environments: Sequence[str] = ()
    project: str = "mlstack"
    partition: str = "aws"
    existing_oidc_provider_arn: str | None = None
    state_bucket: str | None = None
    secrets_key_arn: str | None = None
    eks_cluster_name: pulumi.Input[str] | None = None
    drift_workflow: str = DRIFT_WORKFLOW

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
        found += [f"role_scope.{p}" for p in self.role_scope.problems()]
        if not re.fullmatch(r"\.github/workflows/[\w.-]+\.ya?ml", self.drift_workflow):
            found.append(
                f"drift_workflow: {self.drift_workflow!r}: a file under .github/workflows/"
            )
        return found

    @property
    def preview_subjects(self) -> list[str]:
        return [pull_request_subject(self.repository)]

    @property
    def drift_subjects(self) -> list[str]:
        return [branch_subject(self.repository, self.default_branch)]

    @property
    def drift_workflow_ref(self) -> str:
        return workflow_ref(self.repository, self.drift_workflow, self.default_branch)

    @property
    def deploy_subjects(self) -> list[str]:
        if self.environments:
            return sorted(environment_subject(self.repository, e) for e in self.environments)
        return [branch_subject(self.repository, self.default_branch)]


def state_statements(
    bucket: str | None, key_arn: str | None, partition: str, *, kind: RoleKind
) -> list[dict[str, Any]]:
    """Access to the Pulumi state bucket and secrets key.

    ``preview`` and ``drift`` read state and decrypt: the DIY backend's ``Refresh`` with
    ``--preview-only`` runs a dry run without ``Lock`` (pulumi ``pkg/backend/diy/backend.go``
    since v3.229), so drift writes nothing; ``deploy`` writes state and encrypts."""
    statements: list[dict[str, Any]] = []
    if bucket:
        bucket_arn = f"arn:{partition}:s3:::{bucket}"
        statements.append(documents.allow(actions.CI_STATE_BUCKET_READ, [bucket_arn], "StateList"))
        statements.append(
            documents.allow(actions.CI_STATE_OBJECT_READ, [f"{bucket_arn}/*"], "StateRead")
        )
        if kind == "deploy":
            statements.append(
                documents.allow(actions.CI_STATE_OBJECT_WRITE, [f"{bucket_arn}/*"], "StateWrite")
            )
    if key_arn:
        key_actions = actions.CI_SECRETS_DECRYPT
        if kind == "deploy":
            key_actions += actions.CI_SECRETS_ENCRYPT
        statements.append(documents.allow(key_actions, [key_arn], "SecretsProvider"))
    return statements


def managed_policy_arns(partition: str) -> list[str]:
    """ARNs of :data:`ATTACHABLE_MANAGED_POLICIES` (the ``iam:PolicyARN`` allow-list)."""
    return sorted(f"arn:{partition}:iam::aws:policy/{name}" for name in ATTACHABLE_MANAGED_POLICIES)


def deploy_iam_statements(
    account_id: str,
    partition: str,
    project: str,
    stack: str,
    ci_role_arns: Sequence[str],
    *,
    path: str,
    boundary_arn: str,
) -> list[dict[str, Any]]:
    """IAM for ``pulumi up``: reads; changes only under the stack's path, to resources that
    already carry the stack's tags; new roles only with the stack's boundary."""
    iam = f"arn:{partition}:iam::{account_id}"
    everything = [
        f"{iam}:role/*",
        f"{iam}:policy/*",
        f"{iam}:instance-profile/*",
        f"{iam}:oidc-provider/*",
    ]
    roles = [f"{iam}:role{path}*"]
    scoped = [*roles, f"{iam}:policy{path}*", f"{iam}:instance-profile{path}*"]
    cluster_oidc = [f"{iam}:oidc-provider/oidc.eks.*"]
    tagged = {f"aws:ResourceTag/{k}": v for k, v in (("project", project), ("stack", stack))}
    requested = {f"aws:RequestTag/{k}": v for k, v in (("project", project), ("stack", stack))}
    bounded = {"iam:PermissionsBoundary": boundary_arn}

    def allow(
        action_list: Sequence[str], resources: Sequence[str], sid: str, condition: dict[str, Any]
    ) -> dict[str, Any]:
        return {**documents.allow(action_list, resources, sid), "Condition": condition}

    tag_only = tuple(a for a in actions.CI_IAM_TAG if ":Tag" in a)
    return [
        documents.allow(actions.CI_IAM_READ, everything, "IamRead"),
        documents.allow(actions.CI_IAM_LIST, ["*"], "IamList"),
        allow(
            actions.CI_IAM_CREATE_TAGGED,
            [*scoped[1:], *cluster_oidc],
            "IamCreateTagged",
            {"StringEquals": requested},
        ),
        allow(
            actions.CI_IAM_CREATE_ROLE,
            roles,
            "IamCreateBoundedRole",
            {"StringEquals": {**requested, **bounded}},
        ),
        allow(
            actions.CI_IAM_TAG,
            [*scoped, *cluster_oidc],
            "IamTagTagged",
            {"StringEquals": tagged, "StringEqualsIfExists": requested},
        ),
        # Tag-on-create: IAM authorizes Tag* for the resource being created, which has no
        # tags yet. Only under the stack's path (or a cluster's OIDC provider), only
        # untagged resources, only with the stack's own scope tags.
        allow(
            tag_only,
            [*scoped, *cluster_oidc],
            "IamTagOnCreate",
            {"StringEquals": requested, "Null": {"aws:ResourceTag/stack": "true"}},
        ),
        allow(
            actions.CI_IAM_MANAGE_TAGGED,
            [*scoped, *cluster_oidc],
            "IamManageTagged",
            {"StringEquals": tagged},
        ),
        allow(
            actions.CI_IAM_ROLE_POLICIES,
            roles,
            "IamBoundedRolePolicies",
            {"StringEquals": {**tagged, **bounded}},
        ),
        allow(
            actions.CI_IAM_ATTACH,
            roles,
            "IamAttachAllowListed",
            {
                "StringEquals": {**tagged, **bounded},
                "ArnEquals": {"iam:PolicyARN": managed_policy_arns(partition)},
            },
        ),
        allow(
            actions.CI_IAM_PASS_ROLE,
            roles,
            "PassStackRoles",
            {"StringEquals": {**tagged, "iam:PassedToService": list(PASSED_TO_SERVICES)}},
        ),
        allow(
            actions.CI_IAM_SERVICE_LINKED,
            [f"{iam}:role/aws-service-role/*"],
            "ServiceLinked",
            {"StringEquals": {"iam:AWSServiceName": list(SERVICE_LINKED_ROLES)}},
        ),
        {
            "Sid": "NoSelfEscalation",
            "Effect": "Deny",
            "Action": list(actions.CI_SELF_PROTECT),
            "Resource": sorted(ci_role_arns),
        },
        {
            "Sid": "NoScopeRetagging",
            "Effect": "Deny",
            "Action": list(actions.CI_SCOPE_RETAG),
            "Resource": sorted(ci_role_arns),
            "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": list(SCOPE_TAG_KEYS)}},
        },
        {
            "Sid": "BoundaryIsFixed",
            "Effect": "Deny",
            "Action": list(actions.CI_BOUNDARY_PROTECT),
            "Resource": [boundary_arn],
        },
        {
            "Sid": "NoBoundaryRemoval",
            "Effect": "Deny",
            "Action": ["iam:DeleteRolePermissionsBoundary"],
            "Resource": [f"{iam}:role/*"],
        },
    ]


class CiIdentity(pulumi.ComponentResource):
    """GitHub's OIDC provider (created or reused) and the preview, drift and deploy roles."""

    oidc_provider_arn: pulumi.Output[str]
    preview_role_arn: pulumi.Output[str]
    drift_role_arn: pulumi.Output[str]
    deploy_role_arn: pulumi.Output[str]
    preview_role: aws.iam.Role
    drift_role: aws.iam.Role
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
        self.updater_access: list[pulumi.Resource] = []
        """The deploy role's access entry and policy association (it runs ``pulumi up``,
        rollbacks and destroys): the Kubernetes provider depends on them."""
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

        def trust(subjects: list[str], workflow: str | None = None) -> pulumi.Output[str]:
            return self.oidc_provider_arn.apply(
                lambda arn: documents.to_json(github_trust(arn, subjects, workflow))
            )

        # CI roles sit under the stack's path (so default-tag changes reach them) but carry
        # no boundary: an administrator creates them, the deploy role cannot change them.
        def role(kind: RoleKind, description: str, assume: pulumi.Output[str]) -> aws.iam.Role:
            return aws.iam.Role(
                f"{name}-{kind}",
                aws.iam.RoleArgs(
                    name=f"{args.role_name_prefix}-ci-{kind}",
                    path=args.role_scope.path,
                    description=description,
                    assume_role_policy=assume,
                    max_session_duration=SESSION_SECONDS[kind],
                ),
                # Fixed names (the workflows name them): replace delete-first.
                opts=fixed_name,
            )

        self.preview_role = role(
            "preview",
            f"GitHub Actions pull-request previews for {args.repository}",
            trust(args.preview_subjects),
        )
        self.drift_role = role(
            "drift",
            f"GitHub Actions scheduled drift checks ({args.drift_workflow}) for {args.repository}",
            trust(args.drift_subjects, args.drift_workflow_ref),
        )
        self.deploy_role = role(
            "deploy",
            f"GitHub Actions pulumi up for {args.repository}",
            trust(args.deploy_subjects),
        )
        for kind, ci_role, policy in (
            ("preview", self.preview_role, actions.READ_ONLY_ACCESS_POLICY),
            ("drift", self.drift_role, actions.READ_ONLY_ACCESS_POLICY),
            ("deploy", self.deploy_role, actions.POWER_USER_ACCESS_POLICY),
        ):
            suffix = "poweruser" if kind == "deploy" else "readonly"
            aws.iam.RolePolicyAttachment(
                f"{name}-{kind}-{suffix}",
                aws.iam.RolePolicyAttachmentArgs(role=ci_role.name, policy_arn=managed + policy),
                opts=child,
            )

        readers: tuple[tuple[RoleKind, aws.iam.Role], ...] = (
            ("preview", self.preview_role),
            ("drift", self.drift_role),
        )
        for kind, ci_role in readers:
            statements = state_statements(
                args.state_bucket, args.secrets_key_arn, args.partition, kind=kind
            )
            if statements:
                aws.iam.RolePolicy(
                    f"{name}-{kind}-state",
                    aws.iam.RolePolicyArgs(
                        role=ci_role.id,
                        policy=documents.to_json(documents.document(*statements)),
                    ),
                    opts=child,
                )

        deploy_state = state_statements(
            args.state_bucket, args.secrets_key_arn, args.partition, kind="deploy"
        )
        account_id = self.oidc_provider_arn.apply(lambda arn: arn.split(":")[4])
        deploy_policy = pulumi.Output.all(
            account_id,
            self.preview_role.arn,
            self.drift_role.arn,
            self.deploy_role.arn,
            args.role_scope.permissions_boundary_arn,
        ).apply(
            lambda v: documents.to_json(
                documents.document(
                    *deploy_state,
                    *deploy_iam_statements(
                        v[0],
                        args.partition,
                        args.project,
                        args.stack,
                        [v[1], v[2], v[3]],
                        path=args.role_scope.path,
                        boundary_arn=v[4],
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
                ("drift", self.drift_role, actions.EKS_ADMIN_VIEW_ACCESS_POLICY),
                ("deploy", self.deploy_role, actions.EKS_CLUSTER_ADMIN_ACCESS_POLICY),
            )
            for role_name, ci_role, access_policy in grants:
                entry = aws.eks.AccessEntry(
                    f"{name}-{role_name}-eks",
                    aws.eks.AccessEntryArgs(
                        cluster_name=args.eks_cluster_name,
                        principal_arn=ci_role.arn,
                        type="STANDARD",
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
                if role_name == "deploy":
                    self.updater_access += [entry, association]

        self.preview_role_arn = self.preview_role.arn
        self.drift_role_arn = self.drift_role.arn
        self.deploy_role_arn = self.deploy_role.arn
        self.register_outputs(
            {
                "oidcProviderArn": self.oidc_provider_arn,
                "previewRoleArn": self.preview_role_arn,
                "driftRoleArn": self.drift_role_arn,
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
