"""GPU nodes that heal themselves: the node monitoring agent, auto repair per pool, serving
that survives one repaired node, and alerts that page only when repair will not act.

Facts these tests hold the plan to (read, not remembered):
- Karpenter v1.14.1 ``pkg/controllers/node/health/controller.go`` (kubernetes-sigs/karpenter):
  ``Reconcile`` deletes the NodeClaim of a node whose repair-policy condition has held past
  its toleration, after ``annotateTerminationGracePeriod`` sets the termination time to *now*
  (forceful: no drain, PDBs not consulted); ``areNodesHealthy`` holds repair back while more
  than ``allowedUnhealthyPercent`` = 20% of a NodePool's nodes, rounded *up*, are unhealthy,
  so one unhealthy node of any pool is always repaired.
- The pinned chart (``charts/karpenter-1.14.1.values.yaml``): ``settings.featureGates.nodeRepair``
  defaults to false.
- EKS user guide, "Automatically repair nodes": ``AcceleratedHardwareReady`` is repaired
  after 10 minutes; managed node groups take ``maxParallelNodesRepairedCount`` and
  ``maxUnhealthyNodeThresholdPercentage``.
- github.com/aws/eks-node-monitoring-agent ``charts/eks-node-monitoring-agent/values.yaml``:
  ``nodeAgent.tolerations: [{operator: Exists}]`` but ``dcgmAgent.tolerations: []``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from components.compute.gpu_node_pool import (
    KARPENTER_REPAIR_UNHEALTHY_SHARE,
    POOL_LABEL,
    REPAIR_MAX_PARALLEL_NODES,
)
from components.monitoring import alert_rules as ar
from components.versions import EKS_ADDONS
from mlstack.synth import ResourceGraph
from stacks.config import ConfigError, parse_config
from tests.conftest import STACKS, SynthEdited, graph_for, raw_stack_config, set_path

ADDON = "aws:eks/addon:Addon"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
RELEASE = "kubernetes:helm.sh/v3:Release"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"


def _managed_pool() -> dict[str, Any]:
    return {
        "name": "batch",
        "provisioner": "managed",
        "instanceTypes": ["g5.xlarge"],
        "ami": {"release": "1.35.0-20260714"},
        "maxNodes": 2,
    }


def _with_pool(stack: str, pool: dict[str, Any]) -> dict[str, Any]:
    """An edit that appends ``pool`` to the stack's GPU pools."""
    return {"gpuPools": [*raw_stack_config(stack)["gpuPools"], pool]}


def _problems(stack: str, edits: dict[str, Any]) -> list[tuple[str, Any, str]]:
    raw = raw_stack_config(stack)
    for dotted, value in edits.items():
        set_path(raw, dotted, value)
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, f"Pulumi.{stack}.yaml")
    return [(p.path, p.value, p.message) for p in caught.value.problems]


def _karpenter_settings(graph: ResourceGraph) -> dict[str, Any]:
    (controller,) = [
        r
        for r in graph.by_type(RELEASE)
        if r.inputs.get("chart", "").endswith("karpenter") and "crd" not in r.name
    ]
    return controller.inputs["values"]["settings"]


# --------------------------------------------------------------------------- 1. the agent


@pytest.mark.parametrize("stack", STACKS)
def test_every_cluster_runs_the_node_monitoring_agent_pinned_for_its_minor(stack: str) -> None:
    graph = graph_for(stack)
    agent = graph.one(ADDON, "cluster-addon-node-monitoring-agent")
    minor = next(r.inputs["version"] for r in graph.by_type("aws:eks/cluster:Cluster"))
    assert agent.inputs["addonName"] == "eks-node-monitoring-agent"
    assert agent.inputs["addonVersion"] == EKS_ADDONS[minor].eks_node_monitoring_agent
    # A DaemonSet add-on: it waits for the system nodes instead of timing out without them.
    system_nodes = graph.one(NODE_GROUP, "cluster-system-nodes")
    assert system_nodes.urn in agent.dependencies
    # No IAM: the agent patches node status through the Kubernetes API only.
    assert "podIdentityAssociations" not in agent.inputs
    assert "serviceAccountRoleArn" not in agent.inputs


