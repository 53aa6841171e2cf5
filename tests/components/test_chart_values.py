"""Every Helm values key the stack sets exists in that chart's default values
(``../shared/upstream/charts/``), or is an explained exception naming the template that
reads it (issue 12 item 16). None of the charts ships a values schema: Helm ignores an
unknown key silently, so a misspelt key would do nothing."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlstack.synth import ResourceGraph
from mlstack.upstream import HINT, find_upstream

UPSTREAM = (find_upstream() or Path("../shared/upstream")) / "charts"
"""The reference data's ``charts/`` (``mlstack.upstream.find_upstream``)."""
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"

SUBCHARTS: dict[tuple[str, str], str] = {("kube-prometheus-stack", "grafana"): "grafana-12.11.1"}
"""(chart, top-level key) -> the subchart whose defaults hold that key's children."""

EXCEPTIONS: dict[tuple[str, str], str] = {
    ("dcgm-exporter", "customMetrics"): "templates/metrics-configmap.yaml (commented out in "
    "values.yaml: 'If unset, the default list will take effect')",
    ("kube-prometheus-stack", "kube-state-metrics.metricLabelsAllowlist"): "the "
    "kube-state-metrics subchart's templates/deployment.yaml (--metric-labels-allowlist)",
    ("kube-prometheus-stack", "kube-state-metrics.nodeSelector"): "the kube-state-metrics "
    "subchart's templates/deployment.yaml",
    ("kube-prometheus-stack", "kube-state-metrics.resources"): "the kube-state-metrics "
    "subchart's templates/deployment.yaml (values.yaml: resources: {})",
    ("kube-prometheus-stack", "prometheus-node-exporter.resources"): "the "
    "prometheus-node-exporter subchart's templates/daemonset.yaml (values.yaml: resources: {})",
}
"""Keys a template reads although the default values file does not list them."""


FREE_FORM = frozenset(
    {"nodeSelector", "annotations", "labels", "podAnnotations", "podLabels", "extraArgs"}
)
"""Maps whose keys are the user's (label names, flags), even where the default has some."""


def _upstream(name: str) -> Path:
    """``<chart>-<version>.values.yaml``, else the chart source's own ``values.yaml``."""
    file = UPSTREAM / f"{name}.values.yaml"
    source = UPSTREAM / "src" / name / "values.yaml"
    return source if not file.is_file() and source.is_file() else file


def _chart_name(release: Any) -> str:
    return str(release.inputs["chart"]).rstrip("/").rsplit("/", 1)[-1]


def _leaves(values: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Key paths (tuples: keys may hold dots, e.g. node labels) of every leaf."""
    for key, value in values.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, path)
        else:
            yield path


def _merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on ``base``, maps merged key by key (as Helm coalesces a parent's values for
    a subchart with the subchart's defaults)."""
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        both = isinstance(old, Mapping) and isinstance(value, Mapping)
        out[key] = _merged(old, value) if both else value  # pyright: ignore[reportArgumentType]
    return out


def unknown_keys(chart: str, values: Mapping[str, Any], defaults: Mapping[str, Any]) -> list[str]:
    """Paths set in ``values`` that the defaults do not hold (free-form maps excepted)."""
    found: list[str] = []
    for parts in _leaves(values):
        path = ".".join(parts)
        current: Any = defaults
        for index, part in enumerate(parts):
            sub = SUBCHARTS.get((chart, parts[0])) if index == 0 else None
            if sub and isinstance(current, Mapping):
                current = _merged(
                    yaml.safe_load(_upstream(sub).read_text()), current.get(part) or {}
                )
                continue
            if not isinstance(current, Mapping) or not current:
                break  # a free-form map ({}), a list or a scalar default: anything goes below
            if part not in current:
                key = ".".join(parts[: index + 1])
                if (chart, key) not in EXCEPTIONS:
                    found.append(path)
                break
            if part in FREE_FORM:
                break
            current = current[part]
    return found


def _releases(graph: ResourceGraph) -> list[Any]:
    return [r for r in graph.by_type(HELM_RELEASE) if r.inputs.get("values")]


@pytest.fixture(scope="module")
def upstream_present() -> None:
    if not UPSTREAM.is_dir():
        pytest.skip(f"upstream reference data not found at {UPSTREAM}: {HINT}")


def test_every_values_key_the_stack_sets_exists_in_the_chart_defaults(
    any_graph: ResourceGraph, upstream_present: None
) -> None:
    problems: list[str] = []
    checked = 0
    for release in _releases(any_graph):
        chart = _chart_name(release)
        file = _upstream(f"{chart}-{release.inputs['version']}")
        assert file.is_file(), f"no upstream defaults for {chart} {release.inputs['version']}"
        defaults = yaml.safe_load(file.read_text())
        problems += [
            f"{chart}: {p}" for p in unknown_keys(chart, release.inputs["values"], defaults)
        ]
        checked += 1
    assert checked >= 5
    assert problems == []


def test_the_checker_catches_a_misspelt_key(upstream_present: None) -> None:
    defaults = yaml.safe_load(_upstream("keda-2.20.2").read_text())
    assert unknown_keys("keda", {"operator": {"replicaCount": 1}}, defaults) == []
    assert unknown_keys("keda", {"operator": {"replicas": 1}}, defaults) == ["operator.replicas"]
    assert unknown_keys("keda", {"nodeSelector": {"any.io/label": "x"}}, defaults) == []


def test_every_exception_is_really_missing_from_the_defaults(upstream_present: None) -> None:
    versions = {"dcgm-exporter": "4.8.2", "kube-prometheus-stack": "88.5.3"}
    for chart, key in EXCEPTIONS:
        defaults = yaml.safe_load(_upstream(f"{chart}-{versions[chart]}").read_text())
        current: Any = defaults
        for part in key.split("."):
            current = current.get(part) if isinstance(current, Mapping) else None
        assert current is None, f"{chart} {key} is in the defaults: drop the exception"
