"""Secret config fields: only a ``secure:`` value is accepted, in every stack.

A leaf module. The loaders mark what came from a ``secure:`` entry with
:class:`SecureValue` (offline: the opaque placeholder; under the engine: the decrypted
text of a key the engine reports as secret); :data:`SecretValue` fields refuse any
other value, naming the key and the command that sets it properly, never echoing the
plaintext.
"""

from __future__ import annotations

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
