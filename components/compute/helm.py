"""One way to install a pinned Helm chart: ``helm.v3.Release`` from a :class:`ChartPin`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.versions import ChartPin

RELEASE_TIMEOUT_SECONDS = 600


def release(
    resource_name: str,
    pin: ChartPin,
    *,
    release_name: str,
    namespace: str,
    values: Mapping[str, Any],
    opts: pulumi.ResourceOptions,
    skip_crds: bool = False,
) -> k8s.helm.v3.Release:
    """A Helm release of ``pin`` named ``release_name`` (no random suffix), atomic: a failed
    install or upgrade rolls back instead of leaving a half-applied release."""
    repository = (
        None
        if pin.repository.startswith("oci://")
        else k8s.helm.v3.RepositoryOptsArgs(repo=pin.repository)
    )
    return k8s.helm.v3.Release(
        resource_name,
        k8s.helm.v3.ReleaseArgs(
            chart=pin.chart_ref,
            version=pin.version,
            repository_opts=repository,
            name=release_name,
            namespace=namespace,
            values=dict(values),
            skip_crds=skip_crds,
            atomic=True,
            cleanup_on_fail=True,
            timeout=RELEASE_TIMEOUT_SECONDS,
        ),
        opts=opts,
    )
