"""ALB alarms through the synth: the opt-in lookup of the target groups and the load
balancer the AWS Load Balancer Controller created (``monitoring.albAlarms.enabled``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mlstack.render_checks import check_graph
from mlstack.review import parity
from mlstack.review.policy_check import check_policy
from mlstack.synth import ResourceGraph, lb_suffix_for_tags, target_group_suffix_for_tags
from stacks.config import load_config_file
from tests.conftest import SynthEdited

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
GET_TG = "aws:lb/getTargetGroup:getTargetGroup"
GET_LB = "aws:lb/getLoadBalancer:getLoadBalancer"
CHECKS = {
    "target-5xx": "HTTPCode_Target_5XX_Count",
    "p99-latency": "TargetResponseTime",
    "unhealthy-hosts": "UnHealthyHostCount",
    "healthy-below-min": "HealthyHostCount",
}
ON = {"monitoring.albAlarms.enabled": True}
ROOM = {"gpuPools[0].maxNodes": 8}
"""Dev's pool has room for one Deployment per model; a canary or blue/green runs two."""
_CACHE: dict[tuple[str, str], ResourceGraph] = {}


def _graph(synth_edited: SynthEdited, stack: str, key: str, edits: dict[str, Any]) -> ResourceGraph:
    if (stack, key) not in _CACHE:
        _CACHE[(stack, key)] = synth_edited(stack, edits)
    return _CACHE[(stack, key)]


def _expected_tags(stack: str, resource: str) -> dict[str, str]:
    """The tags the controller puts on what it creates, written out independently."""
    return {
        "elbv2.k8s.aws/cluster": f"mlstack-{stack}",
        "ingress.k8s.aws/stack": f"mlstack-{stack}-inference",
        "ingress.k8s.aws/resource": resource,
    }


def _alarms_of(graph: ResourceGraph, service: str) -> dict[str, dict[str, Any]]:
    prefix = f"monitoring-{service}-"
    return {
        a.name.removeprefix(prefix): a.inputs
        for a in graph.by_type(ALARM)
        if a.name.startswith(prefix) and a.name.removeprefix(prefix) in CHECKS
    }


