"""The serving layer in the real stacks: real GPU pools, real artifact bucket, real config."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.serving import runtimes
from mlstack.render_checks import check_graph
from mlstack.synth import ResourceGraph, ResourceNode, mock_outputs, synth_config
from stacks.composition import Platform, program
from stacks.config import StackConfig
from tests.conftest import SynthEdited

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
MODELS = {"llama-3-8b-instruct": runtimes.VLLM, "resnet50": runtimes.TRITON}


def k8s_named(graph: ResourceGraph, type_: str, name: str) -> ResourceNode:
    found = [n for n in graph.by_type(type_) if n.inputs["metadata"]["name"] == name]
    assert len(found) == 1, f"{type_} {name}: {len(found)}"
    return found[0]


def forwards(graph: ResourceGraph, rule: str) -> list[tuple[str, int]]:
    """(target group resource name, weight) of a listener rule's forward action."""
    tg = "aws:lb/targetGroup:TargetGroup"
    names = {
        mock_outputs(tg, n.name, dict(n.inputs), graph.region)["arn"]: n.name
        for n in graph.by_type(tg)
    }
    (action,) = graph.one("aws:lb/listenerRule:ListenerRule", rule).inputs["actions"]
    return [(names[t["arn"]], t["weight"]) for t in action["forward"]["targetGroups"]]


def pod_spec(graph: ResourceGraph, deployment: str) -> dict[str, Any]:
    return k8s_named(graph, DEPLOYMENT, deployment).inputs["spec"]["template"]["spec"]


def test_the_whole_stack_passes_every_render_check(any_graph: ResourceGraph) -> None:
    assert [f.render() for f in check_graph(any_graph, "1.33")] == []


def test_one_inference_service_per_model(any_graph: ResourceGraph) -> None:
    components = any_graph.by_type("mlstack:serving:InferenceService")
    assert sorted(c.name for c in components) == sorted(f"model-{m}" for m in MODELS)
    assert len(any_graph.by_type("mlstack:serving:Keda")) == 1
    assert len(any_graph.by_type("mlstack:serving:LoadBalancer")) == 1


