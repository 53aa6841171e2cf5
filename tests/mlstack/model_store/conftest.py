"""Fixtures for ``mlstack model``: a versioned bucket on the real moto server, model dirs."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from mlstack.cli import main

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


@pytest.fixture
def store(moto_reset: str, aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("MLSTACK_MODEL_BUCKET", raising=False)
    client = boto3.client("s3", endpoint_url=moto_reset, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return Store(endpoint=moto_reset, bucket=BUCKET, client=client)


def write_model(root: Path, files: dict[str, int | bytes]) -> Path:
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
