"""``mlstack model push``: upload a model directory as one immutable version.

Order of events, so that a version is either complete or invisible:

1. refuse when ``manifest.json`` exists (versions are immutable);
2. refuse when the version prefix holds objects that are not in the directory
   (left by an earlier push of other files: readers would see them);
3. upload every file, several at once and large ones as parallel multipart
   uploads; each file's sha256 is computed while it is read, S3 checks every
   part against its own SHA-256 checksum, and a file whose size, mtime or inode
   changed while it was read is not completed;
4. write ``manifest.json`` last, with ``If-None-Match: *`` so two concurrent
   pushes of one version cannot both publish.

A push that fails or is interrupted writes no manifest; its finished files stay
(unpublished). Rerunning the same command skips files whose S3 checksum matches
the local file (multipart objects record their part size in the metadata, so the
composite checksum can be recomputed locally) and uploads the rest.
"""

from __future__ import annotations

import base64
import concurrent.futures as cf
import hashlib
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from components.storage.layout import MANIFEST_NAME, model_prefix
from mlstack.errors import MlstackError, UsageError
from mlstack.model_store import s3
from mlstack.model_store.local import LocalFile
from mlstack.model_store.manifest import CONTENT_TYPE, FileEntry, Manifest, build_manifest

MiB = 1024 * 1024
DEFAULT_PART_SIZE = 8 * MiB
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * 1024 * MiB
MAX_PARTS = 10_000
MAX_CONCURRENCY = 64
PART_SIZE_META = "mlstack-part-size"
"""User metadata on multipart objects: the part size, to recompute the composite checksum."""
READ_CHUNK = 8 * MiB
_CONDITION_FAILED = ("PreconditionFailed", "412", "ConditionalRequestConflict")


class VersionExistsError(MlstackError):
    """The version is already published; versions are immutable."""


class FileChangedError(MlstackError):
    """A local file changed while it was being read for upload."""


class PushError(MlstackError):
    """The push stopped before publishing; the version stays invisible."""


class PushProgress(Protocol):
    """Receives progress from the upload threads (must be thread-safe)."""

    def start(self, total_bytes: int, total_files: int) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def file_done(self, relpath: str, resumed: bool) -> None: ...


class NoProgress:
    """Progress sink that shows nothing."""

    def start(self, total_bytes: int, total_files: int) -> None:
        return None

    def advance(self, nbytes: int) -> None:
        return None

    def file_done(self, relpath: str, resumed: bool) -> None:
        return None


@dataclass(frozen=True)
class PushSettings:
    """How to push. Defaults: 8 requests in flight, 8 MiB parts (raised for huge files)."""

    concurrency: int = 8
    part_size: int = DEFAULT_PART_SIZE
    git_commit: str | None = None
    hints: Mapping[str, str] = field(default_factory=dict)

    def problems(self) -> list[str]:
        found: list[str] = []
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            found.append(f"concurrency {self.concurrency}: allowed 1-{MAX_CONCURRENCY}")
        if not MIN_PART_SIZE <= self.part_size <= MAX_PART_SIZE:
            found.append(
                f"part size {self.part_size // MiB} MiB: allowed "
                f"{MIN_PART_SIZE // MiB}-{MAX_PART_SIZE // MiB} MiB"
            )
        return found


@dataclass(frozen=True)
class PushResult:
    """What a successful push published."""

    bucket: str
    prefix: str
    manifest: Manifest
    uploaded_files: int
    resumed_files: int
    """Files already complete in the bucket from an earlier, interrupted push."""
    uploaded_bytes: int
    seconds: float