def test_the_agents_gpu_health_source_tolerates_every_gpu_taint() -> None:
    """The chart's DCGM host engine tolerates nothing by default: on nodes tainted
    nvidia.com/gpu it would never run, and no GPU fault would reach repair."""
    agent = graph_for("prod").one(ADDON, "cluster-addon-node-monitoring-agent")
    config = json.loads(agent.inputs["configurationValues"])
    assert config["dcgmAgent"]["tolerations"] == [{"operator": "Exists"}]


def test_every_supported_minor_has_an_agent_pin() -> None:
    from stacks.schema.cluster import SUPPORTED_VERSIONS

    for minor in SUPPORTED_VERSIONS:
        assert EKS_ADDONS[minor].eks_node_monitoring_agent.startswith("v")


def test_an_agent_version_override_from_config_reaches_the_addon(
    synth_edited: SynthEdited,
) -> None:
    graph = synth_edited(
        "dev", {"cluster.addonVersions.eksNodeMonitoringAgent": "v9.9.9-eksbuild.1"}
    )
    agent = graph.one(ADDON, "cluster-addon-node-monitoring-agent")
    assert agent.inputs["addonVersion"] == "v9.9.9-eksbuild.1"


# --------------------------------------------------------------------------- 2. auto repair


@pytest.mark.parametrize("stack", STACKS)
def test_karpenter_pools_run_with_node_repair_on(stack: str) -> None:
    assert _karpenter_settings(graph_for(stack))["featureGates"]["nodeRepair"] is True


def test_a_managed_pool_repairs_one_node_at_a_time(synth_edited: SynthEdited) -> None:
    graph = synth_edited("dev", _with_pool("dev", _managed_pool()))
    group = graph.one(NODE_GROUP, "gpu-batch-nodes")
    assert group.inputs["nodeRepairConfig"] == {
        "enabled": True,
        "maxParallelNodesRepairedCount": REPAIR_MAX_PARALLEL_NODES,
        "maxUnhealthyNodeThresholdPercentage": 20,
    }


def test_a_managed_pool_can_turn_repair_off_in_dev(synth_edited: SynthEdited) -> None:
    pool = {**_managed_pool(), "autoRepair": {"enabled": False}}
    graph = synth_edited("dev", _with_pool("dev", pool))
    assert graph.one(NODE_GROUP, "gpu-batch-nodes").inputs["nodeRepairConfig"] == {"enabled": False}


def test_karpenter_repair_turns_off_only_for_every_karpenter_pool(
    synth_edited: SynthEdited,
) -> None:
    graph = synth_edited("dev", {"gpuPools[0].autoRepair": {"enabled": False}})
    assert _karpenter_settings(graph)["featureGates"]["nodeRepair"] is False


def test_prod_refuses_a_pool_without_repair_unless_a_reason_is_given() -> None:
    found = _problems("prod", {"gpuPools[0].autoRepair": {"enabled": False}})
    assert [(p, v) for p, v, _ in found] == [("mlstack:gpuPools[0].autoRepair.enabled", False)]
    assert "disabledReason" in found[0][2]
    raw = raw_stack_config("prod")
    set_path(
        raw,
        "gpuPools[0].autoRepair",
        {"enabled": False, "disabledReason": "vendor firmware triage, ticket GPU-42"},
    )
    assert not parse_config(raw, "Pulumi.prod.yaml").gpu_pools[0].auto_repair.enabled


def test_a_reason_without_turning_repair_off_is_refused() -> None:
    found = _problems("dev", {"gpuPools[0].autoRepair": {"disabledReason": "because"}})
    assert [p for p, _, _ in found] == ["mlstack:gpuPools[0].autoRepair.disabledReason"]


def test_karpenter_pools_cannot_disagree_on_the_one_repair_switch() -> None:
    second = {
        "name": "spare",
        "instanceTypes": ["g6.xlarge"],
        "ami": {"release": "v20260714"},
        "maxNodes": 1,
        "autoRepair": {"enabled": False},
    }
    found = _problems("dev", _with_pool("dev", second))
    assert [(p, v) for p, v, _ in found] == [("mlstack:gpuPools[1].autoRepair.enabled", False)]
    assert "one switch for every Karpenter pool" in found[0][2]


# --------------------------------------------------------------------------- 3. serving


def _spread(deployment: Any) -> dict[str, Any]:
    spec = deployment.inputs["spec"]["template"]["spec"]
    (node,) = [
        c for c in spec["topologySpreadConstraints"] if c["topologyKey"] == "kubernetes.io/hostname"
    ]
    return node


