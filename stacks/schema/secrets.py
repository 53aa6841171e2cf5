"""Secret config fields: only a ``secure:`` value is accepted, in every stack.

A leaf module. The loaders mark what came from a ``secure:`` entry with
:class:`SecureValue` (offline: the opaque placeholder; under the engine: the decrypted
text of a key the engine reports as secret); :data:`SecretValue` fields refuse any
other value, naming the key and the command that sets it properly, never echoing the
plaintext.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from pydantic import BeforeValidator, SecretStr, WithJsonSchema
from pydantic_core import PydanticCustomError

DEFAULT_SECRETS_ALIAS = "alias/mlstack-pulumi-secrets"
"""The KMS alias ``mlstack bootstrap`` creates for the ``awskms://`` secrets provider."""
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
