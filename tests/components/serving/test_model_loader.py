"""The model-loader script, run for real with /bin/sh, jq and sha256sum.

The one thing replaced is the ``aws`` command: a stand-in executable (written by
these tests, first on PATH) that serves ``s3://<bucket>/<key>`` from a local
directory and logs every key it was asked for. Everything else -- manifest checks,
downloads of exactly the listed files, size and sha256 verification, the marker
that makes a pod restart cheap -- is the script itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from components.serving.namespace import LOADER_SCRIPT

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("sh", "jq", "sha256sum", "stat", "find")),
    reason="needs sh, jq, sha256sum, stat and find (all in the loader image)",
)

STAND_IN_AWS = """#!/bin/sh
# Stand-in for `aws s3 cp [--only-show-errors] s3://bucket/key dest` over $FAKE_S3.
[ "$1" = s3 ] && [ "$2" = cp ] || { echo "unexpected: $*" >&2; exit 2; }
shift 2
[ "$1" = --only-show-errors ] && shift
src=${1#s3://}; dest=$2
echo "$src" >> "$FAKE_S3_LOG"
[ -f "$FAKE_S3/$src" ] || { echo "download failed: (404) $1" >&2; exit 1; }
mkdir -p "$(dirname "$dest")"
cp "$FAKE_S3/$src" "$dest"
"""

FILES = {
    "config.json": b'{"architectures": ["LlamaForCausalLM"]}',
    "model-00001.safetensors": b"\x00weights-part-1" * 1000,
    "tokenizer/tokenizer.json": b'{"vocab": {}}',
}


def _manifest(name: str, version: str, files: dict[str, bytes]) -> dict[str, object]:
    return {
        "name": name,
        "version": version,
        "createdAt": "2026-11-01T00:00:00Z",
        "files": [
            {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for path, data in files.items()
        ],
    }


class Loader:
    def __init__(self, tmp: Path) -> None:
        self.s3 = tmp / "s3"
        self.model_dir = tmp / "pod" / "models" / "model"
        self.log = tmp / "s3.log"
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        aws = bin_dir / "aws"
        aws.write_text(STAND_IN_AWS)
        aws.chmod(0o755)
        self.env = {
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "FAKE_S3": str(self.s3),
            "FAKE_S3_LOG": str(self.log),
            "MODEL_BUCKET": "models-bucket",
            "MODEL_MANIFEST_KEY": "models/llama/manifests/v1.json",
            "MODEL_BLOBS_PREFIX": "models/llama/blobs/sha256/",
            "MODEL_NAME": "llama",
            "MODEL_VERSION": "v1",
            "MODEL_DIR": str(self.model_dir),
        }

    def publish(self, files: dict[str, bytes], manifest: dict[str, object] | None = None) -> None:
        root = self.s3 / "models-bucket" / "models" / "llama"
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "manifests").mkdir(parents=True, exist_ok=True)
        listed = {f["path"]: f["sha256"] for f in (manifest or {}).get("files", [])}  # type: ignore[union-attr]
        for path, data in files.items():
            digest = listed.get(path) or hashlib.sha256(data).hexdigest()
            (root / "blobs" / "sha256" / digest).write_bytes(data)
        if manifest is not None:
            (root / "manifests" / "v1.json").write_text(json.dumps(manifest))

    def run(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", str(LOADER_SCRIPT)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def fetched(self) -> list[str]:
        return self.log.read_text().split() if self.log.exists() else []


@pytest.fixture
def loader(tmp_path: Path) -> Loader:
    return Loader(tmp_path)


def test_fetches_and_verifies_exactly_the_listed_files(loader: Loader) -> None:
    loader.publish(FILES, _manifest("llama", "v1", FILES))
    loader.publish({"notes/unlisted.txt": b"not part of the version"}, None)
    result = loader.run()
    assert result.returncode == 0, result.stderr
    assert "verified 3 files of llama v1" in result.stdout
    for path, data in FILES.items():
        assert (loader.model_dir / path).read_bytes() == data
    assert not (loader.model_dir / "notes").exists()
    fetched = loader.fetched()
    assert fetched[0] == "models-bucket/models/llama/manifests/v1.json"
    assert sorted(fetched[1:]) == sorted(
        f"models-bucket/models/llama/blobs/sha256/{hashlib.sha256(d).hexdigest()}"
        for d in FILES.values()
    )


def test_same_size_different_bytes_is_a_sha256_mismatch(loader: Loader) -> None:
    tampered = FILES["model-00001.safetensors"].replace(b"part-1", b"part-X", 1)
    assert len(tampered) == len(FILES["model-00001.safetensors"])
    loader.publish({**FILES, "model-00001.safetensors": tampered}, _manifest("llama", "v1", FILES))
    result = loader.run()
    assert result.returncode != 0
    assert "sha256 mismatch for model-00001.safetensors" in result.stderr
    assert not (loader.model_dir / ".mlstack-verified").exists()


def test_a_size_mismatch_fails(loader: Loader) -> None:
    loader.publish(
        {**FILES, "config.json": FILES["config.json"] + b" "}, _manifest("llama", "v1", FILES)
    )
    result = loader.run()
    assert result.returncode != 0
    assert "size mismatch for config.json" in result.stderr


def test_an_unpublished_version_fails(loader: Loader) -> None:
    loader.publish(FILES, manifest=None)  # files uploaded, manifest (written last) missing
    result = loader.run()
    assert result.returncode != 0
    assert "no manifest" in result.stderr


def test_a_manifest_of_another_version_fails(loader: Loader) -> None:
    loader.publish(FILES, _manifest("llama", "v2", FILES))
    result = loader.run()
    assert result.returncode != 0
    assert "does not describe llama version v1" in result.stderr


@pytest.mark.parametrize("bad_path", ["../escape.bin", "/etc/passwd", "a/../../b", "a\nb"])
def test_unsafe_paths_in_the_manifest_fail_before_any_download(
    loader: Loader, bad_path: str
) -> None:
    manifest = _manifest("llama", "v1", FILES)
    files = manifest["files"]
    assert isinstance(files, list)
    files.append({"path": bad_path, "size": 1, "sha256": "0" * 64})
    loader.publish(FILES, manifest)
    result = loader.run()
    assert result.returncode != 0
    assert "unsafe file path" in result.stderr
    assert loader.fetched() == ["models-bucket/models/llama/manifests/v1.json"]


def test_a_restarted_pod_reuses_the_verified_copy(loader: Loader) -> None:
    loader.publish(FILES, _manifest("llama", "v1", FILES))
    assert loader.run().returncode == 0
    first = len(loader.fetched())
    again = loader.run()
    assert again.returncode == 0
    assert "already verified" in again.stdout
    assert len(loader.fetched()) == first + 1  # only the manifest again


def test_a_stray_file_in_the_model_directory_fails(loader: Loader) -> None:
    loader.publish(FILES, _manifest("llama", "v1", FILES))
    loader.model_dir.mkdir(parents=True)
    (loader.model_dir / "leftover.bin").write_bytes(b"x")
    result = loader.run()
    assert result.returncode != 0
    assert "holds 4 files, manifest lists 3" in result.stderr
