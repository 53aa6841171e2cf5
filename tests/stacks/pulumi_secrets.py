"""What the Pulumi CLI does with an ``awskms://`` stack file, step by step, for the tests.

A test stand-in for the engine, not the engine: it performs the same operations in the
same order, against a moto KMS, and edits the stack file the way the CLI saves it. Read
in github:pulumi/pulumi at 1b5949891b (v3.260; the secrets code is unchanged since
the v3.2xx line the project pins):

* ``pkg/cmd/pulumi/stack/io.go`` ``CreateStack`` (l. 375) calls
  ``createSecretsManagerForNewStack`` (``pkg/cmd/pulumi/stack/secrets.go`` l. 99): it
  reads the existing ``Pulumi.<stack>.yaml`` (``readStackConfiguration``) and, for a
  ``--secrets-provider`` URL, calls ``cloud.NewCloudSecretsManager``, then saves the
  file if the key fields changed.
* ``pkg/secrets/cloud/manager.go`` ``NewCloudSecretsManager`` (l. 188): an existing
  ``encryptedkey`` is kept when the provider URL is unchanged, else a new data key is
  made (``generateNewDataKey`` l. 79: 32 random bytes, KMS Encrypt with the URL's key);
  then ``newCloudSecretsManager`` (l. 94) decrypts the ``encryptedkey`` at once (KMS Decrypt, no key
  id: the ciphertext names its key), and an error there fails the command.
* ``SecretsManagerLoader.GetSecretsManager`` (``secrets.go`` l. 226): ``config set --secret``,
  ``preview`` and ``up`` on an existing stack whose file names a cloud provider go
  through the same ``NewCloudSecretsManager(ps, ps.SecretsProvider)``.
* ``sdk/go/common/resource/config/crypt.go`` ``symmetricCrypter`` (l. 179-249): a
  ``secure:`` value is ``v1:<base64 12-byte nonce>:<base64 AES-256-GCM ciphertext>``
  under the data key.
* gocloud.dev ``secrets/awskms/kms.go`` ``OpenKeeperURL`` (l. 121; ``Decrypt`` l. 170 passes
  no key id, ``Encrypt`` l. 182 the URL's) in github:google/go-cloud at 29ba3487e: the key
  id is host + path of the URL, ``region`` a query parameter, ``context_<k>=<v>``
  parameters the encryption context.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

Kms = Callable[[str], Any]
"""region -> a boto3 KMS client (moto) of the caller's account."""


def keeper(url: str) -> tuple[str, str | None, dict[str, str]]:
    """(key id, region, encryption context) of an ``awskms://`` URL, as gocloud opens it."""
    parts = urlsplit(url)
    key_id = f"{parts.netloc}{parts.path}".lstrip("/")
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    context = {k[len("context_") :]: v for k, v in query.items() if k.startswith("context_")}
    return key_id, query.get("region"), context


def cloud_secrets_manager(ps: dict[str, Any], url: str, kms: Kms) -> bytes:
    """``NewCloudSecretsManager(ps, url, rotate=false)``: edit ``ps``, return the data key."""
    ps.pop("encryptionsalt", None)
    key_id, region, context = keeper(url)
    client = kms(region or "")
    if not ps.get("encryptedkey") or ps.get("secretsprovider") != url:
        ciphertext = client.encrypt(
            KeyId=key_id, Plaintext=os.urandom(32), EncryptionContext=context
        )["CiphertextBlob"]
        ps["encryptedkey"] = base64.b64encode(ciphertext).decode()
    ps["secretsprovider"] = url
    blob = base64.b64decode(ps["encryptedkey"])
    return bytes(client.decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"])


def stack_init(ps: dict[str, Any], secrets_provider: str, kms: Kms) -> None:
    """``pulumi stack init <stack> --secrets-provider=<url>`` with ``ps`` the stack file."""
    cloud_secrets_manager(ps, secrets_provider, kms)


def _existing(ps: dict[str, Any], kms: Kms) -> bytes:
    provider = ps.get("secretsprovider")
    if not provider or provider in ("passphrase", "default"):
        raise NotImplementedError(f"only cloud providers are emulated, not {provider!r}")
    return cloud_secrets_manager(ps, str(provider), kms)


def config_set_secret(ps: dict[str, Any], path_key: str, value: str, kms: Kms) -> None:
    """``pulumi config set --secret --path '<ns:key.sub>' <value>``."""
    data_key = _existing(ps, kms)
    nonce = os.urandom(12)
    sealed = AESGCM(data_key).encrypt(nonce, value.encode(), None)
    secure = f"v1:{base64.b64encode(nonce).decode()}:{base64.b64encode(sealed).decode()}"
    top, _, rest = path_key.partition(".")
    config = ps.setdefault("config", {})
    if not rest:
        config[top] = {"secure": secure}
        return
    node = config.setdefault(top, {})
    *parents, leaf = rest.split(".")
    for name in parents:
        node = node.setdefault(name, {})
    node[leaf] = {"secure": secure}


def _secure(value: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return [(path, str(value["secure"]))]
        return [p for k, v in value.items() for p in _secure(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _secure(v, f"{path}[{i}]")]
    return []


def decrypt_config(ps: dict[str, Any], kms: Kms) -> dict[str, str]:
    """What ``pulumi preview`` / ``up`` decrypt before running the program: path -> text."""
    found = [p for k, v in (ps.get("config") or {}).items() for p in _secure(v, k)]
    if not found and not ps.get("secretsprovider"):
        return {}
    crypter = AESGCM(_existing(ps, kms))
    out: dict[str, str] = {}
    for path, value in found:
        version, nonce, sealed = value.split(":")
        assert version == "v1", f"{path}: unknown value version {version}"
        out[path] = crypter.decrypt(
            base64.b64decode(nonce), base64.b64decode(sealed), None
        ).decode()
    return out
