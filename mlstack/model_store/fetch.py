"""``mlstack model fetch``: the model loader. One pinned version into a node-local cache.

1. **manifest**: list, then GET ``models/<name>/manifests/<version>.json``; its sha256
   is the cache key (and must equal ``expected_manifest_sha256`` when one is pinned,
   and S3's own checksum of the object when S3 reports one).
2. **lock**: the version's shared use lock (``node_cache``: no evictor removes a version
   a pod uses), then an exclusive ``flock`` on ``<cache>/<name>/.<digest>.lock``: of two
   fetchers of one version on a node, one downloads, the other waits, then finds the
   entry (a crashed holder's lock is released by the kernel).
3. **cache hit**: ``<cache>/<name>/<digest>/`` exists with its completion marker, the
   same manifest bytes, and every file of the listed size: used as it is. Anything
   else at that name is moved aside and fetched again, never used.
4. **download** (miss): into a temp directory next to the entry. Every file is
   preallocated (a full disk fails at once, naming the file; with ``evict`` the least
   recently used versions nobody uses are evicted first to fit the cache's bound), then fetched with
   parallel ranged GETs of ``part_size`` bytes, at most ``concurrency`` in flight and
   at most ``2 * concurrency`` parts in memory; each part is written where it belongs
   and hashed in order as soon as the parts before it are in (never read back). A
   blob shared by several files is downloaded once and hard-linked.
5. **verify + publish**: each file's size and sha256 must equal the manifest's
   (otherwise the fetch fails naming the file and the blob); files are fsynced, made
   read-only, the marker is written and the temp directory is renamed to the entry.
   Optionally a symlink (``link``) is pointed at the entry, atomically.

Every phase logs one JSON line (``event``, ``phase``, ``model``, ``version``,
``bytes``, ``seconds``, ``cache``), so cold starts can be measured per phase.
"""

from __future__ import annotations

import base64
import concurrent.futures as cf
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from components.storage import layout
from mlstack import interrupt
from mlstack.aws import error_code
from mlstack.errors import MlstackError, UsageError
from mlstack.model_store import node_cache, s3
from mlstack.model_store.manifest import FileEntry, Manifest, ManifestError, parse_manifest
from mlstack.model_store.verify import read_manifest

MiB = 1024 * 1024
DEFAULT_PART_SIZE = 16 * MiB
MARKER = node_cache.MARKER
MANIFEST_COPY = node_cache.MANIFEST_COPY
TEMP_PREFIX = node_cache.TEMP_PREFIX
MAX_CONCURRENCY = 64

Log = Callable[[dict[str, Any]], None]
CacheState = Literal["hit", "miss"]


class FetchError(MlstackError):
    """The version could not be fetched intact; nothing was published in the cache."""


@dataclass(frozen=True)
class FetchSettings:
    """How to fetch. ``cache_limit_bytes``: the cache's bound; a version that would grow
    the cache beyond it is refused, or with ``evict`` makes room by evicting the least
    recently used versions no pod uses (``node_cache.evict_to_fit``)."""

    concurrency: int = 8
    part_size: int = DEFAULT_PART_SIZE
    expected_manifest_sha256: str | None = None
    cache_limit_bytes: int | None = None
    evict: bool = False
    room_wait_seconds: float = 0.0
    """With ``evict``: how long to wait, retrying, for versions in use to be released when
    the cache is full (a rollout's old pods ending), before failing."""
    verify_hits: bool = True
    """Re-hash every file of a cache hit before using it (a node cache is shared: an entry
    is trusted only as far as its bytes still match the manifest)."""

    def problems(self) -> list[str]:
        found: list[str] = []
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            found.append(f"concurrency {self.concurrency}: allowed 1-{MAX_CONCURRENCY}")
        if not MiB <= self.part_size <= 1024 * MiB:
            found.append(f"part size {self.part_size} bytes: allowed 1 MiB to 1 GiB")
        expected = self.expected_manifest_sha256
        if expected is not None and (problem := layout.sha256_problem(expected)):
            found.append(f"manifest sha256 {problem}")
        if self.cache_limit_bytes is not None and self.cache_limit_bytes < 0:
            found.append(f"cache limit {self.cache_limit_bytes}: must be >= 0")
        if self.evict and self.cache_limit_bytes is None:
            found.append("evict: needs a cache limit (what to evict down to)")
        if self.room_wait_seconds < 0 or (self.room_wait_seconds and not self.evict):
            found.append(f"room wait {self.room_wait_seconds}: >= 0, and only with evict")
        return found


