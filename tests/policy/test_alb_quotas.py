"""``lb-alb-quotas``: what a plan attaches to each ALB, against AWS's per-ALB quotas (issue
29 item 9; ELB guide, "Quotas for your Application Load Balancers": 100 rules excluding
default rules, 100 target groups, 25 certificates excluding the default one)."""

from __future__ import annotations

from dataclasses import replace

from components.serving import alb_quotas
from mlstack.review.plans import policy_stack
from mlstack.synth import ResourceGraph, ResourceNode
from policy.core import run_rule
from policy.rules import RULES_BY_ID

RULE = RULES_BY_ID["lb-alb-quotas"]
LISTENER_RULE = "aws:lb/listenerRule:ListenerRule"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
CERTIFICATE = "aws:lb/listenerCertificate:ListenerCertificate"


def _usage(graph: ResourceGraph) -> dict[str, dict[str, int]]:
    return alb_quotas.alb_usage(
        alb_quotas.PlanNode(n.urn, n.type, n.name, n.dependencies, n.inputs)
        for n in graph.resources
    )


def _grown(graph: ResourceGraph, rules: int, groups: int, certificates: int) -> ResourceGraph:
    """The plan plus copies of its model rule, target group and a certificate on the HTTPS
    listener, each with the dependencies the original has (as more models would add)."""
    [rule] = [r for r in graph.by_type(LISTENER_RULE) if not r.name.endswith("-warm-rule")]
    [group] = graph.by_type(TARGET_GROUP)[:1]
    listener = graph.one("aws:lb/listener:Listener", "load-balancer-https")
    added: list[ResourceNode] = []
    for i in range(groups):
        added.append(replace(group, urn=f"{group.urn}-copy{i}", name=f"{group.name}-copy{i}"))
    for i in range(rules):
        # Two groups per copied rule (as a canary's rule forwards to two): with one rule
        # fewer than groups (each model also has a warm rule) every group is still routed.
        deps = (
            (listener.urn, added[i % len(added)].urn, added[(i + 1) % len(added)].urn)
            if added
            else rule.dependencies
        )
        added.append(replace(rule, urn=f"{rule.urn}-copy{i}", dependencies=deps))
    for i in range(certificates):
        added.append(
            replace(
                listener,
                urn=f"{listener.urn}-cert{i}",
                type=CERTIFICATE,
                name=f"cert{i}",
                dependencies=(listener.urn,),
                inputs={"listenerArn": "arn", "certificateArn": f"arn:cert{i}"},
            )
        )
    return replace(graph, resources=[*graph.resources, *added])


def test_the_dev_plan_counts_its_one_route_and_passes(dev_graph: ResourceGraph) -> None:
    # One ALB model: its rule and its warm rule (health checks from the start, no traffic).
    assert _usage(dev_graph) == {
        "load-balancer-alb": {"rules": 2, "targetGroups": 1, "certificates": 0}
    }
    assert run_rule(RULE, policy_stack(dev_graph)).status == "pass"


def test_a_plan_past_any_per_alb_quota_is_refused(dev_graph: ResourceGraph) -> None:
    at_limit = _grown(dev_graph, rules=98, groups=99, certificates=25)  # + its 2 rules
    assert _usage(at_limit)["load-balancer-alb"] == {
        "rules": 100,
        "targetGroups": 100,
        "certificates": 25,
    }
    assert run_rule(RULE, policy_stack(at_limit)).status == "pass"
    over = _grown(dev_graph, rules=99, groups=100, certificates=26)
    result = run_rule(RULE, policy_stack(over))
    assert result.status == "fail" and result.blocking
    messages = [v.message for v in result.violations]
    assert len(messages) == 3
    assert "101 rules" in messages[0] and "L-7EED9B64" in messages[0]
    assert "101 targetGroups" in messages[1] and "not adjustable" in messages[1]
    assert "26 certificates" in messages[2] and "L-9365A611" in messages[2]
