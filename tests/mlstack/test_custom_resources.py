"""The one custom-resource validator: strict like kubernetes-validate, schemas from a directory."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from mlstack.custom_resources import (
    CrdSchemaError,
    SchemaDir,
    SchemaStore,
    close,
    load_schema_dir,
    resolve_schema_dir,
)

RULE_KEY = ("monitoring.coreos.com/v1", "PrometheusRule")
MONITOR_KEY = ("monitoring.coreos.com/v1", "ServiceMonitor")

RULE: dict[str, Any] = {
    "apiVersion": "monitoring.coreos.com/v1",
    "kind": "PrometheusRule",
    "metadata": {"name": "r", "namespace": "monitoring", "labels": {"a": "b"}},
    "spec": {
        "groups": [
            {
                "name": "g",
                "rules": [
                    {"record": "x:y:sum", "expr": "sum(up)"},
                    {
                        "alert": "Down",
                        "expr": 'up{job="a"} == 0',
                        "for": "5m",
                        "labels": {"severity": "critical"},
                        "annotations": {"summary": "s"},
                    },
                ],
            }
        ]
    },
}
MONITOR: dict[str, Any] = {
    "apiVersion": "monitoring.coreos.com/v1",
    "kind": "ServiceMonitor",
    "metadata": {"name": "m", "namespace": "monitoring"},
    "spec": {
        "selector": {"matchLabels": {"app": "x"}},
        "namespaceSelector": {"matchNames": ["serving"]},
        "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
    },
}


@pytest.fixture
def _check(crd_schemas: SchemaStore):
    def check(manifest: dict[str, Any]) -> list[str]:
        problems = crd_schemas.validate(manifest)
        assert problems is not None, "no schema for the kind"
        return problems

    return check


def test_valid_objects_pass(_check) -> None:
    assert _check(RULE) == []
    assert _check(MONITOR) == []


def test_unknown_field_is_an_error(_check) -> None:
    bad = copy.deepcopy(MONITOR)
    bad["spec"]["endpoints"][0]["scrapeEvery"] = "15s"
    problems = _check(bad)
    assert len(problems) == 1 and "scrapeEvery" in problems[0]


def test_bad_duration_and_wrong_types_are_errors(_check) -> None:
    bad = copy.deepcopy(RULE)
    bad["spec"]["groups"][0]["rules"][1]["for"] = "5 minutes"
    bad["spec"]["groups"][0]["rules"][1]["labels"] = {"severity": 3}
    problems = "\n".join(_check(bad))
    assert "5 minutes" in problems
    assert "3 is not of type 'string'" in problems


def test_expressions_must_parse_as_promql(_check) -> None:
    bad = copy.deepcopy(RULE)
    bad["spec"]["groups"][0]["rules"][0]["expr"] = "sum(rate(x[5m])"
    problems = _check(bad)
    assert len(problems) == 1 and "not PromQL" in problems[0]


def test_rule_must_be_alert_or_record_and_groups_unique(_check) -> None:
    bad = copy.deepcopy(RULE)
    bad["spec"]["groups"][0]["rules"][0]["alert"] = "Both"
    bad["spec"]["groups"].append(copy.deepcopy(RULE["spec"]["groups"][0]))
    problems = "\n".join(_check(bad))
    assert "exactly one of alert / record" in problems
    assert "duplicate group name 'g'" in problems


def test_metadata_is_checked(_check) -> None:
    bad = copy.deepcopy(MONITOR)
    bad["metadata"] = {"name": "Not_Valid", "labels": {"k": "has space"}, "owner": "x"}
    problems = "\n".join(_check(bad))
    assert "metadata.owner: unknown field" in problems
    assert "'Not_Valid' is not a DNS-1123 subdomain" in problems
    assert "'has space' is not a valid label value" in problems


def test_closing_rule_closes_objects_but_keeps_preserved_ones_open() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "object", "properties": {"b": {"type": "string"}}},
            "c": {
                "type": "object",
                "properties": {"d": {}},
                "x-kubernetes-preserve-unknown-fields": True,
            },
            "e": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    closed = close(schema)
    assert closed["additionalProperties"] is False
    assert closed["properties"]["a"]["additionalProperties"] is False
    assert "additionalProperties" not in closed["properties"]["c"]
    assert closed["properties"]["e"]["additionalProperties"] == {"type": "string"}
    assert "additionalProperties" not in schema  # the input is not modified


# --------------------------------------------------------------------------- the loader

SMALL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
    },
}


def _write(directory: Path, name: str, document: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def _widget(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": spec,
    }


def test_both_file_formats_load_and_validate_the_same_way(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "example.com_v1_widget.json",
        {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "openAPIV3Schema": SMALL_SCHEMA,
            "source": "one",
        },
    )
    _write(
        tmp_path,
        "two-kinds.json",
        {
            "schemas": {"example.com/v1/Gadget": SMALL_SCHEMA, "other.io/v2/Gizmo": SMALL_SCHEMA},
            "source": "two",
        },
    )
    store = load_schema_dir(SchemaDir(tmp_path, "--crd-schemas"))
    assert store.kinds() == ["example.com/v1/Gadget", "example.com/v1/Widget", "other.io/v2/Gizmo"]
    assert store.validate(_widget(size=3)) == []
    assert store.validate(_widget(sise=3)) == [
        "Widget spec: Additional properties are not allowed ('sise' was unexpected)"
    ]
    gadget = {**_widget(size="big"), "kind": "Gadget"}
    assert store.validate(gadget) == ["Gadget spec.size: 'big' is not of type 'integer'"]
    assert store.validate({**_widget(), "kind": "Unknown"}) is None


def test_the_shared_upstream_files_load_as_they_are(crd_schemas: SchemaStore) -> None:
    assert {"karpenter.sh/v1/NodePool", "karpenter.k8s.aws/v1/EC2NodeClass"} <= set(
        crd_schemas.kinds()
    )
    nodepool = crd_schemas.get(("karpenter.sh/v1", "NodePool"))
    nodeclass = crd_schemas.get(("karpenter.k8s.aws/v1", "EC2NodeClass"))
    assert nodepool is not None and nodeclass is not None
    assert nodepool.file == nodeclass.file  # one file holds both kinds


def test_the_same_kind_in_two_files_is_an_error_naming_both(tmp_path: Path) -> None:
    single = {"apiVersion": "example.com/v1", "kind": "Widget", "openAPIV3Schema": SMALL_SCHEMA}
    _write(tmp_path, "a.json", single)
    _write(tmp_path, "b.json", {"schemas": {"example.com/v1/Widget": SMALL_SCHEMA}})
    with pytest.raises(
        CrdSchemaError, match=r"example.com/v1/Widget is in both .*a.json and .*b.json"
    ):
        load_schema_dir(SchemaDir(tmp_path, "--crd-schemas"))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{not json", "not valid JSON at line 1"),
        ([1, 2], "<root>: got \\[1, 2\\]; allowed: a JSON object"),
        ({"kind": "Widget"}, "apiVersion, openAPIV3Schema: .*required: apiVersion, kind"),
        (
            {"apiVersion": "v1", "kind": "Widget", "openAPIV3Schema": SMALL_SCHEMA},
            'apiVersion: got "v1"; allowed: <group>/<version> of a CRD',
        ),
        (
            {"schemas": {"example.com/Widget": SMALL_SCHEMA}},
            "allowed keys: <group>/<version>/<Kind>",
        ),
        ({"schemas": {"example.com/v1/Widget": "x"}}, "an OpenAPI v3 object schema"),
    ],
)
def test_a_bad_schema_file_is_one_error_naming_file_key_and_what_is_allowed(
    tmp_path: Path, document: Any, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    with pytest.raises(CrdSchemaError, match=message) as info:
        load_schema_dir(SchemaDir(tmp_path, "--crd-schemas"))
    assert str(path) in str(info.value)
    assert info.value.exit_code == 2


def test_schema_dir_is_the_flag_else_the_environment_else_the_user_cache(tmp_path: Path) -> None:
    env = {"MLSTACK_CRD_SCHEMAS": str(tmp_path / "env"), "HOME": str(tmp_path / "home")}
    assert resolve_schema_dir(tmp_path / "flag", env) == SchemaDir(
        tmp_path / "flag", "--crd-schemas"
    )
    assert resolve_schema_dir(None, env) == SchemaDir(tmp_path / "env", "$MLSTACK_CRD_SCHEMAS")
    assert resolve_schema_dir(None, {"HOME": str(tmp_path / "home")}) == SchemaDir(
        tmp_path / "home" / ".cache" / "mlstack" / "crds", "default"
    )


def test_a_missing_default_dir_holds_nothing_but_a_named_one_is_an_error(tmp_path: Path) -> None:
    empty = load_schema_dir(SchemaDir(tmp_path / "absent", "default"))
    assert empty.schemas == {} and not empty.available
    with pytest.raises(
        CrdSchemaError, match=r"absent \(from \$MLSTACK_CRD_SCHEMAS\) does not exist"
    ):
        load_schema_dir(SchemaDir(tmp_path / "absent", "$MLSTACK_CRD_SCHEMAS"))


def test_no_file_in_the_repository_carries_crd_schema_data() -> None:
    from stacks.config import PROJECT_ROOT

    skip = {".venv", "node_modules", "build", ".git", ".pytest_cache"}
    carriers = sorted(
        str(path.relative_to(PROJECT_ROOT))
        for path in PROJECT_ROOT.rglob("*.json")
        if not skip & set(path.relative_to(PROJECT_ROOT).parts)
        if "openAPIV3Schema" in path.read_text(encoding="utf-8", errors="replace")
    )
    assert carriers == []


def test_the_schemas_mlstack_upstream_fetch_wrote_are_found_without_settings(
    tmp_path: Path,
) -> None:
    """Review finding: `plan --check` told users to run `mlstack upstream fetch`, then
    looked only in ~/.cache/mlstack/crds, not where the fetch writes."""
    from mlstack.custom_resources import resolve_schema_dir

    fetched = tmp_path / ".cache" / "mlstack" / "upstream" / "crds"
    fetched.mkdir(parents=True)
    found = resolve_schema_dir(None, {"HOME": str(tmp_path)})
    assert found.path == fetched
    upstream = tmp_path / "elsewhere"
    found = resolve_schema_dir(None, {"HOME": str(tmp_path), "MLSTACK_UPSTREAM": str(upstream)})
    assert found.path == upstream / "crds"