@dataclass(frozen=True)
class FetchResult:
    """Where the verified version is, and what it took."""

    path: Path
    manifest: Manifest
    manifest_sha256: str
    cache: CacheState
    downloaded_bytes: int
    seconds: float


def json_logger(write: Callable[[str], None]) -> Log:
    """A logger writing each event as one JSON line."""
    return lambda event: write(json.dumps(event, sort_keys=True))


def _no_log(event: dict[str, Any]) -> None:
    return None


@dataclass
class _FileState:
    """One file being downloaded: its descriptor and the in-order hash of its parts."""

    entry: FileEntry
    fd: int
    parts: int
    hasher: Any = field(default_factory=hashlib.sha256)
    next_part: int = 0
    pending: dict[int, bytes] = field(default_factory=dict)
    hashed_bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Downloader:
    """Parallel ranged GETs with bounded memory; hash in order while streaming."""

    def __init__(
        self, client: s3.S3Client, bucket: str, name: str, settings: FetchSettings
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.name = name
        self.settings = settings
        self.cancel = threading.Event()
        self.memory = threading.BoundedSemaphore(settings.concurrency * 2)
        self.downloaded = 0
        self._count_lock = threading.Lock()

    def download(self, files: list[tuple[Path, FileEntry]]) -> None:
        """Fetch ``files`` (path in the temp dir, entry) and check each sha256."""
        states: list[_FileState] = []
        futures: list[cf.Future[None]] = []
        pool = cf.ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="mlstack-get")
        try:
            for path, entry in files:
                if self.cancel.is_set():
                    break
                state = self._open(path, entry)
                states.append(state)
                for index in range(state.parts):
                    if not self._acquire():
                        break
                    futures.append(pool.submit(self._part, state, index))
            cf.wait(futures)
        except BaseException:
            self.cancel.set()
            raise
        finally:
            for future in futures:
                future.cancel()
            pool.shutdown(wait=True)
            for state in states:
                with contextlib.suppress(OSError):
                    os.close(state.fd)
        failures = [f.exception() for f in futures if not f.cancelled() and f.exception()]
        if failures:
            raise failures[0]  # type: ignore[misc]
        for state in states:
            digest = state.hasher.hexdigest()
            if state.hashed_bytes != state.entry.size or digest != state.entry.sha256:
                raise FetchError(
                    f"{state.entry.path}: received {state.hashed_bytes} bytes with sha256 "
                    f"{digest}, the manifest says {state.entry.size} bytes, sha256 "
                    f"{state.entry.sha256} (blob s3://{self.bucket}/"
                    f"{layout.blob_key(self.name, state.entry.sha256)} is corrupted)"
                )

    def _acquire(self) -> bool:
        """A memory slot for one part; False once a part has failed (stop dispatching)."""
        while not self.memory.acquire(timeout=0.2):
            if self.cancel.is_set():
                return False
        if self.cancel.is_set():
            self.memory.release()
            return False
        return True

    def _open(self, path: Path, entry: FileEntry) -> _FileState:
        fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0))
        parts = -(-entry.size // self.settings.part_size)
        return _FileState(entry=entry, fd=fd, parts=parts)

    def _part(self, state: _FileState, index: int) -> None:
        try:
            self._fetch_part(state, index)
        except BaseException:
            self.cancel.set()
            raise

    def _fetch_part(self, state: _FileState, index: int) -> None:
        released = False
        try:
            if self.cancel.is_set():
                return
            size = state.entry.size
            start = index * self.settings.part_size
            end = min(size, start + self.settings.part_size) - 1
            key = layout.blob_key(self.name, state.entry.sha256)
            where = f"s3://{self.bucket}/{key}"
            try:
                response = self.client.get_object(
                    Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end}"
                )
                data = response["Body"].read()
            except Exception as exc:
                if s3.is_not_found(exc):
                    raise FetchError(
                        f"{state.entry.path}: blob {where} is missing from the bucket"
                    ) from exc
                if error_code(exc) in ("InvalidRange", "416"):
                    raise FetchError(
                        f"{state.entry.path}: {where} is shorter than the manifest's "
                        f"{size} bytes (truncated object)"
                    ) from exc
                raise s3.explain(exc, self.bucket, where) from exc
            total = str(response.get("ContentRange", "")).rpartition("/")[2]
            if total.isdigit() and int(total) != size:
                raise FetchError(
                    f"{state.entry.path}: {where} holds {total} bytes, the manifest says "
                    f"{size} (truncated or replaced object)"
                )
            if len(data) != end - start + 1:
                raise FetchError(
                    f"{state.entry.path}: {where} answered {len(data)} bytes for bytes "
                    f"{start}-{end} (truncated object)"
                )
            try:
                os.pwrite(state.fd, data, start)
            except OSError as exc:
                raise _disk_error(exc, Path(state.entry.path), size) from exc
            with self._count_lock:
                self.downloaded += len(data)
            released = True
            self._deliver(state, index, data)
        finally:
            if not released:
                self.memory.release()

    def _deliver(self, state: _FileState, index: int, data: bytes) -> None:
        """Hash every part that is now in order; release each one's memory slot."""
        with state.lock:
            state.pending[index] = data
            while state.next_part in state.pending:
                chunk = state.pending.pop(state.next_part)
                state.hasher.update(chunk)
                state.hashed_bytes += len(chunk)
                state.next_part += 1
                self.memory.release()


