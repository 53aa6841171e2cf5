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
