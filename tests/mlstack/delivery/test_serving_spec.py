"""The serving spec: what defines what ran, read from the real plans, and its hash."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mlstack.delivery.serving_spec import (
    ServingSpec,
    canonical_image,
    differences,
    serving_spec,
    serving_specs,
)
from mlstack.delivery.verdicts import BakeRecord, FileLedger, LedgerError
from mlstack.synth import synth_config
from stacks.config import StackConfig, parse_config
from tests.conftest import raw_stack_config

ECR = "123456789012.dkr.ecr.us-west-2.amazonaws.com"


@pytest.fixture(scope="module")
def plans() -> dict[str, tuple[dict[str, Any], StackConfig]]:
    out = {}
    for stack in ("dev", "prod"):
        cfg = parse_config(raw_stack_config(stack), f"Pulumi.{stack}.yaml")
        out[stack] = (json.loads(json.dumps(synth_config(cfg, stack).to_json())), cfg)
    return out


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (
            f"{ECR}/mlstack-dev-docker-hub/vllm/vllm-openai:v1",
            "docker.io/vllm/vllm-openai:v1",
        ),
        (
            "210987654321.dkr.ecr.us-east-1.amazonaws.com/mlstack-prod-docker-hub/library/redis:7",
            "docker.io/library/redis:7",
        ),
        ("redis:7", "docker.io/library/redis:7"),
        ("vllm/vllm-openai:v1", "docker.io/vllm/vllm-openai:v1"),
        (
            "123456789012.dkr.ecr.us-west-2.amazonaws.com/mlstack-dev-quay/org/img@sha256:"
            + "a" * 64,
            "quay.io/org/img@sha256:" + "a" * 64,
        ),
        ("nvcr.io/nvidia/tritonserver:25.01-py3", "nvcr.io/nvidia/tritonserver:25.01-py3"),
        (
            f"{ECR}/team/server:1",
            f"{ECR}/team/server:1",
        ),
    ],
)
def test_a_pull_through_cache_reference_reads_as_its_upstream_image(
    image: str, expected: str
) -> None:
    """ECR serves a cached image at ``<account>.dkr.ecr.<region>.amazonaws.com/<ecr
    repository prefix>/<upstream path>`` (AWS ECR User Guide, "Pulling an image with a
    pull through cache rule", pull-through-cache-working-pulling; Docker Hub official
    images keep ``library/``); ``ImageCache.resolve`` names the prefix
    ``<stack prefix>-<registry short name>``. Both stacks' caches of one image, and the
    image pulled directly, read alike; a private repository keeps its own name."""
    assert canonical_image(image) == expected


def test_dev_and_prod_specs_differ_only_in_the_pinned_version(
    plans: dict[str, tuple[dict[str, Any], StackConfig]],
) -> None:
    """Region, account, cache prefixes, names, CPU, memory, /dev/shm and replicas differ
    between the stacks and are not in the spec; the LLM's versions differ, nothing else.
    (Kubernetes' own ``pod-template-hash``, ``ComputeHash`` in kubernetes
    pkg/controller/controller_utils.go, covers the whole template, so it differs between
    any two stacks; this hash is the subset that says what the server is.)"""
    dev = serving_specs(plans["dev"][0], plans["dev"][1].models)
    prod = serving_specs(plans["prod"][0], plans["prod"][1].models)
    assert set(dev) == set(prod) == {"llama-3-8b-instruct", "resnet50"}
    assert differences(dev["resnet50"].fields, prod["resnet50"].fields) == []
    assert dev["resnet50"].digest == prod["resnet50"].digest
    assert differences(dev["llama-3-8b-instruct"].fields, prod["llama-3-8b-instruct"].fields) == [
        'artifactVersion: "2025-06-02" -> "2025-05-12"'
    ]
    llama = dev["llama-3-8b-instruct"].fields
    assert llama["runtime"] == "vllm"
    assert llama["latencySloSeconds"] == 60.0
    assert llama["containers.server.image"] == "docker.io/vllm/vllm-openai:v0.28.0"
    assert llama["containers.server.gpus"] == 1
    assert llama["containers.server.args"][-2:] == ["--max-model-len", "8192"]
    assert llama["containers.server.env.HF_HUB_OFFLINE"] == "1"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("containers.server.image", "docker.io/vllm/vllm-openai:v0.29.0"),
        ("containers.server.args", ["--max-model-len", "4096"]),
        ("containers.server.env.VLLM_ATTENTION_BACKEND", "FLASHINFER"),
        ("containers.server.gpus", 2),
        ("latencySloSeconds", 30.0),
        ("runtime", "custom"),
        ("artifactVersion", "2099-01-01"),
    ],
)
def test_every_serving_field_changes_the_hash(
    plans: dict[str, tuple[dict[str, Any], StackConfig]], key: str, value: Any
) -> None:
    plan, cfg = plans["dev"]
    spec = serving_spec(plan, cfg.models[0])
    changed = ServingSpec(spec.model, {**spec.fields, key: value})
    assert changed.digest != spec.digest
    assert changed.digest.startswith("sha256:") and len(changed.digest) == 7 + 64
    assert [d.split(":")[0] for d in differences(spec.fields, changed.fields)] == [key]


def test_a_model_without_its_deployment_in_the_plan_is_named(
    plans: dict[str, tuple[dict[str, Any], StackConfig]],
) -> None:
    _, cfg = plans["dev"]
    with pytest.raises(KeyError, match="no inference Deployment of model llama-3-8b-instruct"):
        serving_spec({"resources": []}, cfg.models[0])


def test_a_record_keeps_its_serving_specs_and_refuses_a_malformed_one(tmp_path: Path) -> None:
    ledger = FileLedger(tmp_path)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    specs = {"m": {"digest": "sha256:" + "0" * 64, "spec": {"runtime": "vllm"}}}
    ledger.put(BakeRecord("dev", 1, "c" * 40, "passed", now, now, 5, serving_specs=specs))
    [record] = ledger.records("dev")
    assert record.serving_specs == specs
    [path] = tmp_path.glob("dev/*/*.json")
    data = json.loads(path.read_text())
    data["servingSpecs"] = {"m": {"digest": "md5:x"}}
    path.write_text(json.dumps(data))
    with pytest.raises(LedgerError, match=r"unreadable bake record .*servingSpecs.m: needs"):
        ledger.records("dev")
