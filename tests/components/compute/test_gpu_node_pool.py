"""GpuNodePool through the synth: what each provisioner renders, and the scheduling contract."""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

import pulumi_kubernetes as k8s
import pytest

from components.compute.gpu_instances import load_gpu_instances
from components.compute.gpu_node_pool import (
    GpuNodePool,
    GpuNodePoolArgs,
    Taint,
    ec2_node_class_spec,
    managed_user_data,
    parallel_image_pull,
    scheduling_for,
)
from components.validation import ComponentArgsError
from mlstack.synth import ResourceGraph, ResourceNode
from tests.components.compute.conftest import Synthesized
from tests.conftest import raw_stack_config

NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
ASG_TAG = "aws:autoscaling/tag:Tag"
INSTANCE_TYPE = "node.kubernetes.io/instance-type"
EKS_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute"}
EKS_EFFECTS["PREFER_NO_SCHEDULE"] = "PreferNoSchedule"


def requirement(node: ResourceNode, key: str) -> list[str]:
    found = [r for r in node.inputs["spec"]["template"]["spec"]["requirements"] if r["key"] == key]
    assert len(found) == 1, f"{key} requirement missing or repeated"
    assert found[0]["operator"] == "In"
    return found[0]["values"]


def rendered_taints(graph: ResourceGraph, pool: str) -> list[dict[str, str]]:
    """A pool's taints as rendered, in Kubernetes form, whichever the provisioner."""
    nodepools = [n for n in graph.by_type(NODE_POOL) if n.name == f"gpu-{pool}-nodepool"]
    if nodepools:
        return nodepools[0].inputs["spec"]["template"]["spec"]["taints"]
    group = graph.one(NODE_GROUP, f"gpu-{pool}-nodes")
    taints = []
    for t in group.inputs.get("taints", []):
        entry = {"key": t["key"], "effect": EKS_EFFECTS[t["effect"]]}
        if t.get("value"):
            entry["value"] = t["value"]
        taints.append(entry)
    return taints


def rendered_labels(graph: ResourceGraph, pool: str) -> dict[str, str]:
    nodepools = [n for n in graph.by_type(NODE_POOL) if n.name == f"gpu-{pool}-nodepool"]
    if nodepools:
        return nodepools[0].inputs["spec"]["template"]["metadata"]["labels"]
    return graph.one(NODE_GROUP, f"gpu-{pool}-nodes").inputs["labels"]


def rendered_instance_types(graph: ResourceGraph, pool: str) -> list[str]:
    nodepools = [n for n in graph.by_type(NODE_POOL) if n.name == f"gpu-{pool}-nodepool"]
    if nodepools:
        return requirement(nodepools[0], INSTANCE_TYPE)
    return graph.one(NODE_GROUP, f"gpu-{pool}-nodes").inputs["instanceTypes"]


def tolerates(tolerations: tuple[k8s.core.v1.TolerationArgs, ...], taint: dict[str, str]) -> bool:
    """Kubernetes toleration matching (key, operator Equal/Exists, value, effect)."""
    for tol in tolerations:
        data: dict[str, Any] = {
            "key": tol.key,
            "operator": tol.operator,
            "value": tol.value,
            "effect": tol.effect,
        }
        if data["effect"] and data["effect"] != taint["effect"]:
            continue
        if data["key"] != taint["key"]:
            continue
        if data["operator"] == "Exists" or data["value"] == taint.get("value", ""):
            return True
    return False


