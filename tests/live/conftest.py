"""Tests against the real Pulumi CLI and real AWS, skipped with a reason where absent.

`pulumi_cli` tests need `pulumi` on PATH (nothing else: they use a local file backend in
a temp dir). `aws` tests need AWS credentials from the standard boto3 chain and only
read (no resource is created).
"""

from __future__ import annotations

import shutil

import pytest


def _aws_credentials_missing() -> str | None:
    import boto3

    try:
        if boto3.Session().get_credentials() is None:
            return "no AWS credentials in the standard boto3 chain"
    except Exception as exc:  # a broken profile counts as missing
        return f"AWS credentials unusable: {exc}"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    cli_missing = shutil.which("pulumi") is None
    aws_missing = _aws_credentials_missing()
    for item in items:
        if cli_missing and item.get_closest_marker("pulumi_cli"):
            item.add_marker(
                pytest.mark.skip(reason="the Pulumi CLI is not on PATH (pulumi.com/docs/install)")
            )
        if aws_missing and item.get_closest_marker("aws"):
            item.add_marker(pytest.mark.skip(reason=aws_missing))