def part_size_for(size: int, part_size: int) -> int:
    """The part size used for a file: ``part_size``, raised (whole MiB) to fit 10,000 parts."""
    needed = -(-size // MAX_PARTS)
    if needed <= part_size:
        return part_size
    return -(-needed // MiB) * MiB


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def composite_checksum(part_digests: Sequence[bytes]) -> str:
    """S3's COMPOSITE SHA-256 of a multipart object: sha256 of the part digests, ``-N``."""
    return f"{b64(hashlib.sha256(b''.join(part_digests)).digest())}-{len(part_digests)}"


class _CancelledError(Exception):
    """Another file failed or the user interrupted: stop quietly."""


@dataclass(frozen=True)
class _Fingerprint:
    size: int
    mtime_ns: int
    inode: int
    device: int

    @classmethod
    def of(cls, path: os.PathLike[str] | str) -> _Fingerprint:
        info = Path(path).stat()
        return cls(info.st_size, info.st_mtime_ns, info.st_ino, info.st_dev)


class _Uploader:
    """Uploads files with a bounded pool of S3 requests and bounded read-ahead memory."""

    def __init__(
        self,
        client: s3.S3Client,
        bucket: str,
        prefix: str,
        settings: PushSettings,
        progress: PushProgress,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.settings = settings
        self.progress = progress
        self.cancel = threading.Event()
        # Read-ahead: at most 2 buffers per request slot are held in memory.
        self._buffers = threading.BoundedSemaphore(settings.concurrency * 2)
        self.requests = cf.ThreadPoolExecutor(settings.concurrency, thread_name_prefix="mlstack-s3")

    # -------------------------------------------------------------- per file

    def push_file(self, local: LocalFile, remote_size: int | None) -> tuple[FileEntry, bool]:
        """Upload one file (or find it already complete); returns its entry and resumed?"""
        if self.cancel.is_set():
            raise _CancelledError()
        key = self.prefix + local.relpath
        before = _Fingerprint.of(local.path)
        if before.size != local.size:
            raise self._changed(local)
        if remote_size == before.size:
            entry = self._already_uploaded(local, key, before)
            if entry is not None:
                self.progress.advance(local.size)
                self.progress.file_done(local.relpath, resumed=True)
                return entry, True
        if before.size <= self.settings.part_size:
            entry = self._single(local, key, before)
        else:
            entry = self._multipart(local, key, before)
        self.progress.file_done(local.relpath, resumed=False)
        return entry, False

    def _changed(self, local: LocalFile) -> FileChangedError:
        return FileChangedError(
            f"{local.relpath} changed on disk while it was being uploaded (size, mtime or "
            "inode differ); it was not completed. Make sure nothing writes to the model "
            "directory, then rerun"
        )

    def _check_unchanged(self, local: LocalFile, before: _Fingerprint, read: int) -> None:
        if read != before.size or _Fingerprint.of(local.path) != before:
            raise self._changed(local)

    def _acquire_buffer(self) -> None:
        while not self._buffers.acquire(timeout=0.2):
            if self.cancel.is_set():
                raise _CancelledError()
        if self.cancel.is_set():
            self._buffers.release()
            raise _CancelledError()

    def _already_uploaded(
        self, local: LocalFile, key: str, before: _Fingerprint
    ) -> FileEntry | None:
        """The entry of an object left complete by an earlier push when it equals the file."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except Exception as exc:
            if s3.is_not_found(exc):
                return None
            raise s3.explain(exc, self.bucket, f"s3://{self.bucket}/{key}") from exc
        remote = head.get("ChecksumSHA256")
        if not remote:
            return None
        remote_digest, _, remote_parts = remote.partition("-")
        composite = head.get("ChecksumType") == "COMPOSITE" or bool(remote_parts)
        part_size: int | None = None
        if composite:
            try:
                part_size = int(head.get("Metadata", {}).get(PART_SIZE_META, ""))
            except ValueError:
                return None  # not uploaded by mlstack: the part size is unknown
            if part_size <= 0:
                return None
        full = hashlib.sha256()
        parts: list[bytes] = []
        read = 0
        with local.path.open("rb") as handle:
            while True:
                if self.cancel.is_set():
                    raise _CancelledError()
                chunk = handle.read(part_size or READ_CHUNK)
                if not chunk:
                    break
                read += len(chunk)
                full.update(chunk)
                if part_size:
                    parts.append(hashlib.sha256(chunk).digest())
        self._check_unchanged(local, before, read)
        if part_size:
            mine, _, mine_parts = composite_checksum(parts).partition("-")
            # Some S3-compatible stores leave out the "-<parts>" suffix.
            if mine != remote_digest or (remote_parts and remote_parts != mine_parts):
                return None
        elif b64(full.digest()) != remote:
            return None
        return FileEntry(local.relpath, read, full.hexdigest(), head.get("VersionId"))

    def _single(self, local: LocalFile, key: str, before: _Fingerprint) -> FileEntry:
        self._acquire_buffer()
        try:
            with local.path.open("rb") as handle:
                data = handle.read(before.size + 1)
            self._check_unchanged(local, before, len(data))
            digest = hashlib.sha256(data).digest()
            response = self.requests.submit(self._put_object, key, data, digest).result()
        finally:
            self._buffers.release()
        return FileEntry(local.relpath, len(data), digest.hex(), response.get("VersionId"))

    def _put_object(self, key: str, data: bytes, digest: bytes) -> dict[str, Any]:
        if self.cancel.is_set():
            raise _CancelledError()
        try:
            response = self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentLength=len(data),
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=b64(digest),
            )
        except Exception as exc:
            raise s3.explain(exc, self.bucket, f"s3://{self.bucket}/{key}") from exc
        self.progress.advance(len(data))
        return response

    def _multipart(self, local: LocalFile, key: str, before: _Fingerprint) -> FileEntry:
        part_size = part_size_for(before.size, self.settings.part_size)
        count = -(-before.size // part_size)
        where = f"s3://{self.bucket}/{key}"
        try:
            created = self.client.create_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                ChecksumAlgorithm="SHA256",
                ChecksumType="COMPOSITE",
                Metadata={PART_SIZE_META: str(part_size)},
            )
        except Exception as exc:
            raise s3.explain(exc, self.bucket, where) from exc
        upload_id = created["UploadId"]
        futures: list[cf.Future[dict[str, Any]]] = []
        try:
            full = hashlib.sha256()
            read = 0
            with local.path.open("rb") as handle:
                for number in range(1, count + 1):
                    self._acquire_buffer()
                    try:
                        chunk = handle.read(part_size)
                    except BaseException:
                        self._buffers.release()
                        raise
                    if not chunk or (number < count and len(chunk) != part_size):
                        self._buffers.release()
                        raise self._changed(local)
                    full.update(chunk)
                    read += len(chunk)
                    futures.append(
                        self.requests.submit(self._upload_part, key, upload_id, number, chunk)
                    )
                grew = handle.read(1)
            parts = [future.result() for future in futures]
            self._check_unchanged(local, before, read + len(grew))
            try:
                done = self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    ChecksumType="COMPOSITE",
                )
            except Exception as exc:
                raise s3.explain(exc, self.bucket, where) from exc
        except BaseException:
            for future in futures:
                future.cancel()
            cf.wait(futures)
            self._abort(key, upload_id)
            raise
        return FileEntry(local.relpath, read, full.hexdigest(), done.get("VersionId"))

    def _upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> dict[str, Any]:
        try:
            if self.cancel.is_set():
                raise _CancelledError()
            checksum = b64(hashlib.sha256(data).digest())
            try:
                response = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data,
                    ContentLength=len(data),
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=checksum,
                )
            except Exception as exc:
                raise s3.explain(exc, self.bucket, f"s3://{self.bucket}/{key}") from exc
            self.progress.advance(len(data))
            return {"PartNumber": number, "ETag": response["ETag"], "ChecksumSHA256": checksum}
        finally:
            self._buffers.release()

    def _abort(self, key: str, upload_id: str) -> None:
        """Best effort; the bucket's lifecycle rule removes what is left anyway."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except Exception:
            return


def manifest_exists(client: s3.S3Client, bucket: str, key: str) -> bool:
    """Whether ``key`` exists, by listing (a HEAD on a missing key answers 403, not 404,
    to a role whose ``s3:ListBucket`` is limited to a prefix)."""
    return any(item.key == key for item in s3.list_objects(client, bucket, key))


def push_model(
    client: s3.S3Client,
    bucket: str,
    name: str,
    version: str,
    files: Sequence[LocalFile],
    *,
    settings: PushSettings | None = None,
    progress: PushProgress | None = None,
) -> PushResult:
    """Upload ``files`` as ``models/<name>/<version>/`` and publish the manifest last."""
    settings = settings or PushSettings()
    progress = progress or NoProgress()
    problems = settings.problems()
    if problems:
        raise UsageError("; ".join(problems))
    if not files:
        raise UsageError("nothing to push: no files")
    try:
        prefix = model_prefix(name, version)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    started = time.monotonic()
    manifest_key = prefix + MANIFEST_NAME
    where = f"s3://{bucket}/{prefix}"
    existing = {o.key: o.size for o in s3.list_objects(client, bucket, prefix)}
    if manifest_key in existing:
        raise VersionExistsError(
            f"{name} version {version} already exists at {where}: versions are immutable; "
            "push under a new version"
        )
    wanted = {prefix + f.relpath for f in files}
    strays = sorted(key for key in existing if key not in wanted and key != manifest_key)
    if strays:
        shown = ", ".join(k.removeprefix(prefix) for k in strays[:5])
        more = f" and {len(strays) - 5} more" if len(strays) > 5 else ""
        raise PushError(
            f"{where} already holds {len(strays)} object(s) that are not in this directory "
            f"({shown}{more}), left by an earlier push of other files. A version holds exactly "
            "its manifest's files: remove them (aws s3 rm --recursive) or push a new version"
        )

    progress.start(sum(f.size for f in files), len(files))
    uploader = _Uploader(client, bucket, prefix, settings, progress)
    entries: list[FileEntry] = []
    resumed = 0
    resumed_bytes = 0
    failures: list[tuple[LocalFile, BaseException]] = []
    readers = cf.ThreadPoolExecutor(
        min(settings.concurrency, len(files)), thread_name_prefix="mlstack-read"
    )
    futures = {
        readers.submit(uploader.push_file, f, existing.get(prefix + f.relpath)): f for f in files
    }
    try:
        for future in cf.as_completed(futures):
            try:
                entry, was_resumed = future.result()
            except _CancelledError:
                continue
            except Exception as exc:
                failures.append((futures[future], exc))
                uploader.cancel.set()
                continue
            entries.append(entry)
            if was_resumed:
                resumed += 1
                resumed_bytes += entry.size
    except KeyboardInterrupt:
        uploader.cancel.set()
        cf.wait(futures)
        raise PushError(
            f"interrupted: {len(entries)} of {len(files)} files reached {where}; no manifest "
            "was written, so the version stays invisible. Rerun the same command to finish"
        ) from None
    finally:
        readers.shutdown(wait=True)
        uploader.requests.shutdown(wait=True)
    if failures:
        local, exc = failures[0]
        reason = str(exc) if isinstance(exc, MlstackError) else f"{type(exc).__name__}: {exc}"
        message = (
            f"push of {name} version {version} stopped: {local.relpath}: {reason}. "
            f"{len(entries)} of {len(files)} files reached {where}; no manifest was written, "
            "so the version stays invisible. Rerun the same command to finish (complete files "
            "are not uploaded again)"
        )
        raise PushError(message) from exc

    manifest = build_manifest(
        name, version, entries, git_commit=settings.git_commit, hints=dict(settings.hints)
    )
    _publish(client, bucket, manifest_key, manifest)
    return PushResult(
        bucket=bucket,
        prefix=prefix,
        manifest=manifest,
        uploaded_files=len(entries) - resumed,
        resumed_files=resumed,
        uploaded_bytes=sum(e.size for e in entries) - resumed_bytes,
        seconds=time.monotonic() - started,
    )


def _publish(client: s3.S3Client, bucket: str, key: str, manifest: Manifest) -> None:
    """Write the manifest only if no manifest exists yet (conditional write)."""
    body = manifest.to_json().encode("utf-8")
    arguments: dict[str, Any] = {
        "Bucket": bucket,
        "Key": key,
        "Body": body,
        "ContentType": CONTENT_TYPE,
        "ChecksumAlgorithm": "SHA256",
        "ChecksumSHA256": b64(hashlib.sha256(body).digest()),
    }
    try:
        client.put_object(IfNoneMatch="*", **arguments)
    except Exception as exc:
        code = s3.error_code(exc)
        if code in _CONDITION_FAILED:
            raise VersionExistsError(
                f"{manifest.name} version {manifest.version} was published by another push "
                "while this one ran; nothing was overwritten. Verify it, or push a new version"
            ) from exc
        if code == "NotImplemented" and not manifest_exists(client, bucket, key):
            # S3-compatible stores without conditional writes: checked, then written.
            try:
                client.put_object(**arguments)
            except Exception as retry_exc:
                raise s3.explain(retry_exc, bucket, f"s3://{bucket}/{key}") from retry_exc
            return
        raise s3.explain(exc, bucket, f"s3://{bucket}/{key}") from exc
