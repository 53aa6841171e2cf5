"""Shared building blocks of the config schema: the base model and knob markers.

Every section model derives from :class:`ConfigModel`: camelCase keys in the
stack files, snake_case attributes in Python, unknown keys rejected, frozen.

A field declared with :func:`knob` is an *environment knob*: dev and prod may
hold different values for it (sizes, counts, retention...). Every other field
must be identical across stacks; ``mlstack parity`` reports a difference as a
violation. The marker is exported into the JSON Schema as ``"x-env-knob": true``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints
from pydantic.alias_generators import to_camel

ENV_KNOB_KEY = "x-env-knob"


class ConfigModel(BaseModel):
    """Base of every config section: camelCase aliases, extra keys forbidden, frozen."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )


def knob(default: Any = ..., *, description: str, **kwargs: Any) -> Any:
    """A field whose value may differ between environments (see module docstring)."""
    extra: dict[str, JsonValue] = {ENV_KNOB_KEY: True}
    return Field(default, description=description, json_schema_extra=extra, **kwargs)


def fixed(default: Any = ..., *, description: str, **kwargs: Any) -> Any:
    """A field that must hold the same value in every environment."""
    return Field(default, description=description, **kwargs)


HotfixReason = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=300),
]
"""``hotfix: <reason>`` on a prod model or GPU pool entry (see ``mlstack parity``)."""
