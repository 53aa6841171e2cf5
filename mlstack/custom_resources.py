"""The one validator of custom resources, from CRD schemas kept outside the repository.

Schemas come from a *schema directory* (:func:`resolve_schema_dir`): ``--crd-schemas
DIR``, else ``$MLSTACK_CRD_SCHEMAS``, else ``~/.cache/mlstack/crds``. ``mlstack crds
import`` fills one from the CRD manifests of the charts the stack installs
(:mod:`mlstack.crd_import`). Every ``*.json`` file there holds either

* one kind: ``{"apiVersion": "<group>/<version>", "kind": K, "openAPIV3Schema": {...},
  "source": "..."}`` (what ``mlstack crds import`` writes), or
* several: ``{"schemas": {"<group>/<version>/<Kind>": {...}, ...}, "source": "..."}``.

One closing rule (:func:`close`): the API server silently prunes unknown fields of a
custom resource, so every object schema that lists ``properties`` and neither sets
``additionalProperties`` nor ``x-kubernetes-preserve-unknown-fields`` rejects other
keys. Metadata is checked for the fields and shapes objects may carry (the CRDs leave
it open). One error format: ``<Kind> <dotted.path>: <message>``. CEL rules
(``x-kubernetes-validations``) are not evaluated.

Kind-specific checks on top of the schema (:data:`EXTRA_CHECKS`): ``PrometheusRule``
expressions parse as PromQL (promql-parser), each rule is exactly one of alert /
record, group names are unique.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from mlstack.errors import UsageError

ENV_VAR = "MLSTACK_CRD_SCHEMAS"
DEFAULT_DIR = Path("~/.cache/mlstack/crds")
PROVIDE_HINT = (
    "run `mlstack upstream fetch` (the pinned CRDs, into ~/.cache/mlstack/upstream/crds), or "
    "provide schemas with `mlstack crds import <CRD manifests> --to ~/.cache/mlstack/crds` "
    "(README: CRD schemas), or point --crd-schemas / MLSTACK_CRD_SCHEMAS at a schema directory"
)

Validator = Callable[[dict[str, Any]], list[str]]
"""A manifest -> its problems, each ``<Kind> <dotted.path>: <message>``."""

GroupVersionKind = tuple[str, str]
"""(apiVersion, kind), e.g. ``("karpenter.sh/v1", "NodePool")``."""

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
METADATA_FIELDS = frozenset({"name", "namespace", "labels", "annotations"})
_OPEN_MARKERS = ("additionalProperties", "x-kubernetes-preserve-unknown-fields")


class CrdSchemaError(UsageError):
    """A schema directory or file that cannot be used (exit 2)."""


def gvk_text(key: GroupVersionKind) -> str:
    """``("karpenter.sh/v1", "NodePool")`` -> ``karpenter.sh/v1/NodePool``."""
    return f"{key[0]}/{key[1]}"


# --------------------------------------------------------------------------- where


@dataclass(frozen=True)
class SchemaDir:
    """The schema directory in use and how it was chosen."""

    path: Path
    origin: str
    """``--crd-schemas``, ``$MLSTACK_CRD_SCHEMAS`` or ``default``."""

    def describe(self) -> str:
        return f"{self.path} ({self.origin})"


def resolve_schema_dir(
    explicit: Path | None = None, environ: Mapping[str, str] | None = None
) -> SchemaDir:
    """``--crd-schemas DIR``, else ``$MLSTACK_CRD_SCHEMAS``, else the ``crds/`` of
    ``$MLSTACK_UPSTREAM`` or of what ``mlstack upstream fetch`` wrote
    (``~/.cache/mlstack/upstream/crds``) when it exists, else ``~/.cache/mlstack/crds``."""
    env = os.environ if environ is None else environ
    if explicit is not None:
        return SchemaDir(explicit.expanduser(), "--crd-schemas")
    if env.get(ENV_VAR):
        return SchemaDir(Path(env[ENV_VAR]).expanduser(), f"${ENV_VAR}")
    if env.get("MLSTACK_UPSTREAM"):
        return SchemaDir(Path(env["MLSTACK_UPSTREAM"]).expanduser() / "crds", "$MLSTACK_UPSTREAM")
    home = env.get("HOME")
    cache = Path(
        env.get("XDG_CACHE_HOME") or (Path(home) / ".cache" if home else Path.home() / ".cache")
    )
    fetched = cache / "mlstack" / "upstream" / "crds"
    if fetched.is_dir():
        return SchemaDir(fetched, "mlstack upstream fetch")
    default = Path(home) / DEFAULT_DIR.relative_to("~") if home else DEFAULT_DIR.expanduser()
    return SchemaDir(default, "default")


# --------------------------------------------------------------------------- one closing rule


def close(schema: Any) -> Any:
    """A copy of ``schema`` where every object listing ``properties`` rejects unknown keys.

    Objects that set ``additionalProperties`` or ``x-kubernetes-preserve-unknown-fields``
    keep their own rule. The input is not modified.
    """
    if isinstance(schema, list):
        return [close(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: close(value) for key, value in schema.items()}
    if "properties" in out and not any(marker in out for marker in _OPEN_MARKERS):
        out["additionalProperties"] = False
    return out


# --------------------------------------------------------------------------- one loader


@dataclass(frozen=True)
class CrdSchema:
    """The ``openAPIV3Schema`` of one served version of one CRD, as found on disk."""

    api_version: str
    kind: str
    schema: dict[str, Any]
    source: str
    file: Path

    @property
    def key(self) -> GroupVersionKind:
        return (self.api_version, self.kind)


def _fail(path: Path, key: str, value: Any, allowed: str) -> CrdSchemaError:
    shown = json.dumps(value, default=str)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return CrdSchemaError(f"CRD schema file {path}: {key}: got {shown}; {allowed}")


_GVK_KEY = re.compile(
    r"^(?P<group>[a-z0-9.-]+)/(?P<version>v[a-z0-9]+)/(?P<kind>[A-Z][A-Za-z0-9]*)$"
)
_API_VERSION = re.compile(r"^[a-z0-9.-]+\.[a-z0-9.-]+/v[a-z0-9]+$")


def _source(path: Path, document: dict[str, Any]) -> str:
    source = document.get("source", "")
    if not isinstance(source, str):
        raise _fail(path, "source", source, "allowed: a string naming where the schema came from")
    return source


def _schema(path: Path, where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or value.get("type", "object") != "object":
        raise _fail(path, where, value, "allowed: an OpenAPI v3 object schema")
    return value


def parse_schema_file(path: Path) -> list[CrdSchema]:
    """Every schema in one file (either format, see the module docstring)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CrdSchemaError(f"CRD schema file {path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise CrdSchemaError(
            f"CRD schema file {path}: not valid JSON at line {exc.lineno}: {exc.msg}"
        ) from None
    if not isinstance(document, dict):
        raise _fail(path, "<root>", document, "allowed: a JSON object")
    source = _source(path, document)
    if "schemas" in document:
        schemas = document["schemas"]
        if not isinstance(schemas, dict) or not schemas:
            raise _fail(path, "schemas", schemas, "allowed: {<group>/<version>/<Kind>: schema}")
        found: list[CrdSchema] = []
        for key, schema in schemas.items():
            match = _GVK_KEY.match(str(key))
            if match is None:
                raise _fail(path, f"schemas.{key}", key, "allowed keys: <group>/<version>/<Kind>")
            api_version = f"{match['group']}/{match['version']}"
            found.append(
                CrdSchema(
                    api_version,
                    match["kind"],
                    _schema(path, f"schemas.{key}", schema),
                    source,
                    path,
                )
            )
        return found
    missing = [k for k in ("apiVersion", "kind", "openAPIV3Schema") if k not in document]
    if missing:
        raise _fail(
            path,
            ", ".join(missing),
            sorted(document),
            "required: apiVersion, kind, openAPIV3Schema (one kind) or schemas (several)",
        )
    api_version, kind = document["apiVersion"], document["kind"]
    if not isinstance(api_version, str) or not _API_VERSION.match(api_version):
        raise _fail(path, "apiVersion", api_version, "allowed: <group>/<version> of a CRD")
    if not isinstance(kind, str) or not kind[:1].isupper():
        raise _fail(path, "kind", kind, "allowed: a CamelCase kind")
    schema = _schema(path, "openAPIV3Schema", document["openAPIV3Schema"])
    return [CrdSchema(api_version, kind, schema, source, path)]


