"""``mlstack model verify``: re-read every file of a version and check it against the manifest.

Reports, all at once: files missing from the bucket, files whose size or sha256
differ from the manifest (corruption, or an overwrite after publishing), objects
replaced after publishing (the S3 version id changed, even with equal bytes), and
stray objects under the version prefix that the manifest does not list (readers
that copy the whole prefix would pick them up).
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
from dataclasses import dataclass, field

from components.storage.layout import MANIFEST_NAME, model_prefix
from mlstack.errors import MlstackError, UsageError
from mlstack.model_store import s3
from mlstack.model_store.manifest import FileEntry, Manifest, parse_manifest
from mlstack.model_store.push import NoProgress, PushProgress

READ_CHUNK = 1024 * 1024


class VersionNotFoundError(MlstackError):
    """No manifest: the version was never pushed, or its push did not finish."""


@dataclass
class VerifyReport:
    """The outcome of a verification: problems (empty when the version is intact)."""

    bucket: str
    prefix: str
    manifest: Manifest
    problems: list[str] = field(default_factory=list)
    checked_bytes: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def read_manifest(client: s3.S3Client, bucket: str, name: str, version: str) -> Manifest:
    """The parsed manifest of a version; VersionNotFoundError when there is none."""
    manifest, _ = _manifest_and_listing(client, bucket, name, version)
    return manifest


def _manifest_and_listing(
    client: s3.S3Client, bucket: str, name: str, version: str
) -> tuple[Manifest, dict[str, int]]:
    """The manifest and the objects under the version (key -> size), listing first: a
    prefix-scoped role gets 403, not 404, for a GET of a key that does not exist."""
    try:
        prefix = model_prefix(name, version)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    key = prefix + MANIFEST_NAME
    listed = {item.key: item.size for item in s3.list_objects(client, bucket, prefix)}
    if key not in listed:
        detail = (
            f"an unfinished push left {len(listed)} object(s) there; rerun the push to finish it"
            if listed
            else "it was never pushed"
        )
        raise VersionNotFoundError(
            f"{name} version {version} does not exist in s3://{bucket}/{prefix} "
            f"(no {MANIFEST_NAME}: {detail})"
        )
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:
        raise s3.explain(exc, bucket, f"s3://{bucket}/{key}") from exc
    return parse_manifest(body, name, version), listed


def _check_file(
    client: s3.S3Client, bucket: str, prefix: str, entry: FileEntry, progress: PushProgress
) -> list[str]:
    key = prefix + entry.path
    try:
        response = client.get_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if s3.is_not_found(exc):
            return [f"{entry.path}: missing from the bucket"]
        raise s3.explain(exc, bucket, f"s3://{bucket}/{key}") from exc
    digest = hashlib.sha256()
    size = 0
    for chunk in response["Body"].iter_chunks(READ_CHUNK):
        digest.update(chunk)
        size += len(chunk)
        progress.advance(len(chunk))
    problems: list[str] = []
    if size != entry.size:
        problems.append(f"{entry.path}: size {size}, manifest says {entry.size}")
    if digest.hexdigest() != entry.sha256:
        problems.append(
            f"{entry.path}: sha256 {digest.hexdigest()}, manifest says {entry.sha256} "
            "(corrupted or overwritten)"
        )
    current = response.get("VersionId")
    if entry.version_id and current and current != entry.version_id:
        problems.append(
            f"{entry.path}: replaced after publishing (S3 version {current}, manifest "
            f"records {entry.version_id}; the original is a noncurrent version)"
        )
    progress.file_done(entry.path, resumed=False)
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
    """Download every file of the version, hash it, compare with the manifest."""
    progress = progress or NoProgress()
    manifest, listed = _manifest_and_listing(client, bucket, name, version)
    prefix = model_prefix(name, version)
    report = VerifyReport(bucket=bucket, prefix=prefix, manifest=manifest)
    progress.start(manifest.total_bytes, len(manifest.files))
    present = [entry for entry in manifest.files if prefix + entry.path in listed]
    report.problems += [
        f"{entry.path}: missing from the bucket"
        for entry in manifest.files
        if prefix + entry.path not in listed
    ]
    with cf.ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="mlstack-verify") as pool:
        futures = [
            pool.submit(_check_file, client, bucket, prefix, entry, progress) for entry in present
        ]
        for future in futures:
            report.problems += future.result()
    in_manifest = {prefix + f.path for f in manifest.files}
    for key in sorted(listed):
        if key != prefix + MANIFEST_NAME and key not in in_manifest:
            report.problems.append(
                f"{key.removeprefix(prefix)}: in the bucket but not in the manifest"
            )
    report.checked_bytes = manifest.total_bytes
    return report
