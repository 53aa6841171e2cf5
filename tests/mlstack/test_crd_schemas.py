"""CRD validators for prometheus-operator resources: strict like kubernetes-validate."""

from __future__ import annotations

import copy
from typing import Any

from mlstack.crd_schemas import MONITORING_VALIDATORS, strict
from mlstack.render_checks import CRD_VALIDATORS

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


def _check(manifest: dict[str, Any]) -> list[str]:
    key = (manifest["apiVersion"], manifest["kind"])
    return CRD_VALIDATORS[key](manifest)


def test_validators_are_registered_with_render_checks() -> None:
    assert set(MONITORING_VALIDATORS) <= set(CRD_VALIDATORS)


def test_valid_objects_pass() -> None:
    assert _check(RULE) == []
    assert _check(MONITOR) == []


def test_unknown_field_is_an_error() -> None:
    bad = copy.deepcopy(MONITOR)
    bad["spec"]["endpoints"][0]["scrapeEvery"] = "15s"
    problems = _check(bad)
    assert len(problems) == 1 and "scrapeEvery" in problems[0]


def test_bad_duration_and_wrong_types_are_errors() -> None:
    bad = copy.deepcopy(RULE)
    bad["spec"]["groups"][0]["rules"][1]["for"] = "5 minutes"
    bad["spec"]["groups"][0]["rules"][1]["labels"] = {"severity": 3}
    problems = "\n".join(_check(bad))
    assert "5 minutes" in problems
    assert "3 is not of type 'string'" in problems


def test_expressions_must_parse_as_promql() -> None:
    bad = copy.deepcopy(RULE)
    bad["spec"]["groups"][0]["rules"][0]["expr"] = "sum(rate(x[5m])"
    problems = _check(bad)
    assert len(problems) == 1 and "not PromQL" in problems[0]


def test_rule_must_be_alert_or_record_and_groups_unique() -> None:
    bad = copy.deepcopy(RULE)
    bad["spec"]["groups"][0]["rules"][0]["alert"] = "Both"
    bad["spec"]["groups"].append(copy.deepcopy(RULE["spec"]["groups"][0]))
    problems = "\n".join(_check(bad))
    assert "exactly one of alert / record" in problems
    assert "duplicate group name 'g'" in problems


def test_metadata_is_checked() -> None:
    bad = copy.deepcopy(MONITOR)
    bad["metadata"] = {"name": "Not_Valid", "labels": {"k": "has space"}, "owner": "x"}
    problems = "\n".join(_check(bad))
    assert "metadata.owner: unknown field" in problems
    assert "'Not_Valid' is not a DNS-1123 subdomain" in problems
    assert "'has space' is not a valid label value" in problems


def test_strict_closes_objects_but_keeps_preserved_ones_open() -> None:
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
    closed = strict(schema)
    assert closed["additionalProperties"] is False
    assert closed["properties"]["a"]["additionalProperties"] is False
    assert "additionalProperties" not in closed["properties"]["c"]
    assert closed["properties"]["e"]["additionalProperties"] == {"type": "string"}
    assert "additionalProperties" not in schema  # the input is not modified
