"""``mlstack:artifacts`` and ``mlstack:models``: values, rules and error messages."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.config import ConfigError, StackConfig, json_schema, parse_config
from tests.conftest import raw_stack_config, set_path


def _parse(stack: str, edits: dict[str, Any]) -> StackConfig:
    raw = raw_stack_config(stack)
    for dotted, value in edits.items():
        set_path(raw, dotted, value)
    return parse_config(raw, f"Pulumi.{stack}.yaml")


def _problems(stack: str, edits: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as failure:
        _parse(stack, edits)
    return {p.path: p.render() for p in failure.value.problems}


def test_stack_files_name_two_models_with_artifact_versions(
    stack_configs: dict[str, StackConfig],
) -> None:
    for cfg in stack_configs.values():
        assert [m.name for m in cfg.models] == ["llama-3-8b-instruct", "resnet50"]
        assert all(m.artifact_version for m in cfg.models)
    assert all(cfg.artifacts.access_logging.enabled for cfg in stack_configs.values())
    assert stack_configs["prod"].artifacts.force_destroy is False


def test_force_destroy_is_refused_outside_dev() -> None:
    problems = _problems("prod", {"artifacts.forceDestroy": True})
    assert problems == {
        "mlstack:artifacts.forceDestroy": (
            "mlstack:artifacts.forceDestroy: allowed only in dev stacks; a prod bucket is never "
            "emptied by `pulumi destroy` (got true)"
        )
    }


def test_force_destroy_conflicts_with_protection_in_dev() -> None:
    problems = _problems("dev", {"artifacts.forceDestroy": True, "protectStateful": True})
    assert "protectStateful" in problems["mlstack:artifacts.forceDestroy"]
    assert _parse("dev", {"artifacts.forceDestroy": True}).artifacts.force_destroy is True


def test_prod_needs_access_logs() -> None:
    problems = _problems("prod", {"artifacts.accessLogging.enabled": False})
    assert "prod needs server access logs" in problems["mlstack:artifacts.accessLogging.enabled"]


def test_bad_artifact_settings_are_all_reported() -> None:
    problems = _problems(
        "dev",
        {
            "artifacts.bucketName": "Has_Upper",
            "artifacts.noncurrentVersionExpirationDays": 0,
            "artifacts.keyDeletionWindowDays": 45,
            "artifacts.accessLogging.targetBucket": "-bad-",
            "artifacts.accessLogging.targetPrefix": "no-trailing-slash",
            "artifacts.colour": "blue",
        },
    )
    assert set(problems) == {
        "mlstack:artifacts.bucketName",
        "mlstack:artifacts.noncurrentVersionExpirationDays",
        "mlstack:artifacts.keyDeletionWindowDays",
        "mlstack:artifacts.accessLogging.targetBucket",
        "mlstack:artifacts.accessLogging.targetPrefix",
        "mlstack:artifacts.colour",
    }
    assert "Has_Upper" in problems["mlstack:artifacts.bucketName"]
    assert "allowed keys:" in problems["mlstack:artifacts.colour"]


def test_bucket_name_leaves_room_for_the_log_bucket() -> None:
    problems = _problems("dev", {"artifacts.bucketName": "a" * 59})
    assert "at most 58" in problems["mlstack:artifacts.bucketName"]


@pytest.mark.parametrize(
    ("edits", "path", "expected"),
    [
        ({"models[0].name": "Llama3"}, "mlstack:models[0].name", "DNS-1035"),
        ({"models[0].name": "a" * 46}, "mlstack:models[0].name", "at most 45"),
        ({"models[1].artifactVersion": "../v1"}, "mlstack:models[1].artifactVersion", "safe path"),
        ({"models[1].artifactVersion": "v1\n"}, "mlstack:models[1].artifactVersion", "safe path"),
        ({"models[1].artifactVersion": 1.1}, "mlstack:models[1].artifactVersion", "quote"),
        ({"models[1].artifactVersion": 3}, "mlstack:models[1].artifactVersion", "quote"),
        ({"models[1].artifactVersion": True}, "mlstack:models[1].artifactVersion", "quote"),
        ({"models[1].replicas": 2}, "mlstack:models[1].replicas", "unknown key"),
    ],
)
def test_bad_model_entries_name_the_key_and_the_rule(
    edits: dict[str, Any], path: str, expected: str
) -> None:
    problems = _problems("dev", edits)
    assert path in problems
    assert expected in problems[path]


def test_artifact_version_is_required() -> None:
    raw = raw_stack_config("dev")
    del raw["models"][0]["artifactVersion"]
    with pytest.raises(ConfigError) as failure:
        parse_config(raw, "Pulumi.dev.yaml")
    assert [p.render() for p in failure.value.problems] == [
        "mlstack:models[0].artifactVersion: required key is missing"
    ]


def test_model_names_are_unique() -> None:
    problems = _problems("dev", {"models[1].name": "llama-3-8b-instruct"})
    assert "duplicate model name (also models[0])" in problems["mlstack:models[1].name"]


def test_json_schema_marks_knobs_and_patterns() -> None:
    schema = json_schema()
    model = schema["$defs"]["ModelConfig"]["properties"]
    assert model["name"]["pattern"] == "^[a-z]([-a-z0-9]*[a-z0-9])?$"
    assert "x-env-knob" not in model["name"]
    assert model["artifactVersion"]["x-env-knob"] is True
    artifacts = schema["$defs"]["ArtifactsConfig"]["properties"]
    assert artifacts["noncurrentVersionExpirationDays"]["x-env-knob"] is True
    assert "x-env-knob" not in artifacts["abortIncompleteMultipartUploadDays"]
    logging = schema["$defs"]["AccessLoggingConfig"]["properties"]
    assert "x-env-knob" not in logging["enabled"]  # one shape in every stack
    assert logging["retentionDays"]["x-env-knob"] is True
