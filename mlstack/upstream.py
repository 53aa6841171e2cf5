"""Upstream reference data (chart defaults, controller IAM reference policies, CRD
schemas, DCGM counters) fetched at the pinned versions into a cache outside the
repository, each file checked against the sha256 recorded in ``upstream.json``.

Tests read it from ``$MLSTACK_UPSTREAM``, else a ``shared/upstream`` next to the
checkout, else the cache ``mlstack upstream fetch`` fills (``~/.cache/mlstack/upstream``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mlstack.errors import MlstackError, UsageError

ENV_VAR = "MLSTACK_UPSTREAM"
MANIFEST = Path(__file__).with_name("upstream.json")
FETCH_COMMAND = "mlstack upstream fetch"
HINT = (
    f"run `{FETCH_COMMAND}` (or `make upstream`) to download it at the pinned versions "
    f"into ~/.cache/mlstack/upstream, or set {ENV_VAR} to a copy"
)
"""What every skip of a reference check says (tests count skips that mention it)."""
CRD_SOURCES = "crd-sources"
_TIMEOUT_S = 60


@dataclass(frozen=True)
class UpstreamFile:
    """One reference file: where it goes in the cache, where it comes from, its digest."""

    path: str
    url: str
    sha256: str


def default_cache() -> Path:
    """``$XDG_CACHE_HOME/mlstack/upstream`` (``~/.cache/mlstack/upstream``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlstack" / "upstream"


def find_upstream(start: Path | None = None) -> Path | None:
    """``$MLSTACK_UPSTREAM`` if set, else ``shared/upstream`` beside the checkout (or a
    worktree's parent), else the fetch cache; None when none holds ``crds/``."""
    env = os.environ.get(ENV_VAR)
    if env:  # an explicit setting is the only place looked at
        return Path(env) if (Path(env) / "crds").is_dir() else None
    here = (start or Path(__file__)).resolve()
    candidates = [parent / "shared" / "upstream" for parent in here.parents]
    candidates.append(default_cache())
    return next((c for c in candidates if (c / "crds").is_dir()), None)


def load_manifest(path: Path = MANIFEST) -> list[UpstreamFile]:
    """The manifest's entries; a malformed one is a usage error naming file and key."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        entries = document["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path}: not an upstream manifest with a 'files' list ({exc})") from exc
    files: list[UpstreamFile] = []
    for index, entry in enumerate(entries):
        where = f"{path}: files[{index}]"
        if not isinstance(entry, dict) or set(entry) != {"path", "url", "sha256"}:
            raise UsageError(f"{where}: got {entry!r}; allowed: an object with path, url, sha256")
        rel = PurePosixPath(str(entry["path"]))
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise UsageError(f"{where}.path: got {entry['path']!r}; allowed: a relative path")
        digest = str(entry["sha256"])
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise UsageError(f"{where}.sha256: got {digest!r}; allowed: 64 lowercase hex digits")
        url = str(entry["url"])
        if not url.startswith(("https://", "http://")):
            raise UsageError(f"{where}.url: got {url!r}; allowed: an http(s) URL")
        files.append(UpstreamFile(str(rel), url, digest))
    return files


def _download(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
            return response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise MlstackError(f"cannot download {url}: {exc}") from exc


def fetch(files: list[UpstreamFile], dest: Path) -> list[Path]:
    """Download every file and check its digest, then convert ``crd-sources/`` into
    ``crds/`` schemas and put the whole tree in place at once. Any failure (a download,
    a digest, a CRD) leaves ``dest`` as it was and no staging directory behind."""
    from mlstack.crd_import import import_crds

    dest = dest.expanduser().resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.partial-"))
    try:
        mismatches: list[str] = []
        for item in files:
            data = _download(item.url)
            got = hashlib.sha256(data).hexdigest()
            if got != item.sha256:
                mismatches.append(f"{item.url}: sha256 {got}, expected {item.sha256}")
                continue
            target = staging / item.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        if mismatches:
            raise MlstackError(
                f"refused {len(mismatches)} file(s) whose digest differs from "
                f"{MANIFEST.name}; nothing written to {dest}: " + "; ".join(mismatches)
            )
        sources = sorted((staging / CRD_SOURCES).glob("*.yaml"))
        import_crds(sources, staging / "crds")
        previous = dest.with_name(f".{dest.name}.previous")
        shutil.rmtree(previous, ignore_errors=True)
        if dest.exists():
            dest.replace(previous)
        staging.replace(dest)
        shutil.rmtree(previous, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sorted(p for p in dest.rglob("*") if p.is_file())
