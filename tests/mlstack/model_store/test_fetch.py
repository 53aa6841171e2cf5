"""``mlstack model fetch`` against the real moto server: cache, faults, concurrency."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlstack.model_store import fetch as fetch_module
from mlstack.model_store.fetch import FetchError, FetchSettings, fetch_model
from mlstack.model_store.local import scan_model_dir
from mlstack.model_store.push import MiB, PushSettings, push_model
from mlstack.model_store.s3 import make_client
from tests.mlstack.model_store.conftest import Run, Store, blob, manifest_key, write_model

SMALL = FetchSettings(concurrency=4, part_size=MiB)
FILES: dict[str, int | bytes] = {
    "weights/model-00001.safetensors": 3 * MiB + 17,  # 4 ranged GETs of 1 MiB
    "config.json": b'{"layers": 2}',
    "copy-of-config.json": b'{"layers": 2}',  # same blob, fetched once
    "empty.txt": b"",
}


@pytest.fixture
def published(store: Store, tmp_path: Path) -> Path:
    directory = write_model(tmp_path / "model", FILES)
    client = make_client(store.endpoint, "us-east-1")
    push_model(
        client, store.bucket, "llm", "v1", scan_model_dir(directory),
        settings=PushSettings(concurrency=4, part_size=5 * MiB),
    )  # fmt: skip
    return directory


def _fetch(store: Store, cache: Path, **kwargs: Any) -> tuple[fetch_module.FetchResult, list[Any]]:
    events: list[dict[str, Any]] = []
    settings = kwargs.pop("settings", SMALL)
    client = kwargs.pop("client", None) or make_client(store.endpoint, "us-east-1")
    result = fetch_model(
        client, store.bucket, "llm", "v1", cache, settings=settings, log=events.append, **kwargs
    )
    return result, events


def _same_tree(cached: Path, directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            assert (cached / path.relative_to(directory)).read_bytes() == path.read_bytes()


def test_fetch_downloads_verifies_and_publishes_an_entry_keyed_by_the_manifest_digest(
    store: Store, published: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    result, events = _fetch(store, cache, link=tmp_path / "pod" / "model")

    digest = hashlib.sha256(store.read(manifest_key("llm", "v1"))).hexdigest()
    assert result.path == cache / "llm" / digest and result.cache == "miss"
    _same_tree(result.path, published)
    assert (tmp_path / "pod" / "model").resolve() == result.path
    assert sorted(p.name for p in (cache / "llm").iterdir()) == [
        f".{digest}.lock", ".use-v1", digest,
    ]  # fmt: skip
    assert result.downloaded_bytes == 3 * MiB + 17 + len(b'{"layers": 2}')  # shared blob once
    assert [e["phase"] for e in events] == [
        "manifest", "lock", "download", "publish", "cache", "done",
    ]  # fmt: skip
    assert all(e["event"] == "model-fetch" and "seconds" in e and "bytes" in e for e in events)
    assert events[4]["cache"] == "miss"
    weights = result.path / "weights/model-00001.safetensors"
    assert weights.stat().st_mode & 0o777 == 0o444


def test_a_second_fetch_is_a_cache_hit_without_downloading(
    store: Store, published: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    _fetch(store, cache)
    client = make_client(store.endpoint, "us-east-1")
    gets: list[str] = []
    client.meta.events.register(
        "before-parameter-build.s3.GetObject", lambda params, **_: gets.append(params["Key"])
    )

    result, events = _fetch(store, cache, client=client)

    assert result.cache == "hit" and result.downloaded_bytes == 0
    assert gets == [manifest_key("llm", "v1")]  # only the manifest is read again
    assert [e["phase"] for e in events] == ["manifest", "lock", "verify", "cache", "done"]
    assert events[2]["ok"] is True and events[2]["bytes"] == result.manifest.total_bytes
    _same_tree(result.path, published)


def test_a_cache_hit_whose_bytes_were_altered_is_refetched_not_used(
    store: Store, published: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    first, _ = _fetch(store, cache)
    weights = first.path / "weights/model-00001.safetensors"
    weights.chmod(0o644)
    with weights.open("r+b") as handle:  # same size, one byte changed: sizes cannot tell
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))

    again, events = _fetch(store, cache)

    assert again.cache == "miss"
    (verify,) = [e for e in events if e["phase"] == "verify"]
    assert verify["ok"] is False
    (evicted,) = [e for e in events if e["phase"] == "evict"]
    assert "weights/model-00001.safetensors has sha256" in evicted["reason"]
    _same_tree(again.path, published)


def test_a_separate_copy_of_a_shared_blob_is_rehashed_too(
    store: Store, published: Path, tmp_path: Path
) -> None:
    """Two paths of one blob are one hard link; replaced by an altered copy of the same
    size (a copy fallback, or tampering), the second path is hashed on its own."""
    cache = tmp_path / "cache"
    first, _ = _fetch(store, cache)
    copy = first.path / "copy-of-config.json"
    copy.unlink()
    copy.write_bytes(b'{"layers": 3}')  # same size as the blob, other bytes

    again, events = _fetch(store, cache)

    assert again.cache == "miss"
    (evicted,) = [e for e in events if e["phase"] == "evict"]
    assert "copy-of-config.json has sha256" in evicted["reason"]


def test_trusting_the_cache_skips_the_rehash(store: Store, published: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _fetch(store, cache)
    trusted = FetchSettings(concurrency=4, part_size=MiB, verify_hits=False)
    result, events = _fetch(store, cache, settings=trusted)
    assert result.cache == "hit" and "verify" not in [e["phase"] for e in events]


def test_cli_logs_one_json_line_per_phase(
    run: Run, store: Store, published: Path, tmp_path: Path
) -> None:
    code, out, err = run(
        "model", "fetch", "--name", "llm", "--version", "v1",
        "--bucket", store.bucket, "--endpoint-url", store.endpoint,
        "--cache-dir", str(tmp_path / "cache"), "--part-size-mib", "1",
    )  # fmt: skip
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["phase"] for line in lines][-1] == "done"
    assert {line["cache"] for line in lines if "cache" in line} == {"miss"}


def test_a_corrupt_part_fails_closed_naming_the_file(
    store: Store, published: Path, tmp_path: Path
) -> None:
    key = blob("llm", (published / "weights/model-00001.safetensors").read_bytes())
    data = bytearray(store.read(key))
    data[2 * MiB + 5] ^= 0xFF  # one byte of the third part, same size
    store.client.put_object(Bucket=store.bucket, Key=key, Body=bytes(data))
    cache = tmp_path / "cache"

    with pytest.raises(FetchError) as failure:
        _fetch(store, cache)

    message = str(failure.value)
    assert "weights/model-00001.safetensors" in message and "corrupted" in message
    assert _entries(cache) == []  # nothing published, no temp left


def test_a_truncated_object_fails_closed(store: Store, published: Path, tmp_path: Path) -> None:
    key = blob("llm", (published / "weights/model-00001.safetensors").read_bytes())
    store.client.put_object(Bucket=store.bucket, Key=key, Body=store.read(key)[: 2 * MiB])
    cache = tmp_path / "cache"

    with pytest.raises(FetchError) as failure:
        _fetch(store, cache)

    assert "weights/model-00001.safetensors" in str(failure.value)
    assert "truncated" in str(failure.value)
    assert _entries(cache) == []


def test_a_manifest_digest_mismatch_is_refused_before_any_download(
    store: Store, published: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(FetchError, match="manifest digest mismatch"):
        _fetch(store, cache, settings=FetchSettings(expected_manifest_sha256="0" * 64))
    assert not (cache / "llm").exists() or _entries(cache) == []

    pinned = hashlib.sha256(store.read(manifest_key("llm", "v1"))).hexdigest()
    result, _ = _fetch(store, cache, settings=FetchSettings(expected_manifest_sha256=pinned))
    assert result.manifest_sha256 == pinned


def test_leftovers_of_a_crashed_run_are_never_used(
    store: Store, published: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    digest = hashlib.sha256(store.read(manifest_key("llm", "v1"))).hexdigest()
    crashed_temp = write_model(cache / "llm" / f".tmp-{digest}-4242-1", {"config.json": b"{"})
    torn = write_model(cache / "llm" / digest, {"config.json": b'{"layers": 2}'})  # no marker

    result, events = _fetch(store, cache)

    assert result.cache == "miss"
    assert not crashed_temp.exists()
    assert any(e["phase"] == "evict" and "no completion marker" in e["reason"] for e in events)
    _same_tree(torn, published)  # the entry was rebuilt in full
    assert (torn / ".mlstack-complete").is_file()


def test_a_cached_file_of_the_wrong_size_is_evicted_and_fetched_again(
    store: Store, published: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    first, _ = _fetch(store, cache)
    config = first.path / "config.json"
    config.chmod(0o644)
    config.write_bytes(b"{}")

    again, events = _fetch(store, cache)

    assert again.cache == "miss"
    assert any(e["phase"] == "evict" and "config.json" in e["reason"] for e in events)
    _same_tree(again.path, published)


def test_the_cache_size_limit_is_enforced_before_downloading(
    store: Store, published: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(FetchError) as failure:
        _fetch(store, cache, settings=FetchSettings(cache_limit_bytes=MiB))
    assert "do not fit under its limit" in str(failure.value) and str(MiB) in str(failure.value)
    assert _entries(cache) == []


def test_a_full_disk_fails_closed_naming_the_file(
    store: Store, published: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.posix_fallocate

    def full(fd: int, offset: int, length: int) -> None:
        if length > MiB:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, offset, length)

    monkeypatch.setattr(fetch_module.os, "posix_fallocate", full)
    cache = tmp_path / "cache"

    with pytest.raises(FetchError) as failure:
        _fetch(store, cache)

    assert "no space left" in str(failure.value)
    assert "weights/model-00001.safetensors" in str(failure.value)
    assert _entries(cache) == []


def test_two_processes_fetching_one_version_never_see_a_torn_entry(
    store: Store, published: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    command = [
        sys.executable, "-m", "mlstack.cli", "model", "fetch", "--name", "llm",
        "--version", "v1", "--bucket", store.bucket, "--endpoint-url", store.endpoint,
        "--cache-dir", str(cache), "--part-size-mib", "1", "-j", "2",
    ]  # fmt: skip
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=180) for p in processes]

    assert [p.returncode for p in processes] == [0, 0], outputs
    states = sorted(
        json.loads(line)["cache"]
        for out, _ in outputs
        for line in out.splitlines()
        if json.loads(line)["phase"] == "cache"
    )
    assert states == ["hit", "miss"]  # one downloaded, the other waited and used it
    (entry,) = _entries(cache)
    _same_tree(entry, published)


def _entries(cache: Path) -> list[Path]:
    """Published entries and leftovers (anything but lock files)."""
    root = cache / "llm"
    if not root.exists():
        return []
    return sorted(
        p for p in root.iterdir() if not p.name.endswith(".lock") and not p.name.startswith(".use-")
    )
