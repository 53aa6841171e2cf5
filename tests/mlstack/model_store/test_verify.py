"""``mlstack model verify``: follows the manifest; every blob re-read; corruption reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.mlstack.model_store.conftest import Run, Store, blob, manifest_key, write_model

WEIGHTS = b"w" * 300_000
TOKENIZER = b'{"v": 1}'
MANIFEST = manifest_key("bert", "v1")


@pytest.fixture
def published(run: Run, store: Store, tmp_path: Path) -> Path:
    directory = write_model(
        tmp_path / "bert",
        {"model.safetensors": WEIGHTS, "tokenizer.json": TOKENIZER, "copy.json": TOKENIZER},
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
    assert "verified bert version v1: 3 files" in out


def test_corrupted_blob_is_detected_and_named(run: Run, store: Store, published: Path) -> None:
    key = blob("bert", WEIGHTS)
    flipped = bytes([WEIGHTS[0] ^ 0xFF]) + WEIGHTS[1:]  # same size, one byte differs
    store.client.put_object(Bucket=store.bucket, Key=key, Body=flipped)

    code, _, err = _verify(run, store)

    assert code == 1
    assert "FAILED verification" in err
    assert "model.safetensors: blob" in err and "corrupted, or written around mlstack" in err
    assert "tokenizer.json" not in err


def test_missing_and_truncated_blobs_are_reported(run: Run, store: Store, published: Path) -> None:
    store.client.delete_object(Bucket=store.bucket, Key=blob("bert", TOKENIZER))
    store.client.put_object(Bucket=store.bucket, Key=blob("bert", WEIGHTS), Body=WEIGHTS[:10])

    code, _, err = _verify(run, store)

    assert code == 1
    assert "tokenizer.json: blob" in err and "missing from the bucket" in err
    assert "copy.json: blob" in err  # both files that share the blob
    assert "model.safetensors: blob" in err and "holds 10 bytes" in err


def test_tampered_manifest_is_rejected(run: Run, store: Store, published: Path) -> None:
    manifest = json.loads(store.read(MANIFEST))
    manifest["version"] = "v2"
    manifest["files"][0]["path"] = "../escape"
    store.client.put_object(Bucket=store.bucket, Key=MANIFEST, Body=json.dumps(manifest).encode())

    code, _, err = _verify(run, store)

    assert code == 2  # a manifest that breaks its format is bad input (mlstack.errors)
    assert "does not match the location ('v1')" in err
    assert "'../escape': not a plain relative path" in err


def test_unknown_version_is_reported_as_never_pushed(
    run: Run, store: Store, published: Path
) -> None:
    code, _, err = _verify(run, store, "v9")
    assert code == 1
    assert "bert version v9 does not exist" in err and "never pushed" in err
