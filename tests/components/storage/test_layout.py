"""The layout contract shared by the bucket grants, the config schema and the CLI."""

from __future__ import annotations

import pytest

from components.storage import layout


@pytest.mark.parametrize("name", ["resnet50", "llama-3-8b-instruct", "a", "a0", "a" * 45])
def test_valid_model_names(name: str) -> None:
    assert layout.name_problem(name) is None
    assert layout.check_name(name) == name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("", "empty"),
        ("a" * 46, "at most 45"),
        ("0", "DNS-1035"),
        ("3b", "DNS-1035"),
        ("Resnet", "DNS-1035"),
        ("res_net", "DNS-1035"),
        ("-a", "DNS-1035"),
        ("a-", "DNS-1035"),
        ("a.b", "DNS-1035"),
        ("a/b", "DNS-1035"),
        (5, "must be a string"),
    ],
)
def test_invalid_model_names(name: object, expected: str) -> None:
    problem = layout.name_problem(name)
    assert problem is not None and expected in problem


@pytest.mark.parametrize("version", ["v1", "2025-06-02", "1.10", "v1.2.3-rc.1_x", "A" * 128])
def test_valid_versions(version: str) -> None:
    assert layout.version_problem(version) is None


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("", "empty"),
        ("v" * 129, "at most 128"),
        (".", "safe path segment"),
        ("..", "safe path segment"),
        (".v1", "safe path segment"),
        ("-v1", "safe path segment"),
        ("v1/x", "safe path segment"),
        ("v 1", "safe path segment"),
        ("v1+build", "safe path segment"),
        ("v1\n", "safe path segment"),
        (1.1, "must be a string"),
    ],
)
def test_invalid_versions(version: object, expected: str) -> None:
    problem = layout.version_problem(version)
    assert problem is not None and expected in problem


def test_keys_of_a_version() -> None:
    assert layout.model_prefix("resnet50", "v3") == "models/resnet50/v3/"
    assert layout.name_prefix("resnet50") == "models/resnet50/"
    assert layout.manifest_key("resnet50", "v3") == "models/resnet50/v3/manifest.json"
    with pytest.raises(ValueError, match="model name 'Bad'"):
        layout.model_prefix("Bad", "v1")
    with pytest.raises(ValueError, match=r"version '\.\./x'"):
        layout.model_prefix("ok", "../x")


@pytest.mark.parametrize("prefix", ["models/", "models/resnet50/", "models/resnet50/v3/"])
def test_grant_prefixes_inside_the_layout(prefix: str) -> None:
    assert layout.grant_prefix_problem(prefix) is None


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("models", "start with 'models/' and end with '/'"),
        ("resnet50/v3/", "start with 'models/'"),
        ("models/resnet50/v3", "end with '/'"),
        ("models/a/b/c/", "at most two segments"),
        ("models/../", "DNS-1035"),
        ("models/ok/../", "safe path segment"),
        ("models//", "empty"),
        ("", "start with 'models/'"),
    ],
)
def test_grant_prefixes_outside_the_layout(prefix: str, expected: str) -> None:
    problem = layout.grant_prefix_problem(prefix)
    assert problem is not None and expected in problem


@pytest.mark.parametrize(
    ("name", "allow_dots", "ok"),
    [
        ("mlstack-prod-models", False, True),
        ("abc", False, True),
        ("ab", False, False),
        ("a" * 64, False, False),
        ("Upper", False, False),
        ("with.dot", False, False),
        ("with.dot", True, True),
        ("a..b", True, False),
        ("a.-b", True, False),
        ("xn--abc", False, False),
        ("foo-s3alias", False, False),
        ("-abc", False, False),
    ],
)
def test_bucket_names(name: str, allow_dots: bool, ok: bool) -> None:
    assert (layout.bucket_name_problem(name, allow_dots=allow_dots) is None) is ok
