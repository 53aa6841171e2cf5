"""Strict validators for custom resources, built from their CRDs' published schemas.

Each ``*.json`` file here is the ``openAPIV3Schema`` of one CRD version, taken from
the upstream CRD manifest at the version the stack pins (see ``SOURCES``), with
``description`` texts removed. :func:`strict_schema` turns it into a JSON Schema
that, like ``kubectl --validate=strict``, rejects unknown fields: every object that
lists ``properties`` and does not preserve unknown fields gets
``additionalProperties: false``.

Not checked: CEL rules (``x-kubernetes-validations``) and ``metadata`` beyond its
type; both are checked by the API server on apply.

Refresh a file after bumping a chart with
``python -m mlstack.crd_schemas <crd.yaml> <version> <out.json>``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

SOURCES: dict[tuple[str, str], tuple[str, str]] = {
    ("keda.sh/v1alpha1", "ScaledObject"): (
        "keda.sh_v1alpha1_scaledobject.json",
        "kedacore/keda v2.20.2 config/crd/bases/keda.sh_scaledobjects.yaml",
    ),
    ("elbv2.k8s.aws/v1beta1", "IngressClassParams"): (
        "elbv2.k8s.aws_v1beta1_ingressclassparams.json",
        "kubernetes-sigs/aws-load-balancer-controller v3.5.0 "
        "config/crd/bases/elbv2.k8s.aws_ingressclassparams.yaml",
    ),
}
"""(apiVersion, kind) -> (schema file here, where it was taken from)."""

_TYPE_ONLY = ("metadata",)


def strict_schema(schema: dict[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    """A copy of an OpenAPI v3 CRD schema that rejects unknown fields."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties" and isinstance(value, dict):
            out[key] = {
                name: strict_schema(sub, (*path, name))
                if path != () or name not in _TYPE_ONLY
                else {"type": "object"}
                for name, sub in value.items()
            }
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = strict_schema(value, (*path, key))
        elif key in ("allOf", "anyOf", "oneOf") and isinstance(value, list):
            out[key] = [strict_schema(v, (*path, key)) for v in value]
        else:
            out[key] = value
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    return out


def strip_descriptions(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: strip_descriptions(v)
            for k, v in value.items()
            if not (k == "description" and isinstance(v, str))
        }
    if isinstance(value, list):
        return [strip_descriptions(v) for v in value]
    return value


@cache
def _validator(file_name: str) -> Any:
    import jsonschema

    raw = json.loads((HERE / file_name).read_text(encoding="utf-8"))
    schema = strict_schema(raw)
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def validator_for(file_name: str) -> Callable[[dict[str, Any]], list[str]]:
    """A CRD validator (manifest -> problems) for one vendored schema file."""

    def validate(manifest: dict[str, Any]) -> list[str]:
        kind = manifest.get("kind", "?")
        problems = []
        for error in sorted(_validator(file_name).iter_errors(manifest), key=str):
            where = ".".join(str(p) for p in error.absolute_path) or "<root>"
            problems.append(f"{kind} {where}: {error.message}")
        return problems

    return validate


def crd_validators() -> dict[tuple[str, str], Callable[[dict[str, Any]], list[str]]]:
    """Validators for every vendored CRD, keyed like ``render_checks.CRD_VALIDATORS``."""
    return {key: validator_for(file_name) for key, (file_name, _) in SOURCES.items()}


def vendor(crd_yaml: Path, version: str, out: Path) -> None:
    """Extract one version's openAPIV3Schema from a CRD manifest, descriptions removed."""
    import yaml

    crd = yaml.safe_load(crd_yaml.read_text(encoding="utf-8"))
    (found,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = strip_descriptions(found["schema"]["openAPIV3Schema"])
    out.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n", encoding="utf-8")
