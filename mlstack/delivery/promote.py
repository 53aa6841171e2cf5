"""``mlstack promote <model> [--from dev] [--to prod]``: move a baked model version up a stage.

Copies the model's pinned ``artifactVersion`` and its settings that are not
environment knobs (``runtime``, ``pool``, ``custom``: the fixed fields
``mlstack parity`` requires to be equal) from ``Pulumi.<from>.yaml`` into
``Pulumi.<to>.yaml``; a model the target does not have yet is copied whole (its
knobs, replicas for instance, are then the source's: review them). The edit is
ruamel.yaml round-trip (comments, order and quoting stay), validated with the
stack-file loader (the models the JSON Schema is generated from) before it
replaces the file atomically; nothing is written when anything is refused.

No bake ledger configured (and no ``--force``) is a usage error (exit 2). Refusals
(exit 1, nothing written): the version has not passed a bake in the
source stack (evidence: the bake ledger's passed records whose commit pins it,
:func:`mlstack.review.parity.evidence_from_ledger`) unless ``--force`` with a
``--reason``, which is recorded as a comment on the promoted line; with AWS
credentials and a bucket (``--bucket``, ``$MLSTACK_MODEL_BUCKET`` or the target's
stack output), a version that is not *published* in the bucket. Usage errors
(exit 2): unknown stacks or model, ``--force`` without ``--reason``.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from mlstack.errors import MlstackError, UsageError
from mlstack.model_store.pin import MODELS_KEY, VERSION_KEY, _replace, _round_trip, _scalar
from stacks.config import ConfigError, load_config_file, stack_file

FIXED_FIELDS = ("runtime", "pool", "custom")
"""Model settings that are not knobs, copied with the version."""


class PromotionRefusedError(MlstackError):
    """The promotion is refused; nothing was written."""

    exit_code = 1


@dataclass(frozen=True)
class PromoteResult:
    path: Path
    model: str
    version: str
    previous: str | None
    copied: tuple[str, ...]
    forced: bool
    new_entry: bool
    bucket_checked: str | None = None


def _load(stack: str, root: Path) -> tuple[Path, str, Any, Any]:
    path = stack_file(stack, root)
    if not path.is_file():
        known = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))
        raise UsageError(f"no stack file {path}; stacks here: {', '.join(known) or 'none'}")
    text = path.read_text(encoding="utf-8")
    loader, document = _round_trip(text)
    return path, text, loader, document


def _models(document: Any, path: Path) -> CommentedSeq:
    config = document.get("config") if isinstance(document, CommentedMap) else None
    models = config.get(MODELS_KEY) if isinstance(config, CommentedMap) else None
    if not isinstance(models, CommentedSeq):
        raise UsageError(f"{path.name} has no {MODELS_KEY} list")
    return models


def _entry(models: CommentedSeq, name: str) -> CommentedMap | None:
    return next((m for m in models if isinstance(m, CommentedMap) and m.get("name") == name), None)


def bucket_problem(
    model: str, version: str, bucket: str, endpoint_url: str | None, region: str | None
) -> str | None:
    """Why ``model``/``version`` cannot be served from ``bucket`` (None: published there)."""
    from mlstack.model_store import s3
    from mlstack.model_store.catalog import list_versions

    client = s3.make_client(endpoint_url, region)
    found = [v for v in list_versions(client, bucket, model).versions if v.version == version]
    if not found:
        return f"version {version} of model {model} is not in bucket {bucket}"
    if found[0].status != "published":
        return f"version {version} of model {model} in bucket {bucket} is {found[0].status}"
    return None


FORCED_MARK = "with --force"


def _drop_forced_comment(entry: CommentedMap) -> None:
    """A new promotion replaces the note a forced one left on the version line."""
    item = entry.ca.items.get(VERSION_KEY)
    token = item[2] if item and len(item) > 2 else None
    if token is not None and FORCED_MARK in str(token.value):
        item[2] = None


def _has_credentials() -> bool:
    import boto3

    return boto3.Session().get_credentials() is not None


def promote(
    model: str,
    root: Path,
    *,
    source: str = "dev",
    target: str = "prod",
    force: bool = False,
    reason: str | None = None,
    evidence: Callable[[str, str], bool] | None = None,
    evidence_source: str = "no bake ledger configured",
    bucket: str | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
) -> PromoteResult:
    """See the module docstring. ``evidence(model, version)``: passed a bake in ``source``."""
    if force and not (reason and reason.strip()):
        raise UsageError("--force needs --reason TEXT (recorded in the stack file)")
    if source == target:
        raise UsageError(f"--from and --to are both {source!r}")
    try:
        load_config_file(source, root)
        target_cfg = load_config_file(target, root)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    source_path, _, _, source_doc = _load(source, root)
    entry = _entry(_models(source_doc, source_path), model)
    if entry is None:
        known = ", ".join(str(m.get("name")) for m in _models(source_doc, source_path))
        raise UsageError(f"model {model!r} is not in {source_path.name} (models: {known})")
    version = str(entry.get(VERSION_KEY))
    if evidence is None and not force:
        raise UsageError(
            f"promote {model}: no bake ledger configured, so no version of {model} in "
            f"{source} is known to have passed a bake; name one with --ledger "
            "s3://bucket/prefix/ or file:///dir, or set MLSTACK_BAKE_LEDGER, or set "
            "PULUMI_BACKEND_URL (its .mlstack/bakes/ is used); or pass --force --reason TEXT"
        )
    baked = evidence is not None and evidence(model, version)
    if not baked and not force:
        raise PromotionRefusedError(
            f"{model} {version} has not passed a bake in stack {source} ({evidence_source}); "
            "bake it there first, or pass --force --reason TEXT"
        )
    checked: str | None = None
    if bucket or _has_credentials():
        from mlstack.model_store import s3

        try:
            checked = s3.resolve_bucket(bucket, target, root)
        except MlstackError:
            if bucket:
                raise
            checked = None  # credentials, but no way to name the bucket: not checked
        if checked is not None:
            where = region or target_cfg.region
            problem = bucket_problem(model, version, checked, endpoint_url, where)
            if problem:
                raise PromotionRefusedError(f"not promoted: {problem}")

    path, text, loader, document = _load(target, root)
    models = _models(document, path)
    existing = _entry(models, model)
    copied: list[str] = []
    previous: str | None = None
    if existing is None:
        fresh = CommentedMap()
        for key, value in entry.items():
            fresh[key] = value
        models.append(fresh)
        existing = fresh
        copied = [str(k) for k in entry if k != VERSION_KEY]
    else:
        previous = None if existing.get(VERSION_KEY) is None else str(existing.get(VERSION_KEY))
        existing[VERSION_KEY] = _scalar(version, existing.get(VERSION_KEY))
        for key in FIXED_FIELDS:
            if key in entry and existing.get(key) != entry.get(key):
                existing[key] = entry[key]
                copied.append(key)
            elif key not in entry and key in existing:
                del existing[key]
                copied.append(key)
    _drop_forced_comment(existing)
    if force and not baked:
        existing.yaml_add_eol_comment(
            f"promoted from {source} {FORCED_MARK} (not baked there): {reason}", VERSION_KEY
        )
    buffer = io.StringIO()
    loader.dump(document, buffer)
    updated = buffer.getvalue()
    with tempfile.TemporaryDirectory(prefix="mlstack-promote-") as scratch:
        candidate = stack_file(target, Path(scratch))
        candidate.write_text(updated, encoding="utf-8")
        try:
            load_config_file(target, Path(scratch))
        except ConfigError as exc:
            raise PromotionRefusedError(
                f"not promoted, {path.name} left unchanged: {exc}"
            ) from None
    if updated != text:
        _replace(path, updated)
    return PromoteResult(
        path=path,
        model=model,
        version=version,
        previous=previous,
        copied=tuple(copied),
        forced=force and not baked,
        new_entry=previous is None and bool(copied),
        bucket_checked=checked,
    )
