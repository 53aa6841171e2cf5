"""The model-artifact layout contract: ``models/<name>/<version>/...`` + ``manifest.json``.

Pure functions, no Pulumi or boto3: the bucket component (grants), the config
schema (``mlstack:models``) and the ``mlstack model`` CLI all check names and
build keys through this one module, so they cannot drift apart.

* ``name``: the one model-name rule of :mod:`components.naming` (a DNS-1035 label of
  at most 45 characters: it also names Kubernetes objects and the model's IAM role).
* ``version``: a safe path segment: 1-128 characters from ``A-Z a-z 0-9 . _ -``,
  starting with a letter or digit (so never ``.`` or ``..``, never a ``/``).
* A version exists only once ``models/<name>/<version>/manifest.json`` exists;
  the manifest is written last (see ``docs/model-artifacts.md``).
"""

from __future__ import annotations

import re

from components.naming import MODEL_NAME_MAX_LENGTH, MODEL_NAME_PATTERN, model_name_problem

MODELS_ROOT = "models/"
MANIFEST_NAME = "manifest.json"
NAME_MAX_LENGTH = MODEL_NAME_MAX_LENGTH
VERSION_MAX_LENGTH = 128
NAME_PATTERN = MODEL_NAME_PATTERN
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", "--x-s3", "--table-s3")
_VERSION = re.compile(VERSION_PATTERN)


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


def model_prefix(name: str, version: str) -> str:
    """``models/<name>/<version>/``: the key prefix of one model version."""
    return f"{MODELS_ROOT}{check_name(name)}/{check_version(version)}/"


def name_prefix(name: str) -> str:
    """``models/<name>/``: every version of one model."""
    return f"{MODELS_ROOT}{check_name(name)}/"


def manifest_key(name: str, version: str) -> str:
    """``models/<name>/<version>/manifest.json``."""
    return model_prefix(name, version) + MANIFEST_NAME


def grant_prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` cannot scope a grant, or None.

    Allowed: ``models/``, ``models/<name>/`` and ``models/<name>/<version>/``.
    """
    if not prefix.startswith(MODELS_ROOT) or not prefix.endswith("/"):
        return (
            "a grant prefix must start with 'models/' and end with '/', e.g. "
            "model_prefix(name, version) -> 'models/<name>/<version>/'"
        )
    segments = prefix[len(MODELS_ROOT) : -1].split("/") if prefix != MODELS_ROOT else []
    if len(segments) > 2:
        return "a grant prefix has at most two segments below models/: <name>/<version>/"
    if segments:
        problem = name_problem(segments[0])
        if problem:
            return problem
    if len(segments) == 2:
        problem = version_problem(segments[1])
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
