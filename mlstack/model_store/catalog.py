"""``mlstack model list``: the published versions, each checked against the bucket listing.

A version is ``published`` when its manifest exists, parses and every blob it names
is in the bucket with the size it records; ``damaged`` otherwise (the problems say
why; ``mlstack model verify`` also re-hashes the bytes). The publish time is the
manifest's last-modified time. Blobs no manifest references (left by an interrupted
push, or by the loser of a race) are counted per model: harmless, never served.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from components.storage import layout
from mlstack.errors import UsageError
from mlstack.model_store import s3
from mlstack.model_store.manifest import ManifestError, parse_manifest
from mlstack.model_store.verify import listing_problems

Status = Literal["published", "damaged"]


@dataclass(frozen=True)
class VersionInfo:
    """One version found under ``models/<name>/manifests/``."""

    name: str
    version: str
    status: Status
    published_at: str | None
    files: int
    total_bytes: int
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "status": self.status,
            "publishedAt": self.published_at,
            "files": self.files,
            "totalBytes": self.total_bytes,
            "problems": list(self.problems),
        }


@dataclass
class Catalog:
    """Every version found, and per model the blobs no manifest references."""

    versions: list[VersionInfo] = field(default_factory=list)
    unreferenced: dict[str, tuple[int, int]] = field(default_factory=dict)
    """model name -> (blob count, bytes)."""


def _model_names(client: s3.S3Client, bucket: str) -> list[str]:
    paginator = client.get_paginator("list_objects_v2")
    names: list[str] = []
    try:
        for page in paginator.paginate(Bucket=bucket, Prefix=layout.MODELS_ROOT, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                names.append(common["Prefix"][len(layout.MODELS_ROOT) :].rstrip("/"))
    except Exception as exc:
        raise s3.explain(exc, bucket, f"s3://{bucket}/{layout.MODELS_ROOT}") from exc
    return sorted(n for n in names if layout.name_problem(n) is None)


def list_versions(client: s3.S3Client, bucket: str, name: str | None = None) -> Catalog:
    """Every version of ``name`` (or of every model), by name then publish time."""
    if name is not None:
        problem = layout.name_problem(name)
        if problem:
            raise UsageError(f"model name {name!r}: {problem}")
        names = [name]
    else:
        names = _model_names(client, bucket)
    catalog = Catalog()
    for model in names:
        blobs: dict[str, int] = {}
        manifests: dict[str, tuple[str, str]] = {}  # version -> (key, last modified)
        for item in s3.list_objects(client, bucket, layout.name_prefix(model)):
            digest = layout.digest_of_blob_key(model, item.key)
            if digest is not None:
                blobs[digest] = item.size
                continue
            version = layout.version_of_manifest_key(model, item.key)
            if version is not None:
                manifests[version] = (item.key, item.last_modified)
        referenced: set[str] = set()
        for version, (key, modified) in manifests.items():
            try:
                body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            except Exception as exc:
                raise s3.explain(exc, bucket, f"s3://{bucket}/{key}") from exc
            try:
                manifest = parse_manifest(body, model, version)
            except ManifestError as exc:
                catalog.versions.append(
                    VersionInfo(model, version, "damaged", modified, 0, 0, (str(exc),))
                )
                continue
            referenced |= set(manifest.digests())
            problems = tuple(listing_problems(manifest, blobs))
            catalog.versions.append(
                VersionInfo(
                    name=model,
                    version=version,
                    status="damaged" if problems else "published",
                    published_at=modified,
                    files=len(manifest.files),
                    total_bytes=manifest.total_bytes,
                    problems=problems,
                )
            )
        orphans = {d: s for d, s in blobs.items() if d not in referenced}
        if orphans:
            catalog.unreferenced[model] = (len(orphans), sum(orphans.values()))
    catalog.versions.sort(key=lambda v: (v.name, v.published_at or "", v.version))
    return catalog
