"""``mlstack loader push <stack>``: build ``loader/Dockerfile`` and push it to the stack's
own ECR repository under the pinned tag, unless that tag is already there.

The serving pods' init containers pull ``mlstack-<stack>-model-loader:<tag>``; the
repository is created by the first deploy's platform phase, so this runs between that
phase and ``deployModels: true`` (and in ``deploy.yml`` before every ``pulumi up``).
Tags are immutable: a tag already in the repository is never rebuilt. Needs ``docker``
(with buildx, for ``--provenance=false``: ECR then stores a plain image manifest).
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlstack.aws import error_code, make_client, network_error
from mlstack.errors import MlstackError, UsageError
from mlstack.loader_pin import read_loader_pin

DOCKERFILE = Path("loader") / "Dockerfile"
DOCKER_HINT = (
    "install Docker (Engine or Desktop, with buildx) and make sure `docker info` works, or "
    "run this on a machine that has it (the deploy workflow's runner does)"
)


@dataclass(frozen=True)
class LoaderPush:
    image: str
    """``<registry>/<repository>:<tag>``."""
    digest: str
    built: bool
    """False when the tag was already in the repository (nothing built or pushed)."""


def repository_name(stack: str) -> str:
    from stacks.serving_layer import loader_repository_name

    return loader_repository_name(stack)


def find_docker() -> str:
    """The ``docker`` executable on PATH; a :class:`UsageError` (exit 2) when there is none."""
    found = shutil.which("docker")
    if not found:
        raise UsageError(f"`mlstack loader push` needs docker, which is not on PATH: {DOCKER_HINT}")
    return found


def _docker(docker: str, args: Sequence[str], *, stdin: str | None = None) -> None:
    """Run ``docker <args>`` (output to the terminal); a non-zero exit is one line."""
    from mlstack import interrupt

    child = interrupt.popen(
        [docker, *args],
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        text=True,
    )
    try:
        child.communicate(input=stdin)
    finally:
        interrupt.release(child)
    if child.returncode != 0:
        raise MlstackError(
            f"`docker {args[0]}` exited with {child.returncode} (see its output above); "
            f"is the Docker daemon running? {DOCKER_HINT}"
        )


def _digest(ecr: Any, repository: str, tag: str) -> str | None:
    try:
        images = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    except Exception as exc:
        if error_code(exc) == "ImageNotFoundException":
            return None
        raise
    details = images.get("imageDetails") or []
    return str(details[0]["imageDigest"]) if details else None


def _repository_uri(ecr: Any, repository: str, stack: str, region: str) -> str:
    try:
        found = ecr.describe_repositories(repositoryNames=[repository])["repositories"]
    except Exception as exc:
        if error_code(exc) == "RepositoryNotFoundException":
            raise MlstackError(
                f"ECR repository {repository} does not exist in {region}: the stack creates "
                f"it in the platform phase of the first deploy (mlstack:serving.deployModels: "
                f"false in Pulumi.{stack}.yaml, then `pulumi up -s {stack}`); run that, then "
                'rerun this command (docs/operations.md, section "First deploy")'
            ) from None
        raise
    return str(found[0]["repositoryUri"])


def push_loader_image(
    stack: str,
    root: Path,
    *,
    endpoint_url: str | None = None,
    echo: Callable[[str], None] = print,
) -> LoaderPush:
    """Push the pinned loader image of ``root`` to ``stack``'s repository (see module doc)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from stacks.config import ConfigError, load_config_file

    try:
        region = load_config_file(stack, root).region
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    dockerfile = root / DOCKERFILE
    if not dockerfile.is_file():
        raise UsageError(f"{dockerfile}: not found; run from the project root or pass --root")
    pin = read_loader_pin(root)
    docker = find_docker()
    repository = repository_name(stack)
    ecr = make_client(boto3.Session(region_name=region), "ecr", endpoint_url=endpoint_url)
    try:
        uri = _repository_uri(ecr, repository, stack, region)
        image = f"{uri}:{pin.tag}"
        digest = _digest(ecr, repository, pin.tag)
        built = digest is None
        if digest is not None:
            echo(f"{image} is already there ({digest}): tags are immutable, nothing to build")
        else:
            auth = ecr.get_authorization_token()["authorizationData"][0]
            password = base64.b64decode(auth["authorizationToken"]).decode().split(":", 1)[1]
            registry = str(auth["proxyEndpoint"]).removeprefix("https://")
            _docker(
                docker, ["login", "--username", "AWS", "--password-stdin", registry], stdin=password
            )
            _docker(
                docker,
                ["build", "--provenance=false", "-f", str(dockerfile), "-t", image, str(root)],
            )
            _docker(docker, ["push", image])
            digest = _digest(ecr, repository, pin.tag)
            if digest is None:
                raise MlstackError(
                    f"`docker push {image}` succeeded but ECR does not list {pin.tag}"
                )
    except (ClientError, BotoCoreError) as exc:
        raise network_error(exc) or MlstackError(f"ECR ({region}): {exc}") from None
    echo(f"model-loader {image} digest: {digest}")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        from mlstack.files import append_atomic

        append_atomic(
            Path(summary),
            f"model-loader `{image}`: `{digest}` (MODEL_LOADER_IMAGE_DIGEST)\n",
            what="$GITHUB_STEP_SUMMARY",
        )
    if pin.digest and pin.digest != digest:
        raise MlstackError(
            f"components/versions.py records MODEL_LOADER_IMAGE_DIGEST {pin.digest} for "
            f"{pin.tag}, but {repository} holds {digest}: record the repository's digest, or "
            "bump MODEL_LOADER_IMAGE_TAG"
        )
    return LoaderPush(image=image, digest=digest, built=built)
