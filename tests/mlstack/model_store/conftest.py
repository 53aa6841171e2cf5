"""Fixtures for ``mlstack model``: a versioned bucket on the real moto server, model dirs."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from mlstack.cli import main
from mlstack.testing import moto_server as moto

BUCKET = "mlstack-test-models"
MiB = 1024 * 1024


@dataclass
class Store:
    """The moto endpoint, a versioned bucket in it, and a plain boto3 client for checks."""

    endpoint: str
    bucket: str
    client: Any

    def args(self) -> list[str]:
        return ["--bucket", self.bucket, "--endpoint-url", self.endpoint, "--no-progress"]

    def object_keys(self, prefix: str = "") -> list[str]:
        response = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for item in response.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def versions_of(self, key: str) -> list[str]:
        """Every S3 object version of ``key`` (more than one: it was overwritten)."""
        response = self.client.list_object_versions(Bucket=self.bucket, Prefix=key)
        return [v["VersionId"] for v in response.get("Versions", []) if v["Key"] == key]


def blob(name: str, data: bytes) -> str:
    """The blob key of ``data`` in model ``name``."""
    return f"models/{name}/blobs/sha256/{hashlib.sha256(data).hexdigest()}"


def manifest_key(name: str, version: str) -> str:
    return f"models/{name}/manifests/{version}.json"


def _bucket_store(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("MLSTACK_MODEL_BUCKET", raising=False)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return Store(endpoint=endpoint, bucket=BUCKET, client=client)


@pytest.fixture
def store(moto_reset: str, aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Store:
    return _bucket_store(moto_reset, monkeypatch)


@pytest.fixture(scope="session")
def atomic_moto_server() -> Iterator[str]:
    """moto with atomic conditional writes (``atomic_moto``), for racing pushes; by PID."""
    port = moto.free_port()
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("atomic_moto.py")), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("atomic moto server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        moto.stop(process)


@pytest.fixture
def atomic_store(atomic_moto_server: str, aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Store:
    """Like ``store``, on the moto server whose If-None-Match writes are atomic."""
    moto.reset(atomic_moto_server)
    return _bucket_store(atomic_moto_server, monkeypatch)


def write_model(root: Path, files: Mapping[str, int | bytes]) -> Path:
    """Create ``root`` with files of the given sizes (random bytes) or contents."""
    for relpath, content in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(content) if isinstance(content, int) else content)
    return root


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A small model: one 12 MiB file (multipart at 5 MiB parts) and three small ones."""
    return write_model(
        tmp_path / "resnet50",
        {
            "1/model.onnx": 12 * MiB + 123,
            "config.pbtxt": b'name: "resnet50"\nplatform: "onnxruntime_onnx"\n',
            "labels.txt": 2048,
            "empty.txt": b"",
        },
    )


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``mlstack <args>`` in-process; returns (exit code, stdout, stderr)."""

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke
