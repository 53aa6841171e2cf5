"""Cost that sees the models: GPU nodes priced from the replicas that run on them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.compute import gpu_instances
from mlstack.review.cost import HOURS_PER_MONTH, CostEstimate, estimate, render_text
from mlstack.review.diff import diff_graphs
from mlstack.synth import ResourceGraph
from tests.conftest import SynthEdited, graph_for, raw_stack_config

H = HOURS_PER_MONTH


def _price(instance_type: str, region: str) -> float:
    return gpu_instances.load_gpu_instances()[instance_type].price_per_hour[region]


def _pool_line(result: CostEstimate):
    return next(line for line in result.lines if line.category == "Karpenter nodes")


def _plan(graph: ResourceGraph) -> dict:
    return json.loads(json.dumps(graph.to_json()))


def test_prod_floor_prices_the_min_replicas_kept_up_all_month() -> None:
    result = estimate(graph_for("prod"))
    line = _pool_line(result)
    # llama (6 CPU, 48Gi) fits only g6e.2xlarge and up; resnet (3 CPU, 16Gi) too is
    # cheapest there once packed: 2 + 2 replicas of one GPU each = 4 nodes, all month.
    assert line.monthly_min == pytest.approx(4 * _price("g6e.2xlarge", "us-east-1") * H)
    assert line.monthly_min > 6000
    assert result.total_min > 6000


def test_dev_wake_windows_are_priced_for_the_hours_they_are_open() -> None:
    line = _pool_line(estimate(graph_for("dev")))
    # 08:00-19:00 Monday to Friday: 55 of 168 hours, two g6.xlarge nodes.
    share = 55 / 168
    expected = 2 * _price("g6.xlarge", "us-west-2") * H * share
    assert line.monthly_min == pytest.approx(expected, rel=0.01)
    assert "33% of the time" in line.detail


def test_max_scale_prices_max_replicas_when_the_limits_do_not_bind() -> None:
    line = _pool_line(estimate(graph_for("dev")))
    assert line.monthly_max == pytest.approx(2 * _price("g6.xlarge", "us-west-2") * H)
    assert "(max replicas)" in line.detail


def test_max_scale_prices_the_limits_when_they_bind(synth_edited: SynthEdited) -> None:
    graph = synth_edited(
        "prod",
        {
            "gpuPools[0].instanceTypes": ["g6e.2xlarge"],
            "gpuPools[0].maxNodes": 6,
            # 6 nodes: Karpenter's repairs (20%, rounded up) could take 2 of a model's
            # 2 minimum replicas; this cost test is about limits, not repair.
            "gpuPools[0].autoRepair": {"enabled": False, "disabledReason": "cost test"},
            "models[0].autoscaling.maxReplicas": 40,
        },
    )
    line = _pool_line(estimate(graph))
    assert "bind" in line.detail
    assert line.monthly_max == pytest.approx(6 * _price("g6e.2xlarge", "us-east-1") * H)


def test_each_model_gets_its_own_cost_line() -> None:
    result = estimate(graph_for("prod"))
    by_model = {m.model: m for m in result.models}
    assert set(by_model) == {"llama-3-8b-instruct", "resnet50"}
    llama = by_model["llama-3-8b-instruct"]
    assert (llama.min_replicas, llama.max_replicas) == (2, 6)
    assert llama.monthly_min == pytest.approx(2 * _price("g6e.2xlarge", "us-east-1") * H)
    assert "by model" in render_text(result)
    assert json.loads(json.dumps(result.to_json()))["models"][0]["model"] == "llama-3-8b-instruct"


def test_a_pr_that_triples_replicas_shows_a_cost_delta_and_the_model(
    synth_edited: SynthEdited,
) -> None:
    base = _plan(graph_for("prod"))
    head = _plan(
        synth_edited(
            "prod",
            {
                "models[1].autoscaling.minReplicas": 6,
                "models[1].autoscaling.maxReplicas": 12,
                "gpuPools[0].maxNodes": 24,
                "gpuPools[0].maxGpus": 48,
                # 24 nodes: Karpenter may repair 5 at once, more than the PDBs allow.
                "gpuPools[0].autoRepair": {"enabled": False, "disabledReason": "cost test"},
            },
        )
    )
    diff = diff_graphs(base, head)
    assert diff.cost_base is not None and diff.cost_head is not None
    assert diff.cost_head.total_min > diff.cost_base.total_min + 1000
    assert "±$0.00" not in diff.cost_summary().split(", max")[0]
    changes = diff.model_cost_changes()
    assert any(c.startswith("~ model resnet50 replicas 2-4 -> 6-12") for c in changes), changes


def test_a_pr_that_adds_a_model_shows_it(synth_edited: SynthEdited) -> None:
    base = _plan(graph_for("dev"))
    raw_model = {
        "name": "whisper",
        "artifactVersion": "v1",
        "runtime": "triton",
        "pool": "inference",
        "gpus": 1,
        "cpu": "2",
        "memory": "8Gi",
        "shmSize": "1Gi",
        "modelDiskGib": 10,
        "autoscaling": {"minReplicas": 1, "maxReplicas": 1},
    }
    models = [*raw_stack_config("dev")["models"], raw_model]
    head_graph = synth_edited("dev", {"models": models, "gpuPools[0].maxNodes": 6})
    diff = diff_graphs(base, _plan(head_graph))
    changes = diff.model_cost_changes()
    assert any(c.startswith("+ model whisper (1-1 replicas): min +$") for c in changes), changes
    assert diff.cost_head is not None and diff.cost_base is not None
    assert diff.cost_head.total_min > diff.cost_base.total_min


def test_managed_node_groups_are_priced_from_the_models_too(synth_edited: SynthEdited) -> None:
    managed = {
        "name": "inference",
        "provisioner": "managed",
        "instanceTypes": ["g6e.2xlarge"],
        "capacityTypes": ["on-demand"],
        "ami": {"family": "al2023", "release": "1.35.0-20260714"},
        "rootVolume": {"sizeGib": 300},
        "minNodes": 1,
        "maxNodes": 6,
    }
    result = estimate(synth_edited("prod", {"gpuPools": [managed]}))
    line = next(
        line
        for line in result.lines
        if line.category == "EC2 nodes" and "g6e.2xlarge" in line.detail
    )
    price = _price("g6e.2xlarge", "us-east-1")
    assert line.monthly_min == pytest.approx(4 * price * H)  # 2 + 2 min replicas, minNodes 1
    assert line.monthly_max == pytest.approx(6 * price * H)  # 6 + 4 max replicas, 6 nodes bind
    assert {m.model for m in result.models} == {"llama-3-8b-instruct", "resnet50"}


def test_pod_demand_counts_sidecars_for_the_whole_pod_and_before_later_init_steps() -> None:
    from mlstack.review.model_cost import pod_demand

    def box(cpu: str, memory: str, **extra: Any) -> dict[str, Any]:
        return {"resources": {"requests": {"cpu": cpu, "memory": memory}}, **extra}

    spec = {
        "initContainers": [
            box("100m", "256Mi"),
            box("500m", "1Gi", restartPolicy="Always"),  # a sidecar: runs from here on
            box("2", "2Gi"),
        ],
        "containers": [box("1", "1Gi")],
    }
    demand = pod_demand(spec)
    assert demand.cpu == pytest.approx(2.5)  # the last init step runs beside the sidecar
    assert demand.memory_gib == pytest.approx(3.0)
    spec["initContainers"] = spec["initContainers"][:2]
    demand = pod_demand(spec)
    assert demand.cpu == pytest.approx(1.5) and demand.memory_gib == pytest.approx(2.0)
