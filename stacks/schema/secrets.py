"""Secrets in stack files: the file's secrets shape, and secret fields that accept only a
``secure:`` value, in every stack.

Shape (issue 27, item 1): a committed stack file names its ``secretsprovider`` and carries
no ciphertext; ``pulumi stack init --secrets-provider=<url>`` makes the stack's data key
and writes its ``encryptedkey``; ``secure:`` values exist only next to the
``encryptedkey`` that encrypted them. :func:`stack_file_secrets_problems` is that rule,
shared by the config loader and ``lifecycle-secrets-provider``.

A leaf module (besides :mod:`stacks.schema.problems`). The loaders mark what came from
a ``secure:`` entry with :class:`SecureValue` (offline: the opaque placeholder; under the
engine: the decrypted text of a key the engine reports as secret); :data:`SecretValue`
fields refuse any other value, naming the key and the command that sets it properly,
never echoing the plaintext.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

from pydantic import BeforeValidator, SecretStr, WithJsonSchema
from pydantic_core import PydanticCustomError

from stacks.schema.problems import MISSING, NAMESPACE, Problem

DEFAULT_SECRETS_ALIAS = "alias/mlstack-pulumi-secrets"
"""The KMS alias ``mlstack bootstrap`` creates for the ``awskms://`` secrets provider."""
CLOUD_PROVIDER_SCHEMES = ("awskms", "gcpkms", "azurekeyvault", "hashivault")
"""URL schemes of the cloud secrets providers (pulumi ``ValidateSecretsProvider``)."""
PLAINTEXT_SECRET = "plaintext_secret"
"""pydantic error type of a plaintext value in a secret field (its value is never shown)."""


class SecureValue(str):
    """A string that came from a ``secure:`` entry of the stack file."""

    __slots__ = ()


def _require_secure(value: Any) -> Any:
    if isinstance(value, SecureValue | SecretStr):
        return str(value) if isinstance(value, SecureValue) else value
    raise PydanticCustomError(
        PLAINTEXT_SECRET,
        "a secret must be a `secure:` value, never plaintext in the stack file; set it with "
        "`pulumi config set --secret --path '{key}' <value>` (the stack file then holds only "
        "its ciphertext)",
        {"key": "<this key>"},
    )


SecretValue = Annotated[
    SecretStr,
    BeforeValidator(_require_secure),
    WithJsonSchema(
        {
            "type": "object",
            "description": "A secret: set it with `pulumi config set --secret --path ...`; "
            "the stack file holds only its ciphertext.",
            "properties": {"secure": {"type": "string"}},
            "required": ["secure"],
            "additionalProperties": False,
        }
    ),
]
"""A field that accepts only a ``secure:`` value (see :class:`SecureValue`)."""