def _repairs_at_once(graph: ResourceGraph) -> dict[str, int]:
    """Pool -> nodes repair may take at once, read from what the plan renders."""
    found: dict[str, int] = {}
    gate = _karpenter_settings(graph)["featureGates"]["nodeRepair"]
    for pool in graph.by_type(NODE_POOL):
        limit = int(pool.inputs["spec"]["limits"]["nodes"])
        name = pool.inputs["metadata"]["name"]
        found[name] = math.ceil(KARPENTER_REPAIR_UNHEALTHY_SHARE * limit) if gate else 0
    for group in graph.by_type(NODE_GROUP):
        repair = group.inputs.get("nodeRepairConfig") or {}
        name = group.inputs.get("labels", {}).get(POOL_LABEL)
        if name:
            on = repair.get("enabled")
            found[name] = int(repair.get("maxParallelNodesRepairedCount", 0)) if on else 0
    return found


def _lost_replicas(replicas: int, nodes_repaired: int, spread: dict[str, Any]) -> int:
    """Replicas of one Deployment a repair of ``nodes_repaired`` nodes takes, with its pods
    placed as the hostname spread allows: the first ``minDomains`` on nodes of their own,
    then never more than ``maxSkew`` above the emptiest node."""
    if spread["whenUnsatisfiable"] != "DoNotSchedule":
        return min(replicas, nodes_repaired * replicas)  # all may share one node
    own = min(replicas, int(spread.get("minDomains", 1)))
    per_node = 1 if replicas <= own else math.ceil(replicas / own) + int(spread["maxSkew"]) - 1
    return min(replicas, nodes_repaired * per_node)


@pytest.mark.parametrize("stack", STACKS)
def test_the_repairs_a_pool_allows_at_once_keep_every_models_pdb(stack: str) -> None:
    """Repair ignores PDBs (Karpenter deletes the NodeClaim at once), so the promise must
    come from placement: with as many nodes repaired at once as each pool allows (Karpenter:
    20% of the NodePool's node limit, rounded up), every Deployment at its minimum keeps
    what its PDB demands."""
    graph = graph_for(stack)
    pdbs = {
        tuple(sorted(p.inputs["spec"]["selector"]["matchLabels"].items())): p.inputs["spec"]
        for p in graph.by_type(PDB)
    }
    repairs = _repairs_at_once(graph)
    checked = 0
    for deployment in graph.by_type(DEPLOYMENT):
        labels = deployment.inputs["spec"]["selector"]["matchLabels"]
        pdb = pdbs.get(tuple(sorted(labels.items())))
        if pdb is None or "nvidia.com/gpu" not in json.dumps(deployment.inputs):
            continue
        spread = _spread(deployment)
        pool = deployment.inputs["spec"]["template"]["spec"]["nodeSelector"][POOL_LABEL]
        replicas = max(1, int(spread["minDomains"]))
        lost = _lost_replicas(replicas, repairs[pool], spread)
        allowed = pdb.get("maxUnavailable", replicas - int(pdb.get("minAvailable", 0)))
        assert lost <= allowed, (deployment.name, lost, pdb)
        checked += 1
    assert checked >= 2


def test_two_replicas_on_one_node_would_break_the_pdb_without_the_spread() -> None:
    """The check above can fail: replicas packed on one 4-GPU node all go with it."""
    packed = {"whenUnsatisfiable": "ScheduleAnyway", "maxSkew": 1}
    assert _lost_replicas(2, 1, packed) == 2
    assert (
        _lost_replicas(2, 1, {**packed, "whenUnsatisfiable": "DoNotSchedule", "minDomains": 2}) == 1
    )


def test_prod_deployments_start_their_minimum_on_distinct_nodes() -> None:
    graph = graph_for("prod")
    floors = {
        d.name: _spread(d)["minDomains"]
        for d in graph.by_type(DEPLOYMENT)
        if "nvidia.com/gpu" in json.dumps(d.inputs)
    }
    assert floors and all(v >= 2 for v in floors.values()), floors


def test_a_karpenter_pool_whose_repairs_could_take_two_replicas_at_once_is_refused() -> None:
    """Prod's 2 minimum replicas under minAvailable 1: with 6 nodes Karpenter may repair 2
    at once (ceil(20% x 6)); with 5, one."""
    found = _problems("prod", {"gpuPools[0].maxNodes": 6})
    assert {p for p, _, m in found if "auto repair may take 2" in m} == {
        "mlstack:gpuPools[0].maxNodes"
    }
    assert "lower maxNodes to 5 or less" in found[0][2]


