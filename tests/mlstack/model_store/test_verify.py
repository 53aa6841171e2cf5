"""``mlstack model verify``: every checksum re-read; corruption and tampering reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.mlstack.model_store.conftest import Run, Store, write_model

PREFIX = "models/bert/v1/"


@pytest.fixture
def published(run: Run, store: Store, tmp_path: Path) -> Path:
    directory = write_model(
        tmp_path / "bert", {"model.safetensors": 300_000, "tokenizer.json": b'{"v": 1}'}
    )
    code, _, err = run(
        "model", "push", str(directory), "--name", "bert", "--version", "v1", *store.args()
    )  # fmt: skip
    assert code == 0, err
    return directory


def _verify(run: Run, store: Store, version: str = "v1") -> tuple[int, str, str]:
    return run("model", "verify", "--name", "bert", "--version", version, *store.args())


def test_intact_version_verifies(run: Run, store: Store, published: Path) -> None:
    code, out, err = _verify(run, store)
    assert code == 0, err
    assert "verified bert version v1: 2 files" in out


def test_corrupted_object_is_detected_and_named(run: Run, store: Store, published: Path) -> None:
    original = store.read(PREFIX + "model.safetensors")
    flipped = bytes([original[0] ^ 0xFF]) + original[1:]  # same size, one byte differs
    store.client.put_object(Bucket=store.bucket, Key=PREFIX + "model.safetensors", Body=flipped)

    code, _, err = _verify(run, store)

    assert code == 1
    assert "FAILED verification" in err
    assert "model.safetensors: sha256" in err and "corrupted or overwritten" in err
    assert "model.safetensors: replaced after publishing" in err
    assert "tokenizer.json" not in err


def test_object_rewritten_with_identical_bytes_is_still_reported(
    run: Run, store: Store, published: Path
) -> None:
    key = PREFIX + "tokenizer.json"
    store.client.put_object(Bucket=store.bucket, Key=key, Body=store.read(key))

    code, _, err = _verify(run, store)

    assert code == 1
    assert "tokenizer.json: replaced after publishing" in err
    assert "sha256" not in err


def test_missing_and_stray_objects_are_reported(run: Run, store: Store, published: Path) -> None:
    store.client.delete_object(Bucket=store.bucket, Key=PREFIX + "tokenizer.json")
    store.client.put_object(Bucket=store.bucket, Key=PREFIX + "extra.bin", Body=b"?")

    code, _, err = _verify(run, store)

    assert code == 1
    assert "tokenizer.json: missing from the bucket" in err
    assert "extra.bin: in the bucket but not in the manifest" in err
    assert "2 problems" in err


def test_tampered_manifest_is_rejected(run: Run, store: Store, published: Path) -> None:
    key = PREFIX + "manifest.json"
    manifest = json.loads(store.read(key))
    manifest["version"] = "v2"
    manifest["files"][0]["path"] = "../escape"
    store.client.put_object(Bucket=store.bucket, Key=key, Body=json.dumps(manifest).encode())

    code, _, err = _verify(run, store)

    assert code == 1
    assert "does not match the location ('v1')" in err
    assert "'../escape': not a plain relative path" in err


def test_unknown_version_is_reported_as_never_pushed(
    run: Run, store: Store, published: Path
) -> None:
    code, _, err = _verify(run, store, "v9")
    assert code == 1
    assert "bert version v9 does not exist" in err and "never pushed" in err


def test_unfinished_push_is_reported_as_such(run: Run, store: Store) -> None:
    store.client.put_object(Bucket=store.bucket, Key=PREFIX + "part.bin", Body=b"1")
    code, _, err = _verify(run, store)
    assert code == 1
    assert "unfinished push left 1 object(s)" in err
