"""Issue 29, traffic: NLB + blue/green refused, SNI certificates named by ARN, listener
rules that wait for their tracks, rule priorities that never move within one update, and
a preview rule that only the private network reaches."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.config import ConfigError, Problem, parse_config
from tests.conftest import raw_stack_config, set_path

ROOM = {"gpuPools[0].maxNodes": 8, "gpuPools[0].modelCache": {"sizeGib": 130}}


def _problems(stack: str, edits: dict[str, Any]) -> list[Problem]:
    raw = raw_stack_config(stack)
    for dotted, value in edits.items():
        set_path(raw, dotted, value)
    with pytest.raises(ConfigError) as info:
        parse_config(raw, f"Pulumi.{stack}.yaml")
    return info.value.problems


# --------------------------------------------------------------------------- item 1


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_nlb_blue_green_is_refused_naming_the_key_and_what_is_allowed(stack: str) -> None:
    """An NLB listener forwards to one target group: the idle color's groups would sit
    behind no listener, AWS reports their targets ``unused`` and the controller sets the
    readiness gate only when the target is ``healthy``
    (kubernetes-sigs/aws-load-balancer-controller v3.5.0,
    pkg/targetgroupbinding/resource_manager.go, ``calculateReadinessGateTransition``:
    ConditionTrue only for TargetHealthStateEnumHealthy), so the idle pods never get
    Ready. The config is refused before anything is registered."""
    found = _problems(
        stack,
        {
            **ROOM,
            "models[1].rollout": {"strategy": "blueGreen", "blueGreen": {"activeColor": "blue"}},
        },
    )
    (problem,) = [p for p in found if p.path == "mlstack:models[1].rollout.strategy"]
    assert problem.value == "blueGreen"
    assert "unused" in problem.message and "readiness gate" in problem.message
    assert "allowed: rolling with exposure.type nlb" in problem.message
    assert problem.render().endswith('(got "blueGreen")')