@dataclass(frozen=True)
class SchemaStore:
    """Every CRD schema found in one schema directory, by (apiVersion, kind)."""

    where: SchemaDir | None
    schemas: dict[GroupVersionKind, CrdSchema] = field(default_factory=dict)
    _compiled: dict[GroupVersionKind, Validator] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def available(self) -> bool:
        """Whether a schema directory exists at all (else no custom resource is validated)."""
        return self.where is not None and self.where.path.is_dir()

    def get(self, key: GroupVersionKind) -> CrdSchema | None:
        return self.schemas.get(key)

    def validator(self, key: GroupVersionKind) -> Validator:
        """The validator of one kind (compiled once); ``KeyError`` when there is no schema."""
        if key not in self.schemas:
            where = self.where.describe() if self.where else "no schema directory"
            raise KeyError(f"no schema for {gvk_text(key)} in {where}")
        if key not in self._compiled:
            self._compiled[key] = compile_schema(self.schemas[key])
        return self._compiled[key]

    def validate(self, manifest: dict[str, Any]) -> list[str] | None:
        """Problems of one custom resource; ``None`` when no schema covers its kind."""
        key = (str(manifest.get("apiVersion", "")), str(manifest.get("kind", "")))
        if key not in self.schemas:
            return None
        return self.validator(key)(manifest)

    def kinds(self) -> list[str]:
        """``group/version/Kind`` of every schema in the store, sorted."""
        return sorted(gvk_text(key) for key in self.schemas)