ROOM_RETRY_SECONDS = 10.0


def _reserve(
    root: Path,
    needed: int,
    settings: FetchSettings,
    *,
    plan: list[tuple[Path, FileEntry]],
    keep: Path,
    log: Log,
    what: str,
) -> None:
    """Make room for ``needed`` bytes and preallocate ``plan`` under the evict lock;
    when the cache is full of versions in use, retry for ``room_wait_seconds``."""
    assert settings.cache_limit_bytes is not None
    deadline = time.monotonic() + settings.room_wait_seconds
    while True:
        try:
            with node_cache.making_room(
                root, needed, settings.cache_limit_bytes, evict=settings.evict, keep=keep, log=log
            ):
                _allocate(plan)
            return
        except node_cache.CacheFullError as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise FetchError(
                    f"{what} needs {needed} bytes: {exc}; nothing was fetched"
                ) from None
            log(
                {
                    "event": "model-fetch",
                    "phase": "cache-full",
                    "waitSeconds": round(left, 1),
                    "reason": str(exc),
                }
            )
            time.sleep(min(ROOM_RETRY_SECONDS, left))


def _allocate(plan: list[tuple[Path, FileEntry]]) -> None:
    """Create every file at its full size before any download: a full disk fails at once,
    naming the file, and the bytes count in the cache's usage from now on."""
    for path, entry in plan:
        path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags, 0o600)
        try:
            if entry.size:
                os.posix_fallocate(fd, 0, entry.size)
        except OSError as exc:
            raise _disk_error(exc, path, entry.size) from exc
        finally:
            os.close(fd)


def _disk_error(exc: OSError, path: Path, size: int) -> FetchError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return FetchError(
            f"no space left on the cache volume for {path} ({size} bytes): nothing was "
            "published; free space or enlarge the cache"
        )
    return FetchError(f"cannot write {path}: {exc.strerror or exc}")


def _entry_problem(entry: Path, manifest: Manifest, body: bytes) -> str | None:
    """Why an existing cache entry must not be used, or None (cheap: sizes, no hashing)."""
    if not (entry / MARKER).is_file():
        return "no completion marker (an interrupted copy)"
    try:
        if (entry / MANIFEST_COPY).read_bytes() != body:
            return "its manifest differs"
    except OSError:
        return "its manifest is unreadable"
    for file in manifest.files:
        path = entry / file.path
        try:
            info = path.lstat()
        except OSError:
            return f"{file.path} is missing"
        if not path.is_file() or path.is_symlink() or info.st_size != file.size:
            return f"{file.path} has the wrong size or type"
    return None


def _hash_problem(entry: Path, manifest: Manifest, concurrency: int) -> str | None:
    """Why a cached entry's bytes do not match the manifest, or None. Each file is hashed
    in parallel; a path hard-linked to one already hashed (a blob shared by several
    files) is not read twice, a separate copy of it is."""
    first: dict[str, FileEntry] = {}
    todo: list[FileEntry] = []
    for file in manifest.files:
        seen = first.setdefault(file.sha256, file)
        if seen is file:
            todo.append(file)
            continue
        try:
            linked = (entry / file.path).samefile(entry / seen.path)
        except OSError:
            linked = False
        if not linked:
            todo.append(file)

    def digest(file: FileEntry) -> tuple[FileEntry, str]:
        with (entry / file.path).open("rb") as handle:
            return file, hashlib.file_digest(handle, "sha256").hexdigest()

    with cf.ThreadPoolExecutor(min(concurrency, len(todo) or 1)) as pool:
        for file, found in pool.map(digest, todo):
            if found != file.sha256:
                return f"{file.path} has sha256 {found}, the manifest says {file.sha256}"
    return None


