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
    """Whatever it carries: init containers without mounts, a debug container, a shared
    process namespace (no rule may fail, or error, on a field the pod leaves out)."""
    plain = {
        "shareProcessNamespace": True,
        "initContainers": [{"name": "setup", "image": "busybox", "command": ["true"]}],
        "containers": [{"name": "app", "image": "busybox", "command": ["sh"]}],
        "ephemeralContainers": [{"name": "debug", "image": "busybox"}],
    }
    assert policy_of(dev_graph).denials(plain) == []
    assert policy_of(dev_graph).denials({"containers": [{"name": "app", "image": "x"}]}) == []


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
        {"name": "debug", "image": "busybox", "targetContainerName": "model-cache-hold"}
    ]  # no mount: /proc/<pid>/root of the hold is enough


def _shared_processes(spec: dict[str, Any]) -> None:
    spec["shareProcessNamespace"] = True


def _probe_on_hold(spec: dict[str, Any]) -> None:
    _init(spec, "model-cache-hold")["livenessProbe"] = {"exec": {"command": ["sh", "-c", "x"]}}


def _hook_on_hold(spec: dict[str, Any]) -> None:
    _init(spec, "model-cache-hold")["lifecycle"] = {"postStart": {"exec": {"command": ["sh"]}}}


def _other_startup_probe(spec: dict[str, Any]) -> None:
    _init(spec, "model-cache-hold")["startupProbe"]["exec"]["command"] = ["sh", "-c", "evil"]


def _env_from(spec: dict[str, Any]) -> None:
    _init(spec, "model-loader")["envFrom"] = [{"configMapRef": {"name": "evil"}}]


def _path_env(spec: dict[str, Any]) -> None:
    _init(spec, "model-loader")["env"].append({"name": "PATH", "value": "/tmp/evil:/usr/bin"})


def _aws_config(spec: dict[str, Any]) -> None:  # credential_process runs any command
    _init(spec, "model-loader")["env"].append({"name": "AWS_CONFIG_FILE", "value": "/tmp/c"})


def _mount_over_the_loader(spec: dict[str, Any]) -> None:
    _init(spec, "model-loader")["volumeMounts"].append(
        {"name": "tmp", "mountPath": "/opt/loader/lib/python3.11/site-packages/evil"}
    )


def _loader_as_root(spec: dict[str, Any]) -> None:
    _init(spec, "model-loader")["securityContext"]["runAsUser"] = 0


def _more_capabilities(spec: dict[str, Any]) -> None:
    _init(spec, "model-cache-prepare")["securityContext"]["capabilities"]["add"] = [
        "CHOWN", "DAC_OVERRIDE",
    ]  # fmt: skip


def _other_tag(spec: dict[str, Any]) -> None:
    loader = _init(spec, "model-loader")
    loader["image"] = loader["image"].rsplit(":", 1)[0] + ":pushed-by-someone"


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
        (_probe_on_hold, "only mlstack's model-cache-prepare"),
        (_hook_on_hold, "only mlstack's model-cache-prepare"),
        (_other_startup_probe, "only mlstack's model-cache-prepare"),
        (_env_from, "only mlstack's model-cache-prepare"),
        (_path_env, "only mlstack's model-cache-prepare"),
        (_aws_config, "only mlstack's model-cache-prepare"),
        (_mount_over_the_loader, "only mlstack's model-cache-prepare"),
        (_loader_as_root, "only mlstack's model-cache-prepare"),
        (_more_capabilities, "only mlstack's model-cache-prepare"),
        (_other_tag, "only mlstack's model-cache-prepare"),
        (_debug_container, "no ephemeral (debug) container"),
        (_shared_processes, "a pod that mounts the node model cache may not share"),
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