# --------------------------------------------------------------------------- karpenter, real stacks


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_nodepool_requires_exactly_the_configured_instance_types(stack: str, request) -> None:
    graph: ResourceGraph = request.getfixturevalue(f"{stack}_graph")
    configured = raw_stack_config(stack)["gpuPools"][0]["instanceTypes"]
    values = requirement(graph.one(NODE_POOL, "gpu-inference-nodepool"), INSTANCE_TYPE)
    assert sorted(values) == sorted(configured)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_nodepool_capacity_arch_taints_labels_and_limits(
    stack: str, stack_configs, request
) -> None:
    graph: ResourceGraph = request.getfixturevalue(f"{stack}_graph")
    pool = stack_configs[stack].gpu_pools[0]
    node = graph.one(NODE_POOL, "gpu-inference-nodepool")
    spec = node.inputs["spec"]
    assert node.inputs["metadata"]["name"] == "inference"
    assert requirement(node, "karpenter.sh/capacity-type") == pool.capacity_types
    assert requirement(node, "kubernetes.io/arch") == ["amd64"]
    assert spec["template"]["spec"]["taints"] == [
        {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
    ]
    labels = spec["template"]["metadata"]["labels"]
    assert labels["mlstack.io/gpu-pool"] == "inference"
    assert labels["mlstack.io/accelerator"] == "nvidia"
    assert spec["limits"] == {
        "nvidia.com/gpu": str(pool.effective_max_gpus()),
        "nodes": str(pool.max_nodes),
    }
    assert spec["template"]["spec"]["nodeClassRef"]["name"] == "inference"


def test_single_gpu_model_pools_get_the_model_label_and_mixed_ones_do_not(
    dev_graph, prod_graph
) -> None:
    dev_labels = rendered_labels(dev_graph, "inference")  # g6 (L4) and g5 (A10G)
    prod_labels = rendered_labels(prod_graph, "inference")  # g6e only (L40S)
    assert "mlstack.io/gpu-model" not in dev_labels
    assert prod_labels["mlstack.io/gpu-model"] == "l40s"


def test_prod_limits_and_disruption_follow_config(prod_graph) -> None:
    spec = prod_graph.one(NODE_POOL, "gpu-inference-nodepool").inputs["spec"]
    assert spec["limits"]["nvidia.com/gpu"] == "12"
    assert spec["disruption"] == {
        "consolidationPolicy": "WhenEmpty",
        "consolidateAfter": "30m",
        "budgets": [
            {"nodes": "1"},
            {
                "nodes": "0",
                "schedule": "0 8 * * mon-fri",
                "duration": "10h",
                "reasons": ["Drifted", "Empty"],
            },
        ],
    }
    assert spec["template"]["spec"]["expireAfter"] == "720h"


def test_dev_pool_scales_to_zero_on_spot_when_empty(dev_graph) -> None:
    spec = dev_graph.one(NODE_POOL, "gpu-inference-nodepool").inputs["spec"]
    assert spec["disruption"]["consolidationPolicy"] == "WhenEmpty"
    assert "spot" in requirement(
        dev_graph.one(NODE_POOL, "gpu-inference-nodepool"), "karpenter.sh/capacity-type"
    )
    # no static capacity: Karpenter keeps no node without pending pods
    assert "replicas" not in spec


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_nodeclass_pins_the_ami_and_locks_down_nodes(stack: str, stack_configs, request) -> None:
    graph: ResourceGraph = request.getfixturevalue(f"{stack}_graph")
    cfg = stack_configs[stack]
    spec = graph.one(NODE_CLASS, "gpu-inference-nodeclass").inputs["spec"]
    assert spec["amiSelectorTerms"] == [{"alias": f"al2023@{cfg.gpu_pools[0].ami.release}"}]
    assert "latest" not in json.dumps(spec["amiSelectorTerms"])
    discovery = [{"tags": {"karpenter.sh/discovery": f"mlstack-{stack}"}}]
    assert spec["subnetSelectorTerms"] == discovery
    assert spec["securityGroupSelectorTerms"] == discovery
    assert spec["metadataOptions"]["httpTokens"] == "required"
    assert spec["metadataOptions"]["httpPutResponseHopLimit"] == 1
    [root] = spec["blockDeviceMappings"]
    volume = cfg.gpu_pools[0].root_volume
    assert root["deviceName"] == "/dev/xvda"
    assert root["ebs"] == {
        "volumeSize": f"{volume.size_gib}Gi",
        "volumeType": "gp3",
        "iops": volume.iops,
        "throughput": volume.throughput_mibps,
        "encrypted": True,
        "deleteOnTermination": True,
    }
    assert spec["instanceStorePolicy"] == "RAID0"
    # offline, an auto-named role's physical name is its resource name
    assert spec["role"] == graph.one("aws:iam/role:Role", "karpenter-node-role").name


def test_dev_and_prod_run_the_same_ami(dev_graph, prod_graph) -> None:
    def alias(graph: ResourceGraph) -> Any:
        return graph.one(NODE_CLASS, "gpu-inference-nodeclass").inputs["spec"]["amiSelectorTerms"]

    assert alias(dev_graph) == alias(prod_graph)


def test_subnets_karpenter_selects_carry_the_discovery_tag(dev_graph) -> None:
    private = [
        s
        for s in dev_graph.by_type("aws:ec2/subnet:Subnet")
        if "karpenter.sh/discovery" in s.inputs.get("tags", {})
    ]
    assert len(private) == 2
    assert {s.inputs["tags"]["karpenter.sh/discovery"] for s in private} == {"mlstack-dev"}


def test_nodepool_waits_for_its_nodeclass_and_the_karpenter_charts(dev_graph) -> None:
    pool = dev_graph.one(NODE_POOL, "gpu-inference-nodepool")
    node_class = dev_graph.one(NODE_CLASS, "gpu-inference-nodeclass")
    releases = {
        r.urn for r in dev_graph.by_type("kubernetes:helm.sh/v3:Release") if "karpenter" in r.name
    }
    assert len(releases) == 2
    assert node_class.urn in pool.dependencies
    assert releases <= set(pool.dependencies)
    assert releases <= set(node_class.dependencies)


def test_pool_children_are_parented_and_prefixed(any_graph) -> None:
    component = any_graph.one("mlstack:compute:GpuNodePool", "gpu-inference")
    children = any_graph.children(component.urn)
    assert {c.type for c in children} == {NODE_POOL, NODE_CLASS}
    assert all(c.name.startswith("gpu-inference-") for c in children)
    assert all(c.provider and "kubernetes" in c.provider for c in children)


# --------------------------------------------------------------------------- other provisioners


def test_bottlerocket_nodeclass_sizes_the_data_volume(mixed: Synthesized) -> None:
    spec = mixed.graph.one(NODE_CLASS, "gpu-rocket-k-nodeclass").inputs["spec"]
    assert spec["amiSelectorTerms"] == [{"alias": "bottlerocket@v1.46.0"}]
    devices = {m["deviceName"]: m["ebs"] for m in spec["blockDeviceMappings"]}
    assert devices["/dev/xvdb"]["volumeSize"] == "200Gi"
    assert devices["/dev/xvda"]["volumeSize"] == "4Gi"


def test_managed_group_uses_the_nvidia_ami_at_the_pinned_release(mixed: Synthesized) -> None:
    batch = mixed.graph.one(NODE_GROUP, "gpu-batch-nodes").inputs
    rocket = mixed.graph.one(NODE_GROUP, "gpu-rocket-nodes").inputs
    assert (batch["amiType"], batch["releaseVersion"]) == (
        "AL2023_x86_64_NVIDIA",
        "1.35.0-20260714",
    )
    assert (rocket["amiType"], rocket["releaseVersion"]) == (
        "BOTTLEROCKET_x86_64_NVIDIA",
        "1.46.0-0123abcd",
    )
    assert batch["capacityType"] == "ON_DEMAND"
    assert rocket["capacityType"] == "SPOT"
    assert sorted(rocket["instanceTypes"]) == ["g6.2xlarge", "g6.xlarge"]


def test_managed_group_scales_from_zero_and_leaves_desired_to_the_autoscaler(
    mixed: Synthesized,
) -> None:
    node = mixed.graph.one(NODE_GROUP, "gpu-batch-nodes")
    assert node.inputs["scalingConfig"] == {"minSize": 0, "maxSize": 3, "desiredSize": 0}
    assert "scalingConfig.desiredSize" in node.ignore_changes
    assert node.inputs["updateConfig"] == {"maxUnavailable": 1}


def test_managed_groups_with_their_fixed_name_replace_delete_first(mixed: Synthesized) -> None:
    """Issue 12 item 11: nodeGroupName gpu-<pool> is fixed; a replacing change (instance
    types, AMI type, capacity type, subnets) must delete the old group first."""
    node = mixed.graph.one(NODE_GROUP, "gpu-batch-nodes")
    assert node.inputs["nodeGroupName"] == "gpu-batch"
    assert node.delete_before_replace


@pytest.mark.parametrize("pool", ["batch", "rocket"])
def test_managed_group_asg_carries_every_scale_from_zero_tag(mixed: Synthesized, pool: str) -> None:
    graph = mixed.graph
    group = graph.one(NODE_GROUP, f"gpu-{pool}-nodes")
    tags = {
        t.inputs["tag"]["key"]: t.inputs["tag"]["value"]
        for t in graph.by_type(ASG_TAG)
        if t.name.startswith(f"gpu-{pool}-asg-tag-")
    }
    asg_names = {
        t.inputs["autoscalingGroupName"]
        for t in graph.by_type(ASG_TAG)
        if t.name.startswith(f"gpu-{pool}-")
    }
    assert asg_names == {f"eks-gpu-{pool}-asg"}
    prefix = "k8s.io/cluster-autoscaler"
    assert tags[f"{prefix}/enabled"] == "true"
    assert tags[f"{prefix}/mlstack-dev"] == "owned"
    for key, value in group.inputs["labels"].items():
        assert tags[f"{prefix}/node-template/label/{key}"] == value
    for taint in rendered_taints(graph, pool):
        assert tags[f"{prefix}/node-template/taint/{taint['key']}"] == (
            f"{taint.get('value', '')}:{taint['effect']}"
        )
    facts = load_gpu_instances()
    largest = max(facts[t].gpu_count for t in group.inputs["instanceTypes"])
    assert tags[f"{prefix}/node-template/resources/nvidia.com/gpu"] == str(largest)
    assert group.inputs["tags"] == tags


def test_managed_launch_template_imdsv2_encrypted_gp3_raid0(mixed: Synthesized) -> None:
    al2023 = mixed.graph.one("aws:ec2/launchTemplate:LaunchTemplate", "gpu-batch-lt").inputs
    rocket = mixed.graph.one("aws:ec2/launchTemplate:LaunchTemplate", "gpu-rocket-lt").inputs
    assert al2023["metadataOptions"]["httpTokens"] == "required"
    assert al2023["metadataOptions"]["httpPutResponseHopLimit"] == 1
    [disk] = al2023["blockDeviceMappings"]
    assert disk["deviceName"] == "/dev/xvda"
    assert disk["ebs"]["encrypted"] == "true" and disk["ebs"]["volumeType"] == "gp3"
    assert rocket["blockDeviceMappings"][0]["deviceName"] == "/dev/xvdb"
    nodeadm = base64.b64decode(al2023["userData"]).decode()
    assert "kind: NodeConfig" in nodeadm and "strategy: RAID0" in nodeadm
    toml = base64.b64decode(rocket["userData"]).decode()
    assert '"ephemeral-storage", "init"' in toml and "essential = true" in toml


def test_managed_node_role_is_not_karpenters_and_has_no_inline_policy(mixed: Synthesized) -> None:
    graph = mixed.graph
    component = graph.one("mlstack:compute:GpuNodePool", "gpu-batch")
    children = graph.children(component.urn)
    attachments = [
        c for c in children if c.type == "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
    ]
    assert sorted(a.inputs["policyArn"].rsplit("/", 1)[1] for a in attachments) == [
        "AmazonEC2ContainerRegistryPullOnly",
        "AmazonEKSWorkerNodePolicy",
    ]
    assert not [c for c in children if c.type == "aws:iam/rolePolicy:RolePolicy"]


# --------------------------------------------------------------------------- scheduling contract


def test_scheduling_matches_rendered_taints_labels_and_gpus_for_every_pool(
    mixed: Synthesized,
) -> None:
    facts = load_gpu_instances()
    assert set(mixed.platform.gpu_pools) == {"inference", "batch", "rocket", "rocket-k"}
    for name, pool in mixed.platform.gpu_pools.items():
        scheduling = pool.scheduling()
        taints = rendered_taints(mixed.graph, name)
        labels = rendered_labels(mixed.graph, name)
        assert taints, name
        assert len(scheduling.tolerations) == len(taints), name
        assert all(tolerates(scheduling.tolerations, t) for t in taints), name
        assert scheduling.node_selector == {"mlstack.io/gpu-pool": name}
        assert scheduling.node_selector.items() <= labels.items(), name
        types = rendered_instance_types(mixed.graph, name)
        assert scheduling.gpus_per_node == max(facts[t].gpu_count for t in types), name
        assert pool.pool_name == name


def test_a_workload_for_one_pool_does_not_tolerate_another_pools_extra_taint(
    mixed: Synthesized,
) -> None:
    inference = mixed.platform.gpu_pools["inference"].scheduling()
    team_taint = {"key": "example.com/team", "value": "research", "effect": "NoExecute"}
    assert not tolerates(inference.tolerations, team_taint)


def test_empty_taint_values_get_an_exists_toleration(mixed: Synthesized) -> None:
    [toleration] = mixed.platform.gpu_pools["rocket-k"].scheduling().tolerations
    assert (toleration.key, toleration.operator, toleration.value) == (
        "example.com/dedicated",
        "Exists",
        None,
    )


def test_scheduling_is_a_frozen_value() -> None:
    scheduling = scheduling_for(
        GpuNodePoolArgs(
            pool_name="p",
            cluster_name="c",
            instance_types=("g4dn.12xlarge",),
            ami_release="v20260714",
            node_role_name="r",
            taints=(Taint("a.io/b", "c", "NoSchedule"),),
        )
    )
    assert scheduling.gpus_per_node == 4
    with pytest.raises(AttributeError):
        scheduling.gpus_per_node = 8  # type: ignore[misc]


def test_component_lists_every_bad_arg_in_one_error() -> None:
    args = GpuNodePoolArgs(
        pool_name="p",
        cluster_name="c",
        instance_types=("m5.large", "g5g.xlarge"),
        ami_release="latest",
        provisioner="managed",
        capacity_types=("spot", "on-demand"),
        min_nodes=3,
        max_nodes=1,
        root_volume_size_gib=20,
    )
    problems = args.problems()
    text = "\n".join(problems)
    for fragment in (
        "'m5.large': not a GPU type",
        "'g5g.xlarge': arm64",
        "min_nodes/max_nodes: 3/1",
        "root_volume_size_gib: 20",
        "managed takes exactly one",
        "subnet_ids: None",
        "ami_release: 'latest'",
    ):
        assert fragment in text
    with pytest.raises(ComponentArgsError, match=r"GpuNodePool 'x': invalid args") as caught:
        GpuNodePool("x", args)
    assert caught.value.problems == problems


# --------------------------------------------------------------------------- image pull


def test_bottlerocket_pools_pull_images_with_soci_parallel_pull(mixed: Synthesized) -> None:
    karpenter = mixed.graph.one(NODE_CLASS, "gpu-rocket-k-nodeclass").inputs["spec"]
    assert 'pull-mode = "parallel-pull-unpack"' in karpenter["userData"]
    assert 'snapshotter = "soci"' in karpenter["userData"]
    rocket = mixed.graph.one("aws:ec2/launchTemplate:LaunchTemplate", "gpu-rocket-lt").inputs
    toml = base64.b64decode(rocket["userData"]).decode()
    assert 'pull-mode = "parallel-pull-unpack"' in toml
    assert '"ephemeral-storage", "init"' in toml  # RAID0 still set up alongside


def test_soci_data_lives_on_the_instance_store_raid_of_managed_bottlerocket(
    mixed: Synthesized,
) -> None:
    """With SOCI, Bottlerocket keeps layers in /var/lib/soci-snapshotter: not bound to the
    RAID0, a 10-20 GiB image would be buffered and unpacked on the EBS data volume."""
    rocket = mixed.graph.one("aws:ec2/launchTemplate:LaunchTemplate", "gpu-rocket-lt").inputs
    toml = base64.b64decode(rocket["userData"]).decode()
    assert '"/var/lib/soci-snapshotter"' in toml
    # Before 1.44 there is no snapshotter and no such directory to bind.
    older = dataclasses.replace(mixed.platform.gpu_pools["rocket"].args, ami_release="v1.43.0")
    text = managed_user_data(older)
    assert text is not None
    assert "soci" not in base64.b64decode(text).decode()


def test_al2023_pools_keep_containerds_default_pull(mixed: Synthesized) -> None:
    spec = mixed.graph.one(NODE_CLASS, "gpu-inference-nodeclass").inputs["spec"]
    assert "soci" not in spec.get("userData", "")
    al2023 = mixed.graph.one("aws:ec2/launchTemplate:LaunchTemplate", "gpu-batch-lt").inputs
    assert "soci" not in base64.b64decode(al2023["userData"]).decode()


@pytest.mark.parametrize(
    ("family", "release", "expected"),
    [
        ("bottlerocket", "v1.46.0", True),
        ("bottlerocket", "1.44.0-abcdef12", True),
        ("bottlerocket", "v1.43.9", False),
        ("bottlerocket", "latest", False),
        ("al2023", "v20260714", False),
    ],
)
def test_parallel_pull_needs_bottlerocket_1_44(family: str, release: str, expected: bool) -> None:
    assert parallel_image_pull(family, release) is expected


# --------------------------------------------------------------------------- model cache disk


def test_the_model_cache_is_reserved_out_of_pods_ephemeral_storage(mixed: Synthesized) -> None:
    """Every node family: the kubelet's systemReserved covers the node-shared cache, so the
    scheduler never packs pods' scratch into the cache's disk."""
    import tomllib

    rocket_args = mixed.platform.gpu_pools["rocket"].args
    batch_args = mixed.platform.gpu_pools["batch"].args
    karpenter_args = mixed.platform.gpu_pools["inference"].args
    rocket = dataclasses.replace(rocket_args, reserved_ephemeral_gib=150)
    toml = tomllib.loads(base64.b64decode(managed_user_data(rocket) or "").decode())
    assert toml["settings"]["kubernetes"]["system-reserved"] == {"ephemeral-storage": "150Gi"}
    assert toml["settings"]["bootstrap-commands"]  # the RAID0 is still set up
    plain = dataclasses.replace(rocket, instance_store_raid0=False, ami_release="v1.43.0")
    toml = tomllib.loads(base64.b64decode(managed_user_data(plain) or "").decode())
    assert toml == {"settings": {"kubernetes": {"system-reserved": {"ephemeral-storage": "150Gi"}}}}

    batch = dataclasses.replace(batch_args, reserved_ephemeral_gib=80)
    nodeadm = base64.b64decode(managed_user_data(batch) or "").decode()
    assert "      systemReserved:\n        ephemeral-storage: 80Gi" in nodeadm
    assert (
        managed_user_data(
            dataclasses.replace(batch, reserved_ephemeral_gib=0, instance_store_raid0=False)
        )
        is None
    )

    spec = ec2_node_class_spec(dataclasses.replace(karpenter_args, reserved_ephemeral_gib=120))
    assert spec["kubelet"] == {"systemReserved": {"ephemeral-storage": "120Gi"}}
    assert karpenter_args.reserved_ephemeral_gib == 100  # the stack's default node cache
    unreserved = dataclasses.replace(karpenter_args, reserved_ephemeral_gib=0)
    assert "kubelet" not in ec2_node_class_spec(unreserved)
