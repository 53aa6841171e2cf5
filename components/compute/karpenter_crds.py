"""Offline validators for Karpenter's custom resources (NodePool, EC2NodeClass).

``karpenter_crds.json`` holds the OpenAPI v3 schemas of the v1 CRDs published with the
pinned Karpenter release (see its ``source`` field). The API server prunes unknown
fields of a custom resource silently, so a misspelt key would vanish at apply time;
here every object with declared properties is made closed (``additionalProperties:
false``) and the check is a strict JSON Schema validation. CEL rules
(``x-kubernetes-validations``) are not evaluated.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

DATA_FILE = Path(__file__).with_name("karpenter_crds.json")
OPEN_MARKERS = ("x-kubernetes-preserve-unknown-fields", "additionalProperties")

CrdValidator = Callable[[dict[str, Any]], list[str]]


def _closed(schema: Any) -> Any:
    """A copy of ``schema`` where every object with properties rejects unknown keys."""
    if isinstance(schema, list):
        return [_closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _closed(v) for k, v in schema.items()}
    if "properties" in out and not any(m in out for m in OPEN_MARKERS):
        out["additionalProperties"] = False
    return out


@cache
def _document() -> dict[str, Any]:
    return json.loads(DATA_FILE.read_text(encoding="utf-8"))


def karpenter_version() -> str:
    """The Karpenter release the schemas were taken from."""
    return str(_document()["karpenterVersion"])


def _validator(key: str) -> CrdValidator:
    import jsonschema

    schema = _closed(_document()["schemas"][key])
    checker = jsonschema.Draft7Validator(schema)

    def validate(manifest: dict[str, Any]) -> list[str]:
        problems: list[str] = []
        for error in sorted(checker.iter_errors(manifest), key=lambda e: list(e.path)):
            path = ".".join(str(p) for p in error.path) or "<root>"
            problems.append(f"{manifest.get('kind', key)} {path}: {error.message}")
        name = (manifest.get("metadata") or {}).get("name")
        if not name:
            problems.append(f"{manifest.get('kind', key)} metadata.name: required")
        return problems

    return validate


def crd_validators() -> dict[tuple[str, str], CrdValidator]:
    """Validators keyed by (apiVersion, kind), for ``mlstack.render_checks.CRD_VALIDATORS``."""
    found: dict[tuple[str, str], CrdValidator] = {}
    for key in _document()["schemas"]:
        group, version, kind = key.split("/")
        found[(f"{group}/{version}", kind)] = _validator(key)
    return found
