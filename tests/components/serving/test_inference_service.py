"""InferenceService through the synth: identity, pods, probes, scaling, routes, rollouts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.serving import runtimes
from components.serving.inference_service import MODEL_CACHE_DIR
from components.serving.model_cache import NodeCacheMount
from components.validation import ComponentArgsError
from components.versions import TRITON_IMAGE, VLLM_IMAGE
from mlstack.render_checks import check_graph, check_kubernetes
from mlstack.synth import ResourceGraph, ResourceNode, SynthError, mock_outputs
from tests.components.serving.conftest import (
    BUCKET,
    CLUSTER,
    GPU_SELECTOR,
    GPU_TOLERATIONS,
    ISSUER,
    LOADER_IMAGE,
    NAMESPACE,
    OIDC_ARN,
    VPC_CIDR,
    FakePool,
    ServiceSpec,
    synth_serving,
)

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
RULE = "aws:lb/listenerRule:ListenerRule"
TGB = "kubernetes:elbv2.k8s.aws/v1beta1:TargetGroupBinding"
NLB = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"


def k8s_named(graph: ResourceGraph, type_: str, name: str) -> ResourceNode:
    found = [n for n in graph.by_type(type_) if n.inputs["metadata"]["name"] == name]
    assert len(found) == 1, f"{type_} {name}: {len(found)} found"
    return found[0]


def pod_spec(graph: ResourceGraph, deployment: str) -> dict[str, Any]:
    return k8s_named(graph, DEPLOYMENT, deployment).inputs["spec"]["template"]["spec"]


def container(spec: dict[str, Any], name: str, init: bool = False) -> dict[str, Any]:
    (found,) = [c for c in spec["initContainers" if init else "containers"] if c["name"] == name]
    return found


def trust(graph: ResourceGraph, component: str) -> dict[str, Any]:
    role = graph.one(ROLE, f"{component}-role")
    return json.loads(role.inputs["assumeRolePolicy"])


# --------------------------------------------------------------------------- validity


def test_every_rendered_object_passes_the_strict_checks(mixed_graph: ResourceGraph) -> None:
    assert [f.render() for f in check_graph(mixed_graph, "1.33")] == []


def test_the_strict_check_would_catch_a_bad_pod_field(mixed_graph: ResourceGraph) -> None:
    node = k8s_named(mixed_graph, DEPLOYMENT, "llm")
    broken = json.loads(json.dumps(node.inputs))
    broken["spec"]["template"]["spec"]["containers"][0]["gpuCount"] = 1
    bad = ResourceGraph(
        "t", "dev", "us-west-2", [ResourceNode(**{**node.__dict__, "inputs": broken})]
    )
    findings = list(check_kubernetes(bad, "1.33"))
    assert len(findings) == 1 and "gpuCount" in findings[0].message


# --------------------------------------------------------------------------- identity


def test_pod_identity_trust_names_exactly_the_namespace_and_service_account(
    mixed_graph: ResourceGraph,
) -> None:
    for model in ("llm", "chat", "vision"):
        (statement,) = trust(mixed_graph, f"model-{model}")["Statement"]
        assert statement["Principal"] == {"Service": "pods.eks.amazonaws.com"}
        assert statement["Condition"] == {
            "StringEquals": {
                "aws:RequestTag/eks-cluster-name": CLUSTER,
                "aws:RequestTag/kubernetes-namespace": NAMESPACE,
                "aws:RequestTag/kubernetes-service-account": model,
            }
        }
        association = mixed_graph.one(
            "aws:eks/podIdentityAssociation:PodIdentityAssociation", f"model-{model}-pod-identity"
        )
        assert association.inputs["namespace"] == NAMESPACE
        assert association.inputs["serviceAccount"] == model
        sa = k8s_named(mixed_graph, "kubernetes:core/v1:ServiceAccount", model)
        assert sa.inputs["metadata"]["namespace"] == NAMESPACE
        assert pod_spec(mixed_graph, model)["serviceAccountName"] == model


def test_irsa_trust_names_exactly_the_namespace_and_service_account() -> None:
    graph = synth_serving([ServiceSpec(model="llm")], identity_mode="irsa")
    (statement,) = trust(graph, "model-llm")["Statement"]
    issuer = ISSUER.removeprefix("https://")
    assert statement["Principal"] == {"Federated": OIDC_ARN}
    assert statement["Condition"]["StringEquals"] == {
        f"{issuer}:aud": "sts.amazonaws.com",
        f"{issuer}:sub": f"system:serviceaccount:{NAMESPACE}:llm",
    }
    sa = k8s_named(graph, "kubernetes:core/v1:ServiceAccount", "llm")
    assert sa.inputs["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(
        "model-llm-role"
    )
    assert not graph.by_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")


def test_s3_read_is_granted_for_the_models_own_prefix_only(
    mixed_graph: ResourceGraph,
) -> None:
    def read_prefixes(component: str) -> list[str]:
        role = mixed_graph.one(ROLE, f"{component}-role")
        policies = [p for p in mixed_graph.by_type(ROLE_POLICY) if p.parent == role.urn]
        return sorted(
            resource
            for p in policies
            for statement in json.loads(p.inputs["policy"])["Statement"]
            for resource in statement["Resource"]
        )

    # Blobs are content-addressed and shared by a model's versions: one grant per model.
    assert read_prefixes("model-llm") == [f"arn:aws:s3:::{BUCKET}/models/llm/*"]
    assert read_prefixes("model-chat") == [f"arn:aws:s3:::{BUCKET}/models/chat/*"]
    assert read_prefixes("model-vision") == [f"arn:aws:s3:::{BUCKET}/models/vision/*"]


# --------------------------------------------------------------------------- pods


def test_pods_land_on_their_pool_with_its_tolerations_and_selector(
    mixed_graph: ResourceGraph,
) -> None:
    expected = [
        {
            k: v
            for k, v in {
                "effect": t.effect,
                "key": t.key,
                "operator": t.operator,
                "value": t.value,
                "tolerationSeconds": t.toleration_seconds,
            }.items()
            if v is not None
        }
        for t in GPU_TOLERATIONS
    ]
    assert len(expected) == len(GPU_TOLERATIONS)
    for deployment in ("llm", "chat", "chat-canary", "vision"):
        spec = pod_spec(mixed_graph, deployment)
        assert spec["tolerations"] == expected
        assert spec["nodeSelector"] == GPU_SELECTOR


def test_server_requests_equal_limits_with_gpus(mixed_graph: ResourceGraph) -> None:
    server = container(pod_spec(mixed_graph, "llm"), "server")
    assert server["resources"]["requests"] == server["resources"]["limits"]
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert server["resources"]["limits"]["cpu"] == "6"
    assert server["resources"]["limits"]["memory"] == "48Gi"
    loader = container(pod_spec(mixed_graph, "llm"), "model-loader", init=True)
    assert loader["resources"]["requests"] == loader["resources"]["limits"]


def test_runtime_preset_sets_image_command_ports_and_probes(mixed_graph: ResourceGraph) -> None:
    vllm = container(pod_spec(mixed_graph, "llm"), "server")
    assert vllm["image"] == VLLM_IMAGE
    assert vllm["command"] == ["vllm", "serve"]
    assert vllm["args"][vllm["args"].index("--served-model-name") + 1] == "llm"
    assert [p["containerPort"] for p in vllm["ports"]] == [8000]
    assert vllm["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    triton = container(pod_spec(mixed_graph, "vision"), "server")
    assert triton["image"] == TRITON_IMAGE
    assert {p["name"]: p["containerPort"] for p in triton["ports"]} == {
        "http": 8000,
        "grpc": 8001,
        "metrics": 8002,
    }
    assert triton["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert triton["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"


def test_startup_probe_is_sized_for_model_load() -> None:
    graph = synth_serving([ServiceSpec(overrides={"startup_budget_seconds": 2400})])
    probe = container(pod_spec(graph, "llm"), "server")["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 2400
    deployment = k8s_named(graph, DEPLOYMENT, "llm")
    timeout = int(deployment.inputs["metadata"]["annotations"]["pulumi.com/timeoutSeconds"])
    assert timeout >= 2400
    assert deployment.inputs["spec"]["progressDeadlineSeconds"] >= 2400


@pytest.mark.parametrize(
    ("budget", "min_replicas", "max_surge", "rollout_timeout", "scale_up_period"),
    [
        (600, 1, 1, 600 + 300, 600),
        (600, 4, 1, 4 * 600 + 300, 600),
        (600, 4, 2, 2 * 600 + 300, 600),
        (2400, 1, 1, 2400 + 300, 1800),
    ],
)
def test_waits_and_scale_up_pace_derive_from_the_startup_budget(
    budget: int, min_replicas: int, max_surge: int, rollout_timeout: int, scale_up_period: int
) -> None:
    overrides = {
        "startup_budget_seconds": budget,
        "min_replicas": min_replicas,
        "max_replicas": 8,
        "max_surge": max_surge,
    }
    graph = synth_serving([ServiceSpec(overrides=overrides)])
    deployment = k8s_named(graph, DEPLOYMENT, "llm")
    annotations = deployment.inputs["metadata"]["annotations"]
    assert int(annotations["pulumi.com/timeoutSeconds"]) == rollout_timeout
    assert deployment.inputs["spec"]["progressDeadlineSeconds"] == budget + 300
    probe = container(pod_spec(graph, "llm"), "server")["startupProbe"]
    assert probe["failureThreshold"] * probe["periodSeconds"] >= budget
    scaler = k8s_named(graph, SCALED_OBJECT, "llm")
    scale_up = scaler.inputs["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"][
        "scaleUp"
    ]
    assert {p["periodSeconds"] for p in scale_up["policies"]} == {scale_up_period}


def test_loader_fetches_the_pinned_version_into_the_cache_and_links_it(
    mixed_graph: ResourceGraph,
) -> None:
    spec = pod_spec(mixed_graph, "chat-canary")
    loader = container(spec, "model-loader", init=True)
    env = {e["name"]: e["value"] for e in loader["env"]}
    assert loader["image"] == LOADER_IMAGE
    assert env["MLSTACK_MODEL_BUCKET"] == BUCKET
    assert loader["command"] == [
        "mlstack", "model", "fetch", "--name", "chat", "--version", "v2",
        "--region", "us-west-2", "--cache-dir", MODEL_CACHE_DIR, "--link", runtimes.MODEL_DIR,
    ]  # fmt: skip
    annotations = k8s_named(mixed_graph, DEPLOYMENT, "chat-canary").inputs["spec"]["template"][
        "metadata"
    ]["annotations"]
    assert annotations["mlstack.io/artifact-version"] == "v2"
    loader_mounts = {m["name"]: m for m in loader["volumeMounts"]}
    assert loader_mounts["model-cache"]["mountPath"] == MODEL_CACHE_DIR
    assert not loader_mounts["model-cache"].get("readOnly")
    # The server sees the verified model read-only, at the same cache path the link names.
    mounts = {m["name"]: m for m in container(spec, "server")["volumeMounts"]}
    assert mounts["model"]["readOnly"] is True
    assert mounts["model-cache"] == {
        "name": "model-cache", "mountPath": MODEL_CACHE_DIR, "readOnly": True,
    }  # fmt: skip
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["model-cache"]["emptyDir"]["sizeLimit"].endswith("Gi")
    assert "loader" not in volumes  # no script ConfigMap any more


def test_a_node_cache_mount_replaces_the_per_pod_emptydir() -> None:
    """The pool's claim (``NodeModelCache.mount``) behind the cache dir, bounded."""
    mount = NodeCacheMount(claim_name="pool-cache", limit_bytes=200 * 1024**3)
    graph = synth_serving([ServiceSpec(overrides={"node_cache": mount})])
    spec = pod_spec(graph, "llm")
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["model-cache"] == {
        "name": "model-cache", "persistentVolumeClaim": {"claimName": "pool-cache"},
    }  # fmt: skip
    loader = container(spec, "model-loader", init=True)
    command = loader["command"]
    assert command[command.index("--cache-limit-bytes") + 1] == str(200 * 1024**3)


