"""serving.imageCache: credentials named exactly, unknown registries refused."""

from __future__ import annotations

import re

import pytest

from components.serving.registries import UPSTREAMS
from stacks.config import ConfigError, parse_config
from stacks.serving_layer import cache_prefix
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


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("production-eu", "production-us"),  # same first 10 characters
        ("team_a", "team.a"),  # same once sanitised
    ],
)
def test_distinct_stacks_never_share_a_cache_prefix(a: str, b: str) -> None:
    assert cache_prefix(a) != cache_prefix(b)


@pytest.mark.parametrize(
    "stack", ["dev", "prod", "production-eu", "A_Very.Long_Stack-Name-0123456789"]
)
def test_cache_prefixes_fit_ecr_with_the_longest_registry_suffix(stack: str) -> None:
    longest = max(len(u.short_name) for u in UPSTREAMS.values())
    prefix = cache_prefix(stack)
    assert len(prefix) + 1 + longest <= 30  # ECR: a cache rule's prefix is 2-30 characters
    assert re.fullmatch(r"[a-z0-9]+(-+[a-z0-9]+)*", prefix)
    assert cache_prefix(stack) == prefix  # stable across runs: no replacement on update


def test_short_clean_stack_names_keep_their_readable_prefix() -> None:
    assert (cache_prefix("dev"), cache_prefix("prod")) == ("mlstack-dev", "mlstack-prod")
