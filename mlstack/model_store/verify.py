"""``mlstack model verify``: re-read every blob of a version and check it against the manifest.

Follows the manifest: each file's bytes are the blob ``models/<name>/blobs/sha256/<sha256>``.
Reports, all at once: blobs missing from the bucket, blobs whose size or sha256 differ
from the manifest (corruption, or a write around mlstack). A blob shared by several
files (identical content) is read once.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
from dataclasses import dataclass, field

from components.storage import layout
from mlstack.errors import MlstackError, UsageError
from mlstack.model_store import s3
from mlstack.model_store.manifest import Manifest, ManifestError, parse_manifest
from mlstack.model_store.push import NoProgress, PushProgress

READ_CHUNK = 1024 * 1024


class VersionNotFoundError(MlstackError):
    """No manifest: the version was never pushed, or its push did not finish."""


@dataclass
class VerifyReport:
    """The outcome of a verification: problems (empty when the version is intact)."""

    bucket: str
    manifest_key: str
    manifest: Manifest
    problems: list[str] = field(default_factory=list)
    checked_bytes: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def read_manifest(client: s3.S3Client, bucket: str, name: str, version: str) -> bytes:
    """The manifest's bytes; VersionNotFoundError when the version is not published.

    Listing first: a prefix-scoped role gets 403, not 404, for a GET of a missing key.
    """
    try:
        key = layout.manifest_key(name, version)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not any(item.key == key for item in s3.list_objects(client, bucket, key)):
        raise VersionNotFoundError(
            f"{name} version {version} does not exist: no manifest at s3://{bucket}/{key} "
            "(never pushed, or its push did not finish; rerun the push to finish it)"
        )
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:
        raise s3.explain(exc, bucket, f"s3://{bucket}/{key}") from exc


def blob_sizes(client: s3.S3Client, bucket: str, name: str) -> dict[str, int]:
    """Every blob of a model: digest -> size (one listing)."""
    return {
        digest: item.size
        for item in s3.list_objects(client, bucket, layout.blobs_prefix(name))
        if (digest := layout.digest_of_blob_key(name, item.key)) is not None
    }


def listing_problems(manifest: Manifest, blobs: dict[str, int]) -> list[str]:
    """What a listing alone shows is wrong with a version: missing or wrong-size blobs."""
    problems: list[str] = []
    for entry in manifest.files:
        size = blobs.get(entry.sha256)
        if size is None:
            problems.append(f"{entry.path}: blob {entry.sha256} is missing from the bucket")
        elif size != entry.size:
            problems.append(
                f"{entry.path}: blob {entry.sha256} holds {size} bytes, manifest says {entry.size}"
            )
    return problems


def _check_blob(
    client: s3.S3Client,
    bucket: str,
    name: str,
    *,
    digest: str,
    size: int,
    paths: list[str],
    progress: PushProgress,
) -> list[str]:
    key = layout.blob_key(name, digest)
    shown = ", ".join(paths)
    try:
        response = client.get_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if s3.is_not_found(exc):
            return [f"{shown}: blob {digest} is missing from the bucket"]
        raise s3.explain(exc, bucket, f"s3://{bucket}/{key}") from exc
    hasher = hashlib.sha256()
    read = 0
    for chunk in response["Body"].iter_chunks(READ_CHUNK):
        hasher.update(chunk)
        read += len(chunk)
        progress.advance(len(chunk))
    problems: list[str] = []
    if read != size:
        problems.append(f"{shown}: blob {digest} holds {read} bytes, manifest says {size}")
    if hasher.hexdigest() != digest:
        problems.append(
            f"{shown}: blob {digest} has sha256 {hasher.hexdigest()} (corrupted, or written "
            "around mlstack)"
        )
    for path in paths:
        progress.file_done(path, resumed=False)
    return problems


def verify_model(
    client: s3.S3Client,
    bucket: str,
    name: str,
    version: str,
    *,
    concurrency: int = 8,
    progress: PushProgress | None = None,
) -> VerifyReport:
    """Download every blob the manifest names, hash it, compare with the manifest."""
    progress = progress or NoProgress()
    body = read_manifest(client, bucket, name, version)
    key = layout.manifest_key(name, version)
    try:
        manifest = parse_manifest(body, name, version)
    except ManifestError as exc:
        raise ManifestError(f"s3://{bucket}/{key}: {exc}") from None
    report = VerifyReport(bucket=bucket, manifest_key=key, manifest=manifest)
    blobs = blob_sizes(client, bucket, name)
    report.problems += listing_problems(manifest, blobs)
    paths: dict[str, list[str]] = {}
    for entry in manifest.files:
        paths.setdefault(entry.sha256, []).append(entry.path)
    present = {d: s for d, s in manifest.digests().items() if blobs.get(d) == s}
    progress.start(sum(present.values()), len(manifest.files), phase="verify")
    with cf.ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="mlstack-verify") as pool:
        futures = [
            pool.submit(
                _check_blob,
                client,
                bucket,
                name,
                digest=d,
                size=s,
                paths=paths[d],
                progress=progress,
            )
            for d, s in sorted(present.items())
        ]
        for future in futures:
            report.problems += future.result()
    report.checked_bytes = sum(present.values())
    return report
