"""The node-shared model cache as the stacks render it: volume, claim, pods, config rules."""

from __future__ import annotations

from typing import Any

import pytest

from components.compute.gpu_node_pool import POOL_LABEL
from components.serving.inference_service import HOLD_READY_FILE, LOADER_USER, MODEL_CACHE_DIR
from components.serving.model_cache import (
    HOST_PATH,
    NodeModelCacheArgs,
    claim_spec,
    resource_name,
    volume_spec,
)
from mlstack.synth import ResourceGraph, ResourceNode
from stacks.config import ConfigError, load_config_file, parse_config
from tests.conftest import SynthEdited, raw_stack_config, set_path

PV = "kubernetes:core/v1:PersistentVolume"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
GiB = 1024**3
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
"""Capabilities the Pod Security baseline level lets a container add (Kubernetes docs)."""


def cache_objects(graph: ResourceGraph) -> list[ResourceNode]:
    return [*graph.by_type(PV), *graph.by_type(PVC)]


def deployments(graph: ResourceGraph) -> list[ResourceNode]:
    return graph.by_type(DEPLOYMENT)


def serving_deployments(graph: ResourceGraph) -> list[ResourceNode]:
    return [
        d
        for d in deployments(graph)
        if any(
            c["name"] == "model-loader"
            for c in d.inputs["spec"]["template"]["spec"].get("initContainers", [])
        )
    ]


def pod(node: ResourceNode) -> dict[str, Any]:
    return node.inputs["spec"]["template"]["spec"]


