"""The load balancers as Pulumi resources in the real stacks: per model target groups,
listener rules, TargetGroupBindings and alarms; in-place rule updates in the diff;
stable priorities; the log bucket; destroy order; endpoints; cost."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from components.serving.rollout import derived_rule_slot
from components.storage.lb_log_bucket import ELB_ACCOUNTS, ELB_LOG_DELIVERY_SERVICE
from mlstack.custom_resources import SchemaStore
from mlstack.plan import plan_json
from mlstack.review.cost import estimate
from mlstack.review.diff import diff_graphs
from mlstack.synth import ResourceGraph, ResourceNode, mock_outputs, synth_config
from stacks.config import ConfigError, parse_config
from tests.conftest import SynthEdited, raw_stack_config

TG = "aws:lb/targetGroup:TargetGroup"
RULE = "aws:lb/listenerRule:ListenerRule"
LB = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
TGB = "kubernetes:elbv2.k8s.aws/v1beta1:TargetGroupBinding"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
RELEASE = "kubernetes:helm.sh/v3:Release"
BUCKET = "aws:s3/bucket:Bucket"
CANARY = "llama-3-8b-instruct"


def _plan(graph: ResourceGraph) -> dict[str, Any]:
    return json.loads(plan_json(graph))


def _component_children(graph: ResourceGraph, component: str, type_: str) -> list[ResourceNode]:
    (comp,) = [r for r in graph.resources if r.name == component and not r.custom]
    return [r for r in graph.by_type(type_) if graph.component_of(r) == comp]


def _alarmed_suffixes(graph: ResourceGraph) -> set[str]:
    found: set[str] = set()
    for alarm in graph.by_type(ALARM):
        dims = alarm.inputs.get("dimensions")
        if dims is None:
            dims = next(
                q["metric"]["dimensions"] for q in alarm.inputs["metricQueries"] if "metric" in q
            )
        if "TargetGroup" in dims:
            found.add(dims["TargetGroup"])
    return found


def _suffix(graph: ResourceGraph, node: ResourceNode) -> str:
    return mock_outputs(node.type, node.name, dict(node.inputs), graph_region(graph))["arnSuffix"]


def graph_region(graph: ResourceGraph) -> str:
    return graph.region


# --------------------------------------------------------------------------- shape


def test_every_model_has_target_groups_rules_bindings_and_alarms(any_graph: ResourceGraph) -> None:
    alarmed = _alarmed_suffixes(any_graph)
    for model, exposure in (("llama-3-8b-instruct", "alb"), ("resnet50", "nlb")):
        component = f"model-{model}"
        groups = _component_children(any_graph, component, TG)
        bindings = _component_children(any_graph, component, TGB)
        assert groups, model
        assert len(bindings) == len(groups)
        for group in groups:
            assert _suffix(any_graph, group) in alarmed, group.name
        rules = _component_children(any_graph, component, RULE)
        if exposure == "alb":
            assert [r.name for r in rules] == [f"{component}-rule", f"{component}-warm-rule"]
        else:
            assert rules == []
            assert len(_component_children(any_graph, component, LB)) == 1


def test_no_ingress_ingress_class_params_or_load_balancer_service_remains(
    any_graph: ResourceGraph,
) -> None:
    assert not any_graph.by_type("kubernetes:networking.k8s.io/v1:Ingress")
    assert not any_graph.by_type("kubernetes:networking.k8s.io/v1:IngressClass")
    assert not any_graph.by_type("kubernetes:elbv2.k8s.aws/v1beta1:IngressClassParams")
    services = any_graph.by_type("kubernetes:core/v1:Service")
    assert not [s for s in services if s.inputs["spec"].get("type") == "LoadBalancer"]


def test_every_binding_validates_strictly_against_the_upstream_crd(
    any_graph: ResourceGraph, crd_schemas: SchemaStore
) -> None:
    validate = crd_schemas.validator(("elbv2.k8s.aws/v1beta1", "TargetGroupBinding"))
    bindings = any_graph.by_type(TGB)
    assert bindings
    manifests = [
        {k: b.inputs[k] for k in ("apiVersion", "kind", "metadata", "spec")} for b in bindings
    ]
    for binding, manifest in zip(bindings, manifests, strict=True):
        assert validate(manifest) == [], binding.name
    # The validator is strict: an unknown field is an error, not silently pruned.
    bad = copy.deepcopy(manifests[0])
    bad["spec"]["targetGroupArn"] = "typo"
    assert validate(bad)


def test_bindings_are_destroyed_before_the_controller_and_target_groups_after(
    any_graph: ResourceGraph,
) -> None:
    release = any_graph.one(RELEASE, "load-balancer-release")
    groups = {g.urn for g in any_graph.by_type(TG)}
    for binding in any_graph.by_type(TGB):
        # Depending on X: created after X, destroyed before X.
        assert release.urn in binding.dependencies
        assert groups & set(binding.dependencies), binding.name
    for rule in any_graph.by_type(RULE):
        assert groups & set(rule.dependencies)


def test_the_alb_and_nlbs_wait_for_the_log_bucket_policy(any_graph: ResourceGraph) -> None:
    policy = any_graph.one("aws:s3/bucketPolicy:BucketPolicy", "lb-logs-policy")
    for balancer in any_graph.by_type(LB):
        assert policy.urn in balancer.dependencies, balancer.name
        assert balancer.inputs["accessLogs"]["enabled"] is True


# --------------------------------------------------------------------------- rollouts


ROOM = {
    "gpuPools[0].maxNodes": 8,
    "gpuPools[0].modelCache": {"sizeGib": 130},
    # 8 nodes: Karpenter may repair 2 at once, more than prod's PDBs allow; these tests are
    # about traffic, so repair is off here (with the reason prod asks for).
    "gpuPools[0].autoRepair": {"enabled": False, "disabledReason": "traffic tests"},
}
"""Dev's pool has room for one Deployment per model; a canary or blue/green runs two. On
prod's 4-GPU nodes the node cache may hold the canaried LLM's three versions (3 x 40 GiB)
and the classifier's."""
CANARY_10 = {
    **ROOM,
    "models[0].rollout": {
        "strategy": "canary",
        "canary": {"artifactVersion": "2025-07-01", "stableWeight": 90, "canaryWeight": 10},
    },
}
CANARY_50 = {
    **ROOM,
    "models[0].rollout": {
        "strategy": "canary",
        "canary": {"artifactVersion": "2025-07-01", "stableWeight": 50, "canaryWeight": 50},
    },
}


