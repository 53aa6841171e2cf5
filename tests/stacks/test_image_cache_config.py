"""serving.imageCache: credentials named exactly, unknown registries refused."""

from __future__ import annotations

import pytest

from stacks.config import ConfigError, parse_config
from tests.conftest import raw_stack_config, set_path

KEY = "serving.imageCache.credentialArns"
SECRETS = "arn:aws:secretsmanager:us-west-2:123456789012:secret:"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            {"nvcr.io": SECRETS + "ecr-pullthroughcache/x"},
            "unknown registry 'nvcr.io'",
        ),
        (
            {"docker.io": SECRETS + "dockerhub"},
            "ecr-pullthroughcache/",
        ),
        ({"docker.io": "not-an-arn"}, "is not the ARN"),
    ],
)
def test_bad_credentials_are_refused_with_the_key(value: dict[str, str], message: str) -> None:
    raw = set_path(raw_stack_config("dev"), KEY, value)
    with pytest.raises(ConfigError) as info:
        parse_config(raw, "Pulumi.dev.yaml")
    (problem,) = info.value.problems
    assert problem.path == f"mlstack:{KEY}"
    assert message in problem.message


def test_the_cache_can_be_switched_off() -> None:
    raw = set_path(raw_stack_config("dev"), "serving.imageCache.enabled", False)
    assert parse_config(raw, "Pulumi.dev.yaml").serving.image_cache.enabled is False
