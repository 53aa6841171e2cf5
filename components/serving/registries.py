"""Container registries: which ones ECR can cache (pull-through), and how to split a
reference into its registry and repository path. Pure data, read by config and by
``components.serving.image_cache``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Upstream:
    """One registry ECR can cache: its ECR upstream URL, the short name used in the
    cache prefix, and whether ECR needs a Secrets Manager credential for it."""

    upstream_url: str
    short_name: str
    needs_credential: bool


UPSTREAMS: Mapping[str, Upstream] = {
    "docker.io": Upstream("registry-1.docker.io", "docker-hub", True),
    "public.ecr.aws": Upstream("public.ecr.aws", "ecr-public", False),
    "quay.io": Upstream("quay.io", "quay", False),
    "registry.k8s.io": Upstream("registry.k8s.io", "k8s", False),
    "ghcr.io": Upstream("ghcr.io", "ghcr", True),
    "registry.gitlab.com": Upstream("registry.gitlab.com", "gitlab", True),
}
"""Upstream registries ECR supports for pull-through caches (CreatePullThroughCacheRule's
``upstreamRegistryUrl`` list; Docker Hub, GitHub and GitLab need a credential in Secrets
Manager named ``ecr-pullthroughcache/...``)."""

UNSUPPORTED: Mapping[str, str] = {
    "nvcr.io": "NVIDIA NGC is not an ECR pull-through cache upstream: pulled from nvcr.io",
}
"""Registries the presets use that ECR cannot cache, and what happens instead."""


def registry_of(image: str) -> str:
    """The registry host of an image reference (``docker.io`` when none is named)."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def repository_path(image: str) -> str:
    """The image reference without its registry host (``library/`` added for Docker Hub
    official images, as ECR's Docker Hub cache requires)."""
    registry = registry_of(image)
    path = image.removeprefix(f"{registry}/") if image.startswith(f"{registry}/") else image
    if registry == "docker.io" and "/" not in path.split("@")[0].split(":")[0]:
        path = f"library/{path}"
    return path
