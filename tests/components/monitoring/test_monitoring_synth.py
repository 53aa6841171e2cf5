"""The monitoring layer through the offline synth of the real stacks.

``with_services`` synthesizes a real stack file through the real ``composition.build``,
with ``build_monitoring`` handed three inference services the way the serving layer
will hand them over (runtime presets, SLOs, ALB target-group / load-balancer suffixes).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from components.monitoring import ServiceTarget
from components.monitoring import alert_rules as ar
from components.monitoring import dashboards as dash
from components.monitoring import metrics as m
from components.monitoring import prometheus_stack as ps
from components.versions import CHARTS
from mlstack.render_checks import check_graph, policy_problems
from mlstack.synth import REDACTED, ResourceGraph, SynthError, synth_config
from stacks import composition
from stacks.config import OFFLINE_SECRET_PLACEHOLDER, load_config_file
from tests.components.monitoring.promql import (
    cluster_exporters,
    expand_grafana,
    exported_by_runtime,
    series_names,
)

TOPIC = "aws:sns/topic:Topic"
KEY = "aws:kms/key:Key"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"
RELEASE = "kubernetes:helm.sh/v3:Release"

FAKE_SERVICES = (
    ServiceTarget(
        name="llama",
        namespace="serving",
        runtime=m.VLLM,
        p99_latency_slo_seconds=2.0,
        min_healthy=2,
        target_group_arn_suffix="targetgroup/k8s-serving-llama/0123456789abcdef",
        load_balancer_arn_suffix="app/k8s-serving/1111111111111111",
    ),
    ServiceTarget(
        name="resnet",
        namespace="vision",
        runtime=m.TRITON,
        p99_latency_slo_seconds=0.25,
        target_group_arn_suffix="targetgroup/k8s-vision-resnet/fedcba9876543210",
        load_balancer_arn_suffix="app/k8s-vision/2222222222222222",
    ),
    ServiceTarget(
        name="ranker", namespace="serving", runtime=m.CUSTOM, p99_latency_slo_seconds=0.5
    ),
)


def _synth_with(stack: str, services: tuple[ServiceTarget, ...]) -> ResourceGraph:
    original = composition.build_monitoring

    def patched(
        cfg: Any,
        prefix: str,
        provider: Any,
        cluster: Any,
        gpu: Any,
        *,
        services: Any,
        **kw: Any,
    ) -> Any:
        # Only these services' alarms: no load-balancer-level alarms (counted per service).
        kept = {k: v for k, v in kw.items() if k != "load_balancers"}
        return original(cfg, prefix, provider, cluster, gpu, services=services_to_use, **kept)

    services_to_use = services
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(composition, "build_monitoring", patched)
        return synth_config(load_config_file(stack), stack)


_SERVICE_GRAPHS: dict[str, ResourceGraph] = {}


@pytest.fixture(params=["dev", "prod"])
def with_services(request: pytest.FixtureRequest) -> Iterator[ResourceGraph]:
    stack = request.param
    if stack not in _SERVICE_GRAPHS:
        _SERVICE_GRAPHS[stack] = _synth_with(stack, FAKE_SERVICES)
    yield _SERVICE_GRAPHS[stack]


def _monitoring_nodes(graph: ResourceGraph) -> list[Any]:
    component = graph.one("mlstack:monitoring:Monitoring")
    return [n for n in graph.resources if graph.component_of(n) == component]


# --------------------------------------------------------------------------- real stacks


def test_every_stack_gets_one_monitoring_component(any_graph: ResourceGraph) -> None:
    component = any_graph.one("mlstack:monitoring:Monitoring", "monitoring")
    assert len(_monitoring_nodes(any_graph)) >= 15
    assert component.parent and component.parent.endswith(
        f"pulumi:pulumi:Stack::mlstack-{any_graph.stack}"
    )


def test_rendered_monitoring_objects_pass_every_render_check(
    any_graph: ResourceGraph, with_services: ResourceGraph
) -> None:
    for graph in (any_graph, with_services):
        assert [f.render() for f in check_graph(graph, "1.33")] == []
        kinds = {n.type for n in _monitoring_nodes(graph)}
        assert {RULE, MONITOR, CONFIGMAP, "kubernetes:core/v1:Secret"} <= kinds


def test_alert_topic_is_encrypted_with_its_own_rotating_key(any_graph: ResourceGraph) -> None:
    topic = any_graph.one(TOPIC)
    key = any_graph.one(KEY, "monitoring-topic-key")
    cluster = any_graph.one("aws:eks/cluster:Cluster").inputs["name"]
    assert topic.inputs["name"] == f"{cluster}-alerts"
    assert topic.inputs["kmsMasterKeyId"] == (
        f"arn:aws:kms:{any_graph.region}:123456789012:key/key-monitoring-topic-key"
    )
    assert key.inputs["enableKeyRotation"] is True
    assert key.urn in topic.dependencies


def test_key_and_topic_policies_resolve_to_valid_documents(any_graph: ResourceGraph) -> None:
    key_policy = json.loads(any_graph.one("aws:kms/keyPolicy:KeyPolicy").inputs["policy"])
    topic_policy = json.loads(any_graph.one("aws:sns/topicPolicy:TopicPolicy").inputs["policy"])
    assert policy_problems(key_policy) == [] and policy_problems(topic_policy) == []
    topic_arn = topic_policy["Statement"][0]["Resource"]
    assert topic_arn.endswith("-alerts") and topic_arn.startswith(f"arn:aws:sns:{any_graph.region}")


def test_stateful_monitoring_resources_are_protected_in_prod_only(
    dev_graph: ResourceGraph, prod_graph: ResourceGraph
) -> None:
    for node in (prod_graph.one(TOPIC), prod_graph.one(KEY, "monitoring-topic-key")):
        assert node.protect and node.retain_on_delete
    for node in (dev_graph.one(TOPIC), dev_graph.one(KEY, "monitoring-topic-key")):
        assert not node.protect and not node.retain_on_delete
    prod_sc = prod_graph.one("kubernetes:storage.k8s.io/v1:StorageClass")
    dev_sc = dev_graph.one("kubernetes:storage.k8s.io/v1:StorageClass")
    assert (prod_sc.inputs["reclaimPolicy"], dev_sc.inputs["reclaimPolicy"]) == ("Retain", "Delete")
    assert prod_sc.inputs["parameters"] == {"encrypted": "true", "fsType": "ext4", "type": "gp3"}


def test_subscriptions_come_from_config(
    dev_graph: ResourceGraph, prod_graph: ResourceGraph
) -> None:
    for graph, stack in ((dev_graph, "dev"), (prod_graph, "prod")):
        cfg = load_config_file(stack)
        subs = graph.by_type("aws:sns/topicSubscription:TopicSubscription")
        assert sorted((s.inputs["protocol"], s.inputs["endpoint"]) for s in subs) == sorted(
            (s.protocol, s.endpoint) for s in cfg.monitoring.subscribers
        )
        assert all(s.inputs["topic"].endswith("-alerts") for s in subs)
    assert len(prod_graph.by_type("aws:sns/topicSubscription:TopicSubscription")) >= 1


def test_chart_pin_and_per_stack_sizing_reach_the_release(
    dev_graph: ResourceGraph, prod_graph: ResourceGraph
) -> None:
    pin = CHARTS["kube-prometheus-stack"]
    sizes = {}
    for graph in (dev_graph, prod_graph):
        release = graph.one(RELEASE, "monitoring-kube-prometheus-stack")
        assert (release.inputs["chart"], release.inputs["version"]) == (pin.chart, pin.version)
        assert release.inputs["repositoryOpts"]["repo"] == pin.repository
        spec = release.inputs["values"]["prometheus"]["prometheusSpec"]
        claim = spec["storageSpec"]["volumeClaimTemplate"]["spec"]
        sizes[graph.stack] = (spec["retention"], claim["resources"]["requests"]["storage"])
    assert sizes == {"dev": ("3d", "20Gi"), "prod": ("30d", "200Gi")}


def test_alertmanager_publishes_to_the_topic_with_a_publish_only_role(
    any_graph: ResourceGraph,
) -> None:
    values = any_graph.one(RELEASE, "monitoring-kube-prometheus-stack").inputs["values"]
    sns = values["alertmanager"]["config"]["receivers"][1]["sns_configs"][0]
    topic_arn = sns["topic_arn"]
    assert topic_arn == (
        f"arn:aws:sns:{any_graph.region}:123456789012:{any_graph.one(TOPIC).inputs['name']}"
    )
    policy = json.loads(
        any_graph.one("aws:iam/rolePolicy:RolePolicy", "monitoring-alertmanager-publish").inputs[
            "policy"
        ]
    )
    assert policy_problems(policy) == []
    grants = {(tuple(s["Action"]), tuple(s["Resource"])) for s in policy["Statement"]}
    key_arn = any_graph.one(TOPIC).inputs["kmsMasterKeyId"]
    assert grants == {
        (("sns:Publish",), (topic_arn,)),
        (("kms:Decrypt", "kms:GenerateDataKey"), (key_arn,)),
    }
    association = any_graph.one(
        "aws:eks/podIdentityAssociation:PodIdentityAssociation", "monitoring-alertmanager-identity"
    )
    assert association.inputs["namespace"] == "monitoring"
    assert association.inputs["serviceAccount"] == ps.ALERTMANAGER_SERVICE_ACCOUNT
    role = any_graph.one("aws:iam/role:Role", "monitoring-alertmanager-role")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "pods.eks.amazonaws.com"}


def test_paging_severities_follow_the_stack(
    dev_graph: ResourceGraph, prod_graph: ResourceGraph
) -> None:
    def routed(graph: ResourceGraph) -> list[str]:
        routes = graph.one(RELEASE, "monitoring-kube-prometheus-stack").inputs["values"][
            "alertmanager"
        ]["config"]["route"]["routes"]
        return [r["matchers"][0] for r in routes if r["receiver"] == "sns"]

    assert routed(dev_graph) == ['severity =~ "critical"']
    assert routed(prod_graph) == ['severity =~ "critical|warning"']


def test_grafana_password_is_a_redacted_secret_never_a_plain_value(
    any_graph: ResourceGraph,
) -> None:
    secret = any_graph.one("kubernetes:core/v1:Secret", "monitoring-grafana-admin")
    assert secret.inputs["stringData"] == REDACTED
    text = json.dumps(any_graph.to_json())
    assert OFFLINE_SECRET_PLACEHOLDER not in text
    grafana = any_graph.one(RELEASE, "monitoring-kube-prometheus-stack").inputs["values"]["grafana"]
    assert grafana["admin"]["existingSecret"] == secret.inputs["metadata"]["name"]
    assert "adminPassword" not in grafana
    assert grafana["admin"] == {
        "existingSecret": "grafana-admin",
        "passwordKey": "admin-password",
        "userKey": "admin-user",
    }


def test_fleet_rules_in_the_graph_parse_and_carry_runbooks(any_graph: ResourceGraph) -> None:
    rule = any_graph.one(RULE, "monitoring-rules-fleet")
    alerts = [r for g in rule.inputs["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert {a["alert"] for a in alerts} >= {"GpuPoolSaturated", "GpuPodsPendingCapacity"}
    for group in rule.inputs["spec"]["groups"]:
        for r in group["rules"]:
            series_names(r["expr"])
    for a in alerts:
        assert a["annotations"]["runbook_url"].endswith(f"monitoring.md#{a['alert'].lower()}")


def test_dashboards_are_sidecar_configmaps_with_valid_json(any_graph: ResourceGraph) -> None:
    maps = [n for n in any_graph.by_type(CONFIGMAP) if n.name.startswith("monitoring-dashboard-")]
    assert {n.inputs["metadata"]["name"] for n in maps} == {
        "mlstack-dashboard-inference",
        "mlstack-dashboard-gpu-fleet",
        "mlstack-dashboard-gpu-hours",
    }
    for node in maps:
        assert node.inputs["metadata"]["labels"]["grafana_dashboard"] == "1"
        (payload,) = node.inputs["data"].values()
        board = json.loads(payload)
        for query in dash.queries(board):
            series_names(expand_grafana(query))


def test_dcgm_exporter_is_scraped_with_the_node_label(any_graph: ResourceGraph) -> None:
    monitor = any_graph.one(MONITOR, "monitoring-scrape-dcgm")
    dcgm = any_graph.one(RELEASE, "nvidia-dcgm-exporter")
    assert monitor.inputs["spec"]["namespaceSelector"] == {"matchNames": [dcgm.inputs["namespace"]]}
    assert dcgm.inputs["values"]["serviceMonitor"] == {"enabled": False}  # no double scrape
    endpoint = monitor.inputs["spec"]["endpoints"][0]
    assert endpoint["honorLabels"] is True
    assert endpoint["relabelings"][0]["targetLabel"] == "node"


def _namespace_and_dimensions(alarm: Any) -> tuple[str, dict[str, Any]]:
    """A plain alarm's namespace/dimensions, or those of a metric-math alarm's queries."""
    if "metricQueries" not in alarm.inputs:
        return alarm.inputs["namespace"], alarm.inputs["dimensions"]
    metrics = [q["metric"] for q in alarm.inputs["metricQueries"] if "metric" in q]
    assert len({json.dumps(m["dimensions"], sort_keys=True) for m in metrics}) == 1
    return metrics[0]["namespace"], metrics[0]["dimensions"]


def test_real_stacks_alarm_on_their_own_target_groups_from_the_first_deploy(
    any_graph: ResourceGraph,
) -> None:
    from mlstack.synth import mock_outputs

    groups = {
        mock_outputs(g.type, g.name, dict(g.inputs), "us-west-2")["arnSuffix"]
        for g in any_graph.by_type("aws:lb/targetGroup:TargetGroup")
    }
    watched = {_namespace_and_dimensions(a)[1].get("TargetGroup") for a in any_graph.by_type(ALARM)}
    assert groups and groups <= watched
    body = json.loads(any_graph.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
    assert body["widgets"][-1]["properties"]["title"] == "Alert topic delivery"
    shown = {json.dumps(m) for w in body["widgets"] for m in w["properties"].get("metrics", [])}
    for suffix in groups:
        assert any(suffix in metric for metric in shown), suffix


# --------------------------------------------------------------------------- with services


def test_alarm_dimensions_match_the_target_group_and_load_balancer_they_watch(
    with_services: ResourceGraph,
) -> None:
    alarms = with_services.by_type(ALARM)
    by_service: dict[str, list[Any]] = {}
    for alarm in alarms:
        by_service.setdefault(alarm.inputs["tags"]["service"], []).append(alarm)
    assert set(by_service) == {"llama", "resnet"}  # ranker has no ALB
    for svc in FAKE_SERVICES[:2]:
        found = by_service[svc.name]
        assert len(found) == 4
        for alarm in found:
            namespace, dimensions = _namespace_and_dimensions(alarm)
            assert namespace == "AWS/ApplicationELB"
            assert dimensions == {
                "TargetGroup": svc.target_group_arn_suffix,
                "LoadBalancer": svc.load_balancer_arn_suffix,
            }
            assert alarm.inputs["name"].startswith(with_services.one(TOPIC).inputs["name"][:-6])


def test_alarm_thresholds_use_each_services_slo_and_minimum(
    with_services: ResourceGraph,
) -> None:
    by_name = {a.name: a.inputs for a in with_services.by_type(ALARM)}
    assert by_name["monitoring-llama-p99-latency"]["extendedStatistic"] == "p99"
    assert by_name["monitoring-llama-p99-latency"]["threshold"] == 2
    assert by_name["monitoring-resnet-p99-latency"]["threshold"] == 0.25
    assert by_name["monitoring-llama-healthy-below-min"]["threshold"] == 2
    assert by_name["monitoring-resnet-healthy-below-min"]["threshold"] == 1


def test_only_paging_alarms_notify_the_topic(with_services: ResourceGraph) -> None:
    topic_arn = with_services.one(RELEASE, "monitoring-kube-prometheus-stack").inputs["values"][
        "alertmanager"
    ]["config"]["receivers"][1]["sns_configs"][0]["topic_arn"]
    paging = {"dev": {"critical"}, "prod": {"critical", "warning"}}[with_services.stack]
    for alarm in with_services.by_type(ALARM):
        expected = [topic_arn] if alarm.inputs["tags"]["severity"] in paging else []
        assert alarm.inputs.get("alarmActions", []) == expected
        assert alarm.inputs.get("okActions", []) == expected
    if with_services.stack == "dev":
        assert any(not a.inputs.get("alarmActions") for a in with_services.by_type(ALARM))


def test_service_rules_reference_only_series_their_runtime_exports(
    with_services: ResourceGraph,
) -> None:
    for svc in FAKE_SERVICES:
        node = with_services.one(RULE, f"monitoring-rules-{svc.name}")
        read = {
            name
            for group in node.inputs["spec"]["groups"]
            for rule in group["rules"]
            for name in series_names(rule["expr"])
        }
        assert read - exported_by_runtime(svc.runtime.runtime) - cluster_exporters() == set()
        for group in node.inputs["spec"]["groups"]:
            for rule in group["rules"]:
                assert rule["labels"]["service"] == svc.name
                assert rule["annotations"]["runbook_url"]


def test_each_service_gets_a_service_monitor_in_its_namespace(
    with_services: ResourceGraph,
) -> None:
    for svc in FAKE_SERVICES:
        spec = with_services.one(MONITOR, f"monitoring-scrape-{svc.name}").inputs["spec"]
        assert spec["namespaceSelector"] == {"matchNames": [svc.namespace]}
        assert spec["selector"] == {"matchLabels": {"app.kubernetes.io/name": svc.name}}


def test_cloudwatch_dashboard_has_a_row_per_alarmed_service(with_services: ResourceGraph) -> None:
    body = json.loads(
        with_services.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"]
    )
    titles = [w["properties"].get("title", "") for w in body["widgets"]]
    assert titles[0] == "Alarms"
    assert len(body["widgets"][0]["properties"]["alarms"]) == 8
    assert sum(t.startswith("llama:") for t in titles) == 3
    assert sum(t.startswith("resnet:") for t in titles) == 3
    assert not any(t.startswith("ranker:") for t in titles)


def test_inference_dashboard_lists_every_service(with_services: ResourceGraph) -> None:
    node = with_services.one(CONFIGMAP, "monitoring-dashboard-inference")
    board = json.loads(next(iter(node.inputs["data"].values())))
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert [r.split(" ")[0] for r in rows[1:]] == [s.name for s in FAKE_SERVICES]


def test_bad_service_arguments_fail_the_synth_with_every_problem_listed() -> None:
    bad = (
        ServiceTarget(
            name="Bad_Name", namespace="serving", runtime=m.VLLM, p99_latency_slo_seconds=-1
        ),
        ServiceTarget(
            name="ok",
            namespace="serving",
            runtime=m.VLLM,
            p99_latency_slo_seconds=1,
            min_healthy=-1,
            target_group_arn_suffix="targetgroup/x/1",
        ),
    )
    with pytest.raises(SynthError) as info:
        _synth_with("dev", bad)
    message = str(info.value)
    assert "services[0].name: 'Bad_Name'" in message
    assert "services[0].p99_latency_slo_seconds: -1" in message
    assert "services[1].min_healthy: -1" in message
    assert "services[1]: give both target_group_arn_suffix and load_balancer_arn_suffix" in message


def test_rule_names_match_the_alert_set_of_the_rules_module(with_services: ResourceGraph) -> None:
    names = {
        r["alert"]
        for node in with_services.by_type(RULE)
        for g in node.inputs["spec"]["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    repair = [ar.PoolRepair("inference", enabled=True)]
    fleet = ar.fleet_groups(ar.AlertThresholds(), "x", "https://x", repair)
    expected = set(ar.alert_names(fleet)) | {
        "InferenceErrorRatioHigh",
        "InferenceLatencyAboveSlo",
        "InferenceQueueSaturated",
        "InferenceReplicasAtMax",
        "ModelLoaderFailing",
    }
    assert names == expected


def test_stack_exports_the_alert_topic_and_the_prometheus_url_keda_queries(
    any_graph: ResourceGraph,
) -> None:
    assert any_graph.outputs["alertTopicArn"].endswith(":" + any_graph.one(TOPIC).inputs["name"])
    assert any_graph.outputs["prometheusUrl"] == "http://kps-prometheus.monitoring.svc:9090"
    service = (
        any_graph.one(RELEASE, "monitoring-kube-prometheus-stack").inputs["values"][
            "fullnameOverride"
        ]
        + "-prometheus"
    )
    assert f"//{service}.monitoring.svc" in any_graph.outputs["prometheusUrl"]


def test_helm_release_waits_for_the_system_nodes(any_graph: ResourceGraph) -> None:
    nodes = any_graph.one("aws:eks/nodeGroup:NodeGroup", "cluster-system-nodes")
    assert nodes.urn in any_graph.one(RELEASE, "monitoring-kube-prometheus-stack").dependencies


def test_without_gpu_pools_no_dcgm_scrape_but_monitoring_stays(synth_edited: Any) -> None:
    graph = synth_edited("dev", {"gpuPools": [], "models": []})
    assert [n.name for n in graph.by_type(MONITOR)] == []
    assert graph.one(RULE, "monitoring-rules-fleet")
    assert [f.render() for f in check_graph(graph, "1.33")] == []


def test_unset_grafana_password_is_generated_never_the_chart_default(synth_edited) -> None:
    graph = synth_edited("dev", {"monitoring.grafanaAdminPassword": None})
    [generated] = graph.by_type("random:index/randomPassword:RandomPassword")
    assert generated.name == "monitoring-grafana-password"
    assert generated.inputs["length"] >= 32
    [provider] = graph.by_type("pulumi:providers:random")
    assert provider.name == "random"
    [secret] = [
        s
        for s in graph.by_type("kubernetes:core/v1:Secret")
        if s.name == "monitoring-grafana-admin"
    ]
    assert secret.inputs["stringData"] == "[secret]"  # the whole map turns secret
    [release] = [
        r
        for r in graph.by_type("kubernetes:helm.sh/v3:Release")
        if r.name == "monitoring-kube-prometheus-stack"
    ]
    admin = release.inputs["values"]["grafana"]["admin"]
    assert admin["existingSecret"] == secret.inputs["metadata"]["name"]
    assert "adminPassword" not in release.inputs["values"]["grafana"]


def test_the_shipped_stacks_set_no_grafana_password_so_it_is_generated(any_graph) -> None:
    [generated] = any_graph.by_type("random:index/randomPassword:RandomPassword")
    assert generated.name == "monitoring-grafana-password"


def test_a_configured_grafana_password_generates_nothing(synth_edited) -> None:
    from stacks.schema.secrets import SecureValue

    chosen = {"monitoring.grafanaAdminPassword": SecureValue("set-after-stack-init")}
    graph = synth_edited("dev", chosen)
    assert graph.by_type("random:index/randomPassword:RandomPassword") == []
