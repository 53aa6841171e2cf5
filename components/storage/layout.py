"""The model-artifact layout contract: content-addressed blobs + one manifest per version.

Pure functions, no Pulumi or boto3: the bucket component (grants, policy), the
config schema (``mlstack:models``), the serving layer and the ``mlstack model``
CLI all check names and build keys through this one module, so they cannot drift
apart::

    models/<name>/blobs/sha256/<digest>        one object per distinct file content
    models/<name>/manifests/<version>.json     one version: paths -> digests; written last

* ``name``: the one model-name rule of :mod:`components.naming` (a DNS-1035 label of
  at most 45 characters: it also names Kubernetes objects and the model's IAM role).
* ``version``: a safe path segment: 1-128 characters from ``A-Z a-z 0-9 . _ -``,
  starting with a letter or digit (so never ``.`` or ``..``, never a ``/``).
* Blobs and manifests are written with ``If-None-Match: *`` only (the bucket policy
  denies any other write there), so nothing under them is ever replaced: a blob's
  key is the sha256 of its bytes, and a version exists once its manifest exists.
* Grants are per model (``models/<name>/``): the blobs of one model are shared by
  its versions, so a per-version prefix cannot exist (see ``docs/model-artifacts.md``).
"""

from __future__ import annotations

import re

from components.naming import MODEL_NAME_MAX_LENGTH, MODEL_NAME_PATTERN, model_name_problem

MODELS_ROOT = "models/"
BLOBS_DIR = "blobs/sha256/"
MANIFESTS_DIR = "manifests/"
MANIFEST_SUFFIX = ".json"
NAME_MAX_LENGTH = MODEL_NAME_MAX_LENGTH
VERSION_MAX_LENGTH = 128
NAME_PATTERN = MODEL_NAME_PATTERN
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", "--x-s3", "--table-s3")
_VERSION = re.compile(VERSION_PATTERN)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid model name, or None (``components.naming``)."""
    return model_name_problem(name)


def version_problem(version: object) -> str | None:
    """Why ``version`` is not a valid artifact version, or None when it is."""
    if not isinstance(version, str):
        return f"a version must be a string, got {type(version).__name__}"
    if not version:
        return "a version must not be empty"
    if len(version) > VERSION_MAX_LENGTH:
        return f"a version has at most {VERSION_MAX_LENGTH} characters (got {len(version)})"
    if not _VERSION.fullmatch(version):
        return (
            "a version must be one safe path segment: letters, digits, '.', '_' and '-', "
            "starting with a letter or digit (no '/', no spaces)"
        )
    return None


def check_name(name: str) -> str:
    """``name`` if valid, else ValueError with the reason."""
    problem = name_problem(name)
    if problem:
        raise ValueError(f"model name {name!r}: {problem}")
    return name


def check_version(version: str) -> str:
    """``version`` if valid, else ValueError with the reason."""
    problem = version_problem(version)
    if problem:
        raise ValueError(f"version {version!r}: {problem}")
    return version


def sha256_problem(digest: object) -> str | None:
    """Why ``digest`` is not a lowercase hex sha256, or None."""
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        return f"{digest!r}: 64 lowercase hex digits"
    return None


def name_prefix(name: str) -> str:
    """``models/<name>/``: everything of one model (the scope of its grants)."""
    return f"{MODELS_ROOT}{check_name(name)}/"


def blobs_prefix(name: str) -> str:
    """``models/<name>/blobs/sha256/``: the content-addressed files of one model."""
    return name_prefix(name) + BLOBS_DIR


def blob_key(name: str, sha256: str) -> str:
    """``models/<name>/blobs/sha256/<digest>``: the object holding exactly those bytes."""
    problem = sha256_problem(sha256)
    if problem:
        raise ValueError(f"blob digest {problem}")
    return blobs_prefix(name) + sha256


def manifests_prefix(name: str) -> str:
    """``models/<name>/manifests/``: one manifest object per published version."""
    return name_prefix(name) + MANIFESTS_DIR


def manifest_key(name: str, version: str) -> str:
    """``models/<name>/manifests/<version>.json``: its presence publishes the version."""
    return manifests_prefix(name) + check_version(version) + MANIFEST_SUFFIX


def version_of_manifest_key(name: str, key: str) -> str | None:
    """The version a key under ``manifests_prefix(name)`` publishes, or None (not one)."""
    prefix = manifests_prefix(name)
    if not key.startswith(prefix) or not key.endswith(MANIFEST_SUFFIX):
        return None
    version = key[len(prefix) : -len(MANIFEST_SUFFIX)]
    return None if version_problem(version) else version


def digest_of_blob_key(name: str, key: str) -> str | None:
    """The digest of a key under ``blobs_prefix(name)``, or None (not a blob key)."""
    prefix = blobs_prefix(name)
    digest = key[len(prefix) :] if key.startswith(prefix) else None
    return digest if digest is not None and sha256_problem(digest) is None else None


def grant_prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` cannot scope a grant, or None.

    Allowed: ``models/`` (every model) and ``models/<name>/`` (one model: its blobs and
    manifests). A version prefix no longer exists: versions share their model's blobs.
    """
    if not prefix.startswith(MODELS_ROOT) or not prefix.endswith("/"):
        return (
            "a grant prefix must start with 'models/' and end with '/', e.g. "
            "name_prefix(name) -> 'models/<name>/'"
        )
    segments = prefix[len(MODELS_ROOT) : -1].split("/") if prefix != MODELS_ROOT else []
    if len(segments) > 1:
        return (
            "a grant prefix is 'models/' or 'models/<name>/' (one model: its blobs are "
            "shared by its versions, so there is no per-version prefix)"
        )
    if segments:
        problem = name_problem(segments[0])
        if problem:
            return problem
    return None


def bucket_name_problem(name: str, allow_dots: bool = False) -> str | None:
    """Why ``name`` is not an S3 bucket name mlstack accepts, or None.

    S3's rules, and no dots by default: a dot breaks TLS for virtual-hosted requests.
    """
    shown = "3-63 lowercase letters, digits or '-', starting and ending alphanumeric"
    candidate = name.replace(".", "-") if allow_dots else name
    if not _BUCKET_NAME.fullmatch(candidate) or ".." in name or ".-" in name or "-." in name:
        return shown + (" (dots allowed between labels)" if allow_dots else "")
    if name.startswith(_RESERVED_PREFIXES) or name.endswith(_RESERVED_SUFFIXES):
        return "uses a prefix or suffix S3 reserves"
    return None
