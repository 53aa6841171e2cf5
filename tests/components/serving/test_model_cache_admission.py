"""The node model cache's admission policy, its CEL evaluated (cel-python) on real pods."""

from __future__ import annotations

import copy
from typing import Any

import celpy
import pytest
from celpy import celtypes
from celpy.adapter import json_to_cel

from mlstack.synth import ResourceGraph

POLICY = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
BINDING = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


class Policy:
    """The rendered policy's variable and validations, compiled with cel-python."""

    def __init__(self, spec: dict[str, Any]) -> None:
        env = celpy.Environment()
        ((variable),) = spec["variables"]
        self.variable_name = variable["name"]
        self.variable = env.program(env.compile(variable["expression"]))
        self.rules = [
            (env.program(env.compile(v["expression"])), v["message"]) for v in spec["validations"]
        ]

    def denials(self, pod_spec: dict[str, Any]) -> list[str]:
        """The messages of the rules this pod breaks (empty: admitted)."""
        obj = json_to_cel({"spec": pod_spec})
        value = self.variable.evaluate({"object": obj})
        context = {"object": obj, "variables": celtypes.MapType(
            {celtypes.StringType(self.variable_name): value}
        )}  # fmt: skip
        denied = []
        for program, message in self.rules:
            result = program.evaluate(context)
            assert isinstance(result, celtypes.BoolType), (message, result)
            if not result:
                denied.append(message)
        return denied


def policy_of(graph: ResourceGraph) -> Policy:
    (policy,) = graph.by_type(POLICY)
    return Policy(policy.inputs["spec"])


def serving_pods(graph: ResourceGraph) -> list[dict[str, Any]]:
    specs = [d.inputs["spec"]["template"]["spec"] for d in graph.by_type(DEPLOYMENT)]
    return [
        s for s in specs if any(c["name"] == "model-loader" for c in s.get("initContainers", []))
    ]


@pytest.fixture(scope="module")
def pod(dev_graph: ResourceGraph) -> dict[str, Any]:
    return serving_pods(dev_graph)[0]


def test_every_pod_the_stack_renders_is_admitted(any_graph: ResourceGraph) -> None:
    policy = policy_of(any_graph)
    pods = serving_pods(any_graph)
    assert pods
    for spec in pods:
        assert policy.denials(spec) == []


def test_a_pod_without_the_cache_is_not_concerned(dev_graph: ResourceGraph) -> None:
    plain = {"containers": [{"name": "app", "image": "busybox", "command": ["sh"]}]}
    assert policy_of(dev_graph).denials(plain) == []


def _init(spec: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [c for c in spec["initContainers"] if c["name"] == name]
    return found


def _cache_mount(container: dict[str, Any]) -> dict[str, Any]:
    (found,) = [m for m in container["volumeMounts"] if m["name"] == "model-cache"]
    return found


def _server_write(spec: dict[str, Any]) -> None:
    _cache_mount(spec["containers"][0]).pop("readOnly")


def _server_whole_cache(spec: dict[str, Any]) -> None:
    _cache_mount(spec["containers"][0]).pop("subPath")


def _foreign_init(spec: dict[str, Any]) -> None:
    spec["initContainers"].append(
        {"name": "seed", "image": "busybox", "command": ["sh", "-c", "cp /x /cache"],
         "volumeMounts": [{"name": "model-cache", "mountPath": "/cache"}]}
    )  # fmt: skip


def _other_image(spec: dict[str, Any]) -> None:
    _init(spec, "model-loader")["image"] = "docker.io/library/python:3.11"


def _other_command(spec: dict[str, Any]) -> None:
    _init(spec, "model-loader")["command"] = ["python", "-c", "open('/x','w')"]


def _extra_args(spec: dict[str, Any]) -> None:
    _init(spec, "model-loader")["args"] = ["--trust-cache"]


def _python_path(spec: dict[str, Any]) -> None:
    _init(spec, "model-loader")["env"].append({"name": "PYTHONPATH", "value": "/tmp/evil"})


def _prepare_as_fetch(spec: dict[str, Any]) -> None:
    command = _init(spec, "model-cache-prepare")["command"]
    command[2] = "fetch"  # a known subcommand, but not this step's


def _debug_container(spec: dict[str, Any]) -> None:
    spec["ephemeralContainers"] = [
        {"name": "debug", "image": "busybox",
         "volumeMounts": [{"name": "model-cache", "mountPath": "/cache", "readOnly": True}]}
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("mutate", "rule"),
    [
        (_server_write, "containers mount the node model cache read-only"),
        (_server_whole_cache, "containers mount the node model cache read-only"),
        (_foreign_init, "only mlstack's model-cache-prepare"),
        (_other_image, "only mlstack's model-cache-prepare"),
        (_other_command, "only mlstack's model-cache-prepare"),
        (_extra_args, "only mlstack's model-cache-prepare"),
        (_python_path, "only mlstack's model-cache-prepare"),
        (_prepare_as_fetch, "only mlstack's model-cache-prepare"),
        (_debug_container, "ephemeral (debug) containers"),
    ],
)
def test_a_pod_that_could_write_the_cache_otherwise_is_denied(
    dev_graph: ResourceGraph, pod: dict[str, Any], mutate: Any, rule: str
) -> None:
    spec = copy.deepcopy(pod)
    mutate(spec)
    (denied,) = policy_of(dev_graph).denials(spec)
    assert denied.startswith(rule)


def test_a_read_only_one_directory_init_mount_is_allowed(
    dev_graph: ResourceGraph, pod: dict[str, Any]
) -> None:
    spec = copy.deepcopy(pod)
    spec["initContainers"].append(
        {"name": "warm-page-cache", "image": "busybox", "command": ["cat"],
         "volumeMounts": [{"name": "model-cache", "mountPath": "/c", "subPath": "llm",
                           "readOnly": True}]}
    )  # fmt: skip
    assert policy_of(dev_graph).denials(spec) == []


def test_the_binding_denies_in_the_serving_namespace_and_guards_the_claim(
    any_graph: ResourceGraph,
) -> None:
    (policy,) = any_graph.by_type(POLICY)
    (binding,) = any_graph.by_type(BINDING)
    (claim,) = any_graph.by_type(PVC)
    spec = policy.inputs["spec"]
    assert spec["failurePolicy"] == "Fail"
    (rule,) = spec["matchConstraints"]["resourceRules"]
    assert set(rule["resources"]) == {"pods", "pods/ephemeralcontainers"}
    assert set(rule["operations"]) == {"CREATE", "UPDATE"}
    bound = binding.inputs["spec"]
    assert bound["policyName"] == policy.inputs["metadata"]["name"]
    assert bound["validationActions"] == ["Deny"]
    namespace = claim.inputs["metadata"]["namespace"]
    assert bound["matchResources"]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": namespace
    }
    assert binding.urn in claim.dependencies  # no pod mounts the claim before the policy