def _alb_models(stack: str) -> list[Any]:
    return [m for m in load_config_file(stack).models if m.exposure.type == "alb"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_switch_on_gives_every_alb_model_four_alarms_on_the_looked_up_suffixes(
    synth_edited: SynthEdited, stack: str
) -> None:
    graph = _graph(synth_edited, stack, "on", ON)
    models = _alb_models(stack)
    assert models, "the stack file exposes no model through the ALB"
    lb_suffix = lb_suffix_for_tags(_expected_tags(stack, "LoadBalancer"))
    for model in models:
        tg_tags = _expected_tags(stack, f"inference/{model.name}-{model.name}:http")
        alarms = _alarms_of(graph, model.name)
        assert sorted(alarms) == sorted(CHECKS)
        for check, inputs in alarms.items():
            assert inputs["namespace"] == "AWS/ApplicationELB"
            assert inputs["metricName"] == CHECKS[check]
            assert inputs["dimensions"] == {
                "TargetGroup": target_group_suffix_for_tags(tg_tags),
                "LoadBalancer": lb_suffix,
            }
            assert inputs["dimensions"]["TargetGroup"].startswith("targetgroup/")
            assert inputs["dimensions"]["LoadBalancer"].startswith("app/")


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_switch_on_looks_up_by_the_controller_tags_through_the_explicit_provider(
    synth_edited: SynthEdited, stack: str
) -> None:
    graph = _graph(synth_edited, stack, "on", ON)
    lookups = [i for i in graph.invokes if i.token in (GET_TG, GET_LB)]
    asked = sorted((i.token, tuple(sorted(i.args["tags"].items()))) for i in lookups)
    expected = [(GET_LB, tuple(sorted(_expected_tags(stack, "LoadBalancer").items())))] + [
        (GET_TG, tuple(sorted(_expected_tags(stack, f"inference/{m.name}-{m.name}:http").items())))
        for m in _alb_models(stack)
    ]
    assert asked == sorted(expected)
    aws_provider = graph.one("pulumi:providers:aws", "aws").urn
    assert {i.provider for i in lookups} == {aws_provider}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_nlb_models_get_no_alb_alarms(synth_edited: SynthEdited, stack: str) -> None:
    graph = _graph(synth_edited, stack, "on", ON)
    nlb = [m for m in load_config_file(stack).models if m.exposure.type == "nlb"]
    assert nlb
    for model in nlb:
        assert _alarms_of(graph, model.name) == {}


def test_switch_off_makes_no_lookups_and_no_alarms(dev_graph: ResourceGraph) -> None:
    assert load_config_file("dev").monitoring.alb_alarms.enabled is False
    assert [i for i in dev_graph.invokes if i.token in (GET_TG, GET_LB)] == []
    assert dev_graph.by_type(ALARM) == []


def _canary(model: str) -> dict[str, Any]:
    return {
        **ON,
        **ROOM,
        "models[0].rollout": {
            "strategy": "canary",
            "canary": {"artifactVersion": "2099-01-01", "stableWeight": 90, "canaryWeight": 10},
        },
    }


def test_canary_alarms_stable_and_canary_target_groups_separately(
    synth_edited: SynthEdited,
) -> None:
    model = load_config_file("dev").models[0]
    assert model.exposure.type == "alb"
    graph = _graph(synth_edited, "dev", "canary", _canary(model.name))
    stable = _alarms_of(graph, model.name)
    canary = _alarms_of(graph, f"{model.name}-canary")
    assert sorted(stable) == sorted(canary) == sorted(CHECKS)
    stable_tg = _expected_tags("dev", f"inference/{model.name}-{model.name}:http")
    canary_tg = _expected_tags("dev", f"inference/{model.name}-{model.name}-canary:http")
    assert {a["dimensions"]["TargetGroup"] for a in stable.values()} == {
        target_group_suffix_for_tags(stable_tg)
    }
    assert {a["dimensions"]["TargetGroup"] for a in canary.values()} == {
        target_group_suffix_for_tags(canary_tg)
    }


@pytest.mark.parametrize(("active", "idle"), [("blue", "green"), ("green", "blue")])
def test_blue_green_alarms_the_active_color_under_stable_names(
    synth_edited: SynthEdited, active: str, idle: str
) -> None:
    model = load_config_file("dev").models[0]
    edits = {
        **ON,
        **ROOM,
        "models[0].rollout": {"strategy": "blueGreen", "blueGreen": {"activeColor": active}},
    }
    graph = _graph(synth_edited, "dev", f"bg-{active}", edits)
    alarms = _alarms_of(graph, model.name)
    assert sorted(alarms) == sorted(CHECKS)
    assert _alarms_of(graph, f"{model.name}-{idle}") == {}
    tags = _expected_tags("dev", f"inference/{model.name}-{model.name}-{active}:http")
    assert {a["dimensions"]["TargetGroup"] for a in alarms.values()} == {
        target_group_suffix_for_tags(tags)
    }


Check = Callable[[ResourceGraph], list[Any]]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_switch_on_keeps_policy_and_render_checks_green(
    synth_edited: SynthEdited, stack: str
) -> None:
    graph = _graph(synth_edited, stack, "on", ON)
    report = check_policy(graph)
    assert report.ok, [r.rule.id for r in report.blocking]
    version = load_config_file(stack).cluster.version
    assert check_graph(graph, version) == []


def test_switch_on_in_both_stacks_keeps_parity_and_differing_switch_is_a_violation(
    synth_edited: SynthEdited,
) -> None:
    dev_on, prod_on = (_graph(synth_edited, s, "on", ON) for s in ("dev", "prod"))
    dev_cfg, prod_cfg = load_config_file("dev"), load_config_file("prod")

    def cfg_on(cfg: Any) -> Any:
        alb = cfg.monitoring.alb_alarms.model_copy(update={"enabled": True})
        return cfg.model_copy(
            update={"monitoring": cfg.monitoring.model_copy(update={"alb_alarms": alb})}
        )

    same = parity.compare(
        "dev",
        "prod",
        left_config=cfg_on(dev_cfg),
        right_config=cfg_on(prod_cfg),
        left_graph=dev_on,
        right_graph=prod_on,
    )
    assert same.violations == []
    mixed = parity.compare(
        "dev",
        "prod",
        left_config=cfg_on(dev_cfg),
        right_config=prod_cfg,
        left_graph=dev_on,
        right_graph=_graph(synth_edited, "prod", "off", {}),
    )
    paths = {f.path for f in mixed.violations}
    assert "mlstack:monitoring.albAlarms.enabled" in paths
