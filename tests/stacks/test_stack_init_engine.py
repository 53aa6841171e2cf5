"""The documented secrets steps of a first deploy, run as the Pulumi CLI runs them, against a
moto KMS key (issue 27, item 1).

``tests/stacks/pulumi_secrets.py`` performs the engine's operations (sources cited there:
``pkg/secrets/cloud/manager.go`` ``NewCloudSecretsManager``, ``pkg/cmd/pulumi/stack/io.go``
``CreateStack`` -> ``createSecretsManagerForNewStack``); the commands are taken from the
docs and from what ``mlstack bootstrap`` prints, so a doc that drifts fails here.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError
from pydantic import SecretStr

from mlstack.delivery.bootstrap import bootstrap
from policy.core import Stack
from policy.rules.lifecycle import lifecycle_secrets_provider
from stacks.config import OFFLINE_SECRET_PLACEHOLDER, PROJECT_ROOT, load_config_file
from tests.conftest import STACKS
from tests.stacks.pulumi_secrets import config_set_secret, decrypt_config, stack_init

REGION = "us-west-2"
OTHER_ACCOUNT = "111111111111"
INIT_LINE = re.compile(r'^pulumi stack init (\w+)\s+--secrets-provider="([^"]+)"', re.M)
SET_SECRET = re.compile(r"pulumi config set --secret(?: -s \w+)? --path\s+'([^']+)'")


def _documented_init_urls() -> dict[str, str]:
    text = (PROJECT_ROOT / "docs/operations.md").read_text()
    return dict(INIT_LINE.findall(text))


def _documented_secret_keys() -> set[str]:
    found: set[str] = set()
    for doc in ("README.md", "docs/operations.md"):
        found |= set(SET_SECRET.findall((PROJECT_ROOT / doc).read_text()))
    return found


def _committed(stack: str) -> dict[str, Any]:
    return yaml.safe_load((PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text())


def _kms_of(endpoint: str, session: boto3.Session | None = None) -> Callable[[str], Any]:
    session = session or boto3.Session()
    return lambda region: session.client("kms", region_name=region, endpoint_url=endpoint)


@pytest.fixture
def account(moto_reset: str, aws_env: None) -> str:
    """A stranger's account after ``mlstack bootstrap``: its state bucket and secrets key."""
    bootstrap("stranger-mlstack-state", REGION, endpoint_url=moto_reset)
    return moto_reset


@pytest.mark.parametrize("stack", STACKS)
def test_a_strangers_stack_init_turns_the_committed_file_into_a_stack_whose_secrets_decrypt(
    stack: str, account: str, tmp_path: Path
) -> None:
    kms = _kms_of(account)
    printed = bootstrap("stranger-mlstack-state", REGION, endpoint_url=account)
    url = _documented_init_urls()[stack]
    assert printed.init_command(stack) == f'pulumi stack init {stack} --secrets-provider="{url}"'
    ps = _committed(stack)

    stack_init(ps, url, kms)  # pulumi stack init <stack> --secrets-provider=...
    assert ps["secretsprovider"] == url and ps["encryptedkey"]
    assert decrypt_config(ps, kms) == {}  # pulumi up: the password is generated
    [key] = _documented_secret_keys()  # optional: pulumi config set --secret --path ...
    config_set_secret(ps, key, "chosen-by-the-operator", kms)
    assert decrypt_config(ps, kms) == {key: "chosen-by-the-operator"}

    (tmp_path / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(ps, sort_keys=False))
    password = load_config_file(stack, tmp_path).monitoring.grafana_admin_password
    assert isinstance(password, SecretStr)
    assert password.get_secret_value() == OFFLINE_SECRET_PLACEHOLDER
    view = Stack([], stack, stack_file=ps, stack_file_path=f"Pulumi.{stack}.yaml")
    assert list(lifecycle_secrets_provider(view)) == []


@pytest.mark.parametrize("stack", STACKS)
def test_committed_stack_files_carry_no_ciphertext_only_the_bootstrap_provider(stack: str) -> None:
    document = _committed(stack)
    assert "encryptedkey" not in document
    assert "encryptionsalt" not in document
    assert "secure:" not in (PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text()
    assert document["secretsprovider"] == _documented_init_urls()[stack]
    assert load_config_file(stack).monitoring.grafana_admin_password is None  # generated


def test_a_file_initialised_in_another_account_fails_stack_init_and_config_set(
    account: str,
) -> None:
    """What today's committed files did to every stranger: the engine keeps the foreign
    ``encryptedkey`` (same URL) and its KMS Decrypt fails, so init, config set and up fail."""
    sts = boto3.client("sts", region_name=REGION, endpoint_url=account)
    creds = sts.assume_role(
        RoleArn=f"arn:aws:iam::{OTHER_ACCOUNT}:role/example", RoleSessionName="example"
    )["Credentials"]
    example = boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    bootstrap("example-mlstack-state", REGION, endpoint_url=account, session=example)
    url = _documented_init_urls()["dev"]
    foreign = _committed("dev")
    stack_init(foreign, url, _kms_of(account, example))
    config_set_secret(
        foreign, "mlstack:monitoring.grafanaAdminPassword", "theirs", _kms_of(account, example)
    )

    mine = _kms_of(account)
    for command in (
        lambda ps: stack_init(ps, url, mine),
        lambda ps: config_set_secret(ps, "mlstack:monitoring.grafanaAdminPassword", "x", mine),
        lambda ps: decrypt_config(ps, mine),
    ):
        with pytest.raises(ClientError) as caught:
            command(copy.deepcopy(foreign))
        assert caught.value.operation_name == "Decrypt"
