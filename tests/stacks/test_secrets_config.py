"""Secrets in stack files: a secrets provider that a real stack can use, and secret fields
that accept nothing but a ``secure:`` value, in every stack (issue 12.1, 13.8)."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
import yaml
from pulumi.runtime import config as runtime_config

from mlstack.cli import main
from stacks.config import (
    PROJECT_ROOT,
    ConfigError,
    load_config,
    load_config_file,
    parse_config,
    secrets_provider_problems,
)
from tests.conftest import STACKS, raw_stack_config, set_path

PLAINTEXT = "hunter2-plaintext"
PASSWORD_KEY = "mlstack:monitoring.grafanaAdminPassword"


@pytest.mark.parametrize("stack", STACKS)
def test_shipped_stack_files_have_the_shape_of_an_awskms_stack(stack: str) -> None:
    document = yaml.safe_load((PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text())
    assert document["secretsprovider"] == "awskms://alias/mlstack-pulumi-secrets?region=us-west-2"
    key = base64.b64decode(document["encryptedkey"], validate=True)
    assert key[:5] == bytes([1, 2, 2, 0, 0x78])  # a KMS ciphertext blob's header
    assert secrets_provider_problems(document, stack) == []
    # the key the provider names is the one the CI roles may decrypt with
    arn = document["config"]["mlstack:delivery"]["secretsKeyArn"]
    assert arn.split(":")[3] == "us-west-2"


def _without(stack: str, tmp_path: Path, *keys: str) -> Path:
    lines = (PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith(tuple(f"{k}:" for k in keys))]
    (tmp_path / f"Pulumi.{stack}.yaml").write_text("".join(kept))
    return tmp_path


@pytest.mark.parametrize("stack", STACKS)
def test_secure_values_without_a_secrets_provider_are_refused(stack: str, tmp_path: Path) -> None:
    root = _without(stack, tmp_path, "secretsprovider", "encryptedkey")
    with pytest.raises(ConfigError) as caught:
        load_config_file(stack, root)
    [problem] = caught.value.problems
    assert caught.value.source == f"Pulumi.{stack}.yaml"
    assert problem.path == PASSWORD_KEY
    assert "names no secretsprovider" in problem.message
    assert (
        f'pulumi stack init {stack} --secrets-provider="awskms://alias/mlstack-pulumi-secrets'
        '?region=us-west-2"' in problem.message
    )


def test_an_awskms_provider_without_its_encrypted_key_is_refused(tmp_path: Path) -> None:
    root = _without("prod", tmp_path, "encryptedkey")
    with pytest.raises(ConfigError, match="but no encryptedkey"):
        load_config_file("prod", root)


def test_a_file_without_secure_values_needs_no_provider() -> None:
    assert secrets_provider_problems({"config": {"mlstack:region": "us-west-2"}}, "dev") == []


def test_the_cli_exits_2_naming_file_key_and_fix(tmp_path: Path, capsys) -> None:
    root = _without("dev", tmp_path, "secretsprovider", "encryptedkey")
    shutil.copy(PROJECT_ROOT / "Pulumi.prod.yaml", root)
    assert main(["plan", "dev", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "Pulumi.dev.yaml" in err
    assert PASSWORD_KEY in err
    assert "pulumi stack init dev --secrets-provider=" in err
    assert not (root / "build").exists()


@pytest.mark.parametrize("stack", STACKS)
def test_a_plaintext_secret_is_refused_in_every_stack_without_echoing_it(stack: str) -> None:
    raw = set_path(raw_stack_config(stack), "monitoring.grafanaAdminPassword", PLAINTEXT)
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, f"Pulumi.{stack}.yaml")
    [problem] = [p for p in caught.value.problems if p.path == PASSWORD_KEY]
    assert "must be a `secure:` value" in problem.message
    assert f"pulumi config set --secret --path '{PASSWORD_KEY}'" in problem.message
    assert PLAINTEXT not in str(caught.value)


def test_a_plaintext_secret_in_the_file_is_refused(tmp_path: Path) -> None:
    text = (PROJECT_ROOT / "Pulumi.dev.yaml").read_text()
    start = text.index("    grafanaAdminPassword:")
    end = text.index("\n", text.index("secure:", start))
    text = text[:start] + f"    grafanaAdminPassword: {PLAINTEXT}" + text[end:]
    (tmp_path / "Pulumi.dev.yaml").write_text(text)
    with pytest.raises(ConfigError, match="must be a `secure:` value") as caught:
        load_config_file("dev", tmp_path)
    assert PLAINTEXT not in str(caught.value)


def _engine(stack: str, secret_keys: list[str]) -> object:
    raw = raw_stack_config(stack)
    values = {f"mlstack:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}
    values["mlstack:monitoring"] = json.dumps(
        {**raw["monitoring"], "grafanaAdminPassword": "decrypted-by-the-engine"}
    )
    token = runtime_config.CONFIG.set(values)
    keys = runtime_config._SECRET_KEYS.set(set(secret_keys))  # pyright: ignore[reportPrivateUsage]
    try:
        return load_config(stack)
    finally:
        runtime_config._SECRET_KEYS.reset(keys)  # pyright: ignore[reportPrivateUsage]
        runtime_config.CONFIG.reset(token)


def test_under_the_engine_a_decrypted_secret_key_is_accepted() -> None:
    cfg = _engine("prod", ["mlstack:monitoring"])
    password = cfg.monitoring.grafana_admin_password  # type: ignore[attr-defined]
    assert password.get_secret_value() == "decrypted-by-the-engine"


def test_under_the_engine_a_key_not_marked_secret_is_plaintext_and_refused() -> None:
    with pytest.raises(ConfigError, match="must be a `secure:` value"):
        _engine("prod", [])
