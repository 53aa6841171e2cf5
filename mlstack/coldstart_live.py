"""``mlstack coldstart <stack> --live``: the estimate's sizes read from AWS, not config.

Per deployed model, with credentials:

* **model size**: the pinned version's manifest in the stack's model bucket (the total of
  its files' sizes, ``mlstack.model_store``), the same bytes the loader downloads;
* **image size**: ``ecr:DescribeImages`` ``imageSizeInBytes`` of the image the pods pull:
  an image in a private ECR repository, or the stack's pull-through cache repository of
  an image from a cached registry (``serving.imageCache``). ECR reports the compressed
  size of the image's layers, which is what a pull moves.

A size that cannot be read (no manifest yet, an image ECR has not cached yet, a registry
ECR cannot cache) keeps the config's value, and a note says why. Only reads; nothing is
written anywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from components.serving.registries import UNSUPPORTED, UPSTREAMS, registry_of, repository_path
from components.storage import layout
from mlstack.aws import error_code
from mlstack.errors import MlstackError
from mlstack.model_store import s3
from mlstack.model_store.manifest import ManifestError, parse_manifest
from mlstack.model_store.verify import VersionNotFoundError, read_manifest
from stacks.config import StackConfig
from stacks.serving_layer import cache_prefix, deployed_models, model_images
from stacks.startup import MeasuredSizes

GiB = 1024**3
_ECR_HOST = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")


@dataclass(frozen=True)
class EcrImage:
    """Where an image's size can be read: an ECR repository and a tag or digest."""

    repository: str
    tag: str | None
    digest: str | None

    def image_id(self) -> dict[str, str]:
        return {"imageDigest": self.digest} if self.digest else {"imageTag": self.tag or "latest"}

    def describe(self) -> str:
        return (
            f"{self.repository}{'@' + self.digest if self.digest else ':' + (self.tag or 'latest')}"
        )


def split_reference(path: str) -> tuple[str, str | None, str | None]:
    """(repository, tag, digest) of a reference without its registry host."""
    name, _, digest = path.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, _, tag = name.rpartition(":")
        return name, tag, digest or None
    return name, None, digest or None


def ecr_image(cfg: StackConfig, stack: str, image: str) -> tuple[EcrImage | None, str]:
    """The ECR repository the pods pull ``image`` from, or None and why there is none."""
    host = registry_of(image)
    path = image.removeprefix(f"{host}/")
    if _ECR_HOST.match(host):
        return EcrImage(*split_reference(path)), "private ECR repository"
    settings = cfg.serving.image_cache
    upstream = UPSTREAMS.get(host)
    if not settings.enabled:
        return None, "serving.imageCache is off: pulled from its registry"
    if upstream is None:
        return None, UNSUPPORTED.get(host, f"{host} is not an ECR pull-through upstream")
    if upstream.needs_credential and host not in settings.credential_arns:
        return None, f"{host} needs a credential for the cache (none configured): not cached"
    repository, tag, digest = split_reference(repository_path(image))
    prefix = f"{cache_prefix(stack)}-{upstream.short_name}"
    return EcrImage(f"{prefix}/{repository}", tag, digest), "pull-through cache repository"


def _no_credentials(exc: BaseException) -> MlstackError | None:
    from mlstack.aws import credentials_error

    return credentials_error(
        exc,
        "coldstart --live reads the model bucket and ECR (or drop --live for the offline estimate)",
    )


def model_size(client: Any, bucket: str, name: str, version: str) -> tuple[float | None, str]:
    """The version's total size in GiB from its manifest, or None and why."""
    key = layout.manifest_key(name, version)
    where = f"s3://{bucket}/{key}"
    try:
        body = read_manifest(client, bucket, name, version)
        manifest = parse_manifest(body, name, version)
    except ManifestError as exc:
        return None, f"manifest {where} is damaged ({exc}): config size kept"
    except VersionNotFoundError:
        return None, f"no manifest at {where} (push it with `mlstack model push`): config size kept"
    except MlstackError:
        raise
    except Exception as exc:
        raise _no_credentials(exc) or s3.explain(exc, bucket, where) from exc
    return (
        manifest.total_bytes / GiB,
        f"manifest {where}: {len(manifest.files)} files, {manifest.total_bytes} bytes",
    )


def image_size(ecr: Any, target: EcrImage) -> tuple[float | None, str]:
    """``imageSizeInBytes`` of ``target`` in GiB, or None and why."""
    try:
        response = ecr.describe_images(
            repositoryName=target.repository, imageIds=[target.image_id()]
        )
    except Exception as exc:
        missing = _no_credentials(exc)
        if missing is not None:
            raise missing from exc
        if error_code(exc) in ("RepositoryNotFoundException", "ImageNotFoundException"):
            return None, (
                f"{target.describe()} is not in ECR yet (the first pull through the cache "
                "creates it): config size kept"
            )
        if error_code(exc) == "AccessDeniedException":
            raise MlstackError(
                f"ecr:DescribeImages on {target.repository} was denied: the caller needs "
                "ecr:DescribeImages on the stack's repositories"
            ) from exc
        raise
    details = response.get("imageDetails") or []
    size = details[0].get("imageSizeInBytes") if details else None
    if not isinstance(size, int):
        return None, f"ECR reports no size for {target.describe()}: config size kept"
    return size / GiB, f"ECR DescribeImages {target.describe()}: {size} bytes (compressed)"


def measure_sizes(
    cfg: StackConfig, stack: str, *, s3_client: Any, bucket: str, ecr_client: Any
) -> tuple[dict[str, MeasuredSizes], list[str]]:
    """Per deployed model, the sizes read from the bucket and ECR; and one note per size
    that could not be read (the config's value stays)."""
    measured: dict[str, MeasuredSizes] = {}
    notes: list[str] = []
    for model in deployed_models(cfg):
        version = model.version_of(model.tracks[0])[0]
        model_gib, model_basis = model_size(s3_client, bucket, model.name, version)
        if model_gib is None:
            notes.append(f"{model.name}: {model_basis}")
        image = model_images(model)[0]
        target, why = ecr_image(cfg, stack, image)
        image_gib: float | None = None
        image_basis = why
        if target is None:
            notes.append(f"{model.name}: image {image}: {why}; config size kept")
        else:
            image_gib, image_basis = image_size(ecr_client, target)
            if image_gib is None:
                notes.append(f"{model.name}: {image_basis}")
        measured[model.name] = MeasuredSizes(
            model_gib=model_gib,
            model_source=model_basis,
            image_gib=round(image_gib, 3) if image_gib is not None else None,
            image_source=image_basis,
        )
    return measured, notes