def _weights(graph: ResourceGraph, rule: str) -> list[int]:
    (action,) = graph.one(RULE, rule).inputs["actions"]
    return [t["weight"] for t in action["forward"]["targetGroups"]]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_canary_10_to_50_changes_exactly_one_listener_rule_in_place(
    synth_edited: SynthEdited, stack: str
) -> None:
    ten, fifty = synth_edited(stack, CANARY_10), synth_edited(stack, CANARY_50)
    assert _weights(ten, f"model-{CANARY}-rule") == [90, 10]
    diff = diff_graphs(_plan(ten), _plan(fifty))
    (change,) = diff.changes
    assert (change.type, change.name, change.action) == (RULE, f"model-{CANARY}-rule", "update")
    assert {c.path for c in change.changes} == {
        "actions[0].forward.targetGroups[0].weight",
        "actions[0].forward.targetGroups[1].weight",
    }
    assert not any(c.replaces for c in change.changes)
    # Rolling back to the older weight is the same rule updated back, in place.
    (back,) = diff_graphs(_plan(fifty), _plan(ten)).changes
    assert (back.name, back.action) == (f"model-{CANARY}-rule", "update")


def _blue_green(active: str) -> dict[str, Any]:
    return {
        **ROOM,
        "models[0].rollout": {
            "strategy": "blueGreen",
            "blueGreen": {"activeColor": active, "green": {"artifactVersion": "2025-07-01"}},
        },
    }


