"""InferenceService through the synth: identity, pods, probes, scaling, routes, rollouts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.serving import runtimes
from components.serving.namespace import loader_script_sha256
from components.validation import ComponentArgsError
from components.versions import MODEL_LOADER_IMAGE, TRITON_IMAGE, VLLM_IMAGE
from mlstack.render_checks import check_graph, check_kubernetes
from mlstack.synth import ResourceGraph, ResourceNode, SynthError
from tests.components.serving.conftest import (
    BUCKET,
    CLUSTER,
    GPU_SELECTOR,
    GPU_TOLERATIONS,
    ISSUER,
    NAMESPACE,
    OIDC_ARN,
    FakePool,
    ServiceSpec,
    synth_serving,
)

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
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
        assert (
            pod_spec(mixed_graph, model if model != "vision" else "vision-blue")[
                "serviceAccountName"
            ]
            == model
        )


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


def test_s3_read_is_granted_for_each_served_version_prefix_only(
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

    assert read_prefixes("model-llm") == [f"arn:aws:s3:::{BUCKET}/models/llm/v1/*"]
    assert read_prefixes("model-chat") == [
        f"arn:aws:s3:::{BUCKET}/models/chat/v1/*",
        f"arn:aws:s3:::{BUCKET}/models/chat/v2/*",
    ]
    assert read_prefixes("model-vision") == [
        f"arn:aws:s3:::{BUCKET}/models/vision/v3/*",
        f"arn:aws:s3:::{BUCKET}/models/vision/v4/*",
    ]


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
    for deployment in ("llm", "chat", "chat-canary", "vision-blue", "vision-green"):
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
    triton = container(pod_spec(mixed_graph, "vision-green"), "server")
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


def test_loader_fetches_the_pinned_version_and_fails_on_bad_checksums(
    mixed_graph: ResourceGraph,
) -> None:
    spec = pod_spec(mixed_graph, "chat-canary")
    loader = container(spec, "model-loader", init=True)
    env = {e["name"]: e["value"] for e in loader["env"]}
    assert loader["image"] == MODEL_LOADER_IMAGE
    assert env["MODEL_BUCKET"] == BUCKET
    assert env["MODEL_PREFIX"] == "models/chat/v2/"
    assert (env["MODEL_NAME"], env["MODEL_VERSION"]) == ("chat", "v2")
    assert env["MODEL_DIR"] == runtimes.MODEL_DIR
    assert loader["command"] == ["/bin/sh", "/opt/mlstack/load_model.sh"]
    annotations = k8s_named(mixed_graph, DEPLOYMENT, "chat-canary").inputs["spec"]["template"][
        "metadata"
    ]["annotations"]
    assert annotations["mlstack.io/loader-sha256"] == loader_script_sha256()
    assert annotations["mlstack.io/artifact-version"] == "v2"
    # The server sees the verified model read-only.
    mounts = {m["name"]: m for m in container(spec, "server")["volumeMounts"]}
    assert mounts["model"]["readOnly"] is True


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
    assert spec["terminationGracePeriodSeconds"] == pause + 60
    ingress = k8s_named(mixed_graph, INGRESS, "llm")
    assert (
        ingress.inputs["metadata"]["annotations"][
            "alb.ingress.kubernetes.io/target-group-attributes"
        ]
        == "deregistration_delay.timeout_seconds=60"
    )


def test_pods_spread_over_zones(mixed_graph: ResourceGraph) -> None:
    (constraint,) = pod_spec(mixed_graph, "llm")["topologySpreadConstraints"]
    assert constraint["topologyKey"] == "topology.kubernetes.io/zone"
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
        "vision-blue": runtimes.TRITON,
        "vision-green": runtimes.TRITON,
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


def ingress_annotations(graph: ResourceGraph, name: str) -> dict[str, str]:
    return k8s_named(graph, INGRESS, name).inputs["metadata"]["annotations"]


def backends(graph: ResourceGraph, name: str) -> list[tuple[str, str]]:
    rules = k8s_named(graph, INGRESS, name).inputs["spec"]["rules"]
    return [
        (path["backend"]["service"]["name"], path["backend"]["service"]["port"]["name"])
        for rule in rules
        for path in rule["http"]["paths"]
    ]


def test_rolling_service_routes_its_host_to_its_service(mixed_graph: ResourceGraph) -> None:
    ingress = k8s_named(mixed_graph, INGRESS, "llm").inputs
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "llm.example.com"
    assert rule["http"]["paths"][0]["path"] == "/"
    assert backends(mixed_graph, "llm") == [("llm", "http")]
    assert ingress["spec"]["ingressClassName"] == "mlstack-alb"
    a = ingress_annotations(mixed_graph, "llm")
    assert a["alb.ingress.kubernetes.io/healthcheck-path"] == runtimes.VLLM.readiness_path
    assert json.loads(a["alb.ingress.kubernetes.io/listen-ports"]) == [
        {"HTTP": 80},
        {"HTTPS": 443},
    ]


def test_canary_weights_appear_as_configured(mixed_graph: ResourceGraph) -> None:
    assert backends(mixed_graph, "chat") == [("weighted", "use-annotation")]
    action = json.loads(
        ingress_annotations(mixed_graph, "chat")["alb.ingress.kubernetes.io/actions.weighted"]
    )
    assert action["type"] == "forward"
    assert action["forwardConfig"]["targetGroups"] == [
        {"serviceName": "chat", "servicePort": "http", "weight": 90},
        {"serviceName": "chat-canary", "servicePort": "http", "weight": 10},
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
    # Preview rule first (header condition), then the main route to the active color.
    assert backends(graph, "llm") == [("preview", "use-annotation"), ("llm-blue", "http")]
    a = ingress_annotations(graph, "llm")
    preview = json.loads(a["alb.ingress.kubernetes.io/actions.preview"])
    assert preview["forwardConfig"]["targetGroups"][0]["serviceName"] == "llm-green"
    (condition,) = json.loads(a["alb.ingress.kubernetes.io/conditions.preview"])
    assert condition == {
        "field": "http-header",
        "httpHeaderConfig": {"httpHeaderName": "x-mlstack-preview", "values": ["true"]},
    }
    # In-cluster clients follow the active color.
    assert (
        k8s_named(graph, SERVICE, "llm").inputs["spec"]["selector"][runtimes.TRACK_LABEL] == "blue"
    )
    assert [f.render() for f in check_graph(graph, "1.33")] == []


def test_nlb_exposure_is_a_load_balancer_service_on_the_active_color(
    mixed_graph: ResourceGraph,
) -> None:
    nlb = k8s_named(mixed_graph, SERVICE, "vision-nlb").inputs
    assert nlb["spec"]["type"] == "LoadBalancer"
    assert nlb["spec"]["loadBalancerClass"] == "service.k8s.aws/nlb"
    assert nlb["spec"]["selector"][runtimes.TRACK_LABEL] == "green"
    assert {p["name"] for p in nlb["spec"]["ports"]} == {"http", "grpc"}
    a = nlb["metadata"]["annotations"]
    assert a["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"] == "ip"
    assert a["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internal"
    assert a["service.beta.kubernetes.io/aws-load-balancer-healthcheck-path"] == "/v2/health/ready"
    assert not [n for n in mixed_graph.by_type(INGRESS) if n.inputs["metadata"]["name"] == "vision"]


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
    ):
        assert expected in text
    assert len(cause.problems) == 4


def test_each_track_has_exactly_one_scraped_service(mixed_graph: ResourceGraph) -> None:
    key, value = runtimes.METRICS_SERVICE_LABEL
    scraped = sorted(
        n.inputs["metadata"]["name"]
        for n in mixed_graph.by_type(SERVICE)
        if n.inputs["metadata"]["labels"].get(key) == value
    )
    assert scraped == ["chat", "chat-canary", "llm", "vision-blue", "vision-green"]
    # The blue/green alias and the NLB select the same pods; they are not scraped.
    for alias in ("vision", "vision-nlb"):
        assert key not in k8s_named(mixed_graph, SERVICE, alias).inputs["metadata"]["labels"]


def test_versions_differing_only_in_punctuation_get_separate_grants() -> None:
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
    assert len({g.name for g in grants}) == 2
