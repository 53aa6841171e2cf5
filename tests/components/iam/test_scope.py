"""Every role the stack creates carries the stack's path and permissions boundary, the
boundary covers what those roles are granted, and only allow-listed managed policies
are attached."""

from __future__ import annotations

import json

from components.iam import actions
from components.iam.scope import (
    ATTACHABLE_MANAGED_POLICIES,
    BOUNDARY_EXEMPT_ROLES,
    action_allowed,
    boundary_statements,
)
from mlstack.synth import ResourceGraph

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"


def _boundary_arn(graph: ResourceGraph) -> str:
    return f"arn:aws:iam::123456789012:policy/mlstack/{graph.stack}/iam-boundary-policy"


def test_every_role_in_both_plans_carries_the_boundary_and_path(any_graph) -> None:
    roles = any_graph.by_type(ROLE)
    assert len(roles) >= 10
    missing = [
        r.name
        for r in roles
        if r.name not in BOUNDARY_EXEMPT_ROLES
        and (
            r.inputs.get("permissionsBoundary") != _boundary_arn(any_graph)
            or r.inputs.get("path") != f"/mlstack/{any_graph.stack}/"
        )
    ]
    assert missing == []
    exempt = sorted(r.name for r in roles if not r.inputs.get("permissionsBoundary"))
    assert exempt == sorted(BOUNDARY_EXEMPT_ROLES)


def test_only_allow_listed_managed_policies_are_attached_to_stack_roles(any_graph) -> None:
    ci = {f"mlstack-{any_graph.stack}-ci-{k}" for k in ("preview", "drift", "deploy")}
    used = {
        a.inputs["policyArn"].removeprefix("arn:aws:iam::aws:policy/")
        for a in any_graph.by_type(ATTACHMENT)
        if a.inputs["role"] not in ci
    }
    assert used == set(ATTACHABLE_MANAGED_POLICIES)


def test_the_boundary_covers_every_action_granted_to_a_stack_role(any_graph) -> None:
    patterns = [a for s in boundary_statements("aws", any_graph.region) for a in s["Action"]]
    ci = {f"mlstack-{any_graph.stack}-ci-{k}" for k in ("preview", "drift", "deploy")}
    uncovered: set[str] = set()
    for policy in any_graph.by_type(ROLE_POLICY):
        # The CI roles carry no boundary (BOUNDARY_EXEMPT_ROLES): their grants, wherever
        # they are declared (the loader repository grants the deploy role its push), are
        # not limited by it.
        if policy.name.startswith("ci-") or policy.inputs.get("role") in ci:
            continue
        for statement in json.loads(policy.inputs["policy"])["Statement"]:
            if statement["Effect"] != "Allow":
                continue
            granted = statement["Action"]
            for action in [granted] if isinstance(granted, str) else granted:
                if not action_allowed(action, patterns):
                    uncovered.add(f"{policy.name}: {action}")
    assert uncovered == set()


def test_the_boundary_grants_no_iam_beyond_instance_profiles_and_no_sts() -> None:
    granted = [a for s in boundary_statements("aws", "us-east-1") for a in s["Action"]]
    assert not [a for a in granted if a.startswith("sts:") or a == "*"]
    assert {a for a in granted if a.startswith("iam:")} == set(actions.BOUNDARY_IAM)
    assert "iam:PutRolePolicy" not in granted
    assert not action_allowed("iam:CreateRole", granted)
    assert not action_allowed("iam:AttachRolePolicy", granted)