def load_schema_dir(where: SchemaDir) -> SchemaStore:
    """Read every ``*.json`` under ``where``; a missing *default* directory holds nothing.

    A directory named explicitly (flag or environment) must exist. Two files with the
    same group/version/kind are an error naming both.
    """
    path = where.path
    if not path.exists():
        if where.origin == "default":
            return SchemaStore(where)
        raise CrdSchemaError(
            f"CRD schema directory {path} (from {where.origin}) does not exist; {PROVIDE_HINT}"
        )
    if not path.is_dir():
        raise CrdSchemaError(
            f"CRD schema directory {path} (from {where.origin}) is not a directory"
        )
    found: dict[GroupVersionKind, CrdSchema] = {}
    for file in sorted(path.glob("*.json")):
        for schema in parse_schema_file(file):
            if schema.key in found:
                raise CrdSchemaError(
                    f"CRD schema for {gvk_text(schema.key)} is in both {found[schema.key].file} "
                    f"and {file}; keep one"
                )
            found[schema.key] = schema
    return SchemaStore(where, found)


@cache
def _cached_store(path: str, origin: str, stamp: tuple[tuple[str, float, int], ...]) -> SchemaStore:
    return load_schema_dir(SchemaDir(Path(path), origin))


def _stamp(path: Path) -> tuple[tuple[str, float, int], ...]:
    if not path.is_dir():
        return ()
    return tuple((p.name, p.stat().st_mtime, p.stat().st_size) for p in sorted(path.glob("*.json")))


def schema_store(explicit: Path | None = None) -> SchemaStore:
    """The store of the resolved schema directory, read once per process (per content)."""
    where = resolve_schema_dir(explicit)
    return _cached_store(str(where.path), where.origin, _stamp(where.path))


# --------------------------------------------------------------------------- one validator


def metadata_problems(kind: str, metadata: Any) -> list[str]:
    """What the API server would refuse in an object's metadata (name, labels, ...)."""
    if not isinstance(metadata, dict):
        return [f"{kind} metadata: must be an object"]
    found = [
        f"{kind} metadata.{key}: unknown field" for key in sorted(set(metadata) - METADATA_FIELDS)
    ]
    name = metadata.get("name", "")
    if not isinstance(name, str) or not _DNS_SUBDOMAIN.match(name):
        found.append(f"{kind} metadata.name: {name!r} is not a DNS-1123 subdomain")
    for part in ("labels", "annotations"):
        values = metadata.get(part, {})
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            found.append(f"{kind} metadata.{part}: must map strings to strings")
            continue
        found += [
            f"{kind} metadata.{part}: {key!r} is not a valid key"
            for key in values
            if not _LABEL_KEY.match(key)
        ]
        if part == "labels":
            found += [
                f"{kind} metadata.labels.{key}: {value!r} is not a valid label value"
                for key, value in values.items()
                if not _LABEL_VALUE.match(value)
            ]
    return found


def prometheus_rule_problems(manifest: dict[str, Any]) -> list[str]:
    import promql_parser

    kind = "PrometheusRule"
    found: list[str] = []
    spec = manifest.get("spec")
    groups = spec.get("groups", []) if isinstance(spec, dict) else []
    groups = groups if isinstance(groups, list) else []
    names = [str(g.get("name")) for g in groups if isinstance(g, dict)]
    found += [
        f"{kind} spec.groups: duplicate group name {n!r}"
        for n in sorted(set(names))
        if names.count(n) > 1
    ]
    for gi, group in enumerate(groups):
        rules = group.get("rules", []) if isinstance(group, dict) else []
        for ri, rule in enumerate(rules if isinstance(rules, list) else []):
            where = f"{kind} spec.groups.{gi}.rules.{ri}"
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


EXTRA_CHECKS: dict[GroupVersionKind, Validator] = {
    ("monitoring.coreos.com/v1", "PrometheusRule"): prometheus_rule_problems,
}
"""Checks the schema cannot express, by (apiVersion, kind)."""


def compile_schema(schema: CrdSchema) -> Validator:
    """The strict validator of one kind: metadata, the closed schema, the extra checks."""
    from jsonschema import Draft7Validator

    closed = close(schema.schema)
    # The API server accepts apiVersion, kind and metadata on every object, listed in the
    # CRD's schema or not; metadata itself is checked by metadata_problems.
    root = closed.setdefault("properties", {})
    root.setdefault("apiVersion", {"type": "string"})
    root.setdefault("kind", {"type": "string"})
    root["metadata"] = {"type": "object"}
    if not any(marker in schema.schema for marker in _OPEN_MARKERS):
        closed["additionalProperties"] = False  # the root prunes, with or without properties
    checker = Draft7Validator(closed)
    extra = EXTRA_CHECKS.get(schema.key)

    def validate(manifest: dict[str, Any]) -> list[str]:
        shown = str(manifest.get("kind") or schema.kind)
        problems = metadata_problems(shown, manifest.get("metadata"))
        for error in sorted(checker.iter_errors(manifest), key=lambda e: [str(p) for p in e.path]):
            path = ".".join(str(p) for p in error.path) or "<root>"
            problems.append(f"{shown} {path}: {error.message}")
        if extra is not None:
            problems += extra(manifest)
        return problems

    return validate
