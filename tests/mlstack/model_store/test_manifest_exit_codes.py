"""A manifest that breaks its format is bad input: exit 2 whatever the problem (issue 26,
item 11: a path leaving the version used to exit 2, a duplicate path or a name that does
not match its location 1), for every command that reads one."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.mlstack.model_store.conftest import Run, Store, manifest_key, write_model

MANIFEST = manifest_key("bert", "v1")


def _traversal(document: dict[str, Any]) -> None:
    document["files"][0]["path"] = "../escape"


def _duplicate(document: dict[str, Any]) -> None:
    document["files"].append(dict(document["files"][0]))
    document["fileCount"] += 1
    document["totalBytes"] += document["files"][0]["size"]


def _name_mismatch(document: dict[str, Any]) -> None:
    document["name"] = "other-model"


def _version_mismatch(document: dict[str, Any]) -> None:
    document["version"] = "v2"


TAMPERING: dict[str, Callable[[dict[str, Any]], None]] = {
    "path-traversal": _traversal,
    "duplicate-path": _duplicate,
    "name-mismatch": _name_mismatch,
    "version-mismatch": _version_mismatch,
}


@pytest.fixture(params=sorted(TAMPERING))
def tampered(request: pytest.FixtureRequest, run: Run, store: Store, tmp_path: Path) -> str:
    directory = write_model(tmp_path / "bert", {"a.bin": b"a" * 1000, "b.bin": b"b" * 10})
    code, _, err = run(
        "model", "push", str(directory), "--name", "bert", "--version", "v1", *store.args()
    )  # fmt: skip
    assert code == 0, err
    document = json.loads(store.read(MANIFEST))
    TAMPERING[request.param](document)
    store.client.put_object(Bucket=store.bucket, Key=MANIFEST, Body=json.dumps(document).encode())
    return request.param


@pytest.mark.parametrize("command", ["verify", "fetch"])
def test_a_bad_manifest_exits_2_whatever_the_problem(
    run: Run, store: Store, tmp_path: Path, tampered: str, command: str
) -> None:
    where = ["--bucket", store.bucket, "--endpoint-url", store.endpoint]
    extra = ["--cache-dir", str(tmp_path / "cache")] if command == "fetch" else ["--no-progress"]
    code, _, err = run(
        "model", command, "--name", "bert", "--version", "v1", *extra, *where
    )  # fmt: skip
    assert code == 2, (tampered, err)
    assert f"s3://{store.bucket}/{MANIFEST}" in err
    assert "Traceback" not in err
