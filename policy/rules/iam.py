"""IAM: no wildcard data actions, one service account per workload role."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from policy.core import (
    Finding,
    Resource,
    Rule,
    Stack,
    as_list,
    get_path,
    iter_statements,
)
from policy.rules.common import (
    EKS_ADDON,
    IAM_GROUP_POLICY,
    IAM_POLICY,
    IAM_ROLE,
    IAM_ROLE_POLICY,
    IAM_USER_POLICY,
    POD_IDENTITY_ASSOCIATION,
    actions_of,
    define,
    policy_documents,
    resources_of,
    service_of,
)

DATA_SERVICES = frozenset(
    {
        "s3",
        "s3-object-lambda",
        "kms",
        "dynamodb",
        "secretsmanager",
        "ssm",
        "sqs",
        "sns",
        "elasticfilesystem",
        "glacier",
        "ecr",
    }
)
"""Services whose actions read or write data; wildcards on them are never scoped enough."""


UNSCOPABLE_ACTIONS = frozenset(
    {
        "s3:listallmybuckets",
        "kms:listaliases",
        "kms:listkeys",
        "dynamodb:listtables",
        "secretsmanager:listsecrets",
        "sqs:listqueues",
        "sns:listtopics",
        "ecr:getauthorizationtoken",
        "ssm:describeparameters",
    }
)
"""Data-service actions that only accept ``Resource: "*"`` (lower case)."""


def iam_no_wildcard_data_actions(stack: Stack) -> Iterator[Finding]:
    types = (IAM_ROLE, IAM_ROLE_POLICY, IAM_POLICY, IAM_USER_POLICY, IAM_GROUP_POLICY)
    for resource in stack.of_type(*types):
        for label, document in policy_documents(resource):
            for statement in iter_statements(document):
                if statement.get("Effect") != "Allow":
                    continue
                actions = actions_of(statement)
                resources = resources_of(statement)
                for action in actions:
                    service = service_of(action)
                    if action == "*":
                        yield resource.urn, f"{resource.name} {label}: allows every action (*)"
                    elif service in DATA_SERVICES and "*" in action.split(":", 1)[1]:
                        yield resource.urn, f"{resource.name} {label}: wildcard action {action}"
                    elif (
                        service in DATA_SERVICES
                        and "*" in resources
                        and action.lower() not in UNSCOPABLE_ACTIONS
                    ):
                        yield (
                            resource.urn,
                            f"{resource.name} {label}: {action} on Resource '*' (scope it)",
                        )


_SA_SUBJECT = re.compile(r"^system:serviceaccount:[a-z0-9-]+:[a-z0-9.-]+$")


def _web_identity_problems(statement: Mapping[str, Any]) -> list[str]:
    condition = statement.get("Condition")
    equals = get_path(condition, "StringEquals")
    if isinstance(condition, Mapping):
        for operator, values in condition.items():
            pattern = operator.startswith("StringLike") and isinstance(values, Mapping)
            if pattern and any(str(k).endswith(":sub") for k in values):
                return ["trusts service accounts by pattern (StringLike on :sub)"]
    if not isinstance(equals, Mapping):
        return ["no StringEquals condition on the OIDC :sub and :aud"]
    problems: list[str] = []
    subjects = [v for k, v in equals.items() if str(k).endswith(":sub")]
    values = [str(s) for sub in subjects for s in as_list(sub)]
    if len(values) != 1:
        problems.append(f"trusts {len(values)} service accounts, need exactly one")
    elif not _SA_SUBJECT.match(values[0]):
        problems.append(f"subject {values[0]!r} is not one service account")
    audiences = [v for k, v in equals.items() if str(k).endswith(":aud")]
    if not audiences or any(a != "sts.amazonaws.com" for sub in audiences for a in as_list(sub)):
        problems.append("audience is not pinned to sts.amazonaws.com")
    return problems


def _trusts_service_accounts(statement: Mapping[str, Any]) -> bool:
    """A web-identity trust of a cluster's OIDC provider (IRSA), not e.g. GitHub's."""
    if "sts:AssumeRoleWithWebIdentity" not in actions_of(statement):
        return False
    federated = [str(f) for f in as_list(get_path(statement, "Principal", "Federated"))]
    text = json.dumps(statement.get("Condition"), default=str)
    return any("oidc.eks" in f for f in federated) or "system:serviceaccount:" in text


def _trusts_pod_identity(role: Resource) -> bool:
    for statement in iter_statements(role.props.get("assumeRolePolicy")):
        if "pods.eks.amazonaws.com" in as_list(get_path(statement, "Principal", "Service")):
            return True
    return False


def service_roles_single_service_account(stack: Stack) -> Iterator[Finding]:
    for role in stack.of_type(IAM_ROLE):
        for statement in iter_statements(role.props.get("assumeRolePolicy")):
            if not _trusts_service_accounts(statement):
                continue
            for problem in _web_identity_problems(statement):
                yield role.urn, f"IRSA role {role.name}: {problem}"
        if not _trusts_pod_identity(role):
            continue
        physical = str(role.props.get("name") or role.name)
        bound: set[tuple[str, str]] = set()
        for association in stack.dependents(role, POD_IDENTITY_ASSOCIATION):
            bound.add(
                (
                    str(association.props.get("namespace")),
                    str(association.props.get("serviceAccount")),
                )
            )
        for addon in stack.of_type(EKS_ADDON):
            for entry in as_list(addon.props.get("podIdentityAssociations")):
                arn = str(get_path(entry, "roleArn") or "")
                if arn.endswith(f"role/{physical}"):
                    addon_name = str(addon.props.get("addonName"))
                    bound.add((f"addon:{addon_name}", str(get_path(entry, "serviceAccount"))))
        if len(bound) > 1:
            yield (
                role.urn,
                f"Pod Identity role {role.name} is bound to {len(bound)} service accounts: "
                f"{sorted(bound)}",
            )


RULES: list[Rule] = [
    define(
        "iam-no-wildcard-data-actions",
        "Identity policies allow no wildcard actions on data services and no data action on '*'.",
        severity="high",
        enforcement="mandatory",
        types=(IAM_ROLE, IAM_ROLE_POLICY, IAM_POLICY, IAM_USER_POLICY, IAM_GROUP_POLICY),
        check=iam_no_wildcard_data_actions,
    ),
    define(
        "service-role-single-service-account",
        "IRSA and Pod Identity roles are scoped to exactly one Kubernetes service account.",
        severity="high",
        enforcement="mandatory",
        types=(IAM_ROLE,),
        check=service_roles_single_service_account,
    ),
]
