"""``mlstack model push``: upload a model directory as one immutable version.

Immutable by construction (``docs/model-artifacts.md``), not by a check before writing:

1. hash every file (sha256, several at once);
2. every distinct content goes to ``models/<name>/blobs/sha256/<digest>`` with
   ``If-None-Match: *`` (a multipart upload completes with it): a blob is created
   once and never replaced, so racing pushes can only add identical bytes. Blobs
   already in the bucket (an earlier version, an interrupted push, a concurrent one)
   are not uploaded again. While uploading, each file is hashed again and must match
   step 1 (and its size, mtime and inode must not change), S3 checks every request
   against its own SHA-256 checksum;
3. the manifest (paths -> digests) goes last to ``models/<name>/manifests/<v>.json``,
   also with ``If-None-Match: *``: of two pushes of one version exactly one publishes.
   The other reads the winner's manifest and says what happened: identical content
   (nothing to do: exit 0) or different content (refused, listing the differences;
   its blobs belong to no version).

A push that fails or is interrupted writes no manifest: the version stays invisible
and rerunning the same command uploads only the blobs that are still missing. A multipart
upload is aborted when the push fails or a signal it can catch stops it; one that a
killed push left open (SIGKILL) is aborted by the next push to the same bucket from that
machine: each open upload is recorded in the temp directory under the pusher's pid
(:func:`abort_stale_uploads`); the bucket's lifecycle rule removes any other. A store
without conditional writes (``NotImplemented``) is refused: immutability cannot be
guaranteed there.
"""

from __future__ import annotations

import base64
import concurrent.futures as cf
import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from components.storage import layout
from mlstack import interrupt
from mlstack.aws import endpoint_of, error_code
from mlstack.errors import MlstackError, UsageError
from mlstack.model_store import s3
from mlstack.model_store.local import LocalFile
from mlstack.model_store.manifest import (
    CONTENT_TYPE,
    FileEntry,
    Manifest,
    build_manifest,
    parse_manifest,
)

MiB = 1024 * 1024
DEFAULT_PART_SIZE = 8 * MiB
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * 1024 * MiB
MAX_PARTS = 10_000
MAX_CONCURRENCY = 64
READ_CHUNK = 8 * MiB
UPLOAD_RECORD_PREFIX = "mlstack-upload-"
"""``<tmp>/mlstack-upload-<pid>-<random>.json``: an open multipart upload of a push."""
CONDITION_FAILED = ("PreconditionFailed", "412")
CONDITION_CONFLICT = ("ConditionalRequestConflict", "409")

Outcome = Literal["published", "identical"]


class VersionExistsError(MlstackError):
    """The version is published with other content; versions are immutable."""


class FileChangedError(MlstackError):
    """A local file changed while it was being read for upload."""


class PushError(MlstackError):
    """The push stopped before publishing; the version stays invisible."""


class PushProgress(Protocol):
    """Receives progress from the worker threads (must be thread-safe).

    ``start`` is called once per phase (``hash``, then ``upload``)."""

    def start(self, total_bytes: int, total_files: int, phase: str = "upload") -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def file_done(self, relpath: str, resumed: bool) -> None: ...


class NoProgress:
    """Progress sink that shows nothing."""

    def start(self, total_bytes: int, total_files: int, phase: str = "upload") -> None:
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
    """What a push did. ``outcome``: ``published`` by this push, or ``identical``: the
    version was already published (earlier, or by a concurrent push) with the same files."""

    bucket: str
    manifest_key: str
    manifest: Manifest
    outcome: Outcome
    uploaded_blobs: int
    present_blobs: int
    """Blobs already in the bucket (other versions, an interrupted or concurrent push)."""
    uploaded_bytes: int
    seconds: float
    detail: str = ""