def test_a_node_cache_smaller_than_the_model_disk_is_refused() -> None:
    mount = NodeCacheMount(claim_name="pool-cache", limit_bytes=10 * 1024**3)
    with pytest.raises(SynthError, match="could never fit"):
        synth_serving([ServiceSpec(overrides={"node_cache": mount, "model_disk_gib": 40})])


def test_shared_memory_is_memory_backed(mixed_graph: ResourceGraph) -> None:
    volumes = {v["name"]: v for v in pod_spec(mixed_graph, "llm")["volumes"]}
    assert volumes["shm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}
    mounts = {
        m["name"]: m["mountPath"]
        for m in container(pod_spec(mixed_graph, "llm"), "server")["volumeMounts"]
    }
    assert mounts["shm"] == "/dev/shm"


def test_draining_pre_stop_and_grace_period(mixed_graph: ResourceGraph) -> None:
    spec = pod_spec(mixed_graph, "llm")
    server = container(spec, "server")
    pause = server["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pause > 0
    # preStop pause, the server's own 60 s drain (--shutdown-timeout), 5 s to exit.
    assert spec["terminationGracePeriodSeconds"] == pause + 60 + 5
    assert server["args"][-1] == "--shutdown-timeout=60"
    group = mixed_graph.one(TARGET_GROUP, "model-llm-tg").inputs
    assert group["deregistrationDelay"] == 60


def test_pods_spread_over_zones(mixed_graph: ResourceGraph) -> None:
    (constraint,) = [
        c
        for c in pod_spec(mixed_graph, "llm")["topologySpreadConstraints"]
        if c["topologyKey"] == "topology.kubernetes.io/zone"
    ]
    assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"
    assert constraint["labelSelector"]["matchLabels"] == {
        runtimes.MODEL_LABEL: "llm",
        runtimes.TRACK_LABEL: "stable",
    }


def test_security_context_is_restricted(mixed_graph: ResourceGraph) -> None:
    spec = pod_spec(mixed_graph, "llm")
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False
    for c in [*spec["containers"], *spec["initContainers"]]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["privileged"] is False
    assert container(spec, "model-loader", init=True)["securityContext"]["readOnlyRootFilesystem"]


def test_a_root_custom_runtime_drops_run_as_non_root_only_for_the_server() -> None:
    custom = runtimes.custom_runtime(
        port=8080,
        liveness_path="/healthz",
        readiness_path="/ready",
        metrics_path="/metrics",
        metrics_port=None,
        queue_metric="app_waiting",
        queue_target=4,
        run_as_non_root=False,
    )
    graph = synth_serving([ServiceSpec(model="app", runtime=custom)])
    spec = pod_spec(graph, "app")
    assert "runAsNonRoot" not in spec["securityContext"]
    assert "runAsNonRoot" not in container(spec, "server")["securityContext"]
    assert container(spec, "model-loader", init=True)["securityContext"]["runAsNonRoot"] is True
    assert [f.render() for f in check_graph(graph, "1.33")] == []


def test_pdb_keeps_one_replica_when_asked(mixed_graph: ResourceGraph) -> None:
    pdb = k8s_named(mixed_graph, PDB, "llm").inputs["spec"]
    assert pdb["minAvailable"] == 1
    assert "maxUnavailable" not in pdb
    dev = synth_serving([ServiceSpec(overrides={"pdb_min_available": None})])
    assert k8s_named(dev, PDB, "llm").inputs["spec"]["maxUnavailable"] == 1


# --------------------------------------------------------------------------- scaling


def test_keda_scales_each_deployment_on_the_preset_metric(mixed_graph: ResourceGraph) -> None:
    cases = {
        "llm": runtimes.VLLM,
        "chat": runtimes.VLLM,
        "chat-canary": runtimes.VLLM,
        "vision": runtimes.TRITON,
    }
    for workload, preset in cases.items():
        spec = k8s_named(mixed_graph, SCALED_OBJECT, workload).inputs["spec"]
        assert spec["scaleTargetRef"]["name"] == workload
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "prometheus"
        query = trigger["metadata"]["query"]
        assert preset.scaling.metric in query
        assert f'pod=~"{runtimes.pod_name_regex(workload)}"' in query
        assert trigger["metricType"] == preset.scaling.metric_type
        assert trigger["metadata"]["threshold"] == f"{preset.scaling.default_target:g}"
        assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 6)
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300
        assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0


def test_deployments_leave_replicas_to_the_autoscaler(mixed_graph: ResourceGraph) -> None:
    for node in mixed_graph.by_type(DEPLOYMENT):
        assert "replicas" not in node.inputs["spec"]


def test_scale_to_zero_wakes_on_a_schedule() -> None:
    from components.serving.inference_service import WakeSchedule

    graph = synth_serving(
        [
            ServiceSpec(
                overrides={
                    "min_replicas": 0,
                    "max_replicas": 1,
                    "scale_target": 2,
                    "wake_schedule": WakeSchedule("Europe/Berlin", "0 8 * * 1-5", "0 19 * * 1-5"),
                }
            )
        ]
    )
    spec = k8s_named(graph, SCALED_OBJECT, "llm").inputs["spec"]
    assert spec["minReplicaCount"] == 0
    queue, wake = spec["triggers"]
    assert queue["metadata"]["threshold"] == "2"
    assert wake == {
        "type": "cron",
        "name": "wake",
        "metadata": {
            "timezone": "Europe/Berlin",
            "start": "0 8 * * 1-5",
            "end": "0 19 * * 1-5",
            "desiredReplicas": "1",
        },
    }


# --------------------------------------------------------------------------- routes


def group_names(graph: ResourceGraph) -> dict[str, str]:
    """Target group ARN (as the offline synth answers it) -> its resource name."""
    return {
        mock_outputs(TARGET_GROUP, n.name, dict(n.inputs), "us-west-2")["arn"]: n.name
        for n in graph.by_type(TARGET_GROUP)
    }


def forwards(graph: ResourceGraph, rule: str) -> list[tuple[str, int]]:
    """(target group resource name, weight) of a listener rule's forward action."""
    names = group_names(graph)
    (action,) = graph.one(RULE, rule).inputs["actions"]
    assert action["type"] == "forward"
    return [(names[t["arn"]], t["weight"]) for t in action["forward"]["targetGroups"]]


def conditions(graph: ResourceGraph, rule: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for condition in graph.one(RULE, rule).inputs["conditions"]:
        found |= condition
    return found


def test_rolling_service_routes_its_host_to_its_target_group(mixed_graph: ResourceGraph) -> None:
    assert forwards(mixed_graph, "model-llm-rule") == [("model-llm-tg", 100)]
    assert conditions(mixed_graph, "model-llm-rule") == {
        "hostHeader": {"values": ["llm.example.com"]}
    }
    rule = mixed_graph.one(RULE, "model-llm-rule").inputs
    from components.serving.rollout import derived_rule_slot

    assert rule["priority"] == 2 * derived_rule_slot("llm")
    group = mixed_graph.one(TARGET_GROUP, "model-llm-tg").inputs
    assert (group["targetType"], group["port"], group["protocol"]) == ("ip", 8000, "HTTP")
    assert group["healthCheck"]["path"] == runtimes.VLLM.readiness_path
    assert group["healthCheck"]["port"] == "traffic-port"
    assert "slowStart" not in group  # off unless the serving layer asks (vLLM: 60 s)
    assert group["tags"]["elbv2.k8s.aws/cluster"] == CLUSTER


def test_canary_weights_are_one_weighted_forward(mixed_graph: ResourceGraph) -> None:
    assert forwards(mixed_graph, "model-chat-rule") == [
        ("model-chat-tg", 90),
        ("model-chat-canary-tg", 10),
    ]
    # Two Services (= two target groups), each selecting its own track.
    assert k8s_named(mixed_graph, SERVICE, "chat").inputs["spec"]["selector"] == {
        runtimes.MODEL_LABEL: "chat",
        runtimes.TRACK_LABEL: "stable",
    }
    assert (
        k8s_named(mixed_graph, SERVICE, "chat-canary").inputs["spec"]["selector"][
            runtimes.TRACK_LABEL
        ]
        == "canary"
    )


def test_each_target_group_has_a_binding_to_its_tracks_service(mixed_graph: ResourceGraph) -> None:
    names = group_names(mixed_graph)
    bindings = {b.inputs["metadata"]["name"]: b.inputs["spec"] for b in mixed_graph.by_type(TGB)}
    assert sorted(bindings) == [
        "chat",
        "chat-canary",
        "llm",
        "vision",
        "vision-grpc",
    ]
    assert names[bindings["chat-canary"]["targetGroupARN"]] == "model-chat-canary-tg"
    assert bindings["chat-canary"]["serviceRef"] == {"name": "chat-canary", "port": "http"}
    assert bindings["vision-grpc"]["serviceRef"] == {"name": "vision", "port": "grpc"}
    assert {b["targetType"] for b in bindings.values()} == {"ip"}
    assert all("networking" not in b for b in bindings.values())


def test_bindings_wait_for_the_controller_their_group_and_service(
    mixed_graph: ResourceGraph,
) -> None:
    release = mixed_graph.one("kubernetes:helm.sh/v3:Release", "load-balancer-release")
    group = mixed_graph.one(TARGET_GROUP, "model-chat-canary-tg")
    service = k8s_named(mixed_graph, SERVICE, "chat-canary")
    binding = mixed_graph.one(TGB, "model-chat-canary-tgb")
    assert {release.urn, group.urn, service.urn} <= set(binding.dependencies)


def test_blue_green_routes_active_and_previews_idle_color() -> None:
    graph = synth_serving(
        [
            ServiceSpec(
                model="llm",
                strategy="blueGreen",
                versions={"blue": "v1", "green": "v2"},
                overrides={"active_color": "blue"},
            )
        ]
    )
    assert forwards(graph, "model-llm-rule") == [("model-llm-blue-tg", 100)]
    assert forwards(graph, "model-llm-preview-rule") == [("model-llm-green-tg", 100)]
    main = graph.one(RULE, "model-llm-rule").inputs
    preview = graph.one(RULE, "model-llm-preview-rule").inputs
    assert preview["priority"] == main["priority"] - 1  # evaluated first
    assert conditions(graph, "model-llm-preview-rule") == {
        "hostHeader": {"values": ["llm.example.com"]},
        "httpHeader": {"httpHeaderName": "x-mlstack-preview", "values": ["true"]},
        "sourceIp": {"values": [VPC_CIDR]},
    }
    # The blue/green alias selects the same pods as the active color; it is not scraped.
    key, _ = runtimes.METRICS_SERVICE_LABEL
    assert key not in k8s_named(graph, SERVICE, "llm").inputs["metadata"]["labels"]
    # In-cluster clients follow the active color.
    assert (
        k8s_named(graph, SERVICE, "llm").inputs["spec"]["selector"][runtimes.TRACK_LABEL] == "blue"
    )
    assert [f.render() for f in check_graph(graph, "1.33")] == []


def test_nlb_exposure_is_its_own_nlb_forwarding_to_the_active_color(
    mixed_graph: ResourceGraph,
) -> None:
    nlb = mixed_graph.one(NLB, "model-vision-nlb").inputs
    assert nlb["loadBalancerType"] == "network"
    assert nlb["internal"] is True
    assert nlb["enableCrossZoneLoadBalancing"] is True
    assert len(nlb["securityGroups"]) == 1
    names = group_names(mixed_graph)
    listeners = {
        n.name: n.inputs
        for n in mixed_graph.by_type(LISTENER)
        if n.name.startswith("model-vision-nlb")
    }
    assert sorted(listeners) == ["model-vision-nlb-grpc", "model-vision-nlb-http"]
    grpc = listeners["model-vision-nlb-grpc"]
    assert grpc["port"] == 8001
    assert names[grpc["defaultActions"][0]["targetGroupArn"]] == "model-vision-tg-grpc"
    # The frontend's certificate turns the listeners into TLS with the TLS 1.2+ policy.
    assert grpc["protocol"] == "TLS" and grpc["alpnPolicy"] == "HTTP2Preferred"
    group = mixed_graph.one(TARGET_GROUP, "model-vision-tg-grpc").inputs
    assert (group["protocol"], group["port"]) == ("TCP", 8001)
    assert group["healthCheck"]["path"] == "/v2/health/ready"
    assert group["healthCheck"]["port"] == "8000"
    assert not mixed_graph.by_type(INGRESS)
    assert not [
        n for n in mixed_graph.by_type(SERVICE) if n.inputs["spec"].get("type") == "LoadBalancer"
    ]


def test_switching_rolling_to_canary_keeps_the_stable_resources() -> None:
    rolling = synth_serving([ServiceSpec()])
    canary = synth_serving(
        [
            ServiceSpec(
                strategy="canary",
                versions={"stable": "v1", "canary": "v2"},
                overrides={"canary_weight": 5},
            )
        ]
    )
    urns = {n.urn for n in canary.resources}
    for type_ in (DEPLOYMENT, SERVICE, SCALED_OBJECT, PDB):
        for node in rolling.by_type(type_):
            assert node.urn in urns, f"{node.urn} would be replaced"


# --------------------------------------------------------------------------- bad args


def test_more_gpus_than_the_pool_has_is_rejected() -> None:
    with pytest.raises(SynthError) as info:
        synth_serving([ServiceSpec(pool=FakePool(gpus=1), overrides={"gpus": 2})])
    cause = info.value.__cause__
    assert isinstance(cause, ComponentArgsError)
    assert cause.problems == ["gpus: 2: pool 'inference' nodes have 1 GPUs; allowed 1..1"]


def test_every_bad_arg_is_reported_at_once() -> None:
    with pytest.raises(SynthError) as info:
        synth_serving(
            [
                ServiceSpec(
                    strategy="canary",
                    versions={"stable": "v1", "canary": "v2"},
                    overrides={
                        "min_replicas": 3,
                        "max_replicas": 2,
                        "canary_weight": 120,
                        "exposure": "nlb",
                        "max_surge": 0,
                    },
                )
            ]
        )
    cause = info.value.__cause__
    assert isinstance(cause, ComponentArgsError)
    text = "\n".join(cause.problems)
    for expected in (
        "min/max replicas: 3/2",
        "canary_weight: 120",
        "canary weights need alb",
        "max_surge/max_unavailable: 0/0",
        "host: 'llm.example.com': only alb exposure routes by host",
    ):
        assert expected in text
    assert len(cause.problems) == 5


def test_each_track_has_exactly_one_scraped_service(mixed_graph: ResourceGraph) -> None:
    key, value = runtimes.METRICS_SERVICE_LABEL
    scraped = sorted(
        n.inputs["metadata"]["name"]
        for n in mixed_graph.by_type(SERVICE)
        if n.inputs["metadata"]["labels"].get(key) == value
    )
    assert scraped == ["chat", "chat-canary", "llm", "vision"]


def test_two_tracks_of_one_model_share_one_read_grant() -> None:
    graph = synth_serving(
        [
            ServiceSpec(
                strategy="canary",
                versions={"stable": "v1.0", "canary": "v1_0"},
                overrides={"canary_weight": 5},
            )
        ]
    )
    role = graph.one(ROLE, "model-llm-role")
    grants = [p for p in graph.by_type(ROLE_POLICY) if p.parent == role.urn]
    assert [g.name for g in grants] == ["model-llm-read-model"]