def test_a_pool_too_small_for_one_replica_per_node_is_refused() -> None:
    found = _problems("prod", {"gpuPools[0].maxNodes": 1, "gpuPools[0].maxGpus": 4})
    spread = [f for f in found if "each on a node of its own" in f[2]]
    assert spread and spread[0][0] == "mlstack:gpuPools[0].maxNodes"


# --------------------------------------------------------------------------- 4. alerts


def _fleet_alerts(graph: ResourceGraph) -> list[dict[str, Any]]:
    return [
        rule
        for node in graph.by_type(RULE)
        for group in node.inputs["spec"]["groups"]
        if group["name"] == "mlstack-gpu-fleet"
        for rule in group["rules"]
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_gpu_faults_on_repaired_pools_name_the_node_and_do_not_page(stack: str) -> None:
    alerts = _fleet_alerts(graph_for(stack))
    for name in ("GpuXidError", "GpuEccUncorrectable"):
        (rule,) = [r for r in alerts if r["alert"] == name and r["labels"]["repair"] == "auto"]
        assert 'group_left (pool) mlstack:node_gpu_pool:info{pool=~"inference"}' in rule["expr"]
        assert rule["labels"]["severity"] == ar.WARNING
        assert "{{ $labels.node }}" in rule["annotations"]["summary"]
        assert "Karpenter replaces the node" in rule["annotations"]["description"]
        assert "10 minutes" in rule["annotations"]["description"]


@pytest.mark.parametrize("stack", STACKS)
def test_gpu_faults_outside_repaired_pools_still_page_without_needing_a_pool_label(
    stack: str,
) -> None:
    """Every GPU node whose pool is not known to be repaired pages, including one without
    the pool label or while kube-state-metrics is down: the critical rule subtracts the
    repaired pools' nodes (``unless``) instead of joining the label in."""
    alerts = _fleet_alerts(graph_for(stack))
    for alert, expr, *_ in ar._fault_alerts("15m"):
        (rest,) = [r for r in alerts if r["alert"] == alert and r["labels"]["repair"] == "manual"]
        assert rest["labels"]["severity"] == ar.CRITICAL
        before, _, subtracted = rest["expr"].partition(" unless on (node) ")
        assert "group_left" not in before
        assert expr.split("[")[0] in before
        assert subtracted == 'mlstack:node_gpu_pool:info{pool=~"inference"}'


@pytest.mark.parametrize("stack", STACKS)
def test_an_overdue_repair_pages(stack: str) -> None:
    (overdue,) = [
        r for r in _fleet_alerts(graph_for(stack)) if r["alert"] == "GpuNodeRepairOverdue"
    ]
    assert overdue["labels"]["severity"] == ar.CRITICAL
    assert overdue["for"] == "30m"
    assert 'condition="AcceleratedHardwareReady",status="false"' in overdue["expr"]


def test_gpu_faults_page_at_once_where_repair_is_off(synth_edited: SynthEdited) -> None:
    graph = synth_edited("dev", {"gpuPools[0].autoRepair": {"enabled": False}})
    alerts = _fleet_alerts(graph)
    for name in ("GpuXidError", "GpuEccUncorrectable"):
        (rule,) = [r for r in alerts if r["alert"] == name]
        assert rule["labels"]["severity"] == ar.CRITICAL
        assert "No auto repair acts" in rule["annotations"]["description"]
        assert "unless" not in rule["expr"] and "group_left" not in rule["expr"]
    assert not [r for r in alerts if r["alert"] == "GpuNodeRepairOverdue"]


def test_mixed_repair_modes_split_the_fault_alerts_by_pool() -> None:
    rules = ar.gpu_fault_rules(
        [ar.PoolRepair("a", True), ar.PoolRepair("b", False, "managed", "firmware triage")],
        "15m",
        "https://runbooks",
    )
    xid = {r["labels"]["severity"]: r for r in rules if r["alert"] == "GpuXidError"}
    assert 'group_left (pool) mlstack:node_gpu_pool:info{pool=~"a"}' in xid[ar.WARNING]["expr"]
    assert xid[ar.CRITICAL]["expr"].endswith(
        'unless on (node) mlstack:node_gpu_pool:info{pool=~"a"}'
    )
    assert "firmware triage" in xid[ar.CRITICAL]["annotations"]["description"]
