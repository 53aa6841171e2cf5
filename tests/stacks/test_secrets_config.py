"""Secrets in stack files: a secrets provider that a real stack can use, and secret fields
that accept nothing but a ``secure:`` value, in every stack (issue 12.1, 13.8)."""

from __future__ import annotations

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


# The shape pulumi writes: a 12-byte nonce, then the ciphertext with its 16-byte tag.
SECURE = "v1:AQEBAQEBAQEBAQEB:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="


@pytest.mark.parametrize("stack", STACKS)
def test_shipped_stack_files_name_the_ci_keys_region_and_no_ciphertext(stack: str) -> None:
    document = yaml.safe_load((PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text())
    assert document["secretsprovider"] == "awskms://alias/mlstack-pulumi-secrets?region=us-west-2"
    assert "encryptedkey" not in document
    assert secrets_provider_problems(document, stack) == []
    # the key the provider names is the one the CI roles may decrypt with
    arn = document["config"]["mlstack:delivery"]["secretsKeyArn"]
    assert arn.split(":")[3] == "us-west-2"


def _write(stack: str, tmp_path: Path, *drop: str, **top: str) -> Path:
    """The committed file with a secure: Grafana password, without the top-level ``drop``
    keys and with the ``top`` ones set (``encryptedkey=...``)."""
    document = yaml.safe_load((PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text())
    document["config"]["mlstack:monitoring"]["grafanaAdminPassword"] = {"secure": SECURE}
    for key in drop:
        document.pop(key, None)
    document = {**top, **document}
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return tmp_path


@pytest.mark.parametrize("stack", STACKS)
def test_secure_values_without_a_secrets_provider_are_refused(stack: str, tmp_path: Path) -> None:
    root = _write(stack, tmp_path, "secretsprovider")
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


def test_secure_values_next_to_no_encryptedkey_are_foreign_ciphertext(tmp_path: Path) -> None:
    """stack init makes a new data key for a file without encryptedkey (manager.go
    NewCloudSecretsManager), so a secure: value there can never decrypt."""
    root = _write("prod", tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_config_file("prod", root)
    [problem] = caught.value.problems
    assert problem.path == PASSWORD_KEY
    assert "but no encryptedkey" in problem.message
    assert "makes a new data key" in problem.message and "delete it" in problem.message


def test_secure_values_next_to_their_encryptedkey_load(tmp_path: Path) -> None:
    root = _write("prod", tmp_path, encryptedkey="AQICAHh" + "A" * 61 + "=")
    assert load_config_file("prod", root).monitoring.grafana_admin_password is not None


def test_an_encryptedkey_without_a_cloud_provider_is_refused(tmp_path: Path) -> None:
    document = yaml.safe_load((PROJECT_ROOT / "Pulumi.dev.yaml").read_text())
    del document["secretsprovider"]
    document["encryptedkey"] = "AQICAHh" + "A" * 61 + "="
    [problem] = secrets_provider_problems(document, "dev")
    assert problem.path == "encryptedkey"
    assert "is not a cloud KMS URL" in problem.message
    assert "pulumi stack init dev --secrets-provider=" in problem.message


def test_an_encryptedkey_that_is_not_base64_is_refused() -> None:
    document = yaml.safe_load((PROJECT_ROOT / "Pulumi.dev.yaml").read_text())
    document["encryptedkey"] = "not base64!"
    [problem] = secrets_provider_problems(document, "dev")
    assert problem.path == "encryptedkey" and "not base64" in problem.message


def test_a_provider_in_another_region_than_the_ci_secrets_key_is_refused() -> None:
    document = yaml.safe_load((PROJECT_ROOT / "Pulumi.prod.yaml").read_text())
    document["secretsprovider"] = "awskms://alias/mlstack-pulumi-secrets?region=eu-west-1"
    [problem] = secrets_provider_problems(document, "prod")
    assert problem.path == "secretsprovider"
    assert "eu-west-1" in problem.message and "?region=us-west-2" in problem.message


def test_a_local_passphrase_stack_file_is_accepted() -> None:
    """What `pulumi stack init` on the local backend writes (passphrase: salt only)."""
    document = yaml.safe_load((PROJECT_ROOT / "Pulumi.dev.yaml").read_text())
    del document["secretsprovider"]
    document["encryptionsalt"] = "v1:c2FsdA==:v1:bm9uY2U=:Y2lwaGVy"
    document["config"]["mlstack:monitoring"]["grafanaAdminPassword"] = {"secure": SECURE}
    assert secrets_provider_problems(document, "dev") == []


def test_a_file_without_secure_values_needs_no_provider() -> None:
    assert secrets_provider_problems({"config": {"mlstack:region": "us-west-2"}}, "dev") == []


def test_the_cli_exits_2_naming_file_key_and_fix(tmp_path: Path, capsys) -> None:
    root = _write("dev", tmp_path, "secretsprovider")
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
    anchor = "  mlstack:monitoring:\n"
    text = text.replace(anchor, f"{anchor}    grafanaAdminPassword: {PLAINTEXT}\n", 1)
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
