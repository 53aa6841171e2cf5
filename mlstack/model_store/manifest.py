"""The manifest: what one model version holds. Written last; its presence publishes.

Stored at ``models/<name>/manifests/<version>.json``; every file's bytes live in the
content-addressed blob ``models/<name>/blobs/sha256/<sha256>``. Format (schema
version 2; ``docs/model-artifacts.md`` is the contract)::

    {
      "schemaVersion": 2,
      "name": "resnet50",
      "version": "v3",
      "createdAt": "2025-06-02T10:11:12Z",
      "gitCommit": "0f3c...",            # null when unknown
      "hints": {"framework": "onnx", "runtime": "triton"},   # optional keys
      "fileCount": 2,
      "totalBytes": 102400123,
      "files": [
        {"path": "1/model.onnx", "size": 102400000, "sha256": "ab12..."},
        {"path": "config.pbtxt", "size": 123, "sha256": "cd34..."}
      ]
    }

``files`` is sorted by ``path`` (POSIX, relative to the directory the model is
materialized in). Readers reject any other ``schemaVersion`` (version 1 named
per-version keys, which no longer exist); unknown keys are ignored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from components.storage import layout
from mlstack.errors import UsageError
from mlstack.model_store.local import relpath_problem

SCHEMA_VERSION = 2
CONTENT_TYPE = "application/json"
HINT_KEYS = ("framework", "runtime")
_HINT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_GIT_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")


class ManifestError(UsageError):
    """A manifest that does not follow the format (the message lists every problem): bad
    input, exit 2, whatever the problem (a path leaving the version, a duplicate path, a
    name or version that does not match its location)."""


@dataclass(frozen=True)
class FileEntry:
    """One file of a model version."""

    path: str
    size: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}

    def same_content(self, other: FileEntry) -> bool:
        return (self.path, self.size, self.sha256) == (other.path, other.size, other.sha256)


@dataclass(frozen=True)
class Manifest:
    """The manifest of one version (``layout.manifest_key(name, version)``)."""

    name: str
    version: str
    created_at: str
    files: tuple[FileEntry, ...]
    git_commit: str | None = None
    hints: tuple[tuple[str, str], ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def digests(self) -> dict[str, int]:
        """Each distinct blob digest and its size (identical files share one blob)."""
        return {f.sha256: f.size for f in self.files}

    def differences(self, other: Manifest) -> list[str]:
        """How ``other``'s files differ from this manifest's (empty: same content)."""
        mine = {f.path: f for f in self.files}
        theirs = {f.path: f for f in other.files}
        found = [f"{p}: only in this push" for p in sorted(set(mine) - set(theirs))]
        found += [f"{p}: only in the published version" for p in sorted(set(theirs) - set(mine))]
        found += [
            f"{p}: different content (size {mine[p].size} vs {theirs[p].size}, sha256 "
            f"{mine[p].sha256[:12]}... vs {theirs[p].sha256[:12]}...)"
            for p in sorted(set(mine) & set(theirs))
            if not mine[p].same_content(theirs[p])
        ]
        return found

    def to_json(self) -> str:
        """Stable JSON text (two-space indent, trailing newline)."""
        document = {
            "schemaVersion": SCHEMA_VERSION,
            "name": self.name,
            "version": self.version,
            "createdAt": self.created_at,
            "gitCommit": self.git_commit,
            "hints": dict(self.hints),
            "fileCount": len(self.files),
            "totalBytes": self.total_bytes,
            "files": [f.to_json() for f in self.files],
        }
        return json.dumps(document, indent=2) + "\n"


def utc_now() -> str:
    """RFC 3339 UTC timestamp, second precision: ``2025-06-02T10:11:12Z``."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def hint_problem(key: str, value: str) -> str | None:
    if key not in HINT_KEYS:
        return f"unknown hint {key!r}; allowed: {', '.join(HINT_KEYS)}"
    if not _HINT.fullmatch(value):
        return f"{key} hint {value!r}: 1-64 of letters, digits, '.', '_', '+', '-'"
    return None


def git_commit_problem(value: str) -> str | None:
    if not _GIT_COMMIT.fullmatch(value):
        return f"git commit {value!r}: 7-64 lowercase hex digits"
    return None


