"""kube-prometheus-stack values and Alertmanager routing (pure)."""

from __future__ import annotations

import re

import pytest

from components.monitoring import prometheus_stack as ps
from components.versions import CHARTS

TOPIC = "arn:aws:sns:us-west-2:123456789012:mlstack-dev-alerts"


def _values(**kw: object) -> dict:
    args = {"region": "us-west-2", "topic_arn": TOPIC, "stack_label": "mlstack-dev", **kw}
    return ps.helm_values(ps.StackValues(**args))  # type: ignore[arg-type]


def test_retention_and_gp3_storage_come_from_the_arguments() -> None:
    spec = _values(retention="3d", storage_gib=20)["prometheus"]["prometheusSpec"]
    assert spec["retention"] == "3d"
    assert spec["retentionSize"] == "17GB"
    claim = spec["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert claim["storageClassName"] == ps.STORAGE_CLASS
    assert claim["resources"]["requests"]["storage"] == "20Gi"


def test_protected_stacks_keep_prometheus_volumes_when_deleted() -> None:
    kept = _values(protect=True)["prometheus"]["prometheusSpec"]
    dropped = _values(protect=False)["prometheus"]["prometheusSpec"]
    assert kept["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    assert dropped["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete"


def test_prometheus_selects_all_monitors_and_rules_not_only_the_charts() -> None:
    spec = _values()["prometheus"]["prometheusSpec"]
    for key in (
        "serviceMonitorSelectorNilUsesHelmValues",
        "podMonitorSelectorNilUsesHelmValues",
        "ruleSelectorNilUsesHelmValues",
    ):
        assert spec[key] is False


def test_alertmanager_sends_paging_severities_to_the_topic_and_the_rest_nowhere() -> None:
    config = _values(page_severities=("critical", "warning"))["alertmanager"]["config"]
    routes = config["route"]["routes"]
    assert config["route"]["receiver"] == "null"
    assert routes[-1] == {"receiver": "sns", "matchers": ['severity =~ "critical|warning"']}
    sns = next(r for r in config["receivers"] if r["name"] == "sns")["sns_configs"][0]
    assert sns["topic_arn"] == TOPIC
    assert sns["sigv4"] == {"region": "us-west-2"}
    assert "access_key" not in sns["sigv4"]  # credentials come from Pod Identity
    assert len(sns["subject"]) < 100


def test_alertmanager_uses_the_service_account_the_pod_identity_binds() -> None:
    sa = _values()["alertmanager"]["serviceAccount"]
    assert sa == {"create": True, "name": ps.ALERTMANAGER_SERVICE_ACCOUNT}


def test_grafana_reads_the_admin_password_from_a_secret_not_values() -> None:
    grafana = _values()["grafana"]
    assert grafana["admin"]["existingSecret"] == ps.GRAFANA_SECRET
    assert "adminPassword" not in grafana
    assert "admin" not in _values(grafana_admin_secret=None)["grafana"]
    assert grafana["sidecar"]["dashboards"]["label"] == "grafana_dashboard"


def test_node_pool_label_is_allowlisted_for_kube_state_metrics() -> None:
    ksm = _values(gpu_pool_label="karpenter.sh/nodepool")["kube-state-metrics"]
    assert ksm["metricLabelsAllowlist"] == ["nodes=[karpenter.sh/nodepool]"]


def test_eks_managed_control_plane_scrapes_are_off() -> None:
    values = _values()
    for key in ("kubeEtcd", "kubeScheduler", "kubeControllerManager", "kubeProxy"):
        assert values[key] == {"enabled": False}


def test_monitoring_pods_land_on_the_given_nodes() -> None:
    values = _values(node_selector={"mlstack.io/node-role": "system"})
    for path in (
        ("prometheus", "prometheusSpec"),
        ("alertmanager", "alertmanagerSpec"),
        ("grafana",),
        ("kube-state-metrics",),
        ("prometheusOperator",),
    ):
        node: dict = values
        for key in path:
            node = node[key]
        assert node["nodeSelector"] == {"mlstack.io/node-role": "system"}


@pytest.mark.parametrize(
    ("text", "minutes"), [("12h", 720), ("3d", 4320), ("2w", 20160), ("1y", 525600)]
)
def test_retention_minutes(text: str, minutes: int) -> None:
    assert ps.retention_minutes(text) == minutes


@pytest.mark.parametrize("text", ["15", "15days", "1.5d", "-3d", "", "90m"])
def test_bad_retention_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape("<number><h|d|w|y>")):
        ps.retention_minutes(text)


def test_chart_is_pinned_and_overridable() -> None:
    pin = CHARTS["kube-prometheus-stack"]
    assert pin.version.count(".") == 2
    assert ps.chart_pin().version == pin.version
    assert ps.chart_pin("88.0.0").version == "88.0.0"
    assert ps.chart_pin("88.0.0").repository == pin.repository


RULE_GATES = {
    "etcd": "kubeEtcd",
    "kubeControllerManager": "kubeControllerManager",
    "kubeProxy": "kubeProxy",
    "kubeSchedulerAlerting": "kubeScheduler",
    "kubeSchedulerRecording": "kubeScheduler",
}
"""defaultRules.rules.<group> -> the component toggle its template also requires
(kube-prometheus-stack templates/prometheus/rules-1.14/: ``if and .Values.defaultRules.create
.Values.<component>.enabled .Values.defaultRules.rules.<group>``)."""


def test_no_default_rule_switch_is_dead() -> None:
    """Issue 12 item 16: five rules.* keys repeated what the disabled components already do."""
    values = _values()
    rules = values["defaultRules"].get("rules", {})
    dead = [k for k in rules if k in RULE_GATES and values[RULE_GATES[k]]["enabled"] is False]
    assert dead == []
    for component in set(RULE_GATES.values()):
        assert values[component]["enabled"] is False  # the rules stay off through the gate


def test_the_chart_does_not_install_its_own_crds() -> None:
    """Issue 12 item 10: crds/ is installed once and never upgraded; the CRDs come from
    the prometheus-operator-crds release instead."""
    assert _values()["crds"] == {"enabled": False}


def test_the_crd_chart_ships_the_operator_version_of_the_stack_chart() -> None:
    crds = CHARTS["prometheus-operator-crds"]
    assert (crds.chart, crds.version) == ("prometheus-operator-crds", "31.0.1")
    assert crds.repository == CHARTS["kube-prometheus-stack"].repository


def test_monitoring_objects_wait_for_the_crd_release(dev_graph) -> None:
    releases = dev_graph.by_type("kubernetes:helm.sh/v3:Release")
    crds = next(r for r in releases if r.inputs["chart"] == "prometheus-operator-crds")
    stack = next(r for r in releases if r.inputs["chart"] == "kube-prometheus-stack")
    assert crds.urn in stack.dependencies
    assert crds.inputs.get("skipCrds") is not True


def test_alertmanager_claims_follow_protect_like_prometheus() -> None:
    kept = _values(protect=True)["alertmanager"]["alertmanagerSpec"]
    dropped = _values(protect=False)["alertmanager"]["alertmanagerSpec"]
    assert kept["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    assert dropped["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete"
