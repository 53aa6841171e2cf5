"""Interrupted ``model push`` and ``model fetch`` leave no debris (issue 26, item 14).

Real subprocesses (the console script, with its signal handler) against the moto server
behind a proxy that holds one kind of request unanswered: the test signals once that
request is observably in flight, never after a sleep."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from mlstack.model_store import node_cache
from tests.mlstack.interrupt_helpers import (
    MLSTACK,
    assert_clean_exit,
    env_with_tmp,
    interrupt_when,
)
from tests.mlstack.model_store.conftest import MiB, Run, Store, write_model
from tests.mlstack.model_store.stalling_proxy import stalling_proxy

pytestmark = pytest.mark.slow


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **env_with_tmp(tmp_path / "tmp"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "MLSTACK_MODEL_BUCKET": "",
    }


def _open_uploads(store: Store) -> list[str]:
    listed = store.client.list_multipart_uploads(Bucket=store.bucket)
    return [u["Key"] for u in listed.get("Uploads", [])]


def _is_upload_part(method: str, path: str) -> bool:
    return method == "PUT" and "partNumber=" in path


def _push_args(directory: Path, endpoint: str, store: Store) -> list[str]:
    return [
        "model", "push", str(directory), "--name", "bert", "--version", "v1",
        "--bucket", store.bucket, "--endpoint-url", endpoint, "--no-progress",
        "--part-size-mib", "5", "-j", "1",
    ]  # fmt: skip


@pytest.fixture
def big_model(tmp_path: Path) -> Path:
    """One file pushed in two parts (5 MiB parts)."""
    return write_model(tmp_path / "bert", {"model.bin": 6 * MiB})


def test_ctrl_c_in_push_aborts_its_multipart_upload(
    store: Store, big_model: Path, tmp_path: Path
) -> None:
    with stalling_proxy(store.endpoint, _is_upload_part) as proxy:
        result = interrupt_when(
            _push_args(big_model, proxy.url, store),
            lambda _p: proxy.stalled.is_set(),
            cwd=tmp_path,
            env=_env(tmp_path),
        )
    assert proxy.stalled.is_set(), "the push never reached an UploadPart"
    assert_clean_exit(result)
    assert _open_uploads(store) == []
    assert list((tmp_path / "tmp").iterdir()) == []  # no upload record either


def test_an_upload_left_by_a_killed_push_is_aborted_by_the_next_push(
    store: Store, big_model: Path, tmp_path: Path
) -> None:
    env = _env(tmp_path)
    with stalling_proxy(store.endpoint, _is_upload_part) as proxy:
        killed = subprocess.Popen(
            [str(MLSTACK), *_push_args(big_model, proxy.url, store)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 120
            while not proxy.stalled.is_set():
                assert killed.poll() is None, "the push ended before an UploadPart"
                assert time.monotonic() < deadline
                time.sleep(0.02)
        finally:
            killed.send_signal(signal.SIGKILL)
            killed.wait()
        assert _open_uploads(store) == ["models/bert/blobs/sha256/" + _digest(big_model)]

        proxy.stall = None
        rerun = subprocess.run(
            [str(MLSTACK), *_push_args(big_model, proxy.url, store)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert rerun.returncode == 0, rerun.stderr
    assert _open_uploads(store) == []
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_push_never_aborts_the_upload_of_a_live_pusher(
    run: Run, store: Store, big_model: Path, tmp_path: Path, monkeypatch
) -> None:
    """A record whose pid still runs (here: this test process) is a push in progress."""
    import json
    import tempfile

    from mlstack.model_store.push import UPLOAD_RECORD_PREFIX

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    key = "models/bert/blobs/sha256/" + "0" * 64
    upload = store.client.create_multipart_upload(Bucket=store.bucket, Key=key)["UploadId"]
    record = tmp_path / f"{UPLOAD_RECORD_PREFIX}{os.getpid()}-live.json"
    record.write_text(
        json.dumps(
            {"endpoint": store.endpoint, "bucket": store.bucket, "key": key, "uploadId": upload}
        )
    )
    code, _, err = run(*_push_args(big_model, store.endpoint, store))
    assert code == 0, err
    assert _open_uploads(store) == [key] and record.exists()


def _digest(directory: Path) -> str:
    import hashlib

    return hashlib.sha256((directory / "model.bin").read_bytes()).hexdigest()


# --------------------------------------------------------------------------- fetch


def _is_blob_get(method: str, path: str) -> bool:
    return method == "GET" and "/blobs/sha256/" in path


def test_ctrl_c_in_fetch_leaves_no_temporary_directory_in_the_cache(
    run: Run, store: Store, big_model: Path, tmp_path: Path
) -> None:
    code, _, err = run(*_push_args(big_model, store.endpoint, store))
    assert code == 0, err
    cache = tmp_path / "cache"

    def ready(_process: subprocess.Popen[str]) -> bool:
        return proxy.stalled.is_set() and any(
            p.name.startswith(node_cache.TEMP_PREFIX) for p in (cache / "bert").glob(".*")
        )

    with stalling_proxy(store.endpoint, _is_blob_get) as proxy:
        result = interrupt_when(
            [
                "model",
                "fetch",
                "--name",
                "bert",
                "--version",
                "v1",
                "--cache-dir",
                str(cache),
                "--bucket",
                store.bucket,
                "--endpoint-url",
                proxy.url,
                "-j",
                "1",
            ],
            ready,
            cwd=tmp_path,
            env=_env(tmp_path),
        )
    assert proxy.stalled.is_set(), "the fetch never asked for a blob"
    assert_clean_exit(result)
    left = [p.name for p in (cache / "bert").iterdir() if p.name.startswith(node_cache.TEMP_PREFIX)]
    assert left == []


def test_a_fetch_sweeps_temporary_directories_of_killed_fetches(
    run: Run, store: Store, big_model: Path, tmp_path: Path
) -> None:
    """A SIGKILLed fetch runs no cleanup; its temp dir (any digest) goes at the next
    fetch into that model's cache, unless a live fill holds its lock."""
    import fcntl

    code, _, err = run(*_push_args(big_model, store.endpoint, store))
    assert code == 0, err
    model_root = tmp_path / "cache" / "bert"
    model_root.mkdir(parents=True)
    dead = model_root / f"{node_cache.TEMP_PREFIX}{'a' * 64}-999999-1"
    live = model_root / f"{node_cache.TEMP_PREFIX}{'b' * 64}-1-1"
    for temp in (dead, live):
        (temp / "sub").mkdir(parents=True)
        (temp / "sub" / "part.bin").write_bytes(b"x" * 10)
        (temp / "sub").chmod(0o555)  # as a fill leaves its files: read-only
    with node_cache.flocked(node_cache.fill_lock_path(model_root, "b" * 64), fcntl.LOCK_EX):
        code, out, err = run(
            "model", "fetch", "--name", "bert", "--version", "v1",
            "--cache-dir", str(tmp_path / "cache"),
            "--bucket", store.bucket, "--endpoint-url", store.endpoint,
        )  # fmt: skip
    assert code == 0, err
    assert not dead.exists() and live.exists()
    assert '"phase": "sweep"' in out
