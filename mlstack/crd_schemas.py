"""Strict validators for custom resources, built from the CRDs' published OpenAPI schemas.

The schemas in ``mlstack/crds/*.json`` are the ``openAPIV3Schema`` of each CRD version,
taken verbatim from the pinned chart that installs the CRD (each file names its source).
Validation is strict like kubernetes-validate's: an object schema that lists properties
and does not preserve unknown fields rejects any other key (the API server would
silently prune it). Metadata is checked for the fields and shapes objects may carry.

Kind-specific checks on top of the schema:

* ``PrometheusRule``: every ``expr`` parses as PromQL (promql-parser, a real parser of
  the Prometheus grammar), each rule is exactly one of alert / record, group names are
  unique.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

CRD_DIR = Path(__file__).resolve().parent / "crds"


def upstream_crd_dir() -> Path | None:
    """``shared/upstream/crds`` (reference data next to the checkouts, never copied into
    the repository): ``$MLSTACK_UPSTREAM/crds``, else the first ``shared/upstream`` found
    above this file."""
    import os

    env = os.environ.get("MLSTACK_UPSTREAM")
    if env:
        return Path(env) / "crds"
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "upstream" / "crds"
        if candidate.is_dir():
            return candidate
    return None


def _crd_file(group: str, version: str, kind: str) -> Path:
    name = f"{group}_{version}_{kind.lower()}.json"
    local = CRD_DIR / name
    upstream = upstream_crd_dir()
    if not local.exists() and upstream is not None and (upstream / name).exists():
        return upstream / name
    return local


_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
METADATA_FIELDS = frozenset({"name", "namespace", "labels", "annotations"})

Validator = Callable[[dict[str, Any]], list[str]]


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` where closed objects reject unknown keys."""
    out = copy.deepcopy(schema)

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for item in node:
                close(item)

    close(out)
    return out


@cache
def load_schema(api_version: str, kind: str) -> dict[str, Any]:
    group, _, version = api_version.rpartition("/")
    path = _crd_file(group, version, kind)
    document = json.loads(path.read_text(encoding="utf-8"))
    schema = strict(document["openAPIV3Schema"])
    # Metadata is checked by metadata_problems (the CRD leaves it open).
    schema["properties"]["metadata"] = {"type": "object"}
    return schema


def metadata_problems(metadata: Any) -> list[str]:
    if not isinstance(metadata, dict):
        return ["metadata: must be an object"]
    found = [f"metadata.{k}: unknown field" for k in sorted(set(metadata) - METADATA_FIELDS)]
    name = metadata.get("name", "")
    if not isinstance(name, str) or not _DNS_SUBDOMAIN.match(name):
        found.append(f"metadata.name: {name!r} is not a DNS-1123 subdomain")
    for field in ("labels", "annotations"):
        values = metadata.get(field, {})
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            found.append(f"metadata.{field}: must map strings to strings")
            continue
        for key in values:
            if not _LABEL_KEY.match(key):
                found.append(f"metadata.{field}: {key!r} is not a valid key")
        if field == "labels":
            found += [
                f"metadata.labels.{k}: {v!r} is not a valid label value"
                for k, v in values.items()
                if not _LABEL_VALUE.match(v)
            ]
    return found


def schema_problems(manifest: dict[str, Any]) -> list[str]:
    from jsonschema import Draft7Validator

    schema = load_schema(manifest.get("apiVersion", ""), manifest.get("kind", ""))
    errors = sorted(Draft7Validator(schema).iter_errors(manifest), key=lambda e: list(e.path))
    return [
        f"{manifest.get('kind')} {'.'.join(str(p) for p in e.path) or '<root>'}: {e.message}"
        for e in errors
    ]


def prometheus_rule_problems(manifest: dict[str, Any]) -> list[str]:
    import promql_parser

    found: list[str] = []
    groups = manifest.get("spec", {}).get("groups", [])
    names = [str(g.get("name")) for g in groups if isinstance(g, dict)]
    found += [
        f"spec.groups: duplicate group name {n!r}" for n in sorted(set(names)) if names.count(n) > 1
    ]
    for gi, group in enumerate(groups):
        for ri, rule in enumerate(group.get("rules", []) if isinstance(group, dict) else []):
            where = f"spec.groups[{gi}].rules[{ri}]"
            if not isinstance(rule, dict):
                continue
            if ("alert" in rule) == ("record" in rule):
                found.append(f"{where}: exactly one of alert / record")
            expr = rule.get("expr")
            if isinstance(expr, str):
                try:
                    promql_parser.parse(expr)
                except ValueError as exc:
                    found.append(f"{where}.expr: not PromQL ({exc}): {expr}")
    return found


def validator_for(extra: Callable[[dict[str, Any]], list[str]] | None = None) -> Validator:
    def validate(manifest: dict[str, Any]) -> list[str]:
        problems = metadata_problems(manifest.get("metadata"))
        problems += schema_problems(manifest)
        if extra is not None:
            problems += extra(manifest)
        return problems

    return validate


MONITORING_VALIDATORS: dict[tuple[str, str], Validator] = {
    ("monitoring.coreos.com/v1", "PrometheusRule"): validator_for(prometheus_rule_problems),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): validator_for(),
}
"""Validators of the prometheus-operator resources mlstack renders."""

SERVING_VALIDATORS: dict[tuple[str, str], Validator] = {
    ("keda.sh/v1alpha1", "ScaledObject"): validator_for(),
    ("elbv2.k8s.aws/v1beta1", "TargetGroupBinding"): validator_for(),
}
"""Validators of the KEDA and AWS Load Balancer Controller resources mlstack renders."""