def _targets(graph: ResourceGraph, rule: str) -> list[str]:
    names = {
        mock_outputs(TG, g.name, dict(g.inputs), graph_region(graph))["arn"]: g.name
        for g in graph.by_type(TG)
    }
    (action,) = graph.one(RULE, rule).inputs["actions"]
    return [names[t["arn"]] for t in action["forward"]["targetGroups"]]


def test_blue_green_switch_moves_the_main_rule_and_the_preview_rule_follows(
    synth_edited: SynthEdited,
) -> None:
    blue, green = (
        synth_edited("dev", _blue_green("blue")),
        synth_edited("dev", _blue_green("green")),
    )
    main, preview = f"model-{CANARY}-rule", f"model-{CANARY}-preview-rule"
    assert _targets(blue, main) == [f"model-{CANARY}-blue-tg"]
    assert _targets(blue, preview) == [f"model-{CANARY}-green-tg"]
    assert _targets(green, main) == [f"model-{CANARY}-green-tg"]
    assert _targets(green, preview) == [f"model-{CANARY}-blue-tg"]
    diff = diff_graphs(_plan(blue), _plan(green))
    rules = [c for c in diff.changes if c.type == RULE]
    assert sorted((c.name, c.action) for c in rules) == sorted(
        [(main, "update"), (preview, "update")]
    )
    # Nothing is replaced by a switch (the in-cluster Service just selects the other color)
    # but the dashboards' ConfigMap: pulumi-kubernetes replaces a ConfigMap whose data
    # changes (enableConfigMapMutable off; provider/pkg/provider/diff.go, forceNewProperties).
    assert not [
        c
        for c in diff.changes
        if c.action in ("replace", "delete", "create") and c.type != "kubernetes:core/v1:ConfigMap"
    ]


def _with_extra_model(stack: str, name: str, first: bool) -> dict[str, Any]:
    raw = raw_stack_config(stack)
    extra = copy.deepcopy(raw["models"][0])
    extra["name"] = name
    extra["exposure"] = {"type": "alb", "host": f"{name}.ml.example.com"}
    raw["models"] = [extra, *raw["models"]] if first else [*raw["models"], extra]
    raw["gpuPools"][0]["maxNodes"] = 8  # room for the extra model's Deployment
    return raw


@pytest.mark.parametrize("first", [True, False])
def test_rule_priorities_do_not_move_when_a_model_is_added_before_or_after(first: bool) -> None:
    base_raw = raw_stack_config("dev")
    base_raw["gpuPools"][0]["maxNodes"] = 8
    base = synth_config(parse_config(base_raw, "Pulumi.dev.yaml"), "dev")
    raw = _with_extra_model("dev", "aaa-new-model", first)
    grown = synth_config(parse_config(raw, "Pulumi.dev.yaml"), "dev")
    rule = f"model-{CANARY}-rule"
    assert base.one(RULE, rule).inputs["priority"] == grown.one(RULE, rule).inputs["priority"]
    assert base.one(RULE, rule).inputs["priority"] == 2 * derived_rule_slot(CANARY)
    diff = diff_graphs(_plan(base), _plan(grown))
    changed_rules = [c for c in diff.changes if c.type == RULE and c.action != "create"]
    assert changed_rules == []


# --------------------------------------------------------------------------- bucket, outputs, cost


