"""Keda: one pinned Helm release on the system nodes; ScaledObjects pass the CRD schema."""

from __future__ import annotations

import pytest

from components.serving.keda import KedaArgs
from components.versions import KEDA_CHART
from mlstack.custom_resources import SchemaStore
from mlstack.synth import ResourceGraph
from tests.components.serving.conftest import ServiceSpec, synth_serving

RELEASE = "kubernetes:helm.sh/v3:Release"


@pytest.fixture(scope="module")
def graph() -> ResourceGraph:
    return synth_serving([ServiceSpec(model="a"), ServiceSpec(model="b")])


def test_keda_is_installed_once_from_the_pinned_chart(graph: ResourceGraph) -> None:
    releases = [r for r in graph.by_type(RELEASE) if r.inputs["chart"] == "keda"]
    assert len(releases) == 1
    inputs = releases[0].inputs
    assert inputs["version"] == KEDA_CHART.version
    assert inputs["repositoryOpts"]["repo"] == KEDA_CHART.repository
    assert inputs["namespace"] == "keda"
    assert inputs["values"]["nodeSelector"] == {"mlstack.io/node-role": "system"}
    assert inputs["values"]["crds"] == {"install": True}


def test_scaled_objects_wait_for_keda(graph: ResourceGraph) -> None:
    keda = graph.one(RELEASE, "keda-release")
    for scaler in graph.by_type("kubernetes:keda.sh/v1alpha1:ScaledObject"):
        assert keda.urn in scaler.dependencies


def test_ha_values_only_with_more_than_one_replica() -> None:
    assert "podDisruptionBudget" not in KedaArgs(replicas=1).values()
    ha = KedaArgs(replicas=2).values()
    assert ha["podDisruptionBudget"] == {
        "operator": {"minAvailable": 1},
        "metricServer": {"minAvailable": 1},
        "webhooks": {"minAvailable": 1},
    }
    assert KedaArgs(replicas=4).problems() == ["replicas: 4: allowed 1..3"]


def test_the_scaled_object_validator_is_strict(crd_schemas: SchemaStore) -> None:
    validate = crd_schemas.validator(("keda.sh/v1alpha1", "ScaledObject"))
    good = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "m"},
        "spec": {
            "scaleTargetRef": {"name": "m"},
            "triggers": [{"type": "prometheus", "metadata": {"query": "sum(x)"}}],
        },
    }
    assert validate(good) == []
    typo = {**good, "spec": {**good["spec"], "minReplicas": 1}}
    assert validate(typo) == [
        "ScaledObject spec: Additional properties are not allowed ('minReplicas' was unexpected)"
    ]
    no_triggers = {**good, "spec": {"scaleTargetRef": {"name": "m"}}}
    assert validate(no_triggers) == ["ScaledObject spec: 'triggers' is a required property"]


def _chart_defaults(name: str) -> dict:
    import yaml

    from mlstack.upstream import HINT
    from tests.components.test_chart_values import UPSTREAM

    path = UPSTREAM / f"{name}.values.yaml"
    if not path.is_file():
        pytest.skip(f"upstream reference data not found at {path}: {HINT}")
    return yaml.safe_load(path.read_text())


def _helm_merge(defaults: dict, values: dict) -> dict:
    """Helm's coalescing: user maps merge over default maps, a null deletes the key."""
    out = dict(defaults)
    for key, value in values.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _helm_merge(out[key], value)
        else:
            out[key] = value
    return out


def test_keda_pods_get_no_cpu_limit_from_the_chart_defaults() -> None:
    """Issue 12 item 16: the chart's limits.cpu 1 used to survive under ours."""
    defaults = _chart_defaults(f"keda-{KEDA_CHART.version}")
    merged = _helm_merge(defaults, KedaArgs().values())
    for deployment in ("operator", "metricServer", "webhooks"):
        limits = merged["resources"][deployment]["limits"]
        assert "cpu" not in limits, deployment
        assert limits["memory"] == "1000Mi"
        assert merged["resources"][deployment]["requests"]["cpu"] == "100m"


def test_keda_metrics_are_scraped_through_service_monitors() -> None:
    prometheus = KedaArgs().values()["prometheus"]
    assert isinstance(prometheus, dict)
    for part in ("operator", "metricServer", "webhooks"):
        assert prometheus[part] == {"enabled": True, "serviceMonitor": {"enabled": True}}


def test_keda_waits_for_the_prometheus_operator_crds(dev_graph: ResourceGraph) -> None:
    keda = next(r for r in dev_graph.by_type(RELEASE) if r.inputs["chart"] == "keda")
    crds = next(
        r for r in dev_graph.by_type(RELEASE) if r.inputs["chart"] == "prometheus-operator-crds"
    )
    assert crds.urn in keda.dependencies
