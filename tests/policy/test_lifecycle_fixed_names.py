"""``lifecycle-fixed-name-replace`` refuses a delete-first replacement whose delete cannot
succeed (issue 27 item 10): an ECR repository without ``forceDelete`` (its delete fails
once it holds an image), and a retained fixed name (the engine keeps the original, so
the replacement's create collides with it). Protected resources are exempt: the engine
refuses to replace them before any step."""

from __future__ import annotations

from typing import Any

import pytest

from mlstack.review.plans import policy_stack
from mlstack.synth import ResourceGraph, ResourceNode
from policy.core import run_rule
from policy.rules import RULES_BY_ID
from tests.policy.graphs import graph, node

RULE = RULES_BY_ID["lifecycle-fixed-name-replace"]
REPOSITORY = "aws:ecr/repository:Repository"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


def _outcome(*nodes: ResourceNode):
    return run_rule(RULE, policy_stack(graph(*nodes)))


def _repository(inputs: dict[str, Any], **options: Any) -> ResourceNode:
    return node(
        REPOSITORY,
        "loader",
        {"name": "mlstack-dev-model-loader", **inputs},
        delete_before_replace=True,
        **options,
    )


def test_a_repository_replaced_delete_first_without_force_delete_is_refused() -> None:
    outcome = _outcome(_repository({"forceDelete": False}))
    assert outcome.status == "fail"
    (violation,) = outcome.violations
    assert "RepositoryNotEmptyException" in violation.message
    assert "forceDelete" in violation.message


def test_a_repository_that_force_deletes_may_replace_delete_first() -> None:
    assert _outcome(_repository({"forceDelete": True})).status == "pass"


def test_a_protected_repository_is_left_to_the_engines_refusal() -> None:
    assert _outcome(_repository({"forceDelete": False}, protect=True)).status == "pass"


def test_a_retained_fixed_name_replaced_delete_first_is_refused() -> None:
    group = node(
        LOG_GROUP,
        "logs",
        {"name": "/aws/eks/c/cluster"},
        delete_before_replace=True,
        retain_on_delete=True,
    )
    outcome = _outcome(group)
    assert outcome.status == "fail"
    assert "retained (retainOnDelete)" in outcome.violations[0].message


def test_a_retained_auto_named_resource_is_not_a_fixed_name() -> None:
    group = node(LOG_GROUP, "logs", {}, retain_on_delete=True)
    assert _outcome(group).status == "pass"


def test_a_name_that_every_replacement_changes_never_collides() -> None:
    """A dashboard is replaced only when its name changes: no deleteBeforeReplace needed."""
    dashboard = node("aws:cloudwatch/dashboard:Dashboard", "d", {"dashboardName": "x"})
    assert _outcome(dashboard).status == "pass"


def test_a_fixed_prefix_pull_through_rule_needs_delete_first() -> None:
    rule = node(
        "aws:ecr/pullThroughCacheRule:PullThroughCacheRule",
        "cache",
        {"ecrRepositoryPrefix": "mlstack-dev-docker-hub"},
    )
    outcome = _outcome(rule)
    assert outcome.status == "fail"
    assert "upstreamRegistryUrl" in outcome.violations[0].message


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_real_plans_replace_fixed_names_only_where_the_delete_succeeds(
    stack: str, dev_graph: ResourceGraph, prod_graph: ResourceGraph
) -> None:
    """Today's dev plan failed (loader repository without forceDelete), and prod's
    control-plane log group was retained but not protected."""
    plan = dev_graph if stack == "dev" else prod_graph
    outcome = run_rule(RULE, policy_stack(plan))
    assert outcome.status == "pass", [v.message for v in outcome.violations]
    logs = next(n for n in plan.resources if n.name == "cluster-control-plane-logs")
    assert logs.delete_before_replace
    assert logs.protect == logs.retain_on_delete


def test_dev_with_force_delete_off_is_refused(synth_edited: Any) -> None:
    plan = synth_edited("dev", {"serving.loaderRepository.forceDelete": False})
    outcome = run_rule(RULE, policy_stack(plan))
    assert outcome.status == "fail"
    assert any("model-loader-repository" in v.message for v in outcome.violations)
