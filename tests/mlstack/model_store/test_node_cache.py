"""The node-shared model cache: LRU eviction under a bound, never of a version in use."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mlstack.errors import MlstackError, UsageError
from mlstack.model_store import node_cache
from mlstack.model_store.fetch import FetchError, FetchResult, FetchSettings, fetch_model
from mlstack.model_store.local import scan_model_dir
from mlstack.model_store.push import MiB, PushSettings, push_model
from mlstack.model_store.s3 import make_client
from tests.mlstack.model_store.conftest import Store, write_model

VERSION_BYTES = 2 * MiB
LIMIT = 2 * VERSION_BYTES + MiB  # two versions fit, a third does not


def _publish(store: Store, tmp_path: Path, name: str, versions: list[str]) -> None:
    client = make_client(store.endpoint, "us-east-1")
    for version in versions:
        files: dict[str, int | bytes] = {"weights.bin": VERSION_BYTES, "v.txt": version.encode()}
        directory = write_model(tmp_path / "src" / name / version, files)
        push_model(
            client, store.bucket, name, version, scan_model_dir(directory),
            settings=PushSettings(concurrency=2, part_size=5 * MiB),
        )  # fmt: skip


@pytest.fixture(autouse=True)
def _roomy_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's own disk may be over 90 % full: only the test of that headroom
    (which sets its own disk) measures it."""
    monkeypatch.setattr(node_cache, "DISK_HEADROOM_FRACTION", 0.0)


