"""The node-shared model cache: who uses a version, who may evict it, and how big it is.

One cache directory per GPU node is shared by every inference pod on the node (a hostPath
``PersistentVolume`` of the pool, ``components.serving.model_cache``). Its layout::

    <root>/.evict.lock                one evictor at a time
    <root>/<model>/<digest>/          a verified version (``fetch``), keyed by manifest sha256
    <root>/<model>/.<digest>.lock     held (exclusive) while the entry is checked or filled
    <root>/<model>/.use-<version>     held (shared) by every pod that serves the version;
                                      its mtime is the version's last use (LRU)

A pod holds its version's use lock for its whole life: the loader while it fetches, then
``mlstack model hold`` (a sidecar) until the pod ends; the kernel drops the lock of a
process that dies, so a crashed pod never pins a version. An entry is evicted only when
its use lock *and* its fill lock can both be taken without waiting: a version some pod
serves, or that a loader is filling, is never removed. Eviction goes least recently used
first, and only as far as a new version needs to fit under the cache's size bound.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.compute.capacity import KUBELET_EVICTION_HEADROOM
from mlstack.errors import MlstackError, UsageError

EVICT_LOCK = ".evict.lock"
USE_PREFIX = ".use-"
MARKER = ".mlstack-complete"
MANIFEST_COPY = ".mlstack-manifest.json"
TEMP_PREFIX = ".tmp-"
EVICTING_PREFIX = ".evicting-"
_DIGEST = re.compile(r"[0-9a-f]{64}")

Log = Callable[[dict[str, Any]], None]


class CacheFullError(MlstackError):
    """A version cannot fit under the cache's bound without evicting a version in use."""


def _no_log(event: dict[str, Any]) -> None:
    return None


def use_lock_path(model_root: Path, version: str) -> Path:
    """The use lock of ``version`` of the model whose cache directory is ``model_root``."""
    return model_root / f"{USE_PREFIX}{version}"


def fill_lock_path(model_root: Path, digest: str) -> Path:
    return model_root / f".{digest}.lock"


@contextlib.contextmanager
def flocked(path: Path, operation: int) -> Iterator[int]:
    """Hold ``flock(operation)`` on ``path`` (created if missing); yields the descriptor.
    With ``LOCK_NB`` a held lock raises ``BlockingIOError``."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        fcntl.flock(fd, operation)
        try:
            yield fd
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def using(model_root: Path, version: str) -> Iterator[None]:
    """Mark ``version`` in use (shared use lock) and just used (mtime) while inside."""
    path = use_lock_path(model_root, version)
    with flocked(path, fcntl.LOCK_SH):
        os.utime(path)
        yield


@contextlib.contextmanager
def _try_exclusive(path: Path) -> Iterator[bool]:
    """Yield True holding an exclusive lock on ``path``, False when someone holds it."""
    try:
        with flocked(path, fcntl.LOCK_EX | fcntl.LOCK_NB):
            yield True
    except BlockingIOError:
        yield False


def sweep_temps(model_root: Path, log: Log = _no_log) -> list[Path]:
    """Remove temp directories that killed fetches left in ``model_root`` (a SIGKILL, an
    OOM kill: no cleanup runs). A temp dir of digest D is only written under D's
    exclusive fill lock, so one whose lock is free now belongs to nobody: the lock, not
    a pid (pods on one node see different pid namespaces), tells a live fill."""
    removed: list[Path] = []
    try:
        temps = sorted(model_root.glob(f"{TEMP_PREFIX}*"))
    except OSError:
        return removed
    for temp in temps:
        digest = temp.name.removeprefix(TEMP_PREFIX)[:64]
        if not _DIGEST.fullmatch(digest):
            continue
        with _try_exclusive(fill_lock_path(model_root, digest)) as free:
            if free and temp.exists():
                remove_tree(temp)
                removed.append(temp)
                log({"event": "model-cache", "phase": "sweep", "path": str(temp)})
    return removed


def usage(root: Path) -> int:
    """Bytes the cache holds: regular files, each inode once (hard links share a blob)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _, filenames in os.walk(root):
        for filename in filenames:
            try:
                info = (Path(dirpath) / filename).lstat()
            except OSError:
                continue
            key = (info.st_dev, info.st_ino)
            if stat.S_ISREG(info.st_mode) and key not in seen:
                seen.add(key)
                total += info.st_size
    return total


