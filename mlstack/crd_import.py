"""``mlstack crds import``: CRD manifests -> one schema file per group/version/kind.

Input: multi-document YAML as ``helm show crds <chart> --version <v>``, ``helm template``
or ``kubectl get crd -o yaml`` print it (a ``List`` too; documents that are not CRDs are
skipped and counted). Every *served* version of every
``apiextensions.k8s.io/v1`` CustomResourceDefinition becomes
``<group>_<version>_<kind>.json`` in the schema directory, in the one-kind format
:mod:`mlstack.custom_resources` reads, with descriptions dropped and the source
recorded (file name, SHA-256, CRD name). Every input is read and checked before
anything is written: a bad document is one error naming the file and the document.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlstack.custom_resources import CrdSchemaError, GroupVersionKind, gvk_text

CRD_API_VERSION = "apiextensions.k8s.io/v1"
CRD_KIND = "CustomResourceDefinition"
_SCHEMA_MAPS = ("properties", "patternProperties", "definitions", "dependencies")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_SCHEMA_ONE = ("not", "additionalItems")


@dataclass(frozen=True)
class ImportedSchema:
    """One served version of one CRD, ready to write."""

    api_version: str
    kind: str
    schema: dict[str, Any]
    source: str

    @property
    def key(self) -> GroupVersionKind:
        return (self.api_version, self.kind)

    @property
    def file_name(self) -> str:
        group, _, version = self.api_version.rpartition("/")
        return f"{group}_{version}_{self.kind.lower()}.json"

    def document(self) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "openAPIV3Schema": self.schema,
            "source": self.source,
        }


def drop_descriptions(schema: Any) -> Any:
    """A copy of an OpenAPI schema without ``description`` annotations.

    Only schema keywords are dropped: a *field* named ``description`` (a key of
    ``properties``) stays, and so do values under ``default``, ``example`` and ``enum``.
    """
    if isinstance(schema, list):
        return [drop_descriptions(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "description" and isinstance(value, str):
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: drop_descriptions(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS or key in _SCHEMA_ONE or key in ("items", "additionalProperties"):
            out[key] = drop_descriptions(value)
        else:
            out[key] = value
    return out


def _documents(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, document) of every CRD in a file; ``List`` items are unpacked."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CrdSchemaError(f"{path}: cannot read: {exc}") from None
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise CrdSchemaError(f"{path}: not valid YAML{where}: {reason}") from None
    for index, document in enumerate(documents, start=1):
        if document is None:
            continue
        where = f"{path} document {index}"
        if isinstance(document, dict) and document.get("kind") == "List":
            items = document.get("items")
            if not isinstance(items, list):
                raise CrdSchemaError(f"{where}: items: a List needs a list of CRDs")
            for item_index, item in enumerate(items):
                yield f"{where} items[{item_index}]", item
        else:
            yield where, document


def _crd_schemas(where: str, crd: Any, source: str) -> list[ImportedSchema]:
    if not isinstance(crd, dict):
        raise CrdSchemaError(f"{where}: expected a CustomResourceDefinition mapping")
    kind = crd.get("kind")
    api_version = crd.get("apiVersion")
    if api_version != CRD_API_VERSION:
        raise CrdSchemaError(
            f"{where}: apiVersion/kind: got {api_version}/{kind}; allowed: "
            f"{CRD_API_VERSION}/{CRD_KIND}"
        )
    name = (crd.get("metadata") or {}).get("name", "?")
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        raise CrdSchemaError(f"{where} ({name}): spec: missing")
    group = spec.get("group")
    crd_kind = (spec.get("names") or {}).get("kind")
    versions = spec.get("versions")
    if not isinstance(group, str) or not group:
        raise CrdSchemaError(f"{where} ({name}): spec.group: missing")
    if not isinstance(crd_kind, str) or not crd_kind:
        raise CrdSchemaError(f"{where} ({name}): spec.names.kind: missing")
    if not isinstance(versions, list) or not versions:
        raise CrdSchemaError(f"{where} ({name}): spec.versions: missing or empty")
    found: list[ImportedSchema] = []
    for index, version in enumerate(versions):
        at = f"{where} ({name}): spec.versions[{index}]"
        if not isinstance(version, dict) or not isinstance(version.get("name"), str):
            raise CrdSchemaError(f"{at}.name: missing")
        if not version.get("served", False):
            continue
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if not isinstance(schema, dict):
            raise CrdSchemaError(
                f"{at}.schema.openAPIV3Schema: missing; a served version needs a schema"
            )
        found.append(
            ImportedSchema(
                f"{group}/{version['name']}",
                crd_kind,
                drop_descriptions(schema),
                f"{name} {version['name']} from {source}; descriptions removed; "
                "imported by mlstack crds import",
            )
        )
    return found


def _is_crd(document: Any) -> bool:
    return isinstance(document, dict) and document.get("kind") == CRD_KIND


@dataclass(frozen=True)
class ManifestSchemas:
    """What the manifests hold: the schemas, and how many other documents were skipped."""

    schemas: list[ImportedSchema]
    skipped: int


def read_manifests(paths: list[Path]) -> ManifestSchemas:
    """Every served version of every CRD in ``paths``; a kind found twice is an error.

    Documents of other kinds (``helm template`` output holds the whole chart) are
    skipped and counted; a file without any CRD is an error.
    """
    if not paths:
        raise CrdSchemaError("no CRD manifest given; pass one or more files")
    found: dict[GroupVersionKind, tuple[str, ImportedSchema]] = {}
    skipped = 0
    for path in paths:
        if not path.is_file():
            raise CrdSchemaError(f"{path}: no such file")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        source = f"{path.name} (sha256 {digest})"
        crds = 0
        for where, document in _documents(path):
            if not _is_crd(document):
                skipped += 1
                continue
            crds += 1
            for schema in _crd_schemas(where, document, source):
                if schema.key in found:
                    raise CrdSchemaError(
                        f"{where}: {gvk_text(schema.key)} is also in {found[schema.key][0]}; "
                        "import each CRD once"
                    )
                found[schema.key] = (where, schema)
        if crds == 0:
            raise CrdSchemaError(f"{path}: no CustomResourceDefinition in it")
    schemas = [schema for _, schema in sorted(found.values(), key=lambda f: f[1].file_name)]
    return ManifestSchemas(schemas, skipped)


def write_schemas(schemas: list[ImportedSchema], directory: Path) -> list[Path]:
    """Write each schema atomically (``mlstack.files``); returns the paths written."""
    from mlstack.files import write_atomic

    written: list[Path] = []
    for schema in schemas:
        target = directory / schema.file_name
        text = json.dumps(schema.document(), indent=1, sort_keys=True) + "\n"
        write_atomic(target, text, what="schema file")
        written.append(target)
    return written


@dataclass(frozen=True)
class ImportResult:
    """Each schema with the file it went to, and the non-CRD documents skipped."""

    written: list[tuple[ImportedSchema, Path]]
    skipped: int


def import_crds(paths: list[Path], directory: Path) -> ImportResult:
    """Read every manifest first, then write; nothing is written when any input is bad."""
    found = read_manifests(paths)
    written = write_schemas(found.schemas, directory)
    return ImportResult(list(zip(found.schemas, written, strict=True)), found.skipped)