def test_the_stack_creates_its_own_access_log_bucket(any_graph: ResourceGraph) -> None:
    region = graph_region(any_graph)
    encryption = any_graph.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "lb-logs-encryption",
    ).inputs
    (rule,) = encryption["rules"]
    assert rule["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    block = any_graph.one(
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "lb-logs-public-access-block"
    ).inputs
    assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy"))
    lifecycle = any_graph.one(
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "lb-logs-lifecycle"
    ).inputs
    assert lifecycle["rules"][0]["expiration"]["days"] in (14, 365)
    policy = json.loads(
        any_graph.one("aws:s3/bucketPolicy:BucketPolicy", "lb-logs-policy").inputs["policy"]
    )
    delivery = next(s for s in policy["Statement"] if s["Sid"] == "ElbAccessLogDelivery")
    # us-west-2 / us-east-1 predate August 2022: the Region's ELB account delivers.
    assert delivery["Principal"] == {"AWS": f"arn:aws:iam::{ELB_ACCOUNTS[region]}:root"}
    assert delivery["Resource"].endswith("/alb/AWSLogs/123456789012/*")
    bucket = any_graph.one(BUCKET, "lb-logs-bucket")
    prod = any_graph.stack == "prod"
    assert (bucket.protect, bucket.retain_on_delete) == (prod, prod)
    assert bucket.inputs["forceDestroy"] is (not prod)


def test_newer_regions_deliver_through_the_service_principal() -> None:
    from components.storage.lb_log_bucket import delivery_principal

    assert delivery_principal("eu-central-2") == {"Service": ELB_LOG_DELIVERY_SERVICE}
    assert delivery_principal("us-east-1") == {"AWS": "arn:aws:iam::127311923021:root"}


def test_each_model_endpoint_is_a_stack_output(dev_graph: ResourceGraph) -> None:
    endpoints = dev_graph.outputs["inferenceEndpoints"]
    alb = dev_graph.one(LB, "load-balancer-alb")
    nlb = dev_graph.one(LB, "model-resnet50-nlb")
    dns = {
        n.name: mock_outputs(LB, n.name, dict(n.inputs), "us-west-2")["dnsName"] for n in (alb, nlb)
    }
    assert endpoints["llama-3-8b-instruct"] == {
        "inCluster": "http://llama-3-8b-instruct.inference.svc:8000",
        "exposure": "alb",
        "dnsName": dns["load-balancer-alb"],
        "host": "llm.dev.ml.example.com",
        "path": "/",
    }
    assert endpoints["resnet50"]["dnsName"] == dns["model-resnet50-nlb"]
    assert endpoints["resnet50"]["host"] is None


def test_cost_counts_every_load_balancer(prod_graph: ResourceGraph) -> None:
    result = estimate(prod_graph)
    lines = [line for line in result.lines if line.category == "Load balancers"]
    assert sorted(line.item for line in lines) == ["load-balancer-alb", "model-resnet50-nlb"]
    assert all(line.monthly_min > 0 for line in lines)


def test_the_removed_two_phase_switch_is_refused() -> None:
    raw = raw_stack_config("dev")
    raw["monitoring"]["albAlarms"] = {"enabled": True}
    with pytest.raises(ConfigError) as info:
        parse_config(raw, "Pulumi.dev.yaml")
    assert any("albAlarms.enabled" in p.path for p in info.value.problems)


def test_a_replaced_target_group_replaces_its_binding(synth_edited: SynthEdited) -> None:
    from components.serving.load_balancer import TGB_IMMUTABLE
    from mlstack.review.replacements import forces_replacement

    # The controller's webhook refuses a changed spec.targetGroupARN: the binding is
    # replaced (replace_on_changes + delete_before_replace), and the diff says so.
    assert all(forces_replacement(TGB, path) for path in TGB_IMMUTABLE)
    assert not forces_replacement(TGB, "spec.serviceRef.port")
    base = synth_edited("dev")
    moved = synth_edited(
        "dev",
        {
            "models[1].runtime": "custom",
            "models[1].image": "example.com/vision:1.0",
            "models[1].custom": {"port": 9000, "queueMetric": "queue_size"},
        },
    )
    by_name = {c.name: c.action for c in diff_graphs(_plan(base), _plan(moved)).changes}
    assert by_name["model-resnet50-tg"] == "replace"  # port 8000 -> 9000: a new target group
