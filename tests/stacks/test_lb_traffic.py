"""Issue 29, traffic: NLB + blue/green refused, SNI certificates named by ARN, listener
rules that wait for their tracks, rule priorities that never move within one update, and
a preview rule that only the private network reaches."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from components.serving.rollout import derived_rule_slot
from mlstack.delivery.rollback_safety import check_rollback
from mlstack.plan import plan_json
from mlstack.review.diff import diff_graphs, render_text
from mlstack.review.traffic_hazards import check_traffic
from mlstack.synth import ResourceGraph, ResourceNode, mock_outputs, synth_config
from stacks.config import ConfigError, Problem, parse_config
from tests.conftest import SynthEdited, graph_for, raw_stack_config, set_path

DEPLOYMENT_TYPE = "kubernetes:apps/v1:Deployment"

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
        (["0.0.0.0/0"], "opens the un-promoted color to the internet"),
        # Review finding: judged on the union, as every "too open" check is.
        (["0.0.0.0/1", "128.0.0.0/1"], "opens the un-promoted color to the internet"),
        (["10.0.0.1/8"], "is not a CIDR"),
        (
            ["10.1.0.0/16", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"],
            "allowed: at most 3",
        ),
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
    from components.serving.rollout import WARM_SOURCE_CIDR

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


# --------------------------------------------------------------------------- item 2

CERTIFICATE = "aws:lb/listenerCertificate:ListenerCertificate"


def _cert(n: int) -> str:
    return f"arn:aws:acm:us-west-2:123456789012:certificate/{n:08d}-0000-4000-8000-000000000000"


def _with_certified_models(names: list[str]) -> dict[str, Any]:
    """Dev with one extra ALB model per name, each with its own certificate (ARN sorted
    as the names), beside the LLM."""
    raw = raw_stack_config("dev")
    raw["gpuPools"][0]["maxNodes"] = 12
    extras = []
    for name in names:
        extra = dict(raw["models"][0])
        extra["name"] = name
        extra["exposure"] = {
            "type": "alb",
            "host": f"{name}.ml.example.com",
            "certificateArn": _cert(int(name.rsplit("-", 1)[1])),
        }
        extras.append(extra)
    raw["models"] = [*extras, *raw["models"]]
    return raw


def _plan_of(raw: dict[str, Any]) -> dict[str, Any]:
    graph = synth_config(parse_config(raw, "Pulumi.dev.yaml"), "dev")
    return json.loads(plan_json(graph))


def _certificates(plan: dict[str, Any]) -> dict[str, str]:
    return {
        r["name"]: r["inputs"]["certificateArn"]
        for r in plan["resources"]
        if r["type"] == CERTIFICATE
    }


def test_adding_a_model_with_a_certificate_is_one_certificate_create_and_nothing_removed() -> None:
    """By sorted position, the new ARN (sorting first) shifted every index: the diff
    replaced each certificate resource, and each replaced one's delete called
    RemoveListenerCertificates on an ARN still in use (hashicorp/terraform-provider-aws
    internal/service/elbv2/listener_certificate.go, ``resourceListenerCertificateDelete``;
    certificate_arn is ForceNew). Named by ARN, an add is one create."""
    base = _plan_of(_with_certified_models(["model-20", "model-30"]))
    head = _plan_of(_with_certified_models(["model-10", "model-20", "model-30"]))
    diff = diff_graphs(base, head)
    certificates = [c for c in diff.changes if c.type == CERTIFICATE]
    assert [(c.action, c.inputs["certificateArn"]) for c in certificates] == [("create", _cert(10))]
    assert diff.hazards == []
    assert not [
        (c.type, c.name)
        for c in diff.changes
        if c.action in ("replace", "delete") and c.type != "kubernetes:core/v1:ConfigMap"
    ]
    # And removing it again is one delete, of its own ARN only.
    back = [c for c in diff_graphs(head, base).changes if c.type == CERTIFICATE]
    assert [(c.action, c.inputs["certificateArn"]) for c in back] == [("delete", _cert(10))]


def _as_named_by_position(plan: dict[str, Any]) -> dict[str, Any]:
    """The same plan as the code before this change synthesized it: certificates named
    ``-certificate-<sorted position>``, same inputs, no aliases."""
    old = copy.deepcopy(plan)
    certificates = sorted(
        (r for r in old["resources"] if r["type"] == CERTIFICATE),
        key=lambda r: r["inputs"]["certificateArn"],
    )
    for index, resource in enumerate(certificates):
        name = f"load-balancer-https-certificate-{index}"
        resource["urn"] = f"{resource['urn'].rsplit('::', 1)[0]}::{name}"
        resource["name"] = name
        resource.pop("aliases", None)
    return old


def test_the_first_update_renames_each_certificate_in_place_through_its_alias() -> None:
    """The engine matches old state by URN, then by aliases (pulumi/pulumi
    pkg/resource/deploy/step_generator.go, ``getOldResource``): each ARN-named
    certificate takes over the state of its position-named self, nothing is created,
    deleted or replaced, and no certificate leaves the listener."""
    head = _plan_of(_with_certified_models(["model-20", "model-30"]))
    names = _certificates(head)
    assert len(names) == 2
    for resource in (r for r in head["resources"] if r["type"] == CERTIFICATE):
        (alias,) = resource["aliases"]
        assert alias.rsplit("::", 1)[1].startswith("load-balancer-https-certificate-")
    before = _as_named_by_position(head)
    diff = diff_graphs(before, head)
    assert [c for c in diff.changes if c.type == CERTIFICATE] == []
    assert diff.hazards == []
    assert check_rollback(before, head) == []


def test_a_first_update_that_also_adds_a_certificate_is_refused() -> None:
    """The position alias of the new first ARN points at the old first one: the engine
    would replace it, and that delete removes a certificate still in use. The diff, the
    review and the rollback refuse it and say to change the certificates separately."""
    before = _as_named_by_position(_plan_of(_with_certified_models(["model-20", "model-30"])))
    head = _plan_of(_with_certified_models(["model-10", "model-20", "model-30"]))
    diff = diff_graphs(before, head)
    assert diff.hazards and all("listener-certificate-in-use" in h for h in diff.hazards)
    assert "RemoveListenerCertificates" in diff.hazards[0]
    kinds = {f.kind for f in check_rollback(before, head)}
    assert "listener-certificate-in-use" in kinds
    assert "refused: listener-certificate-in-use" in render_text([diff], color=False)


# --------------------------------------------------------------------------- item 6


def _renamed_llm(priority: int | None) -> dict[str, Any]:
    raw = raw_stack_config("dev")
    raw["models"][0]["name"] = "llama-3-8b-chat"
    if priority is not None:
        raw["models"][0]["exposure"]["priority"] = priority
    return raw


def test_a_renamed_model_keeping_its_priority_is_refused_in_one_update() -> None:
    """ELB rule priorities are unique per listener; the renamed model's rule is a new
    resource whose CreateRule runs while the old rule (deleted last) holds the
    priority: PriorityInUse. Refused with the two-update recipe."""
    slot = derived_rule_slot(LLM)
    base = _plan_of(raw_stack_config("dev"))
    head = _plan_of(_renamed_llm(slot))
    diff = diff_graphs(base, head)
    moved = sorted(h for h in diff.hazards if h.startswith("rule-priority-moved"))
    # The main rule (HTTPS listener) and the warm rule (HTTP listener), same priority.
    assert len(moved) == 2
    assert f"priority {2 * slot} moves from model-{LLM}-rule to" in moved[0]
    assert f"priority {2 * slot} moves from model-{LLM}-warm-rule to" in moved[1]
    assert all("two updates" in m for m in moved)
    assert [f.kind for f in check_rollback(base, head)].count("rule-priority-moved") == 2
    # The same in two updates is accepted: first the model goes (or takes another slot),
    # then the new name takes the freed priority.
    without = raw_stack_config("dev")
    without["models"] = without["models"][1:]
    middle = _plan_of(without)
    assert diff_graphs(base, middle).hazards == []
    assert diff_graphs(middle, head).hazards == []
    # A rename that lets the priority derive from the new name moves nothing.
    assert diff_graphs(base, _plan_of(_renamed_llm(None))).hazards == []


def test_a_priority_moving_between_rules_in_place_is_refused_too() -> None:
    """Two kept rules swapping or passing on a priority: ModifyRule of the taker may run
    before the giver's, so it is refused the same way."""
    base = copy.deepcopy(_plan_of(raw_stack_config("dev")))
    rules = [r for r in base["resources"] if r["type"] == RULE and r["name"].endswith("-rule")]
    main = next(r for r in rules if r["name"] == f"model-{LLM}-rule")
    head = copy.deepcopy(base)
    other = copy.deepcopy(main)
    other["urn"] = main["urn"].replace(f"model-{LLM}-rule", "model-other-rule")
    other["name"] = "model-other-rule"
    other["inputs"]["priority"] = 7
    base["resources"].append(other)
    taker = next(r for r in head["resources"] if r["urn"] == main["urn"])
    moved = copy.deepcopy(other)
    moved["inputs"]["priority"] = main["inputs"]["priority"]
    taker["inputs"]["priority"] = 9
    head["resources"].append(moved)
    kinds = [h.kind for h in check_traffic(base, head)]
    assert kinds == ["rule-priority-moved"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_track_deployment_waits_for_its_target_group_binding(stack: str) -> None:
    """Review finding: the controller injects a pod's readiness gate only at pod creation
    and only when a binding for its Service exists (aws-load-balancer-controller v3.5.0
    ``pkg/inject/pod_readiness/pod_readiness_gate.go``); a Deployment created before its
    binding runs gate-less pods that are Ready before their targets are healthy."""
    graph = graph_for(stack)
    bindings = [
        b for b in graph.resources if b.type.endswith("elbv2.k8s.aws/v1beta1:TargetGroupBinding")
    ]
    assert bindings
    deployments = {d.inputs["metadata"]["name"]: d for d in graph.by_type(DEPLOYMENT_TYPE)}
    for binding in bindings:
        service = binding.inputs["spec"]["serviceRef"]["name"]
        assert binding.urn in deployments[service].dependencies, (binding.name, service)
