"""``mlstack loader push``: against moto's ECR and a STAND-IN ``docker``.

The ``docker`` on PATH here is not Docker: it is a small Python script written by the
test that records its arguments (and what it reads on stdin) and, for ``docker push
<image>``, registers a manifest under the image's tag in moto's ECR, which is what a
registry push leaves behind. Nothing is built.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from components.versions import MODEL_LOADER_IMAGE_TAG
from mlstack.cli import main
from stacks.config import PROJECT_ROOT, load_config_file

STANDIN_DOCKER = """#!{python}
# STAND-IN docker for tests: records its arguments; `push` registers the tag in moto's ECR.
import json, os, sys
args = sys.argv[1:]
stdin = sys.stdin.read() if args[:1] == ["login"] else None
with open(os.environ["STANDIN_DOCKER_LOG"], "a") as log:
    log.write(json.dumps({{"args": args, "stdin": stdin}}) + "\\n")
if args[:1] == ["push"]:
    import boto3
    uri, tag = args[1].rsplit(":", 1)
    registry, repository = uri.split("/", 1)
    region = registry.split(".")[3]
    manifest = {{"schemaVersion": 2, "mediaType":
        "application/vnd.docker.distribution.manifest.v2+json",
        "config": {{"mediaType": "application/vnd.docker.container.image.v1+json",
        "size": 1, "digest": "sha256:" + "c" * 64}}, "layers": []}}
    boto3.client("ecr", region_name=region).put_image(
        repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag)
sys.exit(int(os.environ.get("STANDIN_DOCKER_EXIT", "0")))
"""

REGION = load_config_file("dev").region
REPOSITORY = "mlstack-dev-model-loader"


@pytest.fixture
def ecr(moto_reset: str, aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_reset)
    return boto3.client("ecr", region_name=REGION, endpoint_url=moto_reset)


@pytest.fixture
def docker_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], list[dict[str, Any]]]:
    """The stand-in docker first on PATH; returns a reader of the calls it recorded."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "docker"
    script.write_text(STANDIN_DOCKER.format(python=sys.executable))
    script.chmod(0o755)
    log = tmp_path / "docker.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("STANDIN_DOCKER_LOG", str(log))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)

    def calls() -> list[dict[str, Any]]:
        return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []

    return calls


def _push(capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["loader", "push", "dev", "--root", str(PROJECT_ROOT)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_push_builds_and_pushes_the_pinned_tag_to_the_stacks_repository(
    ecr: Any, docker_log: Callable[[], list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    uri = ecr.create_repository(repositoryName=REPOSITORY)["repository"]["repositoryUri"]
    code, out, err = _push(capsys)
    assert (code, err) == (0, "")
    image = f"{uri}:{MODEL_LOADER_IMAGE_TAG}"
    calls = [c["args"] for c in docker_log()]
    registry = uri.split("/", 1)[0]
    assert calls == [
        ["login", "--username", "AWS", "--password-stdin", registry],
        [
            "build",
            "--provenance=false",
            "-f",
            str(PROJECT_ROOT / "loader" / "Dockerfile"),
            "-t",
            image,
            str(PROJECT_ROOT),
        ],
        ["push", image],
    ]
    # The ECR password goes to docker on stdin, never on its command line.
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    assert docker_log()[0]["stdin"] and docker_log()[0]["stdin"] not in json.dumps(calls)
    assert token
    digest = ecr.describe_images(
        repositoryName=REPOSITORY, imageIds=[{"imageTag": MODEL_LOADER_IMAGE_TAG}]
    )["imageDetails"][0]["imageDigest"]
    assert f"model-loader {image} digest: {digest}" in out


def test_push_of_a_tag_already_in_the_repository_builds_nothing(
    ecr: Any, docker_log: Callable[[], list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    ecr.create_repository(repositoryName=REPOSITORY)
    assert _push(capsys)[0] == 0
    docker_log_before = len(docker_log())
    code, out, _ = _push(capsys)
    assert code == 0 and "already there" in out
    assert len(docker_log()) == docker_log_before  # tags are immutable: no second build


def test_push_without_the_repository_names_it_and_the_first_deploy_step(
    ecr: Any, docker_log: Callable[[], list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _push(capsys)
    assert code == 1
    assert f"ECR repository {REPOSITORY} does not exist in {REGION}" in err
    assert "deployModels: false" in err and "First deploy" in err
    assert docker_log() == []


def test_push_without_docker_exits_2_saying_docker_is_needed(
    ecr: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ecr.create_repository(repositoryName=REPOSITORY)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    code, _, err = _push(capsys)
    assert code == 2
    assert "needs docker, which is not on PATH" in err


def test_a_failing_docker_build_is_one_line_naming_the_step(
    ecr: Any,
    docker_log: Callable[[], list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ecr.create_repository(repositoryName=REPOSITORY)
    monkeypatch.setenv("STANDIN_DOCKER_EXIT", "1")
    code, _, err = _push(capsys)
    assert code == 1
    assert err.startswith("error: `docker login` exited with 1")
    assert len(err.strip().splitlines()) == 1
