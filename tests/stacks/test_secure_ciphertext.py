"""Anything under ``secure:`` has the shape of the ciphertext Pulumi writes.

The passphrase and cloud KMS providers (``awskms://`` ...) seal values with pulumi's
symmetric crypter (``sdk/go/common/resource/config/crypt.go``, ``symmetricCrypter``:
``EncryptValue`` writes ``v1:<base64 nonce>:<base64 AES-256-GCM ciphertext>`` with a
12-byte nonce; ``DecryptValue`` refuses anything but three ``:`` parts, version ``v1`` and
standard base64, and a nonce of the GCM nonce size). ``pkg/secrets/passphrase/manager.go``
and ``pkg/secrets/cloud/manager.go`` (``newCloudSecretsManager``) both use it; the Pulumi
Cloud's ``pkg/secrets/service/manager.go`` (``serviceCrypter``) writes plain base64.

The stack files here are synthetic: the committed ``secure:`` values are not relied on.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mlstack.cli import main
from stacks.config import (
    OFFLINE_SECRET_PLACEHOLDER,
    PROJECT_ROOT,
    ConfigError,
    load_config_file,
)
from stacks.stack_yaml import load_stack_yaml

KEY_PATH = "mlstack:tags.costCenter"
DATA_KEY = bytes(range(32))

PROVIDERS: dict[str, dict[str, str]] = {
    "passphrase": {
        "secretsprovider": "passphrase",
        "encryptionsalt": "v1:c2FsdHNhbHQ=:v1:AAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA==",
    },
    "awskms": {
        "secretsprovider": "awskms://alias/mlstack-pulumi-secrets?region=us-west-2",
        "encryptedkey": base64.b64encode(b"\x01\x02\x02\x00x" + bytes(40)).decode(),
    },
}


def seal(plaintext: str, key: bytes = DATA_KEY) -> str:
    """``symmetricCrypter.EncryptValue``: AES-256-GCM, random 12-byte nonce, ``v1:`` form."""
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), None)
    return f"v1:{base64.b64encode(nonce).decode()}:{base64.b64encode(sealed).decode()}"


def unseal(ciphertext: str, key: bytes = DATA_KEY) -> str:
    """``symmetricCrypter.DecryptValue``: split on ``:``, ``v1``, base64, open."""
    version, nonce, sealed = ciphertext.split(":")
    assert version == "v1"
    return AESGCM(key).decrypt(base64.b64decode(nonce), base64.b64decode(sealed), None).decode()


def _stack(tmp_path: Path, header: dict[str, str], secure: Any) -> Path:
    """Pulumi.dev.yaml with a provider's ``header`` and ``mlstack:tags.costCenter`` secure."""
    document = load_stack_yaml((PROJECT_ROOT / "Pulumi.dev.yaml").read_text())
    for key in ("secretsprovider", "encryptedkey", "encryptionsalt"):
        document.pop(key, None)
    document.update(header)
    config = document["config"]
    monitoring = config.get("mlstack:monitoring") or {}
    monitoring.pop("grafanaAdminPassword", None)  # any committed secure: value
    config["mlstack:tags"] = {"costCenter": {"secure": secure}}
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return tmp_path


NOT_CIPHERTEXT = [
    pytest.param("hunter2", id="plaintext"),
    pytest.param("", id="empty"),
    pytest.param(None, id="null"),
    pytest.param(42, id="number"),
    pytest.param("v1:hunter2", id="two-parts"),
    pytest.param("v2:AAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA==", id="unknown-version"),
    pytest.param("v1:AAAABBBBCCCC:AAAAAAAAAAAAAAAAAAAAAA==", id="nonce-9-bytes"),
    pytest.param("v1:AAAAAAAAAAAAAAAA:hunter2!", id="ciphertext-not-base64"),
    pytest.param("v1:AAAAAAAAAAAAAAAA:AAAA", id="shorter-than-a-gcm-tag"),
    pytest.param("v1:AAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA==:x", id="four-parts"),
]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("secure", NOT_CIPHERTEXT)
def test_what_is_not_ciphertext_under_secure_exits_2_naming_the_key_not_the_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], provider: str, secure: Any
) -> None:
    """Today: `secure: hunter2` and `secure: ""` validate (and would be committed)."""
    root = _stack(tmp_path, PROVIDERS[provider], secure)
    assert main(["validate", "dev", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "Pulumi.dev.yaml" in err and KEY_PATH in err
    assert "v1:<base64 12-byte nonce>:<base64 AES-256-GCM ciphertext>" in err
    assert f"pulumi config set --secret --path '{KEY_PATH}'" in err
    if isinstance(secure, str) and secure:
        assert secure not in err


def test_plan_refuses_plaintext_under_secure_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _stack(tmp_path, PROVIDERS["awskms"], "hunter2")
    assert main(["plan", "dev", "--root", str(root)]) == 2
    assert KEY_PATH in capsys.readouterr().err
    assert not (root / "build").exists()


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("plaintext", ["ml-research", ""], ids=["a-value", "an-empty-secret"])
def test_ciphertext_sealed_as_the_engine_seals_it_is_accepted(
    tmp_path: Path, provider: str, plaintext: str
) -> None:
    ciphertext = seal(plaintext)
    assert unseal(ciphertext) == plaintext
    cfg = load_config_file("dev", _stack(tmp_path, PROVIDERS[provider], ciphertext))
    assert cfg.tags["costCenter"] == OFFLINE_SECRET_PLACEHOLDER


def test_the_service_provider_takes_base64_ciphertext(tmp_path: Path) -> None:
    """``serviceCrypter.EncryptValue`` returns ``base64.StdEncoding`` of the service's bytes."""
    service = {"secretsprovider": "service"}
    good = base64.b64encode(os.urandom(48)).decode()
    load_config_file("dev", _stack(tmp_path, service, good))
    with pytest.raises(ConfigError, match=r"mlstack:tags\.costCenter: a secure: value must be"):
        load_config_file("dev", _stack(tmp_path, service, "hunter2"))