def mark_secure(value: Any) -> Any:
    """Mark every string inside ``value`` as having come from a secret config key."""
    if isinstance(value, dict):
        return {k: mark_secure(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mark_secure(v) for v in value]
    if isinstance(value, str):
        return SecureValue(value)
    return value


# --------------------------------------------------------------------------- file shape


def _secure_paths(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, Mapping):
        if set(value) == {"secure"}:
            yield path
            return
        for key, item in value.items():
            yield from _secure_paths(item, f"{path}.{key}" if ":" in path else f"{path}{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _secure_paths(item, f"{path}[{index}]")


def secure_paths(document: Mapping[str, Any]) -> list[str]:
    """Config keys (``mlstack:monitoring.grafanaAdminPassword``) holding ``secure:`` values."""
    config = document.get("config") or {}
    if not isinstance(config, Mapping):
        return []
    return [p for key, value in config.items() for p in _secure_paths(value, str(key))]


def is_cloud_provider(provider: object) -> bool:
    """A ``secretsprovider`` handled by Pulumi's cloud secrets manager (a KMS URL)."""
    return isinstance(provider, str) and provider.partition("://")[0] in CLOUD_PROVIDER_SCHEMES


def awskms_region(provider: str) -> str | None:
    """The ``region`` query parameter of an ``awskms://`` URL (gocloud's ``OpenKeeperURL``)."""
    values = parse_qs(urlsplit(provider).query).get("region")
    return values[0] if values else None


def _secrets_key_region(config: Mapping[str, Any]) -> str | None:
    delivery = config.get(f"{NAMESPACE}:delivery")
    arn = delivery.get("secretsKeyArn") if isinstance(delivery, Mapping) else None
    parts = str(arn).split(":") if arn else []
    return parts[3] if len(parts) > 3 and parts[3] else None


def init_command(stack: str, region: str) -> str:
    """The ``pulumi stack init`` line ``mlstack bootstrap`` prints for the default alias."""
    return (
        f'pulumi stack init {stack} --secrets-provider="awskms://{DEFAULT_SECRETS_ALIAS}'
        f'?region={region}"'
    )


def stack_file_secrets_problems(document: Mapping[str, Any], stack: str) -> list[Problem]:
    """What in a stack file's secrets no stack of a stranger's can use (empty: fine).

    Accepted: a provider and nothing else (the committed shape), a cloud provider with
    its ``encryptedkey`` and any ``secure:`` values (after ``pulumi stack init``), the
    passphrase provider's ``encryptionsalt`` (local try-out). Refused: ``secure:`` values
    without the key that decrypts them (for a file without ``encryptedkey``, ``stack init``
    makes a new data key, so they never decrypt); an ``encryptedkey`` without a cloud
    provider or not base64; an ``awskms`` region other than ``mlstack:delivery.secretsKeyArn``'s
    (the CI roles may use only that key).
    """
    config = document.get("config") or {}
    config = config if isinstance(config, Mapping) else {}
    provider = document.get("secretsprovider")
    encrypted_key = document.get("encryptedkey")
    key_region = _secrets_key_region(config)
    region = key_region or str(config.get(f"{NAMESPACE}:region", "<region>"))
    init = init_command(stack, region)
    after_init = (
        f"after `{init}` (the line `mlstack bootstrap` prints), set each secret with "
        "`pulumi config set --secret --path '<key>' <value>` and commit the file"
    )
    problems: list[Problem] = []
    if encrypted_key and not is_cloud_provider(provider):
        problems.append(
            Problem(
                "encryptedkey",
                MISSING,
                f"an encryptedkey but secretsprovider {provider!r} is not a cloud KMS URL: the "
                "engine ignores it (and the passphrase provider removes it); delete the line, "
                f"or run `{init}`",
            )
        )
    elif encrypted_key:
        try:
            base64.b64decode(str(encrypted_key), validate=True)
        except (binascii.Error, ValueError):
            problems.append(
                Problem(
                    "encryptedkey",
                    MISSING,
                    "not base64: the engine cannot decode it (pkg/secrets/cloud/manager.go); "
                    f"delete the line and run `{init}`",
                )
            )
    if isinstance(provider, str) and provider.startswith("awskms://") and key_region:
        named = awskms_region(provider)
        if named is not None and named != key_region:
            problems.append(
                Problem(
                    "secretsprovider",
                    provider,
                    f"names a key in {named}, but mlstack:delivery.secretsKeyArn (the key the "
                    f"CI roles may decrypt with) is in {key_region}: CI could not decrypt this "
                    f"stack; use ?region={key_region}",
                )
            )
    secure = secure_paths(document)
    if not secure:
        return problems
    if is_cloud_provider(provider) and not encrypted_key:
        missing = (
            f"names secretsprovider {provider} but no encryptedkey, so it is ciphertext of a "
            "data key this file does not carry (another stack's?): `pulumi stack init` makes "
            "a new data key for this file and the value never decrypts; delete it and, "
        )
    elif not provider and not document.get("encryptionsalt"):
        missing = (
            "names no secretsprovider, so no real stack can decrypt it (CI has no "
            "passphrase); delete it and, "
        )
    elif provider == "passphrase" and not document.get("encryptionsalt"):
        missing = "names the passphrase provider but no encryptionsalt; delete it and, "
    else:
        return problems
    return problems + [
        Problem(path, MISSING, f"a secure: value, but the stack file {missing}{after_init}")
        for path in secure
    ]


GCM_NONCE_BYTES = 12
"""The nonce Pulumi's symmetric crypter writes (AES-256-GCM's standard nonce size)."""
GCM_TAG_BYTES = 16
"""AES-GCM appends a 16-byte tag: even an empty secret's ciphertext has 16 bytes."""
SYMMETRIC_SHAPE = "v1:<base64 12-byte nonce>:<base64 AES-256-GCM ciphertext>"


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _is_symmetric_ciphertext(value: str) -> bool:
    """The shape ``symmetricCrypter.EncryptValue`` writes and ``DecryptValue`` accepts."""
    parts = value.split(":")
    if len(parts) != 3 or parts[0] != "v1":
        return False
    nonce, sealed = _b64(parts[1]), _b64(parts[2])
    return (
        nonce is not None
        and len(nonce) == GCM_NONCE_BYTES
        and sealed is not None
        and (len(sealed) >= GCM_TAG_BYTES)
    )


def uses_symmetric_crypter(provider: str | None) -> bool:
    """passphrase and every cloud KMS URL (awskms://, gcpkms://, ...) seal values with the
    symmetric crypter; the Pulumi Cloud service writes its own base64 ciphertext."""
    return provider is None or provider == "passphrase" or "://" in provider


def ciphertext_problem(value: Any, provider: str | None, key: str) -> str | None:
    """Why ``value`` under ``secure:`` is not ciphertext of ``provider`` (None: it is).

    The value is never quoted: a value that is not ciphertext is likely a plaintext secret.
    """
    if isinstance(value, str):
        if uses_symmetric_crypter(provider):
            if _is_symmetric_ciphertext(value):
                return None
            expected = (
                f"{SYMMETRIC_SHAPE}, as the {provider or 'passphrase or awskms'} provider writes"
            )
        else:
            decoded = _b64(value)
            if decoded:
                return None
            expected = f"base64 ciphertext, as the {provider} provider writes"
        got = "an empty string" if not value else f"a {len(value)}-character value, not shown"
    else:
        expected = f"a string: {SYMMETRIC_SHAPE}"
        got = "an empty value" if value is None else f"a {type(value).__name__}"
    return (
        f"a secure: value must be the ciphertext `pulumi config set --secret` writes "
        f"({expected}); got {got}; set it with "
        f"`pulumi config set --secret --path '{key}' <value>`"
    )
