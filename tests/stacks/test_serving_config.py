"""Serving config: every bad input fails with one error naming the key and the value."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.config import ConfigError, Problem, parse_config
from tests.conftest import raw_stack_config, set_path

CANARY = {
    "strategy": "canary",
    "canary": {"artifactVersion": "v9", "stableWeight": 90, "canaryWeight": 10},
}
CANARY_CACHE = {"gpuPools[0].modelCache": {"sizeGib": 130}}
"""prod's 4-GPU nodes may hold stable, canary and the canary's next version of the LLM
beside the classifier: 3 x 40 + 10 GiB (the node cache rule); 100 GiB covers rolling."""


def problems(stack: str, edits: dict[str, Any]) -> list[Problem]:
    raw = raw_stack_config(stack)
    for dotted, value in edits.items():
        set_path(raw, dotted, value)
    with pytest.raises(ConfigError) as info:
        parse_config(raw, f"Pulumi.{stack}.yaml")
    return info.value.problems


def only(stack: str, edits: dict[str, Any]) -> Problem:
    found = problems(stack, edits)
    assert len(found) == 1, [p.render() for p in found]
    return found[0]


def accepted(stack: str, edits: dict[str, Any]) -> Any:
    raw = raw_stack_config(stack)
    for dotted, value in edits.items():
        set_path(raw, dotted, value)
    return parse_config(raw, f"Pulumi.{stack}.yaml")


def test_real_stack_files_are_valid() -> None:
    for stack in ("dev", "prod"):
        cfg = accepted(stack, {})
        assert [m.runtime for m in cfg.models] == ["vllm", "triton"]


def test_more_gpus_than_the_pools_instances_have() -> None:
    p = only("dev", {"models[0].gpus": 2})
    assert p.path == "mlstack:models[0].gpus"
    assert p.value == 2
    assert "allowed: 1..1" in p.message and "'inference'" in p.message
    # prod's pool allows g6e.12xlarge (4 GPUs): 4 is fine, 5 is not.
    accepted("prod", {"models[0].gpus": 4, "gpuPools[0].maxGpus": 16})
    p = only("prod", {"models[0].gpus": 5})
    assert "allowed: 1..4 (largest type: g6e.12xlarge)" in p.message


def test_unknown_pool() -> None:
    p = only("dev", {"models[1].pool": "training"})
    assert (p.path, p.value) == ("mlstack:models[1].pool", "training")
    assert p.message == "unknown GPU pool; allowed: inference"


def test_min_replicas_above_max() -> None:
    p = only("prod", {"models[0].autoscaling.minReplicas": 7})
    assert p.path == "mlstack:models[0].autoscaling"
    assert "minReplicas (7) is greater than maxReplicas (6)" in p.message
    assert p.value["minReplicas"] == 7


def test_prod_needs_two_replicas() -> None:
    p = only("prod", {"models[1].autoscaling.minReplicas": 1})
    assert (p.path, p.value) == ("mlstack:models[1].autoscaling.minReplicas", 1)
    assert p.message == "prod needs at least 2 replicas"
    accepted("dev", {"models[1].autoscaling.minReplicas": 1})


def test_canary_weights_must_sum_to_100() -> None:
    rollout = {**CANARY, "canary": {**CANARY["canary"], "canaryWeight": 20}}
    p = only("prod", {"models[0].rollout": rollout, **CANARY_CACHE})
    assert p.path == "mlstack:models[0].rollout.canary"
    assert "stableWeight (90) + canaryWeight (20) = 110" in p.message
    accepted("prod", {"models[0].rollout": CANARY, **CANARY_CACHE})


def test_canary_without_a_second_version() -> None:
    same = {
        "strategy": "canary",
        "canary": {"artifactVersion": "2025-05-12", "stableWeight": 50, "canaryWeight": 50},
    }
    p = only("prod", {"models[0].rollout": same})
    assert p.path == "mlstack:models[0]"
    assert "canary has no second version" in p.message
    p = only("prod", {"models[0].rollout": {"strategy": "canary"}})
    assert p.path == "mlstack:models[0].rollout"
    assert "needs a canary block" in p.message


def test_blue_green_with_an_unknown_active_color() -> None:
    p = only(
        "dev",
        {"models[0].rollout": {"strategy": "blueGreen", "blueGreen": {"activeColor": "purple"}}},
    )
    assert (p.path, p.value) == ("mlstack:models[0].rollout.blueGreen.activeColor", "purple")
    assert "allowed: blue, green" in p.message


@pytest.mark.parametrize("name", ["Llama", "llama_3", "3-llama", "llama-", "a" * 46])
def test_names_must_be_dns_labels(name: str) -> None:
    found = [
        p for p in problems("dev", {"models[0].name": name}) if p.path == "mlstack:models[0].name"
    ]
    assert found and found[0].value == name


def test_two_services_on_the_same_host_and_path() -> None:
    p = only(
        "dev",
        {"models[1].exposure": {"type": "alb", "host": "llm.dev.ml.example.com", "path": "/"}},
    )
    assert p.path == "mlstack:models[1].exposure"
    assert p.value == {"host": "llm.dev.ml.example.com", "path": "/"}
    assert p.message.startswith("same host and path as models[0]; allowed: ")
    # A longer path on the same host is fine once its rule is evaluated first.
    accepted(
        "dev",
        {
            "models[1].exposure": {
                "type": "alb",
                "host": "llm.dev.ml.example.com",
                "path": "/vision",
                "priority": 10,
            }
        },
    )


def test_a_covered_route_evaluated_after_its_cover_is_refused() -> None:
    # resnet50's derived slot (11231) is after llama's (7335): /vision would never match.
    p = only(
        "dev",
        {
            "models[1].exposure": {
                "type": "alb",
                "host": "llm.dev.ml.example.com",
                "path": "/vision",
            }
        },
    )
    assert (p.path, p.value) == ("mlstack:models[1].exposure.priority", 11231)
    assert "allowed: a slot below 7335" in p.message


def test_two_models_on_one_rule_priority() -> None:
    p = only(
        "dev",
        {
            "models[1].exposure": {
                "type": "alb",
                "host": "vision.dev.ml.example.com",
                "priority": 7335,
            }
        },
    )
    assert (p.path, p.value) == ("mlstack:models[1].exposure.priority", 7335)
    assert "already used by models[0] (llama-3-8b-instruct)" in p.message
    assert "allowed: a free slot in 1..25000" in p.message


@pytest.mark.parametrize("weight", [-1, 101])
def test_a_canary_weight_outside_0_to_100(weight: int) -> None:
    found = problems(
        "dev",
        {
            "models[0].rollout": {
                "strategy": "canary",
                "canary": {
                    "artifactVersion": "v9",
                    "stableWeight": 100 - weight,
                    "canaryWeight": weight,
                },
            }
        },
    )
    p = next(p for p in found if p.path.endswith("rollout.canary.canaryWeight"))
    assert p.value == weight
    assert p.message == f"{weight} is not a percent of traffic; allowed: 0..100"


def test_an_nlb_model_with_a_host_name() -> None:
    p = only("dev", {"models[1].exposure.host": "vision.dev.ml.example.com"})
    assert (p.path, p.value) == ("mlstack:models[1].exposure.host", "vision.dev.ml.example.com")
    assert "exposure nlb has no ALB listener rule; allowed: unset" in p.message


def test_prod_internet_facing_without_cidrs() -> None:
    p = only("prod", {"serving.loadBalancer.inboundCidrs": []})
    assert (p.path, p.value) == ("mlstack:serving.loadBalancer.inboundCidrs", [])
    assert "allowed: a non-empty list of CIDRs" in p.message


def test_prod_open_to_the_world_only_when_explicitly_allowed() -> None:
    p = only("prod", {"serving.loadBalancer.inboundCidrs": ["0.0.0.0/0"]})
    assert p.path == "mlstack:serving.loadBalancer.inboundCidrs"
    assert "allowOpenInbound: true" in p.message
    accepted(
        "prod",
        {
            "serving.loadBalancer.inboundCidrs": ["0.0.0.0/0"],
            "serving.loadBalancer.allowOpenInbound": True,
        },
    )
    accepted("dev", {"serving.loadBalancer.inboundCidrs": ["0.0.0.0/0"]})


def test_prod_internet_facing_needs_deletion_protection_and_access_logs() -> None:
    found = problems(
        "prod",
        {
            "serving.loadBalancer.deletionProtection": False,
            "serving.loadBalancer.accessLogs.enabled": False,
        },
    )
    assert sorted((p.path, p.value) for p in found) == [
        ("mlstack:serving.loadBalancer.accessLogs.enabled", False),
        ("mlstack:serving.loadBalancer.deletionProtection", False),
    ]
    assert all(p.message.endswith("allowed: true") for p in found)


def test_an_older_tls_policy_is_refused() -> None:
    p = only("dev", {"serving.loadBalancer.sslPolicy": "ELBSecurityPolicy-2016-08"})
    assert p.path == "mlstack:serving.loadBalancer.sslPolicy"
    assert "ELBSecurityPolicy-TLS13-1-2-2021-06" in p.message


def test_an_alb_without_a_certificate() -> None:
    p = only("dev", {"serving.loadBalancer.certificateArn": None})
    assert p.path == "mlstack:serving.loadBalancer.certificateArn"
    assert "needs an ACM certificate; allowed: an ACM certificate ARN" in p.message


def test_certificate_in_another_region() -> None:
    other = "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-0000-4000-8000-0000000000aa"
    p = only("dev", {"serving.loadBalancer.certificateArn": other})
    assert p.message == "certificate is in eu-west-1; the ALB needs one in us-west-2"


@pytest.mark.parametrize("image", ["vllm/vllm-openai:latest", "vllm/vllm-openai"])
def test_prod_rejects_latest_and_untagged_images(image: str) -> None:
    p = only("prod", {"models[0].image": image})
    assert (p.path, p.value) == ("mlstack:models[0].image", image)
    assert "explicit tag other than latest" in p.message
    accepted("dev", {"models[0].image": image})
    digest = "vllm/vllm-openai@sha256:" + "a" * 64
    accepted("prod", {"models[0].image": digest})


def test_prod_checks_canary_images_too() -> None:
    rollout = {
        **CANARY,
        "canary": {**CANARY["canary"], "image": "registry.example.com/vllm:latest"},
    }
    p = only("prod", {"models[0].rollout": rollout, **CANARY_CACHE})
    assert p.path == "mlstack:models[0].rollout.canary.image"


def test_canary_needs_the_alb() -> None:
    p = only("dev", {"models[1].rollout": CANARY, "gpuPools[0].maxNodes": 8})
    assert (p.path, p.value) == ("mlstack:models[1].exposure.type", "nlb")


def test_scale_to_zero_needs_a_wake_schedule() -> None:
    p = only("dev", {"models[0].autoscaling.wakeSchedule": None})
    assert "minReplicas 0 needs a wakeSchedule" in p.message


@pytest.mark.parametrize(
    ("edits", "path"),
    [
        ({"models[0].autoscaling.wakeSchedule.timezone": "Mars/Olympus"}, "timezone"),
        ({"models[0].autoscaling.wakeSchedule.start": "8am"}, "start"),
    ],
)
def test_wake_schedule_values(edits: dict[str, Any], path: str) -> None:
    p = only("dev", edits)
    assert p.path == f"mlstack:models[0].autoscaling.wakeSchedule.{path}"


def test_shared_memory_must_fit_in_memory() -> None:
    p = only("dev", {"models[0].shmSize": "12Gi"})
    assert "shmSize (12Gi) must be smaller than memory (12Gi)" in p.message


def test_quantities() -> None:
    cfg = accepted("dev", {"models[0].cpu": 3})
    assert cfg.models[0].cpu == "3"
    p = only("dev", {"models[0].memory": "12 GB"})
    assert (p.path, p.value) == ("mlstack:models[0].memory", "12 GB")


def test_custom_runtime_needs_image_and_probe_settings() -> None:
    p = only("dev", {"models[0].runtime": "custom"})
    assert "runtime custom needs both image and a custom block" in p.message
    cfg = accepted(
        "dev",
        {
            "models[0].runtime": "custom",
            "models[0].image": "registry.example.com/team/server:1.4.2",
            "models[0].custom": {"port": 9000, "queueMetric": "app_requests_waiting"},
        },
    )
    assert cfg.models[0].custom is not None
    p = only("dev", {"models[1].custom": {"queueMetric": "x"}})
    assert "only valid with runtime custom" in p.message


def test_duplicate_model_names() -> None:
    p = only(
        "dev", {"models[1].name": "llama-3-8b-instruct", "models[1].exposure": {"type": "none"}}
    )
    assert p.path == "mlstack:models[1].name"
    assert p.message.startswith("duplicate model name (also models[0])")


def test_every_problem_at_once() -> None:
    found = problems(
        "prod",
        {
            "models[0].pool": "nope",
            "models[1].autoscaling.minReplicas": 1,
            "models[1].image": "nvcr.io/nvidia/tritonserver",
            "serving.loadBalancer.certificateArn": None,
        },
    )
    assert [p.path for p in found] == [
        "mlstack:models[0].pool",
        "mlstack:models[1].autoscaling.minReplicas",
        "mlstack:models[1].image",
        "mlstack:serving.loadBalancer.certificateArn",
    ]
    text = str(ConfigError("Pulumi.prod.yaml", found))
    assert text.startswith("invalid config in Pulumi.prod.yaml (4 problems):")


def test_a_drain_shorter_than_the_longest_request_is_refused() -> None:
    """vLLM's default latency objective is 60 s: a 30 s drain would cut generations off."""
    p = only("dev", {"models[0].drainSeconds": 30})
    assert p.path == "mlstack:models[0]"
    assert "drainSeconds (30) is shorter than the model's longest request (60 s" in p.message
    assert "allowed: drainSeconds >= 60" in p.message
    p = only("dev", {"models[1].maxRequestSeconds": 120})
    assert "(120 s, maxRequestSeconds)" in p.message and "allowed: drainSeconds >= 120" in p.message
    cfg = accepted("dev", {"models[1].maxRequestSeconds": 120, "models[1].drainSeconds": 120})
    assert cfg.models[1].longest_request_seconds == 120
    p = only("dev", {"models[0].maxRequestSeconds": 901})
    assert p.path == "mlstack:models[0].maxRequestSeconds"


def test_a_custom_server_closing_idle_connections_before_the_alb_is_refused() -> None:
    custom = {
        "models[0].runtime": "custom",
        "models[0].image": "registry.example.com/team/server:1.4.2",
        "models[0].custom": {
            "port": 9000,
            "queueMetric": "app_requests_waiting",
            "keepAliveSeconds": 75,
        },
    }
    p = only("dev", custom)
    assert (p.path, p.value) == ("mlstack:models[0].custom.keepAliveSeconds", 75)
    assert "ALB's idle timeout" in p.message and "allowed: more than 600" in p.message
    custom["models[0].custom"]["keepAliveSeconds"] = 601
    assert accepted("dev", custom).models[0].custom.keep_alive_seconds == 601
    # Behind a shorter idle timeout 75 s is enough.
    custom["models[0].custom"]["keepAliveSeconds"] = 75
    accepted("dev", {**custom, "serving.loadBalancer.idleTimeoutSeconds": 60})