_ROOMY_DISK_CLI = (
    "import sys\n"
    "from mlstack.model_store import node_cache\n"
    "node_cache.DISK_HEADROOM_FRACTION = 0.0\n"
    "from mlstack.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)
"""``mlstack`` in a child process, with ``_roomy_disk``'s setting (a monkeypatch does not
reach a child)."""


@pytest.fixture
def versions(store: Store, tmp_path: Path) -> Store:
    _publish(store, tmp_path, "llm", ["v1", "v2", "v3"])
    _publish(store, tmp_path, "asr", ["a1"])
    return store


def _fetch(
    store: Store, cache: Path, version: str, name: str = "llm", limit: int = LIMIT
) -> tuple[FetchResult, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    settings = FetchSettings(concurrency=2, part_size=MiB, cache_limit_bytes=limit, evict=True)
    result = fetch_model(
        make_client(store.endpoint, "us-east-1"), store.bucket, name, version, cache,
        settings=settings, log=events.append,
    )  # fmt: skip
    return result, events


def _fetch_waiting(
    store: Store, cache: Path, version: str, wait: float, on_full: Any
) -> tuple[FetchResult, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []

    def log(event: dict[str, Any]) -> None:
        events.append(event)
        if event.get("phase") == "cache-full":
            on_full()

    settings = FetchSettings(
        concurrency=2, part_size=MiB, cache_limit_bytes=LIMIT, evict=True, room_wait_seconds=wait
    )
    result = fetch_model(
        make_client(store.endpoint, "us-east-1"), store.bucket, "llm", version, cache,
        settings=settings, log=log,
    )  # fmt: skip
    return result, events


def _cached_versions(cache: Path) -> list[str]:
    found = []
    for model_root in sorted(cache.iterdir()):
        if model_root.is_dir() and not model_root.name.startswith("."):
            for entry in model_root.iterdir():
                if (entry / node_cache.MARKER).is_file():
                    found.append(f"{model_root.name}/{(entry / 'v.txt').read_text()}")
    return sorted(found)


def _age(cache: Path, name: str, version: str, seconds_ago: float) -> None:
    lock = node_cache.use_lock_path(cache / name, version)
    then = time.time() - seconds_ago
    os.utime(lock, (then, then))


def _hold(cache: Path, name: str, version: str, tmp_path: Path) -> subprocess.Popen[str]:
    ready = tmp_path / f"ready-{name}-{version}"
    command = [
        sys.executable, "-m", "mlstack.cli", "model", "hold", "--name", name,
        "--version", version, "--cache-dir", str(cache), "--ready-file", str(ready),
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    node_cache.wait_for(ready, 60, "test holder")
    return process


def test_the_least_recently_used_version_is_evicted_to_fit_a_new_one(
    versions: Store, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    _fetch(versions, cache, "v1")
    _fetch(versions, cache, "v2")
    _age(cache, "llm", "v1", 300)
    _age(cache, "llm", "v2", 600)  # v2 is the older use

    result, events = _fetch(versions, cache, "v3")

    assert result.cache == "miss"
    assert _cached_versions(cache) == ["llm/v1", "llm/v3"]
    (evicted,) = [e for e in events if e.get("phase") == "evict"]
    assert evicted["version"] == "v2" and evicted["bytes"] >= VERSION_BYTES
    assert node_cache.usage(cache) <= LIMIT


def test_a_cache_hit_makes_a_version_recent_again(versions: Store, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _fetch(versions, cache, "v1")
    _fetch(versions, cache, "v2")
    _age(cache, "llm", "v1", 600)
    _age(cache, "llm", "v2", 300)
    hit, _ = _fetch(versions, cache, "v1")  # a pod restarted on this node: v1 is used again

    _fetch(versions, cache, "v3")

    assert hit.cache == "hit"
    assert _cached_versions(cache) == ["llm/v1", "llm/v3"]


def test_eviction_crosses_models_sharing_the_node_cache(versions: Store, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _fetch(versions, cache, "a1", name="asr")
    _fetch(versions, cache, "v1")
    _age(cache, "asr", "a1", 900)

    _fetch(versions, cache, "v2")

    assert _cached_versions(cache) == ["llm/v1", "llm/v2"]


def test_a_version_a_pod_holds_is_never_evicted(versions: Store, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _fetch(versions, cache, "v1")
    _fetch(versions, cache, "v2")
    _age(cache, "llm", "v1", 900)  # the oldest, but a pod serves it
    holder = _hold(cache, "llm", "v1", tmp_path)
    try:
        _fetch(versions, cache, "v3")
        assert _cached_versions(cache) == ["llm/v1", "llm/v3"]
    finally:
        holder.send_signal(signal.SIGTERM)
        out, err = holder.communicate(timeout=30)
    assert holder.returncode == 0, err
    assert json.loads(out.splitlines()[0])["phase"] == "hold"


def test_when_everything_is_in_use_the_fetch_fails_naming_them_and_keeps_them(
    versions: Store, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    _fetch(versions, cache, "v1")
    _fetch(versions, cache, "v2")
    holders = [_hold(cache, "llm", v, tmp_path) for v in ("v1", "v2")]
    try:
        with pytest.raises(FetchError) as failure:
            _fetch(versions, cache, "v3")
    finally:
        for holder in holders:
            holder.send_signal(signal.SIGTERM)
            holder.communicate(timeout=30)
    message = str(failure.value)
    assert "do not fit under its limit" in message and str(LIMIT) in message
    assert "llm v1" in message and "llm v2" in message and "modelCache.sizeGib" in message
    assert _cached_versions(cache) == ["llm/v1", "llm/v2"]
    assert not [p for p in (cache / "llm").iterdir() if p.name.startswith(".tmp-")]


def test_a_killed_pod_releases_its_version_for_eviction(versions: Store, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _fetch(versions, cache, "v1")
    _fetch(versions, cache, "v2")
    holder = _hold(cache, "llm", "v1", tmp_path)
    holder.kill()  # no clean exit: the kernel drops its lock
    holder.communicate(timeout=30)
    _age(cache, "llm", "v1", 900)

    _fetch(versions, cache, "v3")

    assert _cached_versions(cache) == ["llm/v2", "llm/v3"]


def test_a_version_being_filled_is_not_evicted(versions: Store, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first, _ = _fetch(versions, cache, "v1")
    _fetch(versions, cache, "v2")
    _age(cache, "llm", "v1", 900)
    fill_lock = node_cache.fill_lock_path(cache / "llm", first.manifest_sha256)
    with node_cache.flocked(fill_lock, fcntl.LOCK_EX):  # another loader is checking v1
        _fetch(versions, cache, "v3")
    assert _cached_versions(cache) == ["llm/v1", "llm/v3"]


def test_leftovers_of_crashed_fills_go_before_any_version(versions: Store, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _fetch(versions, cache, "v1")
    leftover = write_model(cache / "asr" / f".tmp-{'a' * 64}-4242-1", {"part": 2 * MiB})

    _, events = _fetch(versions, cache, "v2", limit=2 * VERSION_BYTES + MiB // 2)

    assert not leftover.exists()
    assert _cached_versions(cache) == ["llm/v1", "llm/v2"]
    assert [e["kind"] for e in events if e.get("phase") == "evict"] == ["leftover"]


def test_usage_counts_a_hard_linked_blob_once(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    write_model(root / "m" / "e", {"a": MiB})
    os.link(root / "m" / "e" / "a", root / "m" / "e" / "b")
    (root / "m" / "e" / "c").symlink_to("a")
    assert node_cache.usage(root) == MiB


def test_evict_needs_a_limit() -> None:
    assert FetchSettings(evict=True).problems() == [
        "evict: needs a cache limit (what to evict down to)"
    ]


def test_two_processes_fetching_different_versions_under_one_bound_stay_within_it(
    versions: Store, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    _fetch(versions, cache, "v1")
    _fetch(versions, cache, "a1", name="asr")
    command = [
        sys.executable, "-c", _ROOMY_DISK_CLI, "model", "fetch", "--bucket", versions.bucket,
        "--endpoint-url", versions.endpoint, "--cache-dir", str(cache), "--part-size-mib", "1",
        "-j", "2", "--cache-limit-bytes", str(LIMIT), "--evict", "--name", "llm",
    ]  # fmt: skip
    processes = [
        subprocess.Popen(
            [*command, "--version", v], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for v in ("v2", "v3")
    ]
    outputs = [p.communicate(timeout=180) for p in processes]

    assert [p.returncode for p in processes] == [0, 0], outputs
    assert _cached_versions(cache) == ["llm/v2", "llm/v3"]
    assert node_cache.usage(cache) <= LIMIT
    for entry in (cache / "llm").iterdir():
        if (entry / node_cache.MARKER).is_file():
            assert (entry / "weights.bin").stat().st_size == VERSION_BYTES


def test_the_loader_waits_for_the_hold_sidecar_and_gives_up_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ready = tmp_path / "ready"
    polls: list[float] = []

    def sidecar_gets_ready_after_two_polls(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 2:
            ready.write_text("x")

    with monkeypatch.context() as patched:
        patched.setattr(node_cache.time, "sleep", sidecar_gets_ready_after_two_polls)
        node_cache.wait_for(ready, 10, "fetch")
    assert len(polls) == 2  # it polled until the file appeared, not once and gave up
    with pytest.raises(MlstackError) as failure:
        node_cache.wait_for(tmp_path / "never", 0.2, "model fetch llm v1")
    assert "model-cache-hold sidecar" in str(failure.value) and "never" in str(failure.value)


def test_prepare_creates_the_root_for_the_loader_user_once(tmp_path: Path) -> None:
    root = tmp_path / "var" / "cache"
    uid, gid = (12345, 12345) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    assert node_cache.prepare(root, uid, gid) is True
    info = root.stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o7777) == (uid, gid, 0o755)
    assert node_cache.prepare(root, uid, gid) is False  # idempotent


def test_prepare_refuses_a_symlink_or_a_file(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="is a symlink"):
        node_cache.prepare(tmp_path / "link", 1000, 1000)
    with pytest.raises(UsageError, match="not a directory"):
        node_cache.prepare(tmp_path / "file", 1000, 1000)


def test_cache_prepare_cli_prints_what_it_did(run: Any, tmp_path: Path) -> None:
    code, out, _ = run(
        "model", "cache-prepare", "--cache-dir", str(tmp_path / "c"),
        "--owner", str(os.getuid() or 1000), "--group", str(os.getgid() or 1000),
    )  # fmt: skip
    assert code == 0
    assert json.loads(out) == {
        "event": "model-cache", "phase": "prepare", "path": str(tmp_path / "c"), "changed": True,
    }  # fmt: skip


def test_a_full_cache_waits_for_a_version_to_be_released(
    versions: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rollout: the old pods still hold v1 and v2 when the new pod's loader starts."""
    from mlstack.model_store import fetch as fetch_module

    monkeypatch.setattr(fetch_module, "ROOM_RETRY_SECONDS", 0.2)
    cache = tmp_path / "cache"
    _fetch(versions, cache, "v1")
    _fetch(versions, cache, "v2")
    holders = [_hold(cache, "llm", v, tmp_path) for v in ("v1", "v2")]

    def release_v1() -> None:  # the first old pod ends once the loader is waiting
        holders[0].send_signal(signal.SIGTERM)
        holders[0].wait(timeout=30)

    try:
        result, events = _fetch_waiting(versions, cache, "v3", wait=60, on_full=release_v1)
    finally:
        for holder in holders:
            holder.send_signal(signal.SIGTERM)
            holder.communicate(timeout=30)
    assert result.cache == "miss"
    assert any(e.get("phase") == "cache-full" for e in events)
    assert _cached_versions(cache) == ["llm/v2", "llm/v3"]


def test_a_fill_keeps_the_kubelets_eviction_headroom_free(
    versions: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under its bound, but the disk itself is nearly full: evict first, then fail."""
    cache = tmp_path / "cache"
    _fetch(versions, cache, "v1")
    real = os.statvfs

    class Tight:
        f_frsize = 4096
        f_blocks = (100 * MiB) // 4096  # a 100 MiB disk: 10 MiB headroom
        f_bavail = (12 * MiB) // 4096  # 12 MiB free: 2 MiB above the headroom

    monkeypatch.setattr(node_cache, "DISK_HEADROOM_FRACTION", 0.10)
    monkeypatch.setattr(node_cache.os, "statvfs", lambda path: Tight())
    with pytest.raises(FetchError) as failure:
        _fetch(versions, cache, "v2", limit=100 * MiB)
    assert "on its disk" in str(failure.value) and "10%" in str(failure.value)
    assert _cached_versions(cache) == []  # v1 went first, and still no room
    monkeypatch.setattr(node_cache.os, "statvfs", real)


def test_prepare_works_with_chown_alone_on_any_leftover_mode(tmp_path: Path) -> None:
    """What the pod grants: root with only CAP_CHOWN (no CAP_FOWNER, no DAC_OVERRIDE)."""
    import shutil

    setpriv = shutil.which("setpriv")
    if setpriv is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv (util-linux) to drop every capability but CHOWN")
    caps = "-all,+chown"
    root = tmp_path / "cache"
    root.mkdir()
    os.chown(root, 1000, 1000)
    root.chmod(0o775)  # a leftover: owned by the loader user, wrong mode
    command = [
        setpriv, f"--inh-caps={caps}", f"--ambient-caps={caps}", f"--bounding-set={caps}",
        sys.executable, "-m", "mlstack.cli", "model", "cache-prepare", "--cache-dir", str(root),
        "--owner", "1000", "--group", "1000",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    info = root.stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o7777) == (1000, 1000, 0o755)


def test_a_restarted_hold_refuses_a_version_evicted_meanwhile(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (cache / "llm").mkdir(parents=True)
    link = tmp_path / "models" / "llm"
    link.parent.mkdir()
    link.symlink_to(cache / "llm" / ("d" * 64))  # the loader linked it; it is gone now
    with pytest.raises(MlstackError, match="was evicted while this pod's hold was down"):
        node_cache.hold(cache, "llm", "v1", tmp_path / "ready", link=link)
    assert not (tmp_path / "ready").exists()


def test_remove_tree_never_follows_a_symlink_out_of_the_cache(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    outside.chmod(0o500)
    entry = tmp_path / "cache" / "entry"
    entry.mkdir(parents=True)
    (entry / "escape").symlink_to(outside, target_is_directory=True)
    node_cache.remove_tree(entry)
    assert not entry.exists()
    assert outside.stat().st_mode & 0o777 == 0o500


def test_hits_of_one_version_are_verified_side_by_side(versions: Store, tmp_path: Path) -> None:
    """Another pod re-hashing the same version holds its fill lock shared: a hit does not
    wait for it (an exclusive check would serialise every pod starting on the node)."""
    cache = tmp_path / "cache"
    first, _ = _fetch(versions, cache, "v1")
    lock = node_cache.fill_lock_path(cache / "llm", first.manifest_sha256)
    done: list[FetchResult] = []
    with node_cache.flocked(lock, fcntl.LOCK_SH):
        worker = threading.Thread(target=lambda: done.append(_fetch(versions, cache, "v1")[0]))
        worker.start()
        worker.join(timeout=60)
        finished_while_held = not worker.is_alive()
    worker.join(timeout=60)
    assert finished_while_held and done[0].cache == "hit"


def test_nothing_is_evicted_when_eviction_could_not_make_room(
    versions: Store, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    _fetch(versions, cache, "v1")
    _fetch(versions, cache, "v2")
    holder = _hold(cache, "llm", "v1", tmp_path)
    try:
        # v3 needs 2 MiB + 2 bytes; under a 3 MiB limit with v1 held, even an empty rest
        # of the cache is too small: v2 (free) must stay.
        with pytest.raises(FetchError, match="do not fit"):
            _fetch(versions, cache, "v3", limit=3 * MiB)
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.communicate(timeout=30)
    assert _cached_versions(cache) == ["llm/v1", "llm/v2"]


def test_a_restarted_hold_is_ready_only_once_it_holds_again(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    ready = tmp_path / "ready"
    ready.write_text("stale\n")
    stop = threading.Event()
    seen: list[bool] = []

    def observe(event: dict[str, Any]) -> None:
        seen.append(ready.read_text() == "llm v1\n")
        stop.set()

    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    node_cache.hold(cache, "llm", "v1", ready, stop=stop, log=observe)
    assert seen == [True]
    # Its handlers were the process's only while it held.
    assert {signum: signal.getsignal(signum) for signum in handlers} == handlers


def test_fetch_refuses_a_room_wait_without_eviction(run: Any, tmp_path: Path) -> None:
    code, _, err = run(
        "model", "fetch", "--name", "llm", "--version", "v1", "--bucket", "b",
        "--cache-dir", str(tmp_path), "--room-wait-seconds", "30",
    )  # fmt: skip
    assert code == 2
    assert "room wait 30.0: >= 0, and only with evict" in err
    assert "Traceback" not in err