def test_model_roles_trust_exactly_their_namespace_and_service_account(
    any_graph: ResourceGraph, stack_configs: dict[str, StackConfig]
) -> None:
    cfg = stack_configs[any_graph.stack]
    for model in MODELS:
        role = any_graph.one("aws:iam/role:Role", f"model-{model}-role")
        (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        assert statement["Condition"]["StringEquals"] == {
            "aws:RequestTag/eks-cluster-name": f"mlstack-{any_graph.stack}",
            "aws:RequestTag/kubernetes-namespace": cfg.serving.namespace,
            "aws:RequestTag/kubernetes-service-account": model,
        }


def test_model_roles_read_only_their_own_models_prefix(
    any_graph: ResourceGraph, stack_configs: dict[str, StackConfig]
) -> None:
    cfg = stack_configs[any_graph.stack]
    for model in cfg.models:
        role = any_graph.one("aws:iam/role:Role", f"model-{model.name}-role")
        policies = [
            n for n in any_graph.by_type("aws:iam/rolePolicy:RolePolicy") if n.parent == role.urn
        ]
        assert len(policies) == 1
        statements = {s["Sid"]: s for s in json.loads(policies[0].inputs["policy"])["Statement"]}
        # Blobs are content-addressed and shared by the model's versions: one grant per
        # model, on models/<name>/ (never another model's prefix, never models/).
        prefix = f"models/{model.name}/"
        (objects,) = statements["ReadModelObjects"]["Resource"]
        assert objects.endswith(f"/{prefix}*")
        assert statements["ListModelPrefix"]["Condition"] == {
            "StringLike": {"s3:prefix": [f"{prefix}*"]}
        }
        for statement in statements.values():
            assert not [a for a in statement["Action"] if a.startswith("s3:Put")]


@pytest.fixture(scope="module")
def dev_platform(stack_configs: dict[str, StackConfig]) -> tuple[ResourceGraph, Platform]:
    """The dev stack synthesized with the Platform object kept (for scheduling())."""
    kept: list[Platform] = []

    def run(cfg: StackConfig, stack: str) -> object:
        kept.append(program(cfg, stack))
        return None

    graph = synth_config(stack_configs["dev"], "dev", run)
    return graph, kept[0]


def test_pods_follow_their_pools_scheduling(
    dev_platform: tuple[ResourceGraph, Platform], stack_configs: dict[str, StackConfig]
) -> None:
    graph, platform = dev_platform
    for model in stack_configs["dev"].models:
        scheduling = platform.gpu_pools[model.pool].scheduling()
        expected = [
            {
                k: v
                for k, v in {
                    "effect": t.effect,
                    "key": t.key,
                    "operator": t.operator,
                    "tolerationSeconds": t.toleration_seconds,
                    "value": t.value,
                }.items()
                if v is not None
            }
            for t in scheduling.tolerations
        ]
        spec = pod_spec(graph, model.name)
        assert spec["tolerations"] == expected
        assert spec["nodeSelector"] == scheduling.node_selector
        server = spec["containers"][0]
        assert int(server["resources"]["limits"]["nvidia.com/gpu"]) <= scheduling.gpus_per_node


def test_keda_queries_reference_the_runtime_metric(any_graph: ResourceGraph) -> None:
    for model, preset in MODELS.items():
        spec = k8s_named(any_graph, SCALED_OBJECT, model).inputs["spec"]
        prometheus = [t for t in spec["triggers"] if t["type"] == "prometheus"]
        assert len(prometheus) == 1
        assert preset.scaling.metric in prometheus[0]["metadata"]["query"]
        assert preset.scaling.metric in runtimes.exported_metrics(preset.name)


def test_prod_keeps_two_replicas_and_one_through_drains(prod_graph: ResourceGraph) -> None:
    for model in MODELS:
        assert k8s_named(prod_graph, SCALED_OBJECT, model).inputs["spec"]["minReplicaCount"] >= 2
        assert k8s_named(prod_graph, PDB, model).inputs["spec"]["minAvailable"] == 1


def test_dev_scales_to_zero_inside_a_wake_window(dev_graph: ResourceGraph) -> None:
    spec = k8s_named(dev_graph, SCALED_OBJECT, "llama-3-8b-instruct").inputs["spec"]
    assert spec["minReplicaCount"] == 0
    assert [t["type"] for t in spec["triggers"]] == ["prometheus", "cron"]


def test_exposure_per_model(any_graph: ResourceGraph) -> None:
    rule = any_graph.one("aws:lb/listenerRule:ListenerRule", "model-llama-3-8b-instruct-rule")
    (host,) = rule.inputs["conditions"][0]["hostHeader"]["values"]
    assert host.startswith("llm.") and host.endswith("ml.example.com")
    nlb = any_graph.one("aws:lb/loadBalancer:LoadBalancer", "model-resnet50-nlb").inputs
    assert nlb["loadBalancerType"] == "network"


def test_controllers_run_on_system_nodes(any_graph: ResourceGraph) -> None:
    for release in ("keda-release", "load-balancer-release"):
        values = any_graph.one("kubernetes:helm.sh/v3:Release", release).inputs["values"]
        assert values["nodeSelector"] == {"mlstack.io/node-role": "system"}


def test_canary_weights_through_the_stack(synth_edited: SynthEdited) -> None:
    graph = synth_edited(
        "prod",
        {
            "models[0].rollout": {
                "strategy": "canary",
                "canary": {"artifactVersion": "2025-06-02", "stableWeight": 80, "canaryWeight": 20},
            },
            # 4-GPU nodes may hold the LLM's stable, canary and next canary version.
            "gpuPools[0].modelCache": {"sizeGib": 130},
        },
    )
    assert forwards(graph, "model-llama-3-8b-instruct-rule") == [
        ("model-llama-3-8b-instruct-tg", 80),
        ("model-llama-3-8b-instruct-canary-tg", 20),
    ]
    init = pod_spec(graph, "llama-3-8b-instruct-canary")["initContainers"]
    (loader,) = [c for c in init if c["name"] == "model-loader"]
    command = loader["command"]
    assert command[:3] == ["mlstack", "model", "fetch"]
    assert command[command.index("--version") + 1] == "2025-06-02"
    assert [f.render() for f in check_graph(graph, "1.33")] == []


def test_blue_green_routes_through_the_stack(synth_edited: SynthEdited) -> None:
    graph = synth_edited(
        "dev",
        {
            "gpuPools[0].maxNodes": 8,  # blue and green both run: two Deployments
            "models[0].rollout": {
                "strategy": "blueGreen",
                "blueGreen": {"activeColor": "green", "green": {"artifactVersion": "2025-07-01"}},
            },
        },
    )
    assert forwards(graph, "model-llama-3-8b-instruct-rule") == [
        ("model-llama-3-8b-instruct-green-tg", 100)
    ]
    assert forwards(graph, "model-llama-3-8b-instruct-preview-rule") == [
        ("model-llama-3-8b-instruct-blue-tg", 100)
    ]


def test_keda_reads_the_monitoring_layers_prometheus(any_graph: ResourceGraph) -> None:
    url = any_graph.outputs["prometheusUrl"]
    for model in MODELS:
        (trigger,) = [
            t
            for t in k8s_named(any_graph, SCALED_OBJECT, model).inputs["spec"]["triggers"]
            if t["type"] == "prometheus"
        ]
        assert trigger["metadata"]["serverAddress"] == url


def test_monitoring_scrapes_exactly_one_service_per_track(any_graph: ResourceGraph) -> None:
    monitors = any_graph.by_type("kubernetes:monitoring.coreos.com/v1:ServiceMonitor")
    for model, preset in MODELS.items():
        (monitor,) = [
            m
            for m in monitors
            if m.inputs["spec"]["selector"]["matchLabels"].get(runtimes.MODEL_LABEL) == model
        ]
        selector = monitor.inputs["spec"]["selector"]["matchLabels"]
        (endpoint,) = monitor.inputs["spec"]["endpoints"]
        assert endpoint["port"] == preset.metrics_port_name
        assert endpoint["path"] == preset.metrics_path
        selected = [
            s.inputs["metadata"]["name"]
            for s in any_graph.by_type(SERVICE)
            if selector.items() <= s.inputs["metadata"]["labels"].items()
        ]
        assert selected == [model]  # rolling: the stable Service only (not the NLB)


def test_endpoints_are_exported(dev_graph: ResourceGraph) -> None:
    endpoints = dev_graph.outputs["inferenceEndpoints"]
    assert endpoints["llama-3-8b-instruct"]["inCluster"] == (
        "http://llama-3-8b-instruct.inference.svc:8000"
    )
    assert endpoints["llama-3-8b-instruct"]["host"] == "llm.dev.ml.example.com"
    assert endpoints["resnet50"]["exposure"] == "nlb"
    assert endpoints["resnet50"]["dnsName"].endswith(".elb.amazonaws.com")


def test_irsa_identity_through_the_stack(synth_edited: SynthEdited) -> None:
    graph = synth_edited("dev", {"serving.identity": "irsa"})
    for model in MODELS:
        role = graph.one("aws:iam/role:Role", f"model-{model}-role")
        (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        subs = [v for k, v in statement["Condition"]["StringEquals"].items() if k.endswith(":sub")]
        assert subs == [f"system:serviceaccount:inference:{model}"]
        account = k8s_named(graph, "kubernetes:core/v1:ServiceAccount", model)
        assert "eks.amazonaws.com/role-arn" in account.inputs["metadata"]["annotations"]
    assert [f.render() for f in check_graph(graph, "1.33")] == []
