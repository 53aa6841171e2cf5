"""The deploy role cannot grow itself or anything else past the stack's boundary.

The rendered policy of the real prod plan is evaluated with a small evaluator of
AWS's rules (``tests/components/iam/evaluator.py``): explicit Deny wins, conditions
on absent keys fail.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlstack.synth import ResourceGraph
from tests.components.iam.evaluator import allowed

ACCOUNT = "123456789012"
IAM = f"arn:aws:iam::{ACCOUNT}"
OURS = {"aws:ResourceTag/project": "mlstack", "aws:ResourceTag/stack": "prod"}
REQUEST_OURS = {"aws:RequestTag/project": "mlstack", "aws:RequestTag/stack": "prod"}
OWN_ROLE = f"{IAM}:role/mlstack/prod/cluster-system-node-role"
CI_DEPLOY = f"{IAM}:role/mlstack/prod/mlstack-prod-ci-deploy"
FOREIGN_ADMIN = f"{IAM}:role/OrganizationAdmin"


@pytest.fixture(scope="module")
def deploy(prod_graph: ResourceGraph) -> list[dict[str, Any]]:
    node = prod_graph.one("aws:iam/rolePolicy:RolePolicy", "ci-deploy-iam")
    return json.loads(node.inputs["policy"])["Statement"]


@pytest.fixture(scope="module")
def boundary(prod_graph: ResourceGraph) -> str:
    [policy] = [
        p for p in prod_graph.by_type("aws:iam/policy:Policy") if p.name == "iam-boundary-policy"
    ]
    assert policy.inputs["path"] == "/mlstack/prod/"
    return f"{IAM}:policy/mlstack/prod/iam-boundary-policy"


def test_a_foreign_role_cannot_be_tagged_into_the_stacks_scope(deploy) -> None:
    for role in (FOREIGN_ADMIN, f"{IAM}:role/mlstack/dev/other-stack-role"):
        # untagged (tag-on-create look-alike) and tagged by someone else alike
        assert not allowed(deploy, "iam:TagRole", role, {**REQUEST_OURS})
        other = {"aws:ResourceTag/project": "mlstack", "aws:ResourceTag/stack": "dev"}
        assert not allowed(deploy, "iam:TagRole", role, {**other, **REQUEST_OURS})


def test_own_roles_take_new_tags_but_never_another_scope(deploy) -> None:
    assert allowed(deploy, "iam:TagRole", OWN_ROLE, {**OURS, "aws:RequestTag/owner": "x"})
    assert not allowed(deploy, "iam:TagRole", OWN_ROLE, {**OURS, "aws:RequestTag/stack": "dev"})


def test_new_roles_need_the_stacks_path_tags_and_boundary(deploy, boundary) -> None:
    bounded = {**REQUEST_OURS, "iam:PermissionsBoundary": boundary}
    assert allowed(deploy, "iam:CreateRole", f"{IAM}:role/mlstack/prod/new", bounded)
    assert not allowed(deploy, "iam:CreateRole", f"{IAM}:role/mlstack/prod/new", REQUEST_OURS)
    assert not allowed(deploy, "iam:CreateRole", f"{IAM}:role/new", bounded)
    other = {**REQUEST_OURS, "iam:PermissionsBoundary": f"{IAM}:policy/AdministratorAccess"}
    assert not allowed(deploy, "iam:CreateRole", f"{IAM}:role/mlstack/prod/new", other)
    # tag-on-create of that role (no resource tags yet) with the stack's tags
    assert allowed(deploy, "iam:TagRole", f"{IAM}:role/mlstack/prod/new", REQUEST_OURS)


def test_only_allow_listed_managed_policies_attach_to_bounded_roles(deploy, boundary) -> None:
    context = {**OURS, "iam:PermissionsBoundary": boundary}
    worker = "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy"
    admin = "arn:aws:iam::aws:policy/AdministratorAccess"
    assert allowed(deploy, "iam:AttachRolePolicy", OWN_ROLE, {**context, "iam:PolicyARN": worker})
    assert not allowed(
        deploy, "iam:AttachRolePolicy", OWN_ROLE, {**context, "iam:PolicyARN": admin}
    )
    # a role without the boundary (e.g. tagged by hand) gets nothing attached
    assert not allowed(deploy, "iam:AttachRolePolicy", OWN_ROLE, {**OURS, "iam:PolicyARN": worker})
    assert not allowed(deploy, "iam:PutRolePolicy", OWN_ROLE, OURS)
    assert allowed(deploy, "iam:PutRolePolicy", OWN_ROLE, context)


def test_the_boundary_and_the_ci_roles_are_out_of_reach(deploy, boundary) -> None:
    for action in ("iam:CreatePolicyVersion", "iam:DeletePolicy", "iam:SetDefaultPolicyVersion"):
        assert not allowed(deploy, action, boundary, OURS)
    assert not allowed(deploy, "iam:DeleteRolePermissionsBoundary", OWN_ROLE, OURS)
    for action in ("iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:UpdateAssumeRolePolicy"):
        assert not allowed(deploy, action, CI_DEPLOY, {**OURS, "iam:PermissionsBoundary": boundary})


def test_default_tag_changes_reach_the_ci_roles_but_scope_tags_do_not(deploy) -> None:
    """12.8: `owner` / `mlstack:tags` changes land on the CI roles; retagging their scope
    (project, stack) stays denied."""
    owner = {**OURS, "aws:RequestTag/owner": "new-team", "aws:TagKeys": ["owner"]}
    assert allowed(deploy, "iam:TagRole", CI_DEPLOY, owner)
    assert allowed(deploy, "iam:UntagRole", CI_DEPLOY, {**OURS, "aws:TagKeys": ["costCenter"]})
    scope = {**OURS, **REQUEST_OURS, "aws:TagKeys": ["stack"]}
    assert not allowed(deploy, "iam:TagRole", CI_DEPLOY, scope)
    assert not allowed(deploy, "iam:UntagRole", CI_DEPLOY, {**OURS, "aws:TagKeys": ["project"]})
