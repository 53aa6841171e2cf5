"""``mlstack model list``: the versions in the bucket, from object listings only.

A version is ``published`` when its ``manifest.json`` exists (the publish time
is the manifest's last-modified time) and ``incomplete`` when objects exist under
its prefix without a manifest (a push that failed or is still running).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal

from components.storage.layout import MANIFEST_NAME, MODELS_ROOT, name_prefix
from mlstack.errors import UsageError
from mlstack.model_store import s3

Status = Literal["published", "incomplete"]


@dataclass(frozen=True)
class VersionInfo:
    """One version found under ``models/<name>/``."""

    name: str
    version: str
    status: Status
    published_at: str | None
    files: int
    """Objects under the version prefix, manifest excluded."""
    total_bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "status": self.status,
            "publishedAt": self.published_at,
            "files": self.files,
            "totalBytes": self.total_bytes,
        }


def _model_names(client: s3.S3Client, bucket: str) -> list[str]:
    paginator = client.get_paginator("list_objects_v2")
    names: list[str] = []
    try:
        for page in paginator.paginate(Bucket=bucket, Prefix=MODELS_ROOT, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                names.append(common["Prefix"][len(MODELS_ROOT) :].rstrip("/"))
    except Exception as exc:
        raise s3.explain(exc, bucket, f"s3://{bucket}/{MODELS_ROOT}") from exc
    return sorted(names)


def list_versions(client: s3.S3Client, bucket: str, name: str | None = None) -> list[VersionInfo]:
    """Every version of ``name`` (or of every model), by name then publish time."""
    if name is not None:
        try:
            prefixes = [name_prefix(name)]
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    else:
        prefixes = [f"{MODELS_ROOT}{n}/" for n in _model_names(client, bucket)]
    found: list[VersionInfo] = []
    for prefix in prefixes:
        model = prefix[len(MODELS_ROOT) : -1]
        sizes: dict[str, int] = defaultdict(int)
        counts: dict[str, int] = defaultdict(int)
        published: dict[str, str] = {}
        for item in s3.list_objects(client, bucket, prefix):
            version, _, rest = item.key[len(prefix) :].partition("/")
            if not rest:
                continue  # an object directly under models/<name>/: not part of any version
            if rest == MANIFEST_NAME:
                published[version] = item.last_modified
            else:
                sizes[version] += item.size
                counts[version] += 1
        for version in set(counts) | set(published):
            found.append(
                VersionInfo(
                    name=model,
                    version=version,
                    status="published" if version in published else "incomplete",
                    published_at=published.get(version),
                    files=counts[version],
                    total_bytes=sizes[version],
                )
            )
    return sorted(
        found,
        key=lambda v: (v.name, v.status != "published", v.published_at or "", v.version),
    )