def _point(link: Path, target: Path) -> None:
    """Make ``link`` a symlink to ``target``, atomically (a temp link renamed over it)."""
    if link.exists() and not link.is_symlink():
        raise UsageError(f"--link {link}: exists and is not a symlink; remove it or pick another")
    link.parent.mkdir(parents=True, exist_ok=True)
    temp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    temp.unlink(missing_ok=True)
    temp.symlink_to(target, target_is_directory=True)
    temp.replace(link)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fetch_model(
    client: s3.S3Client,
    bucket: str,
    name: str,
    version: str,
    cache_dir: Path,
    *,
    settings: FetchSettings | None = None,
    link: Path | None = None,
    log: Log | None = None,
) -> FetchResult:
    """Fetch one published version into ``cache_dir`` (see the module docstring)."""
    settings = settings or FetchSettings()
    log = log or _no_log
    problems = settings.problems()
    for problem in (layout.name_problem(name), layout.version_problem(version)):
        if problem:
            problems.append(problem)
    if problems:
        raise UsageError("; ".join(problems))
    started = time.monotonic()
    base = {"event": "model-fetch", "model": name, "version": version}

    def emit(phase: str, since: float, **extra: Any) -> None:
        log({**base, "phase": phase, "seconds": round(time.monotonic() - since, 3), **extra})

    phase_started = time.monotonic()
    key = layout.manifest_key(name, version)
    body = read_manifest(client, bucket, name, version)
    digest = hashlib.sha256(body).hexdigest()
    _check_manifest_digest(client, bucket, key, digest, settings.expected_manifest_sha256)
    try:
        manifest = parse_manifest(body, name, version)
    except ManifestError as exc:
        raise ManifestError(f"s3://{bucket}/{key}: {exc}") from None
    emit("manifest", phase_started, bytes=len(body), manifestSha256=digest)

    model_root = cache_dir / name
    try:
        model_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError(f"cache directory {model_root}: {exc.strerror or exc}") from None
    node_cache.sweep_temps(model_root, log)
    entry = model_root / digest
    fill_lock = node_cache.fill_lock_path(model_root, digest)
    checked: dict[tuple[int, int], str | None] = {}

    def entry_problem() -> str | None:
        """Why the entry must not be used (None: use it); each state hashed once."""
        problem = _entry_problem(entry, manifest, body)
        if problem is not None or not settings.verify_hits:
            return problem
        marker = (entry / MARKER).stat()
        key = (marker.st_ino, marker.st_mtime_ns)
        if key not in checked:
            verify_started = time.monotonic()
            checked[key] = _hash_problem(entry, manifest, settings.concurrency)
            emit("verify", verify_started, bytes=manifest.total_bytes, ok=checked[key] is None)
        return checked[key]

    phase_started = time.monotonic()
    with node_cache.using(model_root, version):
        # A hit is checked under a shared fill lock: pods of one version starting on one
        # node re-hash it side by side; only a fill or an eviction takes it exclusively.
        with node_cache.flocked(fill_lock, fcntl.LOCK_SH):
            waited = time.monotonic() - phase_started
            emit("lock", phase_started, bytes=0, waitedSeconds=round(waited, 3))
            hit = entry.is_dir() and not entry.is_symlink() and entry_problem() is None
        state: CacheState = "hit"
        downloaded = 0
        if not hit:
            with node_cache.flocked(fill_lock, fcntl.LOCK_EX):
                if entry.exists() or entry.is_symlink():
                    problem = entry_problem()
                    if problem is not None:
                        log({**base, "phase": "evict", "reason": problem, "path": str(entry)})
                        node_cache.remove_tree(entry)
                if not entry.exists():
                    state = "miss"
                    downloaded = _fill(
                        client,
                        bucket,
                        manifest=manifest,
                        body=body,
                        entry=entry,
                        settings=settings,
                        emit=emit,
                        log=log,
                    )
        emit(
            "cache",
            phase_started,
            bytes=downloaded,
            cache=state,
            path=str(entry),
        )
    if link is not None:
        _point(link, entry)
    result = FetchResult(
        path=entry,
        manifest=manifest,
        manifest_sha256=digest,
        cache=state,
        downloaded_bytes=downloaded,
        seconds=time.monotonic() - started,
    )
    emit("done", started, bytes=manifest.total_bytes, cache=state, downloadedBytes=downloaded)
    return result


