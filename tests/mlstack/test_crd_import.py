"""``mlstack crds import``: CRD manifests -> schema files the validator reads.

The fixtures (``fixtures/crds/``) are small CRDs written for these tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlstack.cli import main
from mlstack.crd_import import drop_descriptions, import_crds, read_manifests
from mlstack.custom_resources import CrdSchemaError, SchemaDir, load_schema_dir

FIXTURES = Path(__file__).parent / "fixtures" / "crds"
HELM = FIXTURES / "widgets-helm.yaml"
KUBECTL = FIXTURES / "gizmos-kubectl.yaml"


def _descriptions(node: object, path: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                found.append(path)
            found += _descriptions(value, f"{path}.{key}")
    elif isinstance(node, list):
        for item in node:
            found += _descriptions(item, path)
    return found


def test_every_served_version_of_every_crd_becomes_one_file(tmp_path: Path) -> None:
    result = import_crds([HELM, KUBECTL], tmp_path / "schemas")
    assert result.skipped == 0
    names = sorted(path.name for _, path in result.written)
    assert names == [
        "example.com_v1_gadget.json",
        "example.com_v1_widget.json",
        "example.com_v1alpha1_widget.json",  # served, not the storage version
        "tools.example.org_v2beta1_gizmo.json",
    ]  # v0 of widgets is not served: not imported
    assert sorted(p.name for p in (tmp_path / "schemas").iterdir()) == names


def test_descriptions_are_dropped_but_a_field_named_description_stays(tmp_path: Path) -> None:
    import_crds([HELM], tmp_path)
    document = json.loads((tmp_path / "example.com_v1_widget.json").read_text())
    schema = document["openAPIV3Schema"]
    assert _descriptions(schema) == []
    spec = schema["properties"]["spec"]
    assert spec["properties"]["description"] == {"type": "string"}
    assert spec["properties"]["labels"]["additionalProperties"] == {"type": "string"}
    assert spec["properties"]["size"] == {"type": "integer", "minimum": 1}


def test_the_source_is_recorded(tmp_path: Path) -> None:
    import_crds([KUBECTL], tmp_path)
    document = json.loads((tmp_path / "tools.example.org_v2beta1_gizmo.json").read_text())
    assert document["apiVersion"] == "tools.example.org/v2beta1"
    assert document["kind"] == "Gizmo"
    source = document["source"]
    assert source.startswith("gizmos.tools.example.org v2beta1 from gizmos-kubectl.yaml (sha256 ")
    assert "descriptions removed" in source


def test_imported_files_are_what_the_validator_reads(tmp_path: Path) -> None:
    import_crds([HELM, KUBECTL], tmp_path)
    store = load_schema_dir(SchemaDir(tmp_path, "--crd-schemas"))
    widget = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": 2, "description": "x", "extra": {"anything": True}},
    }
    assert store.validate(widget) == []
    widget["spec"]["colour"] = "red"
    widget["spec"]["size"] = 0
    assert store.validate(widget) == [
        "Widget spec: Additional properties are not allowed ('colour' was unexpected)",
        "Widget spec.size: 0 is less than the minimum of 1",
    ]
    gadget = {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}}
    assert store.validate({**gadget, "spec": {"mode": "warp"}}) == [
        "Gadget spec.mode: 'warp' is not one of ['fast', 'slow']"
    ]


def test_drop_descriptions_keeps_values_under_default_and_enum() -> None:
    schema = {
        "description": "x",
        "type": "object",
        "default": {"description": "kept"},
        "properties": {"a": {"type": "array", "items": {"description": "y", "type": "string"}}},
        "anyOf": [{"description": "z", "required": ["a"]}],
    }
    assert drop_descriptions(schema) == {
        "type": "object",
        "default": {"description": "kept"},
        "properties": {"a": {"type": "array", "items": {"type": "string"}}},
        "anyOf": [{"required": ["a"]}],
    }


BAD = {
    "not-a-crd.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
        r"not-a-crd.yaml: no CustomResourceDefinition in it",
    ),
    "old-crd.yaml": (
        "apiVersion: apiextensions.k8s.io/v1beta1\nkind: CustomResourceDefinition\n",
        r"got apiextensions.k8s.io/v1beta1/CustomResourceDefinition",
    ),
    "no-schema.yaml": (
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
        "metadata: {name: things.example.com}\n"
        "spec: {group: example.com, names: {kind: Thing}, versions: [{name: v1, served: true}]}\n",
        r"\(things.example.com\): spec.versions\[0\].schema.openAPIV3Schema: missing",
    ),
    "broken.yaml": ("a: [1, 2\n", r"not valid YAML at line 2"),
    "empty.yaml": ("---\n", r"no CustomResourceDefinition in it"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_is_one_error_naming_the_file_and_nothing_is_written(
    tmp_path: Path, name: str
) -> None:
    text, message = BAD[name]
    bad = tmp_path / name
    bad.write_text(text)
    target = tmp_path / "schemas"
    with pytest.raises(CrdSchemaError, match=message) as info:
        import_crds([HELM, bad], target)
    assert str(bad) in str(info.value)
    assert not target.exists()  # the good file before it was not half-written


def test_helm_template_output_keeps_the_crds_and_counts_the_rest(tmp_path: Path) -> None:
    rendered = tmp_path / "chart-1.0.0.yaml"
    rendered.write_text(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n---\n"
        + HELM.read_text()
        + "\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: b}\n"
    )
    result = import_crds([rendered], tmp_path / "out")
    assert result.skipped == 2
    assert len(result.written) == 3


def test_the_same_kind_twice_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CrdSchemaError, match=r"example.com/v1/Widget is also in .*widgets-helm"):
        read_manifests([HELM, HELM])


def test_cli_imports_into_the_directory_and_exits_2_on_bad_input(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    target = tmp_path / "crds"
    assert main(["crds", "import", str(HELM), str(KUBECTL), "--to", str(target)]) == 0
    out = capsys.readouterr().out
    assert f"example.com/v1/Widget -> {target / 'example.com_v1_widget.json'}" in out
    assert len(list(target.glob("*.json"))) == 4
    assert "skipped" not in out
    monkeypatch.setenv("MLSTACK_CRD_SCHEMAS", str(tmp_path / "from-env"))
    assert main(["crds", "import", str(KUBECTL)]) == 0
    assert (tmp_path / "from-env" / "tools.example.org_v2beta1_gizmo.json").is_file()
    assert main(["crds", "import", str(tmp_path / "missing.yaml"), "--to", str(target)]) == 2
    assert "missing.yaml: no such file" in capsys.readouterr().err


def test_readme_gives_the_commands_for_the_pinned_charts() -> None:
    from components.versions import CHARTS
    from stacks.config import PROJECT_ROOT

    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    karpenter = CHARTS["karpenter-crd"]
    keda = CHARTS["keda"]
    lbc = CHARTS["aws-load-balancer-controller"]
    prometheus = CHARTS["kube-prometheus-stack"]
    expected = [
        f"helm template karpenter-crd {karpenter.chart_ref} --version {karpenter.version} "
        f"--include-crds > build/crds/karpenter-crd-{karpenter.version}.yaml",
        f"helm template keda keda --repo {keda.repository} --version {keda.version} "
        f"--include-crds > build/crds/keda-{keda.version}.yaml",
        f"helm show crds aws-load-balancer-controller --repo {lbc.repository} --version "
        f"{lbc.version} > build/crds/aws-load-balancer-controller-{lbc.version}.yaml",
        f"helm show crds kube-prometheus-stack --repo {prometheus.repository} --version "
        f"{prometheus.version} > build/crds/kube-prometheus-stack-{prometheus.version}.yaml",
        ".venv/bin/mlstack crds import build/crds/*.yaml",
    ]
    missing = [line for line in expected if line not in readme]
    assert missing == []
