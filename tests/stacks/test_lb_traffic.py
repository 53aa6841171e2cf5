"""Issue 29, traffic: NLB + blue/green refused, SNI certificates named by ARN, listener
rules that wait for their tracks, rule priorities that never move within one update, and
a preview rule that only the private network reaches."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.config import ConfigError, Problem, parse_config
from tests.conftest import SynthEdited, raw_stack_config, set_path

ROOM = {"gpuPools[0].modelCache": {"sizeGib": 130}}
"""Room for two Deployments of the LLM (canary, blue/green): prod's 4-GPU nodes hold them
already (its auto repair rule keeps maxNodes at 5 or less), dev needs more nodes."""


def room(stack: str) -> dict[str, Any]:
    return {**ROOM, "gpuPools[0].maxNodes": 8} if stack == "dev" else dict(ROOM)


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
            **room(stack),
            "models[1].rollout": {"strategy": "blueGreen", "blueGreen": {"activeColor": "blue"}},
        },
    )
    (problem,) = [p for p in found if p.path == "mlstack:models[1].rollout.strategy"]
    assert problem.value == "blueGreen"
    assert "unused" in problem.message and "readiness gate" in problem.message
    assert "allowed: rolling with exposure.type nlb" in problem.message
    assert problem.render().endswith('(got "blueGreen")')


# --------------------------------------------------------------------------- item 7

RULE = "aws:lb/listenerRule:ListenerRule"
LLM = "llama-3-8b-instruct"


def _blue_green(active: str = "blue", stack: str = "dev", **extra: Any) -> dict[str, Any]:
    return {
        **room(stack),
        "models[0].rollout": {
            "strategy": "blueGreen",
            "blueGreen": {
                "activeColor": active,
                "green": {"artifactVersion": "2025-07-01"},
                **extra,
            },
        },
    }


def _condition(rule: Any, key: str) -> Any:
    found = [c[key] for c in rule.inputs["conditions"] if key in c]
    return found[0] if found else None


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_preview_rule_only_accepts_the_vpc_by_default(
    synth_edited: SynthEdited, stack: str
) -> None:
    """The rendered preview rule carries a source-ip condition: the VPC's CIDR unless
    configured, whatever the scheme; the main rule has none."""
    raw = raw_stack_config(stack)
    graph = synth_edited(stack, _blue_green(stack=stack))
    preview = graph.one(RULE, f"model-{LLM}-preview-rule")
    assert _condition(preview, "sourceIp") == {"values": [raw["network"]["cidr"]]}
    assert _condition(preview, "httpHeader") == {
        "httpHeaderName": "x-mlstack-preview",
        "values": ["true"],
    }
    assert _condition(graph.one(RULE, f"model-{LLM}-rule"), "sourceIp") is None


def test_the_preview_rule_takes_the_configured_cidrs_on_an_internet_facing_alb(
    synth_edited: SynthEdited,
) -> None:
    graph = synth_edited(
        "dev",
        {
            **_blue_green(previewSourceCidrs=["192.0.2.0/24"]),
            "serving.loadBalancer.scheme": "internet-facing",
            "serving.loadBalancer.inboundCidrs": ["0.0.0.0/0"],
        },
    )
    preview = graph.one(RULE, f"model-{LLM}-preview-rule")
    assert _condition(preview, "sourceIp") == {"values": ["192.0.2.0/24"]}


@pytest.mark.parametrize(
    ("cidrs", "words"),
    [
        (["0.0.0.0/0"], "opens the un-promoted color to every address"),
        (["10.0.0.1/8"], "is not a CIDR"),
        (["10.0.0.0/8", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"], "allowed: at most 3"),
    ],
)
def test_bad_preview_source_cidrs_are_refused(cidrs: list[str], words: str) -> None:
    found = _problems("dev", _blue_green(previewSourceCidrs=cidrs))
    (problem,) = [p for p in found if "previewSourceCidrs" in p.path]
    assert problem.path == "mlstack:models[0].rollout.blueGreen.previewSourceCidrs"
    assert words in problem.message
