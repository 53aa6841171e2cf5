"""A model's serving spec: what defines what ran, read from the plan, and its hash.

The spec is read from the plan's inference Deployment of the model that takes its
traffic (track ``stable``; blue/green: the active color), normalised so that two stacks
running the same thing hash alike:

- ``runtime`` (the preset, the pod template's ``mlstack.io/runtime`` label) and
  ``artifactVersion`` (its ``mlstack.io/artifact-version`` annotation);
- per serving container (``spec.containers``, by name): ``image``, ``command``, ``args``,
  ``env`` and ``gpus`` (the ``nvidia.com/gpu`` limit). The image is named by its
  upstream registry: an ECR pull-through cache reference
  (``<account>.dkr.ecr.<region>.amazonaws.com/<prefix>-<registry>/<path>``, rewritten
  per stack by ``components.serving.image_cache``) reads as ``<registry host>/<path>``,
  so dev's cache and prod's cache name one image. A tag is mutable: only an image
  pinned by digest (``@sha256:...``) makes the hash cover the image's bytes;
- ``latencySloSeconds``: the p99 objective the alarms use (the model's, else the
  preset's default).

Kubernetes starts a new ReplicaSet for any change of a Deployment's pod template (the
``pod-template-hash`` label: ``ComputeHash`` over the whole ``PodTemplateSpec``,
kubernetes ``pkg/controller/controller_utils.go``); the spec is the part of that
template that says what the server is, without what only names or sizes one stack.
Left out, as environment-specific or sizing: names, labels other than the runtime,
namespaces, tags, the model-loader init containers (plumbing whose arguments carry the
stack's region, bucket and cache size), CPU, memory, ephemeral storage, /dev/shm, probes,
replicas and scheduling. The hash is ``sha256:`` + SHA-256 of the spec as canonical JSON
(sorted keys, no spaces), with :data:`SPEC_VERSION` inside so a change of what is hashed
never matches an old hash.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from components.serving.registries import UPSTREAMS, registry_of, repository_path
from stacks.schema.models import ModelConfig

SPEC_VERSION = 1
DEPLOYMENT_TYPE = "kubernetes:apps/v1:Deployment"
MODEL_LABEL = "mlstack.io/model"
TRACK_LABEL = "mlstack.io/track"
RUNTIME_LABEL = "mlstack.io/runtime"
VERSION_ANNOTATION = "mlstack.io/artifact-version"
COMPONENT_LABEL = "app.kubernetes.io/component"
GPU_RESOURCE = "nvidia.com/gpu"
_ECR_CACHE = re.compile(
    r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?/(?P<prefix>[^/]+)/(?P<path>.+)$"
)
_BY_SHORT_NAME = {u.short_name: host for host, u in UPSTREAMS.items()}


@dataclass(frozen=True)
class ServingSpec:
    """One model's normalised spec (``fields``: flat ``dotted.key -> value``) and hash."""

    model: str
    fields: Mapping[str, Any]

    @property
    def digest(self) -> str:
        canonical = json.dumps(
            {"specVersion": SPEC_VERSION, **self.fields}, sort_keys=True, separators=(",", ":")
        )
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "spec": dict(self.fields)}


def canonical_image(image: str) -> str:
    """``<registry host>/<path>`` of an image, whether pulled directly or through a cache."""
    match = _ECR_CACHE.match(image)
    if match:
        prefix = match["prefix"]
        for short, host in _BY_SHORT_NAME.items():
            if prefix.endswith(f"-{short}"):
                return f"{host}/{match['path']}"
        return image  # a private ECR repository (custom runtime): its own name
    return f"{registry_of(image)}/{repository_path(image)}"


def _env(entries: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        str(e.get("name")): e["value"] if "value" in e else {"valueFrom": e.get("valueFrom")}
        for e in entries
    }