def build_manifest(
    name: str,
    version: str,
    files: list[FileEntry],
    *,
    git_commit: str | None = None,
    hints: dict[str, str] | None = None,
    created_at: str | None = None,
) -> Manifest:
    """A manifest for freshly pushed files (checked like a parsed one)."""
    manifest = Manifest(
        name=name,
        version=version,
        created_at=created_at or utc_now(),
        files=tuple(sorted(files, key=lambda f: f.path)),
        git_commit=git_commit,
        hints=tuple(sorted((hints or {}).items())),
    )
    problems = _problems(json.loads(manifest.to_json()), name, version)
    if problems:
        raise ManifestError("invalid manifest:\n  - " + "\n  - ".join(problems))
    return manifest


def parse_manifest(text: str | bytes, name: str, version: str) -> Manifest:
    """Parse and check a manifest read from ``layout.manifest_key(name, version)``."""
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"manifest of {name}/{version} is not JSON: {exc}") from None
    problems = _problems(document, name, version)
    if problems:
        raise ManifestError(
            f"manifest of {name}/{version} is invalid:\n  - " + "\n  - ".join(problems)
        )
    files = tuple(FileEntry(f["path"], f["size"], f["sha256"]) for f in document["files"])
    return Manifest(
        name=document["name"],
        version=document["version"],
        created_at=document["createdAt"],
        files=files,
        git_commit=document.get("gitCommit"),
        hints=tuple(sorted((document.get("hints") or {}).items())),
    )


def _problems(document: Any, name: str, version: str) -> list[str]:
    """Every way ``document`` breaks the format, or a mismatch with its location."""
    if not isinstance(document, dict):
        return ["a manifest is a JSON object"]
    problems: list[str] = []
    schema = document.get("schemaVersion")
    if not isinstance(schema, int) or isinstance(schema, bool):
        problems.append(f"schemaVersion: expected an integer, got {schema!r}")
    elif schema > SCHEMA_VERSION:
        return [f"schemaVersion {schema} is newer than this mlstack reads ({SCHEMA_VERSION})"]
    elif schema != SCHEMA_VERSION:
        return [f"schemaVersion {schema}: this mlstack reads only {SCHEMA_VERSION}"]
    if document.get("name") != name:
        problems.append(f"name: {document.get('name')!r} does not match the location ({name!r})")
    if document.get("version") != version:
        problems.append(
            f"version: {document.get('version')!r} does not match the location ({version!r})"
        )
    problems += [p for p in (layout.name_problem(name), layout.version_problem(version)) if p]
    created = document.get("createdAt")
    try:
        datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    except ValueError:
        problems.append(f"createdAt: {created!r} is not an RFC 3339 timestamp")
    commit = document.get("gitCommit")
    if commit is not None and (not isinstance(commit, str) or git_commit_problem(commit)):
        problems.append(f"gitCommit: {commit!r}: null or 7-64 lowercase hex digits")
    hints = document.get("hints") or {}
    if not isinstance(hints, dict):
        problems.append("hints: expected an object")
    else:
        for key, value in hints.items():
            problem = hint_problem(key, value) if isinstance(value, str) else "not a string"
            if problem:
                problems.append(f"hints.{key}: {problem}")
    files = document.get("files")
    if not isinstance(files, list) or not files:
        problems.append("files: expected a non-empty list")
        return problems
    problems += _file_problems(files)
    if not problems:
        if document.get("fileCount") != len(files):
            problems.append(f"fileCount: {document.get('fileCount')!r}, files lists {len(files)}")
        total = sum(f["size"] for f in files)
        if document.get("totalBytes") != total:
            problems.append(f"totalBytes: {document.get('totalBytes')!r}, files add up to {total}")
    return problems


def _file_problems(files: list[Any]) -> list[str]:
    problems: list[str] = []
    paths: list[str] = []
    for index, entry in enumerate(files):
        where = f"files[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected an object")
            continue
        path = entry.get("path")
        if not isinstance(path, str) or relpath_problem(path):
            reason = relpath_problem(path) if isinstance(path, str) else "not a string"
            problems.append(f"{where}.path: {path!r}: {reason}")
        else:
            paths.append(path)
        size = entry.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            problems.append(f"{where}.size: {size!r}: a non-negative integer")
        problem = layout.sha256_problem(entry.get("sha256"))
        if problem:
            problems.append(f"{where}.sha256: {problem}")
    if paths != sorted(set(paths)):
        problems.append("files: paths must be unique and sorted")
    listed = set(paths)
    for path in paths:
        parts = path.split("/")
        parents = ["/".join(parts[:i]) for i in range(1, len(parts))]
        clash = next((p for p in parents if p in listed), None)
        if clash:
            problems.append(f"files: {clash!r} is a file and also the directory of {path!r}")
    return problems
