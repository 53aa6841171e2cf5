"""``mlstack promote <model> [--from dev] [--to prod]``: move what a stack baked up a stage.

What ran is the model's *serving spec* (:mod:`mlstack.delivery.serving_spec`: runtime,
artifact version, image, command, args, env, GPUs and latency SLO, read from the plan's
Deployment and hashed). Promotion copies every config key that feeds it
(:data:`SERVING_KEYS`: ``artifactVersion``, ``image``, ``gpus``, ``args``,
``latencySloSeconds``, and the fixed ``runtime``, ``pool`` and ``custom``) from the
model's entry in ``Pulumi.<from>.yaml`` into ``Pulumi.<to>.yaml``; a key the source
leaves unset is removed from the target (both then take the same default). A model the
target does not have yet is copied whole (its sizing knobs, replicas for instance, are
then the source's: review them). The edit is ruamel.yaml round-trip (comments, order
and quoting stay), validated with the stack-file loader before it replaces the file
atomically; nothing is written when anything is refused.

No bake ledger configured (and no ``--force``) is a usage error (exit 2).
Refusals (exit 1, nothing written):

- the source's spec of the model has not passed a bake there (evidence: the spec hashes
  the bake ledger's passed records hold, :func:`baked_specs`; a failed record of the
  same update vetoes it) unless ``--force`` with a ``--reason``, which is recorded as a
  comment on the promoted line;
- the target's spec after the copy differs from the one the source baked (a
  target-only setting: a blue/green color's image, a stack-wide runtime setting...):
  the message names every field that differs, source value -> target value;
- with AWS credentials and a bucket (``--bucket``, ``$MLSTACK_MODEL_BUCKET`` or the
  target's stack output), a version that is not *published* in the bucket.

Usage errors (exit 2): unknown stacks or model, ``--force`` without ``--reason``.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from mlstack.delivery.serving_spec import ServingSpec, differences, serving_spec
from mlstack.errors import MlstackError, UsageError
from mlstack.model_store.pin import MODELS_KEY, VERSION_KEY, _replace, _round_trip, _scalar
from stacks.config import ConfigError, StackConfig, load_config_file, stack_file

FIXED_FIELDS = ("runtime", "pool", "custom")
"""Model settings that are not knobs, copied with the version."""
SERVING_KEYS = ("image", "gpus", "args", "latencySloSeconds", *FIXED_FIELDS)
"""Config keys (besides ``artifactVersion``) that feed the serving spec; copied."""


class PromotionRefusedError(MlstackError):
    """The promotion is refused; nothing was written."""

    exit_code = 1


@dataclass(frozen=True)
class BakedSpecs:
    """Serving-spec hashes of each model that passed a bake in one stack."""

    digests: Mapping[str, frozenset[str]]
    source: str

    def ran(self, model: str, digest: str) -> bool:
        return digest in self.digests.get(model, frozenset())


def baked_specs(ledger: Any, stack: str) -> BakedSpecs:
    """From ``ledger``: the specs recorded by passed bakes of ``stack`` whose update no
    record failed (a failure is sticky, as in :mod:`mlstack.delivery.verdicts`)."""
    records = ledger.records(stack)
    failed = {(r.version, r.commit) for r in records if r.verdict == "failed"}
    found: dict[str, set[str]] = {}
    for record in records:
        if record.stack != stack or record.verdict != "passed":
            continue
        if (record.version, record.commit) in failed:
            continue
        for model, entry in record.serving_specs.items():
            found.setdefault(model, set()).add(str(entry.get("digest")))
    digests = {m: frozenset(d) for m, d in found.items()}
    return BakedSpecs(digests, f"passed bakes of stack {stack} ({ledger.url})")


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
    digest: str = ""
    differences: tuple[str, ...] = ()
    """Forced only: how the target's spec differs from the source's."""


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


def planned_spec(cfg: StackConfig, stack: str, model: str) -> ServingSpec:
    """``model``'s serving spec as ``stack``'s offline plan renders it."""
    from mlstack.synth import synth_config

    plan = json.loads(json.dumps(synth_config(cfg, stack).to_json()))
    entry = next(m for m in cfg.models if m.name == model)
    return serving_spec(plan, entry)


def _copy_key(existing: CommentedMap, entry: CommentedMap, key: str) -> bool:
    """Make ``existing[key]`` what ``entry`` holds (absent: removed); True if it changed."""
    if key in entry:
        if key in existing and existing[key] == entry[key]:
            return False
        if key in existing:
            existing[key] = entry[key]
        else:
            existing.insert(len(existing), key, entry[key])
        return True
    if key in existing:
        del existing[key]
        return True
    return False


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
    """See the module docstring. ``evidence(model, digest)``: that serving spec of the
    model passed a bake in ``source`` (:meth:`BakedSpecs.ran`)."""
    if force and not (reason and reason.strip()):
        raise UsageError("--force needs --reason TEXT (recorded in the stack file)")
    if source == target:
        raise UsageError(f"--from and --to are both {source!r}")
    try:
        source_cfg = load_config_file(source, root)
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
    wanted = planned_spec(source_cfg, source, model)
    baked = evidence is not None and evidence(model, wanted.digest)
    if not baked and not force:
        raise PromotionRefusedError(
            f"{model} {version} has not passed a bake in stack {source} with its serving "
            f"spec {wanted.digest[:19]}... ({evidence_source}); bake it there first, or "
            "pass --force --reason TEXT"
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
        copied = [key for key in SERVING_KEYS if _copy_key(existing, entry, key)]
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
            candidate_cfg = load_config_file(target, Path(scratch))
        except ConfigError as exc:
            raise PromotionRefusedError(
                f"not promoted, {path.name} left unchanged: {exc}"
            ) from None
    result = planned_spec(candidate_cfg, target, model)
    differ = tuple(differences(wanted.fields, result.fields))
    if differ and not force:
        raise PromotionRefusedError(
            f"not promoted, {path.name} left unchanged: {model} would run in stack {target} "
            f"with serving spec {result.digest[:19]}..., not the {wanted.digest[:19]}... "
            f"stack {source} baked; differs ({source} -> {target}): "
            + "; ".join(differ)
            + f". Make {target}'s settings match, or bake the difference in {source} first"
        )
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
        digest=result.digest,
        differences=differ,
    )
