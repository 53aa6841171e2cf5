"""Issue 29, traffic: NLB + blue/green refused, SNI certificates named by ARN, listener
rules that wait for their tracks, rule priorities that never move within one update, and
a preview rule that only the private network reaches."""

from __future__ import annotations

from typing import Any

import pytest

from mlstack.synth import ResourceGraph, ResourceNode, mock_outputs
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


# --------------------------------------------------------------------------- item 3

TG = "aws:lb/targetGroup:TargetGroup"
TGB = "kubernetes:elbv2.k8s.aws/v1beta1:TargetGroupBinding"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
LISTENER = "aws:lb/listener:Listener"


def _canary(stable: int, canary: int, stack: str = "dev") -> dict[str, Any]:
    return {
        **room(stack),
        "models[0].rollout": {
            "strategy": "canary",
            "canary": {
                "artifactVersion": "2025-07-01",
                "stableWeight": stable,
                "canaryWeight": canary,
            },
        },
    }


STRATEGIES: dict[str, Any] = {
    "rolling": lambda stack: {},
    "canary-95-5": lambda stack: _canary(95, 5, stack),
    "canary-100-0": lambda stack: _canary(100, 0, stack),
    "canary-50-50": lambda stack: _canary(50, 50, stack),
    "blueGreen-blue": lambda stack: _blue_green("blue", stack),
    "blueGreen-green": lambda stack: _blue_green("green", stack),
}
"""Every state a strategy switch lands in: rolling -> canary (95/5), a ramp, an abort
(100/0), back to rolling, rolling <-> blue/green and the color switch. A rule's
dependencies are those of the state it is declared in, so covering every state covers
every switch, in both directions."""


def _arn(graph: ResourceGraph, node: ResourceNode) -> str:
    return mock_outputs(node.type, node.name, dict(node.inputs), graph.region)["arn"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
@pytest.mark.parametrize("state", sorted(STRATEGIES))
def test_every_rule_waits_for_the_deployment_and_binding_of_each_group_it_sends_traffic_to(
    synth_edited: SynthEdited, stack: str, state: str
) -> None:
    """pulumi-kubernetes finishes a Deployment's create/update only once the rollout is
    available (pulumi/pulumi-kubernetes provider/pkg/await/deployment.go,
    ``deploymentInitAwaiter.Await``/``checkAndLogStatus``: Available condition and the new
    ReplicaSet ready), and the Python SDK registers a resource only after the URN of each
    ``depends_on`` resource resolved, i.e. after its step completed
    (pulumi/runtime/rpc.py ``_add_dependency``). So a rule that depends on a track's
    Deployment and TargetGroupBinding routes no request to it before its pods serve."""
    graph = synth_edited(stack, STRATEGIES[state](stack))
    groups = {_arn(graph, g): g for g in graph.by_type(TG)}
    bindings = {b.inputs["spec"]["targetGroupARN"]: b for b in graph.by_type(TGB)}
    deployments = {
        (d.inputs["metadata"]["namespace"], d.inputs["metadata"]["name"]): d
        for d in graph.by_type(DEPLOYMENT)
    }
    https = graph.one(LISTENER, "load-balancer-https")
    rules = [r for r in graph.by_type(RULE) if r.inputs["listenerArn"] == _arn(graph, https)]
    assert {r.name for r in rules} >= {f"model-{LLM}-rule"}
    checked = 0
    for rule in rules:
        for action in rule.inputs["actions"]:
            for target in action["forward"]["targetGroups"]:
                group = groups[target["arn"]]
                assert group.urn in rule.dependencies
                if target["weight"] == 0:
                    continue
                binding = bindings[target["arn"]]
                spec = binding.inputs["spec"]
                deployment = deployments[
                    (binding.inputs["metadata"]["namespace"], spec["serviceRef"]["name"])
                ]
                assert binding.urn in rule.dependencies, (rule.name, binding.name)
                assert deployment.urn in rule.dependencies, (rule.name, deployment.name)
                checked += 1
    assert checked >= (2 if state in ("canary-95-5", "canary-50-50") else 1)
    if state.startswith("blueGreen"):
        assert checked == 2  # main to the active color, preview to the idle one


@pytest.mark.parametrize("state", sorted(STRATEGIES))
def test_every_group_is_health_checked_from_the_start_by_a_rule_no_request_matches(
    synth_edited: SynthEdited, state: str
) -> None:
    """ELB health-checks only target groups a listener rule names, and the controller
    passes a pod's readiness gate only on ``healthy`` (kubernetes-sigs/aws-load-balancer-
    controller v3.5.0 pkg/targetgroupbinding/resource_manager.go,
    ``calculateReadinessGateTransition``). A rule that waits for the Deployment could
    otherwise wait forever for pods that wait for it: the warm rule on the HTTP listener
    names every group of the model, waits for no Deployment, and matches nothing."""
    from components.serving.load_balancer import WARM_SOURCE_CIDR

    graph = synth_edited("dev", STRATEGIES[state]("dev"))
    warm = graph.one(RULE, f"model-{LLM}-warm-rule")
    http = graph.one(LISTENER, "load-balancer-http")
    assert warm.inputs["listenerArn"] == _arn(graph, http)
    assert warm.inputs["conditions"] == [{"sourceIp": {"values": [WARM_SOURCE_CIDR]}}]
    assert warm.inputs["priority"] == graph.one(RULE, f"model-{LLM}-rule").inputs["priority"]
    model_groups = [g for g in graph.by_type(TG) if g.inputs["tags"].get("mlstack:model") == LLM]
    (action,) = warm.inputs["actions"]
    assert sorted(t["arn"] for t in action["forward"]["targetGroups"]) == sorted(
        _arn(graph, g) for g in model_groups
    )
    deployment_urns = {d.urn for d in graph.by_type(DEPLOYMENT)}
    binding_urns = {b.urn for b in graph.by_type(TGB)}
    assert not set(warm.dependencies) & (deployment_urns | binding_urns)
