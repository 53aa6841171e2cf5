"""What every Helm release of both plans installs, rendered with the pinned charts by Helm's
own engine (``tests/support/helm_render.py``; chart, version, values, release name and
namespace from the synthesized plan, at the plan's Kubernetes version), not what we pass."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import STACKS

Rendered = Callable[[str], list[Any]]
WORKLOADS = ("Deployment", "DaemonSet", "StatefulSet", "Job", "Pod")
MONITORING_CHART = "kube-prometheus-stack"
CRD_CHART = "prometheus-operator-crds"


def _release(rendered: list[Any], chart: str) -> Any:
    [release] = [r for r in rendered if r.chart == chart]
    if release.missing:
        pytest.skip(release.missing)
    return release


def _containers(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    spec = obj["spec"]
    pod = spec if obj["kind"] == "Pod" else spec["template"]["spec"]
    for key in ("initContainers", "containers"):
        for container in pod.get(key) or []:
            yield f"{obj['kind']}/{obj['metadata']['name']} {container['name']}", container


def _memory_mib(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    return float(quantity[:-2]) * units[quantity[-2:]]


@pytest.mark.parametrize("stack", STACKS)
def test_every_release_of_the_plan_renders_with_its_pinned_chart(
    stack: str, rendered_plan: Rendered
) -> None:
    rendered = rendered_plan(stack)
    assert len(rendered) >= 7
    for release in rendered:
        if release.missing:
            continue
        assert release.objects, f"{release.where()} renders nothing"
        for obj in release.objects:
            assert obj.get("apiVersion") and obj.get("metadata", {}).get("name"), (
                f"{release.where()}: {obj.get('kind')} without apiVersion or name"
            )
    missing = [r.missing for r in rendered if r.missing]
    if missing:
        pytest.skip("; ".join(missing))


@pytest.mark.parametrize("stack", STACKS)
def test_prometheus_operator_crds_are_kept_when_their_release_is_uninstalled(
    stack: str, rendered_plan: Rendered
) -> None:
    """Helm's uninstall keeps a rendered object whose ``helm.sh/resource-policy`` is ``keep``
    (helm pkg/action/uninstall.go calls ``filterManifestsToKeep``, pkg/action/resource_policy.go;
    pulumi-kubernetes' ``helmReleaseProvider.Delete`` runs that uninstall), so a delete or a
    replacement of the CRD release does not cascade-delete every monitoring object."""
    release = _release(rendered_plan(stack), CRD_CHART)
    crds = release.of_kind("CustomResourceDefinition")
    assert len(crds) == 10
    unkept = [
        c["metadata"]["name"]
        for c in crds
        if (c["metadata"].get("annotations") or {}).get("helm.sh/resource-policy") != "keep"
    ]
    assert unkept == []


@pytest.mark.parametrize("stack", STACKS)
def test_the_monitoring_release_installs_no_crds_of_its_own(
    stack: str, rendered_plan: Rendered
) -> None:
    """``crds.enabled: false`` turns off kube-prometheus-stack's crds subchart, whose
    ``crds/`` Helm would install once and never upgrade: the CRD release owns them."""
    assert (
        _release(rendered_plan(stack), MONITORING_CHART).of_kind("CustomResourceDefinition") == []
    )


@pytest.mark.parametrize("stack", STACKS)
def test_every_monitoring_container_has_requests_and_a_memory_limit(
    stack: str, rendered_plan: Rendered
) -> None:
    """Grafana and its sidecars, node-exporter (GPU nodes too), the operator and its webhook
    job, kube-state-metrics, and the Prometheus and Alertmanager custom resources: none runs
    BestEffort, none grows without bound."""
    release = _release(rendered_plan(stack), MONITORING_CHART)
    seen: list[str] = []
    problems: list[str] = []
    for obj in release.of_kind(*WORKLOADS):
        for where, container in _containers(obj):
            seen.append(where)
            resources = container.get("resources") or {}
            requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
            if not {"cpu", "memory"} <= requests.keys() or "memory" not in limits:
                problems.append(f"{where}: {resources}")
    for kind in ("Prometheus", "Alertmanager"):
        [obj] = release.of_kind(kind)
        resources = obj["spec"].get("resources") or {}
        if not (resources.get("requests") and (resources.get("limits") or {}).get("memory")):
            problems.append(f"{kind}/{obj['metadata']['name']}: {resources}")
    names = " ".join(seen)
    for expected in (
        "grafana-sc-dashboard",
        "grafana-sc-datasources",
        "node-exporter",
        "kube-state-metrics",
        "kube-prometheus-stack",
    ):
        assert expected in names, f"no {expected} container rendered: {seen}"
    assert problems == []


def test_prod_prometheus_is_sized_larger_than_dev(rendered_plan: Rendered) -> None:
    """Prod keeps 30 days for 2 replicas and scrapes more series: more memory per replica."""

    def memory(stack: str) -> float:
        [prom] = _release(rendered_plan(stack), MONITORING_CHART).of_kind("Prometheus")
        return _memory_mib(prom["spec"]["resources"]["requests"]["memory"])

    assert memory("prod") > memory("dev")


@pytest.mark.parametrize(("stack", "when_deleted"), [("dev", "Delete"), ("prod", "Retain")])
def test_monitoring_claims_go_with_the_release_in_dev_and_stay_in_prod(
    stack: str, when_deleted: str, rendered_plan: Rendered
) -> None:
    """The operator copies ``persistentVolumeClaimRetentionPolicy`` of the Prometheus and
    Alertmanager resources onto their StatefulSets (prometheus-operator
    pkg/prometheus/server/statefulset.go and pkg/alertmanager/statefulset.go,
    ``makeStatefulSetSpec``); the pinned CRDs accept the field on both kinds."""
    rendered = rendered_plan(stack)
    release = _release(rendered, MONITORING_CHART)
    crds = {c["spec"]["names"]["kind"]: c for c in _release(rendered, CRD_CHART).objects}
    for kind in ("Prometheus", "Alertmanager"):
        schema = crds[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert "persistentVolumeClaimRetentionPolicy" in schema["properties"]["spec"]["properties"]
        [obj] = release.of_kind(kind)
        policy = obj["spec"].get("persistentVolumeClaimRetentionPolicy") or {}
        assert policy.get("whenDeleted") == when_deleted, f"{stack} {kind}: {policy}"


@pytest.mark.parametrize("stack", STACKS)
def test_pod_readiness_gate_webhook_renders_fail_closed_for_model_pods_only(
    stack: str, rendered_plan: Rendered
) -> None:
    """The controller's ``mpod.elbv2.k8s.aws`` webhook (chart templates/webhook.yaml) as Helm
    renders it: ``failurePolicy: Fail`` (chart default ``Ignore``), scoped to namespaces
    labelled for gate injection and to model pods (``app.kubernetes.io/component:
    inference``), and never to the controller's own pods."""
    release = _release(rendered_plan(stack), "aws-load-balancer-controller")
    [config] = release.of_kind("MutatingWebhookConfiguration")
    [hook] = [w for w in config["webhooks"] if w["name"] == "mpod.elbv2.k8s.aws"]
    assert hook["failurePolicy"] == "Fail"
    assert hook["namespaceSelector"]["matchExpressions"] == [
        {
            "key": "elbv2.k8s.aws/pod-readiness-gate-inject",
            "operator": "In",
            "values": ["enabled"],
        }
    ]
    assert hook["objectSelector"]["matchLabels"] == {"app.kubernetes.io/component": "inference"}
    [own] = hook["objectSelector"]["matchExpressions"]
    assert (own["key"], own["operator"]) == ("app.kubernetes.io/name", "NotIn")
