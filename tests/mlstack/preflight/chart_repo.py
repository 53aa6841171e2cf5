"""A Helm chart repository in memory (``index.yaml`` + one package), the shape Helm reads:
``entries.<chart>[].{version, urls, digest}`` with the package's sha256."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import yaml


def package(chart: str, files: dict[str, bytes]) -> bytes:
    """A chart package (``.tgz``) holding ``files`` under ``<chart>/``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(f"{chart}/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def chart_files(
    source: Path, ignored: tuple[str, ...] = ("crds/kustomization.yaml",)
) -> dict[str, bytes]:
    """The files of a chart source directory that its package holds (``ignored``: the
    chart's .helmignore entries that matter here)."""
    return {
        str(p.relative_to(source)): p.read_bytes()
        for p in sorted(source.rglob("*"))
        if p.is_file() and str(p.relative_to(source)) not in ignored
    }


def repository(
    base: str, chart: str, version: str, tgz: bytes, digest: str | None = None
) -> dict[str, bytes]:
    """URL -> body for a repository at ``base`` listing ``chart`` ``version``."""
    url = f"{base.rstrip('/')}/{chart}-{version}.tgz"
    index = {
        "apiVersion": "v1",
        "entries": {
            chart: [
                {
                    "name": chart,
                    "version": version,
                    "urls": [url],
                    "digest": digest or hashlib.sha256(tgz).hexdigest(),
                }
            ]
        },
    }
    return {f"{base.rstrip('/')}/index.yaml": yaml.safe_dump(index).encode(), url: tgz}