def init(spec: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [c for c in spec["initContainers"] if c["name"] == name]
    return found


def arg(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_each_pool_with_models_gets_a_hostpath_volume_bound_to_one_claim(
    any_graph: ResourceGraph,
) -> None:
    (volume,) = any_graph.by_type(PV)
    (claim,) = any_graph.by_type(PVC)
    spec = volume.inputs["spec"]
    assert spec["hostPath"] == {"path": HOST_PATH, "type": "DirectoryOrCreate"}
    assert spec["persistentVolumeReclaimPolicy"] == "Retain"
    assert spec["storageClassName"] == "" and claim.inputs["spec"]["storageClassName"] == ""
    name = volume.inputs["metadata"]["name"]
    assert claim.inputs["metadata"]["name"] == name
    assert spec["claimRef"] == {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "namespace": claim.inputs["metadata"]["namespace"], "name": name,
    }  # fmt: skip
    assert claim.inputs["spec"]["volumeName"] == name
    (term,) = spec["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert term["matchExpressions"] == [
        {"key": POOL_LABEL, "operator": "In", "values": ["inference"]}
    ]
    assert claim.inputs["spec"]["resources"]["requests"]["storage"] == spec["capacity"]["storage"]
    assert volume.urn in claim.dependencies
    (namespace,) = [
        n
        for n in any_graph.by_type("kubernetes:core/v1:Namespace")
        if n.inputs["metadata"]["name"] == claim.inputs["metadata"]["namespace"]
    ]
    assert namespace.urn in claim.dependencies  # destroy sees the edge, not only the parent's


def test_the_name_hash_covers_exactly_the_rendered_specs(any_graph: ResourceGraph) -> None:
    """Any change to what is rendered changes the names: never a same-name replacement."""
    (volume,) = any_graph.by_type(PV)
    (claim,) = any_graph.by_type(PVC)
    name = volume.inputs["metadata"]["name"]
    args = NodeModelCacheArgs(
        pool_name="inference",
        namespace=claim.inputs["metadata"]["namespace"],
        node_label=(POOL_LABEL, "inference"),
        size_gib=100,
    )
    assert name == resource_name(args)
    assert volume.inputs["spec"] == volume_spec(args, name)
    assert claim.inputs["spec"] == claim_spec(args, name)


def test_pods_mount_the_claim_never_a_hostpath(any_graph: ResourceGraph) -> None:
    (claim,) = any_graph.by_type(PVC)
    found = serving_deployments(any_graph)
    assert found
    for deployment in found:
        volumes = {v["name"]: v for v in pod(deployment)["volumes"]}
        assert all("hostPath" not in v for v in volumes.values()), deployment.name
        claim_name = claim.inputs["metadata"]["name"]
        assert volumes["model-cache"]["persistentVolumeClaim"] == {"claimName": claim_name}
        assert claim.urn in deployment.dependencies  # destroyed before the claim


def test_the_init_sequence_prepares_holds_then_fetches_with_eviction(
    any_graph: ResourceGraph,
) -> None:
    budgets = {m.name: m.startup_budget_seconds for m in load_config_file(any_graph.stack).models}
    for deployment in serving_deployments(any_graph):
        spec = pod(deployment)
        names = [c["name"] for c in spec["initContainers"]]
        assert names == ["model-cache-prepare", "model-cache-hold", "model-loader"]
        hold = init(spec, "model-cache-hold")
        assert hold["restartPolicy"] == "Always"  # a native sidecar: lives as long as the pod
        # The kubelet starts the loader only once the version is held.
        assert hold["startupProbe"]["exec"]["command"] == ["test", "-f", HOLD_READY_FILE]
        assert hold["resources"]["limits"]["cpu"] == "100m"
        assert arg(hold["command"], "--link") == arg(
            init(spec, "model-loader")["command"], "--link"
        )
        hold_mounts = {m["name"]: m for m in hold["volumeMounts"]}
        assert hold_mounts["model"]["readOnly"] is True
        loader = init(spec, "model-loader")
        assert "restartPolicy" not in loader
        assert arg(hold["command"], "--ready-file") == HOLD_READY_FILE
        assert arg(loader["command"], "--wait-for") == HOLD_READY_FILE
        assert arg(hold["command"], "--version") == arg(loader["command"], "--version")
        assert "--evict" in loader["command"]
        budget = budgets[arg(loader["command"], "--name")]
        assert arg(loader["command"], "--room-wait-seconds") == str(min(budget // 3, 600))
        limit = int(arg(loader["command"], "--cache-limit-bytes"))
        assert limit == 100 * GiB  # gpuPools[].modelCache.sizeGib default
        mounts = {m["name"]: m["mountPath"] for m in hold["volumeMounts"]}
        assert mounts["tmp"] == "/tmp" and "tmp" in {
            m["name"] for m in loader["volumeMounts"]
        }  # the ready file crosses containers through the pod's /tmp


def test_only_the_prepare_step_runs_as_root_with_chown_alone(any_graph: ResourceGraph) -> None:
    for deployment in serving_deployments(any_graph):
        spec = pod(deployment)
        prepare = init(spec, "model-cache-prepare")
        security = prepare["securityContext"]
        assert security["runAsUser"] == 0 and security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"add": ["CHOWN"], "drop": ["ALL"]}
        assert set(security["capabilities"]["add"]) <= BASELINE_CAPABILITIES
        assert security["readOnlyRootFilesystem"] is True and security["privileged"] is False
        assert arg(prepare["command"], "--owner") == str(LOADER_USER)
        for other in (init(spec, "model-cache-hold"), init(spec, "model-loader")):
            assert other["securityContext"]["runAsNonRoot"] is True
            assert other["securityContext"]["runAsUser"] == LOADER_USER


def test_the_server_sees_only_its_models_directory_read_only(any_graph: ResourceGraph) -> None:
    for deployment in serving_deployments(any_graph):
        spec = pod(deployment)
        model = arg(init(spec, "model-loader")["command"], "--name")
        (server,) = [c for c in spec["containers"] if c["name"] == "server"]
        (mount,) = [m for m in server["volumeMounts"] if m["name"] == "model-cache"]
        # The loader's link points at <cache>/<model>/<digest>: the same path here.
        assert mount == {
            "name": "model-cache", "mountPath": f"{MODEL_CACHE_DIR}/{model}",
            "subPath": model, "readOnly": True,
        }  # fmt: skip
        assert server["resources"]["requests"]["ephemeral-storage"] == "30Gi"


def test_a_cache_change_gets_new_names_so_nothing_is_deleted_first(
    synth_edited: SynthEdited, dev_graph: ResourceGraph
) -> None:
    before = {n.inputs["metadata"]["name"] for n in cache_objects(dev_graph)}
    graph = synth_edited("dev", {"gpuPools[0].modelCache": {"sizeGib": 110}})
    after = {n.inputs["metadata"]["name"] for n in cache_objects(graph)}
    assert len(before) == len(after) == 1 and before != after
    (volume,) = graph.by_type(PV)
    assert volume.inputs["spec"]["hostPath"]["path"] == HOST_PATH  # same directory: cache kept
    (node_class,) = graph.by_type("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")
    assert node_class.inputs["spec"]["kubelet"]["systemReserved"] == {"ephemeral-storage": "110Gi"}


def test_resource_names_change_with_every_immutable_input() -> None:
    base = NodeModelCacheArgs("inference", "inference", (POOL_LABEL, "inference"), 100)
    variants = [
        NodeModelCacheArgs("other", "inference", (POOL_LABEL, "other"), 100),
        NodeModelCacheArgs("inference", "serving", (POOL_LABEL, "inference"), 100),
        NodeModelCacheArgs("inference", "inference", (POOL_LABEL, "inference"), 200),
        NodeModelCacheArgs("inference", "inference", (POOL_LABEL, "inference"), 100, "/x/y"),
    ]
    names = {resource_name(base), *(resource_name(v) for v in variants)}
    assert len(names) == 5


def test_pod_scope_keeps_the_per_pod_emptydir(synth_edited: SynthEdited) -> None:
    graph = synth_edited("dev", {"gpuPools[0].modelCache": {"scope": "pod"}})
    assert cache_objects(graph) == []
    (node_class,) = graph.by_type("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")
    assert "kubelet" not in node_class.inputs["spec"]  # nothing reserved
    for deployment in serving_deployments(graph):
        spec = pod(deployment)
        assert [c["name"] for c in spec["initContainers"]] == ["model-loader"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes["model-cache"]
        assert "--evict" not in init(spec, "model-loader")["command"]


def test_no_cache_objects_before_models_are_deployed(synth_edited: SynthEdited) -> None:
    graph = synth_edited("dev", {"serving.deployModels": False})
    assert cache_objects(graph) == []


def _problems(edits: dict[str, Any]) -> list[tuple[str, Any, str]]:
    raw = raw_stack_config("dev")
    for dotted, value in edits.items():
        set_path(raw, dotted, value)
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, "Pulumi.dev.yaml")
    return [(p.path, p.value, p.message) for p in caught.value.problems]


def test_a_model_larger_than_its_pools_cache_is_refused() -> None:
    ((path, value, message),) = _problems({"gpuPools[0].modelCache": {"sizeGib": 30}})
    assert path == "mlstack:models[0].modelDiskGib" and value == 40
    assert "node cache of 30 GiB" in message and "at most 30" in message


def test_a_cache_on_ebs_must_leave_room_for_images_and_the_eviction_headroom() -> None:
    ((path, value, message),) = _problems(
        {"gpuPools[0].instanceStoreRaid0": False, "gpuPools[0].modelCache": {"sizeGib": 100}}
    )
    assert path == "mlstack:gpuPools[0].modelCache.sizeGib" and value == 100
    # 150 GiB - 60 (images) - 30 (a pod's scratch on a 1-GPU node) - 15 (the kubelet's
    # 10 %) = 45 GiB.
    assert "150 GiB EBS volume" in message and "at most 45" in message


def test_the_versions_one_node_can_hold_at_once_must_fit_the_cache() -> None:
    """dev's pool has one GPU per node: one pod, so one version (40 GiB) at a time; on a
    4-GPU type two versions of each model fit beside each other."""
    ((path, value, message),) = _problems(
        {"gpuPools[0].instanceTypes": ["g6.12xlarge"], "gpuPools[0].modelCache": {"sizeGib": 90}}
    )
    assert path == "mlstack:gpuPools[0].modelCache.sizeGib" and value == 90
    assert "4 GPUs" in message
    assert "40 (llama-3-8b-instruct) + 40 (llama-3-8b-instruct) + 10 (resnet50)" in message
    assert "= 100 GiB" in message and "at least 100" in message
    raw = raw_stack_config("dev")
    set_path(raw, "gpuPools[0].modelCache", {"sizeGib": 41})
    assert parse_config(raw, "Pulumi.dev.yaml").gpu_pools[0].model_cache.size_gib == 41


def test_the_worst_node_is_a_knapsack_on_gpus() -> None:
    from stacks.schema.serving import worst_node_versions

    cfg = load_config_file("dev")
    llm, resnet = cfg.models
    big = llm.model_copy(update={"name": "big", "gpus": 2, "model_disk_gib": 70})
    chosen = worst_node_versions([llm, resnet, big], gpus_per_node=3)
    # 3 GPUs: big (2 GPUs, 70) + llm (1 GPU, 40) = 110 beats three 1-GPU pods (40+40+10).
    assert sorted(m.name for m in chosen) == ["big", "llama-3-8b-instruct"]
    assert worst_node_versions([llm], gpus_per_node=8) == [llm, llm]  # two versions at most


def test_a_cache_on_instance_store_is_not_bounded_by_the_ebs_volume() -> None:
    raw = raw_stack_config("dev")
    set_path(raw, "gpuPools[0].modelCache", {"sizeGib": 140})
    cfg = parse_config(raw, "Pulumi.dev.yaml")  # every allowed type has NVMe: RAID0 holds it
    assert cfg.gpu_pools[0].model_cache.size_gib == 140


def test_a_cache_bound_below_ten_gib_is_refused() -> None:
    ((path, value, message),) = _problems({"gpuPools[0].modelCache": {"sizeGib": 5}})
    assert path == "mlstack:gpuPools[0].modelCache.sizeGib" and value == 5
    assert "10" in message


def test_an_unknown_cache_scope_is_refused_naming_the_allowed_ones() -> None:
    ((path, value, message),) = _problems({"gpuPools[0].modelCache": {"scope": "cluster"}})
    assert path == "mlstack:gpuPools[0].modelCache.scope" and value == "cluster"
    assert "'node'" in message and "'pod'" in message
