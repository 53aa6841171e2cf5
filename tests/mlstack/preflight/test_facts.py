"""The facts preflight checks come from the synthesized plan and match the stack files:
if a resource's shape changes, these fail instead of a check silently finding nothing."""

from __future__ import annotations

import pytest

from components.versions import EKS_ADDONS
from mlstack.preflight.facts import PlanFacts, plan_facts
from mlstack.synth import ResourceGraph
from stacks.config import StackConfig, parse_config
from tests.conftest import STACKS, SynthEdited, graph_for, raw_stack_config, set_path


@pytest.fixture(params=STACKS)
def stack_facts(
    request: pytest.FixtureRequest, stack_configs: dict[str, StackConfig]
) -> tuple[StackConfig, ResourceGraph, PlanFacts]:
    cfg = stack_configs[request.param]
    graph = graph_for(request.param)
    return cfg, graph, plan_facts(cfg, graph)


def test_addon_pins_come_from_the_plan(
    stack_facts: tuple[StackConfig, ResourceGraph, PlanFacts],
) -> None:
    cfg, _, facts = stack_facts
    pins = EKS_ADDONS[cfg.cluster.version]
    assert facts.cluster_version == cfg.cluster.version
    assert facts.addons == {
        "vpc-cni": pins.vpc_cni,
        "coredns": pins.coredns,
        "kube-proxy": pins.kube_proxy,
        "aws-ebs-csi-driver": pins.aws_ebs_csi_driver,
        "eks-pod-identity-agent": pins.eks_pod_identity_agent,
        "eks-node-monitoring-agent": pins.eks_node_monitoring_agent,
    }


def test_every_served_model_version_is_found_in_the_deployments(
    stack_facts: tuple[StackConfig, ResourceGraph, PlanFacts],
) -> None:
    cfg, _, facts = stack_facts
    assert {(m.model, m.version) for m in facts.models} == {
        (m.name, m.artifact_version) for m in cfg.models
    }
    assert {m.track for m in facts.models} == {"stable"}


def test_the_certificate_covers_every_alb_host_of_the_stack(
    stack_facts: tuple[StackConfig, ResourceGraph, PlanFacts],
) -> None:
    cfg, _, facts = stack_facts
    hosts = sorted(m.exposure.host for m in cfg.models if m.exposure.host)
    assert facts.certificates == {cfg.serving.load_balancer.certificate_arn: hosts}


def test_model_bucket_prefix_is_the_bucket_not_its_log_bucket(
    stack_facts: tuple[StackConfig, ResourceGraph, PlanFacts],
) -> None:
    _, graph, facts = stack_facts
    assert facts.model_bucket_prefix == f"mlstack-{graph.stack}-models-"
    assert facts.model_bucket_name is None


def test_admin_roles_are_the_access_entries_of_the_plan(
    stack_facts: tuple[StackConfig, ResourceGraph, PlanFacts],
) -> None:
    cfg, _, facts = stack_facts
    assert facts.admin_roles == tuple(sorted(cfg.cluster.admin_role_arns))
    assert set(facts.account_ids) == {"123456789012"}


CANARY = {
    "strategy": "canary",
    "canary": {"artifactVersion": "2025-06-09", "stableWeight": 90, "canaryWeight": 10},
}
BLUE_GREEN = {
    "strategy": "blueGreen",
    "blueGreen": {
        "activeColor": "blue",
        "blue": {"artifactVersion": "v3"},
        "green": {"artifactVersion": "v4"},
    },
}


def _facts_with(synth_edited: SynthEdited, edits: dict[str, object]) -> PlanFacts:
    raw = raw_stack_config("dev")
    for dotted, value in edits.items():
        set_path(raw, dotted, value)
    cfg = parse_config(raw, "Pulumi.dev.yaml")
    return plan_facts(cfg, synth_edited("dev", edits))


def test_canary_and_blue_green_versions_are_separate_tracks(synth_edited: SynthEdited) -> None:
    # Room for the extra tracks' pods (the capacity-fit rule counts them). Blue/green and
    # canary both need an ALB model (an NLB cannot run either): the LLM, once each way.
    room = {"gpuPools[0].maxNodes": 8}
    canary = _facts_with(synth_edited, {"models[0].rollout": CANARY, **room})
    assert {(m.model, m.version, m.track) for m in canary.models} == {
        ("llama-3-8b-instruct", "2025-06-02", "stable"),
        ("llama-3-8b-instruct", "2025-06-09", "canary"),
        ("resnet50", "v3", "stable"),
    }
    blue_green = _facts_with(synth_edited, {"models[0].rollout": BLUE_GREEN, **room})
    assert {(m.model, m.version, m.track) for m in blue_green.models} == {
        ("llama-3-8b-instruct", "v3", "blue"),
        ("llama-3-8b-instruct", "v4", "green"),
        ("resnet50", "v3", "stable"),
    }