def part_size_for(size: int, part_size: int) -> int:
    """The part size used for a file: ``part_size``, raised (whole MiB) to fit 10,000 parts."""
    needed = -(-size // MAX_PARTS)
    if needed <= part_size:
        return part_size
    return -(-needed // MiB) * MiB


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


class _CancelledError(Exception):
    """Another file failed or the user interrupted: stop quietly."""


class _AlreadyThereError(Exception):
    """The blob was created by someone else meanwhile (412): identical bytes by construction."""


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


@dataclass(frozen=True)
class _Hashed:
    local: LocalFile
    sha256: str
    fingerprint: _Fingerprint


def _changed(local: LocalFile) -> FileChangedError:
    return FileChangedError(
        f"{local.relpath} changed on disk while it was being pushed (content, size, mtime or "
        "inode differ); it was not completed. Make sure nothing writes to the model "
        "directory, then rerun"
    )


class _Workers:
    """A bounded pool of S3 requests, bounded read-ahead memory, and one cancel flag."""

    def __init__(
        self,
        client: s3.S3Client,
        bucket: str,
        name: str,
        settings: PushSettings,
        progress: PushProgress,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.name = name
        self.settings = settings
        self.progress = progress
        self.cancel = threading.Event()
        # Read-ahead: at most 2 buffers per request slot are held in memory.
        self._buffers = threading.BoundedSemaphore(settings.concurrency * 2)
        self.requests = cf.ThreadPoolExecutor(settings.concurrency, thread_name_prefix="mlstack-s3")

    # ------------------------------------------------------------------ hashing

    def hash_file(self, local: LocalFile) -> _Hashed:
        if self.cancel.is_set():
            raise _CancelledError()
        before = _Fingerprint.of(local.path)
        if before.size != local.size:
            raise _changed(local)
        digest = hashlib.sha256()
        read = 0
        with local.path.open("rb") as handle:
            while chunk := handle.read(READ_CHUNK):
                if self.cancel.is_set():
                    raise _CancelledError()
                digest.update(chunk)
                read += len(chunk)
                self.progress.advance(len(chunk))
        if read != before.size or _Fingerprint.of(local.path) != before:
            raise _changed(local)
        self.progress.file_done(local.relpath, resumed=False)
        return _Hashed(local, digest.hexdigest(), before)

    # ------------------------------------------------------------------ uploading

    def upload_blob(self, hashed: _Hashed) -> tuple[_Hashed, bool]:
        """Create the blob of ``hashed``; False when it appeared meanwhile (same bytes)."""
        if self.cancel.is_set():
            raise _CancelledError()
        key = layout.blob_key(self.name, hashed.sha256)
        try:
            if hashed.local.size <= self.settings.part_size:
                self._single(hashed, key)
            else:
                self._multipart(hashed, key)
        except _AlreadyThereError:
            self._check_existing(hashed, key)
            self.progress.file_done(hashed.local.relpath, resumed=True)
            return hashed, False
        self.progress.file_done(hashed.local.relpath, resumed=False)
        return hashed, True

    def _check_existing(self, hashed: _Hashed, key: str) -> None:
        """A blob someone else created: its size must be the file's (it is never replaced)."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            raise s3.explain(exc, self.bucket, f"s3://{self.bucket}/{key}") from exc
        size = int(head.get("ContentLength", -1))
        if size != hashed.local.size:
            raise PushError(damaged_blob_message(self.bucket, key, size, hashed.local.size))

    def _check_unchanged(self, hashed: _Hashed, read: int, digest: str) -> None:
        if (
            read != hashed.fingerprint.size
            or digest != hashed.sha256
            or _Fingerprint.of(hashed.local.path) != hashed.fingerprint
        ):
            raise _changed(hashed.local)

    def _acquire_buffer(self) -> None:
        while not self._buffers.acquire(timeout=0.2):
            if self.cancel.is_set():
                raise _CancelledError()
        if self.cancel.is_set():
            self._buffers.release()
            raise _CancelledError()

    def _single(self, hashed: _Hashed, key: str) -> None:
        self._acquire_buffer()
        try:
            with hashed.local.path.open("rb") as handle:
                data = handle.read(hashed.fingerprint.size + 1)
            digest = hashlib.sha256(data).digest()
            self._check_unchanged(hashed, len(data), digest.hex())
            self.requests.submit(self._put_blob, key, data, digest).result()
        finally:
            self._buffers.release()

    def _put_blob(self, key: str, data: bytes, digest: bytes) -> None:
        if self.cancel.is_set():
            raise _CancelledError()
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentLength=len(data),
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=b64(digest),
                IfNoneMatch="*",
            )
        except Exception as exc:
            code = error_code(exc)
            if code in CONDITION_FAILED or code in CONDITION_CONFLICT:
                raise _AlreadyThereError() from exc
            raise conditional_write_error(exc, self.bucket, key) from exc
        self.progress.advance(len(data))

    def _multipart(self, hashed: _Hashed, key: str) -> None:
        size = hashed.fingerprint.size
        part_size = part_size_for(size, self.settings.part_size)
        count = -(-size // part_size)
        where = f"s3://{self.bucket}/{key}"
        try:
            created = self.client.create_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                ChecksumAlgorithm="SHA256",
                ChecksumType="COMPOSITE",
            )
        except Exception as exc:
            raise s3.explain(exc, self.bucket, where) from exc
        upload_id = created["UploadId"]
        record = _record_upload(self.client, self.bucket, key, upload_id)
        with interrupt.cleanup(lambda: self._abort(key, upload_id, record)):
            self._multipart_parts(hashed, key, upload_id, part_size, count, record)

    def _multipart_parts(  # noqa: PLR0917 (one upload's state)
        self,
        hashed: _Hashed,
        key: str,
        upload_id: str,
        part_size: int,
        count: int,
        record: Path | None,
    ) -> None:
        futures: list[cf.Future[dict[str, Any]]] = []
        try:
            full = hashlib.sha256()
            read = 0
            with hashed.local.path.open("rb") as handle:
                for number in range(1, count + 1):
                    self._acquire_buffer()
                    try:
                        chunk = handle.read(part_size)
                    except BaseException:
                        self._buffers.release()
                        raise
                    if not chunk or (number < count and len(chunk) != part_size):
                        self._buffers.release()
                        raise _changed(hashed.local)
                    full.update(chunk)
                    read += len(chunk)
                    futures.append(
                        self.requests.submit(self._upload_part, key, upload_id, number, chunk)
                    )
                grew = handle.read(1)
            parts = [future.result() for future in futures]
            self._check_unchanged(hashed, read + len(grew), full.hexdigest())
            try:
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    ChecksumType="COMPOSITE",
                    IfNoneMatch="*",
                )
            except Exception as exc:
                code = error_code(exc)
                if code in CONDITION_FAILED or code in CONDITION_CONFLICT:
                    raise _AlreadyThereError() from exc
                raise conditional_write_error(exc, self.bucket, key) from exc
        except BaseException:
            for future in futures:
                future.cancel()
            cf.wait(futures)
            self._abort(key, upload_id, record)
            raise
        _forget(record)

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

    def _abort(self, key: str, upload_id: str, record: Path | None = None) -> None:
        """Best effort; the bucket's lifecycle rule removes what is left anyway."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except Exception as exc:
            if error_code(exc) not in ("NoSuchUpload", "404"):
                return  # keep the record: the next push retries
        _forget(record)


def _record_upload(client: s3.S3Client, bucket: str, key: str, upload_id: str) -> Path | None:
    """Note an open upload in the temp directory, named with this process's pid, so the
    next push can abort it should this one be killed (best effort: None if it cannot)."""
    document = {
        "endpoint": endpoint_of(client),
        "bucket": bucket,
        "key": key,
        "uploadId": upload_id,
    }
    try:
        handle, name = tempfile.mkstemp(
            prefix=f"{UPLOAD_RECORD_PREFIX}{os.getpid()}-", suffix=".json"
        )
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(document, out)
    except OSError:
        return None
    return Path(name)


def _forget(record: Path | None) -> None:
    if record is not None:
        record.unlink(missing_ok=True)


def abort_stale_uploads(client: s3.S3Client, bucket: str) -> list[str]:
    """Abort the multipart uploads that killed pushes left open in ``bucket`` (through
    the same endpoint): records of :func:`_record_upload` whose pid no longer runs.
    Returns the keys aborted; a failed abort keeps its record for the next push."""
    endpoint = endpoint_of(client)
    aborted: list[str] = []
    for record in Path(tempfile.gettempdir()).glob(f"{UPLOAD_RECORD_PREFIX}*.json"):
        owner = record.name[len(UPLOAD_RECORD_PREFIX) :].partition("-")[0]
        if not owner.isdigit() or interrupt.pid_alive(int(owner)):
            continue
        try:
            document = json.loads(record.read_text(encoding="utf-8"))
            mine = document["bucket"] == bucket and document["endpoint"] == endpoint
            key, upload_id = str(document["key"]), str(document["uploadId"])
        except (OSError, ValueError, KeyError, TypeError):
            record.unlink(missing_ok=True)  # unreadable: a record cut short by the kill
            continue
        if not mine:
            continue
        try:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception as exc:
            if error_code(exc) not in ("NoSuchUpload", "404"):
                continue
        record.unlink(missing_ok=True)
        aborted.append(key)
    return aborted


def damaged_blob_message(bucket: str, key: str, size: int, expected: int) -> str:
    return (
        f"s3://{bucket}/{key} holds {size} bytes but its digest names a {expected}-byte file: "
        "the blob is damaged (it can only have been written around mlstack). Run `mlstack "
        "model verify` on the versions using it; an administrator must remove it"
    )


def conditional_write_error(exc: BaseException, bucket: str, key: str) -> MlstackError:
    """NotImplemented: the store ignores If-None-Match, so nothing can be published safely."""
    if error_code(exc) == "NotImplemented":
        return PushError(
            f"s3://{bucket} does not support conditional writes (If-None-Match: *, refused "
            f"for {key}): mlstack publishes model versions only where the store guarantees "
            "create-only writes. Use AWS S3 or a store that implements them"
        )
    return s3.explain(exc, bucket, f"s3://{bucket}/{key}")


def object_exists(client: s3.S3Client, bucket: str, key: str) -> bool:
    """Whether ``key`` exists, by listing (a HEAD on a missing key answers 403, not 404,
    to a role whose ``s3:ListBucket`` is limited to a prefix)."""
    return any(item.key == key for item in s3.list_objects(client, bucket, key))


def read_published(client: s3.S3Client, bucket: str, name: str, version: str) -> Manifest | None:
    """The manifest of a published version, or None when it is not published."""
    key = layout.manifest_key(name, version)
    if not object_exists(client, bucket, key):
        return None
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:
        raise s3.explain(exc, bucket, f"s3://{bucket}/{key}") from exc
    return parse_manifest(body, name, version)


def _run(
    workers: _Workers, items: Sequence[Any], task: Any, concurrency: int, what: str
) -> list[Any]:
    """``task(item)`` on a bounded pool; the first failure cancels the rest."""
    results: list[Any] = []
    failures: list[tuple[Any, BaseException]] = []
    pool = cf.ThreadPoolExecutor(
        max(1, min(concurrency, len(items))), thread_name_prefix=f"mlstack-{what}"
    )
    futures = {pool.submit(task, item): item for item in items}
    try:
        for future in cf.as_completed(futures):
            try:
                results.append(future.result())
            except _CancelledError:
                continue
            except Exception as exc:
                failures.append((futures[future], exc))
                workers.cancel.set()
    except KeyboardInterrupt:
        workers.cancel.set()
        cf.wait(futures)
        raise
    finally:
        pool.shutdown(wait=True)
    if failures:
        item, exc = failures[0]
        raise _FailedError(item, exc)
    return results


class _FailedError(Exception):
    def __init__(self, item: Any, exc: BaseException) -> None:
        super().__init__(str(exc))
        self.item = item
        self.exc = exc


def _quick_differences(published: Manifest, files: Sequence[LocalFile]) -> list[str]:
    """Differences visible without hashing: paths and sizes."""
    theirs = {f.path: f.size for f in published.files}
    mine = {f.relpath: f.size for f in files}
    found = [f"{p}: only in this push" for p in sorted(set(mine) - set(theirs))]
    found += [f"{p}: only in the published version" for p in sorted(set(theirs) - set(mine))]
    found += [
        f"{p}: size {mine[p]}, published {theirs[p]}"
        for p in sorted(set(mine) & set(theirs))
        if mine[p] != theirs[p]
    ]
    return found


def _shown(differences: list[str]) -> str:
    more = f"; and {len(differences) - 5} more" if len(differences) > 5 else ""
    return "; ".join(differences[:5]) + more


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
    """Upload ``files`` as content-addressed blobs of ``name`` and publish the manifest last."""
    settings = settings or PushSettings()
    progress = progress or NoProgress()
    problems = settings.problems()
    if problems:
        raise UsageError("; ".join(problems))
    if not files:
        raise UsageError("nothing to push: no files")
    try:
        manifest_key = layout.manifest_key(name, version)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    started = time.monotonic()
    where = f"s3://{bucket}/{manifest_key}"
    published = read_published(client, bucket, name, version)
    if published is not None and (differences := _quick_differences(published, files)):
        raise VersionExistsError(
            f"{name} version {version} is already published at {where} with other files "
            f"({_shown(differences)}): versions are immutable; push under a new version"
        )

    workers = _Workers(client, bucket, name, settings, progress)
    try:
        try:
            progress.start(sum(f.size for f in files), len(files), phase="hash")
            hashed: list[_Hashed] = _run(
                workers, files, workers.hash_file, settings.concurrency, "hash"
            )
            hashed.sort(key=lambda h: h.local.relpath)
            entries = [FileEntry(h.local.relpath, h.local.size, h.sha256) for h in hashed]
            manifest = build_manifest(
                name, version, entries, git_commit=settings.git_commit, hints=dict(settings.hints)
            )
            if published is not None:
                return _already_published(
                    published, manifest, bucket, manifest_key, started=started, how=""
                )

            blobs = {
                digest: item.size
                for item in s3.list_objects(client, bucket, layout.blobs_prefix(name))
                if (digest := layout.digest_of_blob_key(name, item.key)) is not None
            }
            wanted: dict[str, _Hashed] = {}
            for h in hashed:
                wanted.setdefault(h.sha256, h)
            for digest, h in wanted.items():
                if digest in blobs and blobs[digest] != h.local.size:
                    key = layout.blob_key(name, digest)
                    raise PushError(damaged_blob_message(bucket, key, blobs[digest], h.local.size))
            missing = [h for digest, h in sorted(wanted.items()) if digest not in blobs]
            abort_stale_uploads(client, bucket)
            progress.start(sum(h.local.size for h in missing), len(missing), phase="upload")
            created: list[tuple[_Hashed, bool]] = _run(
                workers, missing, workers.upload_blob, settings.concurrency, "upload"
            )
        except _FailedError as failed:
            exc = failed.exc
            item = failed.item
            path = item.local.relpath if isinstance(item, _Hashed) else item.relpath
            reason = str(exc) if isinstance(exc, MlstackError) else f"{type(exc).__name__}: {exc}"
            raise PushError(
                f"push of {name} version {version} stopped: {path}: {reason}. No manifest was "
                "written, so the version stays invisible. Rerun the same command to finish "
                "(blobs already in the bucket are not uploaded again)"
            ) from exc
        except KeyboardInterrupt:
            raise PushError(
                f"interrupted: no manifest was written, so {name} version {version} stays "
                "invisible. Rerun the same command to finish (blobs already in the bucket are "
                "not uploaded again)"
            ) from None
    finally:
        workers.requests.shutdown(wait=True)

    uploaded = [h for h, made in created if made]
    uploaded_count = len(uploaded)
    uploaded_bytes = sum(h.local.size for h in uploaded)
    present = len(wanted) - uploaded_count
    try:
        _publish(client, bucket, manifest_key, manifest)
    except _LostRaceError as lost:
        winner = read_published(client, bucket, name, version)
        if winner is None:
            raise PushError(
                f"{where}: a concurrent push was writing this version's manifest at the same "
                "moment and it is not there yet; rerun to see which one published"
            ) from lost
        return _already_published(
            winner,
            manifest,
            bucket,
            manifest_key,
            started=started,
            how=" by a concurrent push while this one ran",
            uploaded_count=uploaded_count,
        )
    return PushResult(
        bucket=bucket,
        manifest_key=manifest_key,
        manifest=manifest,
        outcome="published",
        uploaded_blobs=uploaded_count,
        present_blobs=present,
        uploaded_bytes=uploaded_bytes,
        seconds=time.monotonic() - started,
    )


def _already_published(
    published: Manifest,
    mine: Manifest,
    bucket: str,
    manifest_key: str,
    *,
    started: float,
    how: str,
    uploaded_count: int = 0,
) -> PushResult:
    """Identical files: success, saying so. Different: VersionExistsError, saying how."""
    differences = mine.differences(published)
    if differences:
        orphans = (
            f"; the {uploaded_count} blob(s) this push uploaded belong to no version"
            if uploaded_count
            else ""
        )
        raise VersionExistsError(
            f"{mine.name} version {mine.version} was published{how} with different content "
            f"(created {published.created_at}, git commit {published.git_commit or 'unknown'}): "
            f"{_shown(differences)}. The published version was not changed{orphans}. "
            "Verify it, or push under a new version"
        )
    return PushResult(
        bucket=bucket,
        manifest_key=manifest_key,
        manifest=published,
        outcome="identical",
        uploaded_blobs=uploaded_count,
        present_blobs=len(published.digests()) - uploaded_count,
        uploaded_bytes=0,
        seconds=time.monotonic() - started,
        detail=f"already published{how or ' earlier'} with identical files "
        f"(created {published.created_at}); nothing was changed",
    )


class _LostRaceError(Exception):
    """Another push's manifest is there (412 on the conditional write)."""


def _publish(client: s3.S3Client, bucket: str, key: str, manifest: Manifest) -> None:
    """Write the manifest only if no manifest exists yet (conditional write, never replaced)."""
    body = manifest.to_json().encode("utf-8")
    for attempt in range(3):
        try:
            client.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                ContentType=CONTENT_TYPE,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=b64(hashlib.sha256(body).digest()),
                IfNoneMatch="*",
            )
            return
        except Exception as exc:
            code = error_code(exc)
            if code in CONDITION_FAILED:
                raise _LostRaceError() from exc
            if code in CONDITION_CONFLICT and attempt < 2:
                continue  # S3: a concurrent conditional write is in flight; retry
            if code in CONDITION_CONFLICT:
                raise _LostRaceError() from exc
            raise conditional_write_error(exc, bucket, key) from exc