def remove_tree(path: Path) -> None:
    """Remove an entry whose files and directories were made read-only."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
        return
    if not path.exists():
        return
    for dirpath, dirnames, _ in os.walk(path):  # never descends into symlinks
        with contextlib.suppress(OSError):
            Path(dirpath).chmod(0o700)
        for dirname in dirnames:
            child = Path(dirpath) / dirname
            if not child.is_symlink():  # a chmod would follow it out of the cache
                with contextlib.suppress(OSError):
                    child.chmod(0o700)
    shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class Candidate:
    """Something in the cache that eviction may remove."""

    model: str
    path: Path
    digest: str
    version: str | None
    last_used: float
    kind: str  # "entry" or "leftover" (a crashed fill or eviction)

    def describe(self) -> str:
        what = f"{self.model} {self.version}" if self.version else f"{self.model} {self.kind}"
        return f"{what} ({self.path.name[:20]})"


def _version_of(entry: Path) -> str | None:
    try:
        data = json.loads((entry / MANIFEST_COPY).read_bytes())
    except (OSError, ValueError):
        return None
    version = data.get("version") if isinstance(data, dict) else None
    return version if isinstance(version, str) else None


def candidates(root: Path) -> list[Candidate]:
    """Every entry and crash leftover in the cache, least recently used first."""
    found: list[Candidate] = []
    for model_root in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        if model_root.name.startswith("."):
            continue
        for child in model_root.iterdir():
            name = child.name
            if _DIGEST.fullmatch(name) and child.is_dir():
                version = _version_of(child)
                lock = use_lock_path(model_root, version) if version else None
                try:
                    last = (lock.stat() if lock and lock.exists() else child.stat()).st_mtime
                except OSError:
                    continue
                found.append(Candidate(model_root.name, child, name, version, last, "entry"))
            elif name.startswith((TEMP_PREFIX, EVICTING_PREFIX)):
                digest = name.removeprefix(TEMP_PREFIX).removeprefix(EVICTING_PREFIX)[:64]
                if _DIGEST.fullmatch(digest):
                    found.append(Candidate(model_root.name, child, digest, None, 0.0, "leftover"))
    found.sort(key=lambda c: (c.last_used, c.model, c.path.name))
    return found


@contextlib.contextmanager
def _claimed(candidate: Candidate) -> Iterator[bool]:
    """Yield True holding ``candidate``'s use and fill locks exclusively, or False when a
    pod uses it or a loader fills it (then leave the block at once: a lock taken before
    the busy one is still held)."""
    model_root = candidate.path.parent
    use = use_lock_path(model_root, candidate.version) if candidate.version else None
    with contextlib.ExitStack() as stack:
        free = use is None or stack.enter_context(_try_exclusive(use))
        free = free and stack.enter_context(
            _try_exclusive(fill_lock_path(model_root, candidate.digest))
        )
        yield free


def _evictable(candidate: Candidate) -> bool:
    """Whether nobody uses or fills ``candidate`` right now (its locks are free)."""
    with _claimed(candidate) as free:
        return free


def _evict_one(candidate: Candidate, log: Log) -> bool:
    """Remove ``candidate`` if nobody uses or fills it; True when removed."""
    model_root = candidate.path.parent
    with _claimed(candidate) as free:
        if not free or not candidate.path.exists():
            return False
        size = usage(candidate.path)
        doomed = candidate.path
        if candidate.kind == "entry":
            # Out of the entry's name first: a reader never sees a half-removed entry.
            doomed = model_root / f"{EVICTING_PREFIX}{candidate.digest}-{os.getpid()}"
            candidate.path.rename(doomed)
        remove_tree(doomed)
        log(
            {
                "event": "model-cache",
                "phase": "evict",
                "model": candidate.model,
                "version": candidate.version,
                "kind": candidate.kind,
                "bytes": size,
                "path": str(candidate.path),
            }
        )
        return True


DISK_HEADROOM_FRACTION = KUBELET_EVICTION_HEADROOM
"""Free space a fill must leave on the cache's filesystem (the kubelet's hard eviction
threshold); a module attribute so tests on a nearly full disk can set it."""


def disk_room(root: Path, headroom_fraction: float | None = None) -> int:
    """Bytes that may still be written under ``root`` before its filesystem's free space
    falls under ``headroom_fraction`` (default ``DISK_HEADROOM_FRACTION``) of its size."""
    fraction = DISK_HEADROOM_FRACTION if headroom_fraction is None else headroom_fraction
    info = os.statvfs(root)
    return int(info.f_bavail * info.f_frsize - fraction * info.f_blocks * info.f_frsize)


@contextlib.contextmanager
def making_room(
    root: Path,
    needed: int,
    limit: int,
    *,
    evict: bool = True,
    keep: Path | None = None,
    log: Log | None = None,
) -> Iterator[list[Candidate]]:
    """Make ``needed`` more bytes fit under ``limit`` *and* on the disk (leaving the
    kubelet's eviction headroom free), and hold the cache's evict lock while inside, so
    the caller can reserve them (preallocate its files) before anyone else measures the
    cache. Evicts least recently used, unused entries (``evict``); yields what was
    evicted. Raises :class:`CacheFullError` (nothing in use removed) when even that is
    not enough."""
    log = log or _no_log
    evicted: list[Candidate] = []

    def fits() -> tuple[bool, int, int]:
        used, room = usage(root), disk_room(root)
        return used + needed <= limit and needed <= room, used, room

    with flocked(root / EVICT_LOCK, fcntl.LOCK_EX):
        ok, used, room = fits()
        busy: list[Candidate] = []
        if not ok and evict:
            # Evict nothing unless evicting what is free now could make the room.
            found = [c for c in candidates(root) if c.path != keep]
            free = sum(usage(c.path) for c in found if _evictable(c))
            if used - free + needed > limit or room + free < needed:
                busy = [c for c in found if not _evictable(c)]
                found = []
            for candidate in found:
                if _evict_one(candidate, log):
                    evicted.append(candidate)
                    ok, used, room = fits()
                    if ok:
                        break
                else:
                    busy.append(candidate)
        if not ok:
            in_use = ", ".join(c.describe() for c in busy) or "none"
            where = (
                f"under its limit of {limit} bytes ({used} in use"
                if used + needed > limit
                else f"on its disk ({room} bytes left above the "
                f"{DISK_HEADROOM_FRACTION:.0%} the kubelet keeps free"
            )
            raise CacheFullError(
                f"model cache {root}: {needed} more bytes do not fit {where} after "
                f"evicting {len(evicted)} unused version(s)); in use or being written: "
                f"{in_use}. Raise the pool's modelCache.sizeGib (or its disk), or move "
                "models to another pool"
            )
        yield evicted


def prepare(root: Path, owner: int, group: int) -> bool:
    """Make ``root`` a real directory owned by ``owner:group`` (mode 0755); True if changed.
    Run as root once per node before the non-root loader writes into it."""
    if root.is_symlink():
        raise UsageError(f"--cache-dir {root}: is a symlink; refusing to prepare it")
    changed = False
    if not root.exists():
        root.mkdir(parents=True, mode=0o755)
        changed = True
    if not root.is_dir():
        raise UsageError(f"--cache-dir {root}: exists and is not a directory")
    info = root.stat()
    try:
        # chmod as the owner: with CAP_CHOWN alone (no CAP_FOWNER) root may chmod only
        # what it owns, so take the directory back first when someone else owns it.
        if info.st_mode & 0o7777 != 0o755:
            if info.st_uid != os.geteuid():
                os.chown(root, os.geteuid(), os.getegid())
            root.chmod(0o755)
            changed = True
            info = root.stat()
        if (info.st_uid, info.st_gid) != (owner, group):
            os.chown(root, owner, group)
            changed = True
    except PermissionError as exc:
        raise MlstackError(
            f"cannot give {root} to {owner}:{group} with mode 0755: {exc.strerror}; "
            "cache-prepare runs as root with CAP_CHOWN"
        ) from None
    return changed


def wait_for(path: Path, timeout_seconds: float, what: str) -> float:
    """Wait until ``path`` exists; returns the seconds waited. Raises after the timeout."""
    started = time.monotonic()
    while not path.exists():
        if time.monotonic() - started > timeout_seconds:
            raise MlstackError(
                f"{what}: {path} did not appear within {timeout_seconds:g} s (is the "
                "model-cache-hold sidecar running?)"
            )
        time.sleep(0.05)
    return time.monotonic() - started


def hold(
    cache_dir: Path,
    name: str,
    version: str,
    ready_file: Path,
    *,
    link: Path | None = None,
    stop: threading.Event | None = None,
    log: Log | None = None,
) -> None:
    """Hold ``version``'s use lock until stopped (SIGTERM/SIGINT, or ``stop``): the pod's
    claim on its cached version. Writes ``ready_file`` once the lock is held. ``link``:
    the loader's symlink to the entry; when it exists (a restart of this sidecar after
    the loader ran) its target must still exist, or the hold fails loudly: the version
    was evicted while nothing held it, and a restart of the server would find nothing."""
    log = log or _no_log
    stop = stop or threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    try:
        _hold(cache_dir, name, version, ready_file, link=link, stop=stop, log=log)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _hold(
    cache_dir: Path,
    name: str,
    version: str,
    ready_file: Path,
    *,
    link: Path | None,
    stop: threading.Event,
    log: Log,
) -> None:
    model_root = cache_dir / name
    try:
        model_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise MlstackError(
                f"cannot create {model_root}: {exc.strerror}; the cache root must belong to "
                "the loader user (the cache-prepare init container does that)"
            ) from None
        raise
    ready_file.unlink(missing_ok=True)  # a restart: ready again only once held again
    started = time.monotonic()
    with using(model_root, version):
        if link is not None and link.is_symlink() and not link.exists():
            raise MlstackError(
                f"{name} {version}: {link} points at {link.readlink()}, which was evicted "
                "while this pod's hold was down; the server runs from memory, but delete the "
                "pod so it fetches the version again"
            )
        temp = ready_file.with_name(f".{ready_file.name}.tmp")
        temp.write_text(f"{name} {version}\n")
        temp.replace(ready_file)
        log(
            {
                "event": "model-cache",
                "phase": "hold",
                "model": name,
                "version": version,
                "seconds": round(time.monotonic() - started, 3),
            }
        )
        while not stop.wait(3600):
            os.utime(use_lock_path(model_root, version))  # still in use: keep it recent
