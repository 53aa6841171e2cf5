"""``mlstack coldstart --live``: sizes from the model bucket's manifests and from ECR (moto)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from mlstack import coldstart_live
from mlstack.cli import main
from mlstack.model_store.local import scan_model_dir
from mlstack.model_store.push import MiB, PushSettings, push_model
from mlstack.model_store.s3 import make_client
from stacks.config import load_config_file
from stacks.serving_layer import cache_prefix
from tests.mlstack.model_store.conftest import write_model

BUCKET = "coldstart-live-models"
LLM = "llama-3-8b-instruct"
LLM_VERSION = "2025-06-02"  # Pulumi.dev.yaml
VLLM_REPOSITORY = f"{cache_prefix('dev')}-docker-hub/vllm/vllm-openai"
IMAGE_BYTES = 7 * 1024**3 + 12345


@pytest.fixture
def world(moto_reset: str, aws_env: None, tmp_path: Path) -> str:
    """dev's LLM pushed (3 MiB) and its vLLM image in the stack's pull-through cache."""
    client = make_client(moto_reset, "us-west-2")
    client.create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
    )
    directory = write_model(tmp_path / "llm", {"model.safetensors": 3 * MiB, "config.json": b"{}"})
    push_model(
        client, BUCKET, LLM, LLM_VERSION, scan_model_dir(directory),
        settings=PushSettings(concurrency=2, part_size=5 * MiB),
    )  # fmt: skip
    ecr = boto3.client("ecr", region_name="us-west-2", endpoint_url=moto_reset)
    ecr.create_repository(repositoryName=VLLM_REPOSITORY)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        # moto answers imageSizeInBytes from here; real ECR sums the compressed layers.
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "size": IMAGE_BYTES, "digest": "sha256:" + "c" * 64},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": IMAGE_BYTES, "digest": "sha256:" + "d" * 64}],
    }  # fmt: skip
    ecr.put_image(
        repositoryName=VLLM_REPOSITORY, imageManifest=json.dumps(manifest), imageTag="v0.28.0"
    )
    return moto_reset


def _report(capsys: pytest.CaptureFixture[str], endpoint: str, *extra: str) -> dict[str, Any]:
    args = ["coldstart", "dev", "--json", "--live", "--bucket", BUCKET, "--endpoint-url", endpoint]
    code = main([*args, *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def _phase(report: dict[str, Any], model: str, name: str) -> dict[str, Any]:
    (entry,) = [m for m in report["models"] if m["model"] == model]
    (phase,) = [p for p in entry["cold"] if p["phase"] == name]
    return phase


def test_live_sizes_come_from_the_manifest_and_ecr_with_their_sources(
    world: str, capsys: pytest.CaptureFixture[str]
) -> None:
    offline_code = main(["coldstart", "dev", "--json"])
    offline = json.loads(capsys.readouterr().out)
    assert offline_code == 0

    live = _report(capsys, world)

    fetch = _phase(live, LLM, "weights fetch")
    assert f"manifest s3://{BUCKET}/models/{LLM}/manifests/{LLM_VERSION}.json" in fetch["basis"]
    assert "2 files, 3145730 bytes" in fetch["basis"]
    assert fetch["seconds"] < _phase(offline, LLM, "weights fetch")["seconds"]
    pull = _phase(live, LLM, "image pull")
    assert f"ECR DescribeImages {VLLM_REPOSITORY}:v0.28.0: {IMAGE_BYTES} bytes" in pull["basis"]
    assert pull["basis"].startswith("7 GiB image")


def test_sizes_that_cannot_be_read_keep_the_config_and_say_why(
    world: str, capsys: pytest.CaptureFixture[str]
) -> None:
    live = _report(capsys, world)
    notes = "\n".join(live["notes"])
    # resnet50 was never pushed, and Triton comes from nvcr.io, which ECR cannot cache.
    assert "resnet50: no manifest at s3://" in notes and "mlstack model push" in notes
    assert "resnet50: image nvcr.io/nvidia/tritonserver" in notes and "NGC" in notes
    fetch = _phase(live, "resnet50", "weights fetch")
    assert "models[].modelSizeGib" in fetch["basis"]


def test_an_image_not_cached_yet_is_a_note_not_a_failure(
    world: str, capsys: pytest.CaptureFixture[str]
) -> None:
    boto3.client("ecr", region_name="us-west-2", endpoint_url=world).delete_repository(
        repositoryName=VLLM_REPOSITORY, force=True
    )
    live = _report(capsys, world)
    assert any("is not in ECR yet" in n and VLLM_REPOSITORY in n for n in live["notes"])


def test_without_credentials_live_fails_clearly(
    moto_reset: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code = main(["coldstart", "dev", "--live", "--bucket", BUCKET, "--endpoint-url", moto_reset])
    assert code != 0
    assert "no AWS credentials" in capsys.readouterr().err


def test_bucket_without_live_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["coldstart", "dev", "--bucket", BUCKET]) == 2
    assert "only apply with --live" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("docker.io/vllm/vllm-openai:v0.28.0", (f"{VLLM_REPOSITORY}", "v0.28.0", None)),
        ("vllm/vllm-openai@sha256:" + "a" * 64, (VLLM_REPOSITORY, None, "sha256:" + "a" * 64)),
        ("python:3.11", (f"{cache_prefix('dev')}-docker-hub/library/python", "3.11", None)),
        (
            "123456789012.dkr.ecr.us-west-2.amazonaws.com/team/server:1.2",
            ("team/server", "1.2", None),
        ),
    ],
)
def test_the_ecr_repository_of_an_image(image: str, expected: tuple[Any, ...]) -> None:
    target, _ = coldstart_live.ecr_image(load_config_file("dev"), "dev", image)
    assert target is not None
    assert (target.repository, target.tag, target.digest) == expected


def test_an_uncached_registry_has_no_ecr_repository() -> None:
    target, why = coldstart_live.ecr_image(
        load_config_file("dev"), "dev", "nvcr.io/nvidia/tritonserver:26.04-py3"
    )
    assert target is None and "NGC" in why