def _check_manifest_digest(
    client: s3.S3Client, bucket: str, key: str, digest: str, expected: str | None
) -> None:
    if expected is not None and digest != expected:
        raise FetchError(
            f"manifest digest mismatch: s3://{bucket}/{key} has sha256 {digest}, the pinned "
            f"digest is {expected}; refusing to load it"
        )
    try:
        head = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except Exception:
        return  # S3's checksum is a second opinion; the pinned digest is the contract
    remote = head.get("ChecksumSHA256")
    if remote and "-" not in remote:
        mine = base64.b64encode(bytes.fromhex(digest)).decode("ascii")
        if remote != mine:
            raise FetchError(
                f"manifest digest mismatch: s3://{bucket}/{key} read with sha256 {digest}, "
                "S3 stored it with another checksum (corrupted in transit?)"
            )


def _fill(
    client: s3.S3Client,
    bucket: str,
    *,
    manifest: Manifest,
    body: bytes,
    entry: Path,
    settings: FetchSettings,
    emit: Callable[..., None],
    log: Log,
) -> int:
    """Download into a temp dir, verify, publish by rename. Returns bytes downloaded."""
    model_root = entry.parent
    for stale in model_root.glob(f"{TEMP_PREFIX}{entry.name}-*"):
        node_cache.remove_tree(stale)  # left by a crashed run: we hold the lock, nobody else writes
    temp = model_root / f"{TEMP_PREFIX}{entry.name}-{os.getpid()}-{threading.get_ident()}"
    temp.mkdir()
    with interrupt.cleanup(lambda: node_cache.remove_tree(temp)):  # Ctrl-C, SIGTERM
        return _fill_into(
            client, bucket, manifest=manifest, body=body, entry=entry, temp=temp,
            settings=settings, emit=emit, log=log,
        )  # fmt: skip


def _fill_into(
    client: s3.S3Client,
    bucket: str,
    *,
    manifest: Manifest,
    body: bytes,
    entry: Path,
    temp: Path,
    settings: FetchSettings,
    emit: Callable[..., None],
    log: Log,
) -> int:
    model_root = entry.parent
    unique = manifest.digests()
    needed = sum(unique.values())
    downloader = _Downloader(client, bucket, manifest.name, settings)
    try:
        first: dict[str, Path] = {}
        plan: list[tuple[Path, FileEntry]] = []
        for file in manifest.files:
            if file.sha256 not in first:
                first[file.sha256] = temp / file.path
                plan.append((temp / file.path, file))
        if settings.cache_limit_bytes is None:
            _allocate(plan)
        else:
            # Measured and reserved under the cache's evict lock: two loaders never both
            # count the same free space.
            _reserve(
                model_root.parent,
                needed,
                settings,
                plan=plan,
                keep=entry,
                log=log,
                what=f"{manifest.name} {manifest.version}",
            )
        phase_started = time.monotonic()
        downloader.download(plan)
        emit(
            "download",
            phase_started,
            bytes=downloader.downloaded,
            files=len(plan),
            gbPerSecond=round(
                downloader.downloaded / max(time.monotonic() - phase_started, 1e-9) / 1e9, 3
            ),
        )
        phase_started = time.monotonic()
        for file in manifest.files:
            path = temp / file.path
            source = first[file.sha256]
            if path != source:
                path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(source, path)
                except OSError:
                    shutil.copyfile(source, path)
        for path in {p for p, _ in plan}:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            path.chmod(0o444)
        (temp / MANIFEST_COPY).write_bytes(body)
        (temp / MARKER).write_text(f"{entry.name}\n")
        _fsync_dir(temp)
        temp.rename(entry)
        _fsync_dir(model_root)
        emit("publish", phase_started, bytes=0)
    except BaseException:
        node_cache.remove_tree(temp)
        raise
    return downloader.downloaded
