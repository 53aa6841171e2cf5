"""``bake-covers-alarm-time``: the bake lasts at least as long as the slowest gating alarm
of the rendered plan takes to reach ALARM, plus a minute."""

from __future__ import annotations

from typing import Any

from mlstack.review.plans import policy_stack
from policy.core import Stack, run_rule
from policy.rules.delivery import RULES
from tests.conftest import raw_stack_config

RULE = next(r for r in RULES if r.id == "bake-covers-alarm-time")


def _stack(graph: Any, minutes: int | None) -> Stack:
    data = raw_stack_config("dev")
    raw = {"config": {f"mlstack:{k}": v for k, v in data.items()}}
    delivery = dict(raw["config"].get("mlstack:delivery") or {})
    delivery.pop("bakeMinutes", None)
    if minutes is not None:
        delivery["bakeMinutes"] = minutes
    raw["config"]["mlstack:delivery"] = delivery
    resources = policy_stack(graph).resources
    return Stack(resources, "dev", stack_file=raw, stack_file_path="Pulumi.dev.yaml")


def test_a_bake_shorter_than_the_slowest_gating_alarm_is_refused_with_the_numbers(
    dev_graph: Any,
) -> None:
    """Dev's gating 5XX alarms: 3 one-minute datapoints + 120 s ELB metric delay = 300 s;
    a 5-minute bake ends before such an alarm can fire."""
    result = run_rule(RULE, _stack(dev_graph, 5))
    [violation] = result.violations
    assert violation.message.startswith("Pulumi.dev.yaml: mlstack:delivery.bakeMinutes = 5; ")
    assert "reaches ALARM 3 x 60s + 120s load balancer metric delay = 300s" in violation.message
    assert violation.message.endswith("allowed: at least 6 (300s + 60s, in whole minutes)")


def test_a_bake_covering_the_slowest_gating_alarm_passes_and_the_stack_files_comply(
    dev_graph: Any,
) -> None:
    assert run_rule(RULE, _stack(dev_graph, 6)).violations == ()
    assert run_rule(RULE, _stack(dev_graph, None)).violations == ()  # the default, 10
    committed = Stack(policy_stack(dev_graph).resources, "dev")
    assert run_rule(RULE, committed).violations == ()  # Pulumi.dev.yaml as committed
