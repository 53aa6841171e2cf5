"""Preflight: the CRDs a Helm release will install are the bytes the stack pinned.

The AWS Load Balancer Controller's release installs its chart's ``crds/`` (no other host
than the chart repository). Before ``pulumi up``, this check does what Helm will do to
get them (``pkg/repo/chartrepo.go`` + ``pkg/downloader``: read the repository's
``index.yaml``, take the version's first URL, download the package) and then checks:

* the package's sha256 is the ``digest`` the repository's index lists for that version;
* every ``crds/*.yaml`` in the package has the sha256 recorded in
  :data:`components.versions.AWS_LOAD_BALANCER_CONTROLLER_CRDS_SHA256`, and no other CRD
  file is there.

Only HTTPS repositories (and ``http://127.0.0.1`` for tests) are fetched; nothing is
written.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import yaml

TIMEOUT_SECONDS = 30.0
"""Per HTTP request (the index and the package)."""
MAX_BYTES = 64 * 2**20
"""Largest index or package read (a chart package is well under a few MiB; the eks-charts
index is a few MiB)."""


@dataclass(frozen=True)
class ChartRef:
    """A Helm chart in an HTTP(S) repository at an exact version."""

    repository: str
    chart: str
    version: str


class ChartFetchError(Exception):
    """The repository or the package could not be read, or does not match."""


def _allowed(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname == "127.0.0.1")


Getter = Callable[[str], bytes]
"""GET one URL, returning its body (:func:`http_get`; tests substitute a local answer)."""


def http_get(url: str) -> bytes:
    """GET an https URL (``http://127.0.0.1`` too, for tests), at most :data:`MAX_BYTES`."""
    if not _allowed(url):
        raise ChartFetchError(f"{url}: only https repositories are fetched")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            body = response.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ChartFetchError(f"{url}: {exc}") from exc
    if len(body) > MAX_BYTES:
        raise ChartFetchError(f"{url}: larger than {MAX_BYTES} bytes")
    return body


def package_url(ref: ChartRef, get: Getter = http_get) -> tuple[str, str]:
    """(package URL, its sha256 digest) as the repository's ``index.yaml`` lists them."""
    base = ref.repository.rstrip("/") + "/"
    index = yaml.safe_load(get(urllib.parse.urljoin(base, "index.yaml"))) or {}
    entries = (index.get("entries") or {}).get(ref.chart) or []
    for entry in entries:
        if str(entry.get("version")) == ref.version:
            urls = entry.get("urls") or []
            digest = str(entry.get("digest") or "")
            if not urls or not digest:
                raise ChartFetchError(
                    f"{ref.repository}: {ref.chart} {ref.version} lists no package URL or digest"
                )
            return urllib.parse.urljoin(base, str(urls[0])), digest
    raise ChartFetchError(f"{ref.repository}: no {ref.chart} {ref.version} in index.yaml")


def crd_digests(package: bytes, chart: str) -> dict[str, str]:
    """sha256 of each ``crds/*.yaml``/``*.yml``/``*.json`` in a chart package (paths
    relative to the chart: ``crds/crds.yaml``), as Helm's ``CRDObjects`` selects them."""
    found: dict[str, str] = {}
    with tarfile.open(fileobj=io.BytesIO(package), mode="r:gz") as archive:
        for member in archive.getmembers():
            if not member.isfile():
                continue
            name = member.name.removeprefix(f"{chart}/")
            if name.startswith("crds/") and name.endswith((".yaml", ".yml", ".json")):
                handle = archive.extractfile(member)
                if handle is not None:
                    found[name] = hashlib.sha256(handle.read()).hexdigest()
    return found


def verify_crds(ref: ChartRef, pinned: Mapping[str, str], get: Getter = http_get) -> str:
    """Fetch the package as Helm would and compare; returns a one-line summary or raises
    :class:`ChartFetchError` saying what differs."""
    url, digest = package_url(ref, get)
    package = get(url)
    actual = hashlib.sha256(package).hexdigest()
    if actual != digest.removeprefix("sha256:"):
        raise ChartFetchError(f"{url}: sha256 {actual}, but the repository's index lists {digest}")
    found = crd_digests(package, ref.chart)
    if found != dict(pinned):
        changed = sorted(k for k in set(found) | set(pinned) if found.get(k) != pinned.get(k))
        raise ChartFetchError(
            f"{ref.chart} {ref.version}: crds/ differ from the pinned digests in {changed}"
        )
    return f"{ref.chart} {ref.version}: {len(found)} CRD file(s) match the pinned digests"


def pinned_crd_digests() -> dict[str, dict[str, dict[str, str]]]:
    """Chart name -> version -> crds/ file -> sha256, for every chart whose CRDs the stack
    pins (today the AWS Load Balancer Controller's)."""
    from components.versions import (
        AWS_LOAD_BALANCER_CONTROLLER_CHART,
        AWS_LOAD_BALANCER_CONTROLLER_CRDS_SHA256,
    )

    return {AWS_LOAD_BALANCER_CONTROLLER_CHART.chart: AWS_LOAD_BALANCER_CONTROLLER_CRDS_SHA256}