def _container(container: Mapping[str, Any]) -> dict[str, Any]:
    limits = (container.get("resources") or {}).get("limits") or {}
    image = container.get("image")
    return {
        "image": canonical_image(image) if isinstance(image, str) else image,
        "command": list(container.get("command") or []),
        "args": list(container.get("args") or []),
        "env": _env(container.get("env") or []),
        "gpus": int(limits.get(GPU_RESOURCE) or 0),
    }


def _flatten(prefix: str, value: Any, into: dict[str, Any]) -> None:
    if isinstance(value, Mapping) and value and prefix.count(".") < 3:
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, into)
    else:
        into[prefix] = value


def _deployments(plan: Mapping[str, Any], model: str) -> dict[str, Mapping[str, Any]]:
    """Track -> Deployment inputs of ``model``'s inference Deployments in ``plan``."""
    found: dict[str, Mapping[str, Any]] = {}
    for resource in plan.get("resources") or []:
        if not isinstance(resource, Mapping) or resource.get("type") != DEPLOYMENT_TYPE:
            continue
        inputs = resource.get("inputs") or {}
        labels = (inputs.get("metadata") or {}).get("labels") or {}
        if labels.get(MODEL_LABEL) == model and labels.get(COMPONENT_LABEL) == "inference":
            found[str(labels.get(TRACK_LABEL, "stable"))] = inputs
    return found


def primary_track(model: ModelConfig) -> str:
    """The track that takes the model's traffic."""
    blue_green = model.rollout.blue_green
    if model.rollout.strategy == "blueGreen" and blue_green is not None:
        return str(blue_green.active_color)
    return "stable"


def latency_slo(model: ModelConfig) -> float:
    """The model's p99 objective, else its runtime preset's default (custom: 5 s)."""
    if model.latency_slo_seconds is not None:
        return float(model.latency_slo_seconds)
    from components.serving import runtimes

    preset = runtimes.PRESETS.get(model.runtime)
    return float(preset.default_latency_slo_seconds if preset else 5.0)


def serving_spec(plan: Mapping[str, Any], model: ModelConfig) -> ServingSpec:
    """The spec of ``model`` as ``plan`` (a plan JSON document) renders it."""
    tracks = _deployments(plan, model.name)
    track = primary_track(model)
    if track not in tracks:
        raise KeyError(
            f"the plan has no inference Deployment of model {model.name} track {track} "
            f"(tracks: {', '.join(sorted(tracks)) or 'none'})"
        )
    template = (tracks[track].get("spec") or {}).get("template") or {}
    meta, pod = template.get("metadata") or {}, template.get("spec") or {}
    spec: dict[str, Any] = {
        "runtime": (meta.get("labels") or {}).get(RUNTIME_LABEL),
        "artifactVersion": (meta.get("annotations") or {}).get(VERSION_ANNOTATION),
        "latencySloSeconds": latency_slo(model),
        "containers": {str(c.get("name")): _container(c) for c in pod.get("containers") or []},
    }
    fields: dict[str, Any] = {}
    _flatten("", spec, fields)
    return ServingSpec(model.name, fields)


def serving_specs(plan: Mapping[str, Any], models: Iterable[ModelConfig]) -> dict[str, ServingSpec]:
    """Every model's spec (models whose Deployment the plan lacks are left out)."""
    out: dict[str, ServingSpec] = {}
    for model in models:
        try:
            out[model.name] = serving_spec(plan, model)
        except KeyError:
            continue
    return out


def differences(left: Mapping[str, Any], right: Mapping[str, Any]) -> list[str]:
    """``key: left value -> right value`` for every field that differs (sorted)."""
    missing = object()
    out = []
    for key in sorted(set(left) | set(right)):
        a, b = left.get(key, missing), right.get(key, missing)
        if a != b:
            shown_a = "(unset)" if a is missing else json.dumps(a, sort_keys=True)
            shown_b = "(unset)" if b is missing else json.dumps(b, sort_keys=True)
            out.append(f"{key}: {shown_a} -> {shown_b}")
    return out
