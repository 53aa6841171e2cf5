"""The renderer renders what Helm installs: at the Kubernetes version and API versions it is
given (Helm's ``Configuration.getCapabilities`` takes both from the cluster,
pkg/action/action.go), without the subcharts a condition turns off, and refusing a chart
whose declared subcharts are absent (Helm's ``action.CheckDependencies``,
pkg/action/install.go)."""

from __future__ import annotations

from pathlib import Path

import pytest

helm_render = pytest.importorskip("tests.support.helm_render")
pytest.importorskip("helm_python", reason="helm-python-sdk not installed (`make setup`)")


def _chart(root: Path, dependencies: str = "") -> Path:
    (root / "templates").mkdir(parents=True)
    (root / "Chart.yaml").write_text(f"apiVersion: v2\nname: probe\nversion: 0.1.0\n{dependencies}")
    (root / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: probe\n  namespace: "
        "{{ .Release.Namespace }}\ndata:\n  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n"
        '  crd: {{ .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" | quote }}\n'
        '  apps: {{ .Capabilities.APIVersions.Has "apps/v1" | quote }}\n'
    )
    return root


def test_templates_see_the_given_kubernetes_version_and_api_versions(tmp_path: Path) -> None:
    [config] = helm_render.render_chart(
        _chart(tmp_path / "probe"),
        {},
        release="r",
        namespace="ns",
        kube_version="v1.33.0",
        api_versions=["monitoring.coreos.com/v1"],
    )
    assert config["metadata"]["namespace"] == "ns"
    assert config["data"] == {"kube": "v1.33.0", "crd": "true", "apps": "true"}


def test_a_chart_missing_a_declared_subchart_is_refused_naming_it(tmp_path: Path) -> None:
    chart = _chart(
        tmp_path / "probe",
        "dependencies:\n  - name: absent\n    version: 1.2.3\n    condition: absent.enabled\n",
    )
    with pytest.raises(helm_render.ChartSourceMissingError, match=r"absent-1\.2\.3"):
        helm_render.assemble(chart, [tmp_path / "nowhere"], tmp_path / "work")


def test_a_subchart_turned_off_by_its_condition_is_disabled() -> None:
    metadata = {"dependencies": [{"name": "crds", "condition": "crds.enabled"}]}
    assert helm_render.disabled_subcharts(metadata, {"crds": {"enabled": False}}) == {"crds"}
    assert helm_render.disabled_subcharts(metadata, {}) == set()
