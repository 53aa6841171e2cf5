"""Shared building blocks of the config schema: the base model and knob markers.

Every section model derives from :class:`ConfigModel`: camelCase keys in the
stack files, snake_case attributes in Python, unknown keys rejected, frozen.

A field declared with :func:`knob` is an *environment knob*: dev and prod may
hold different values for it (sizes, counts, retention...). Every other field
must be identical across stacks; ``mlstack parity`` reports a difference as a
violation. The marker is exported into the JSON Schema as ``"x-env-knob": true``.
"""

from __future__ import annotations

import types
import unicodedata
from functools import cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic.alias_generators import to_camel

ENV_KNOB_KEY = "x-env-knob"

_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
ENGINE_BOOLEANS = ("true", "false")
"""How the Pulumi engine hands a top-level boolean to the program (config values are text)."""


class ConfigModel(BaseModel):
    """Base of every config section: camelCase aliases, extra keys forbidden, frozen.

    Numbers and booleans are strict (YAML ``true`` is no ``1``, ``"2"`` no ``2``) and no
    text holds a control or bidirectional-override character (see :func:`_strict_input`).
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    @field_validator("*", mode="before")
    @classmethod
    def _strict_input(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name
        field = cls.model_fields.get(name) if name else None
        kinds = _scalar_kinds(field.annotation) if field is not None else frozenset()
        # A boolean in a text field falls through to pydantic's string_type error, which
        # the config loader turns into "quote it" (stacks.config._unquoted_hint).
        if isinstance(value, bool) and kinds and not kinds & {"bool", "str"}:
            raise ValueError(
                f"got the boolean {str(value).lower()} where a number is expected; allowed: "
                "a number without quotes (YAML reads true/false/yes/no/on/off as booleans)"
            )
        if (
            kinds == {"bool"}
            and value is not None
            and not isinstance(value, bool)
            and not (isinstance(value, str) and value in ENGINE_BOOLEANS)
        ):
            raise ValueError(
                f"got {value!r}, not a boolean; allowed: true or false (without quotes)"
            )
        if isinstance(value, str) and kinds and not kinds & {"str", "bool"}:
            raise ValueError(
                f"got the text {value!r} where a number is expected; allowed: a number "
                "without quotes"
            )
        if field is None or not _holds_models(field.annotation):
            _refuse_control_characters(value)  # nested models check their own fields
        return value


def _refuse_control_characters(value: Any, where: str = "text") -> None:
    """Raise when any text in ``value`` holds a control or bidi-override character."""
    from stacks.schema.secrets import SecureValue

    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_control_characters(key, "a key")
            _refuse_control_characters(item, f"the value of {key!r}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _refuse_control_characters(item, f"item [{index}]")
    elif isinstance(value, str) and not isinstance(value, SecureValue):
        for char in value:
            if char in "\t\n\r":
                continue
            if unicodedata.category(char) == "Cc" or char in _BIDI_CONTROLS:
                kind = "a control" if unicodedata.category(char) == "Cc" else "a bidi control"
                name = unicodedata.name(char, "")
                shown = f"U+{ord(char):04X} {name}".rstrip()
                raise ValueError(
                    f"{where} contains {shown} ({kind} character, invisible or reordering "
                    "what is shown); allowed: printable text"
                )


@cache
def _scalar_kinds(annotation: Any) -> frozenset[str]:
    """``{'int'}``, ``{'float', 'int'}``, ``{'bool'}``... for a scalar field (``None``
    and ``Optional`` ignored); empty for anything else (models, lists, unions of those)."""
    kinds: set[str] = set()
    for arg in _flatten(annotation):
        if arg is type(None):
            continue
        if arg in (bool, int, float, str):
            kinds.add(arg.__name__)
        elif get_origin(arg) is Literal:
            values = get_args(arg)
            kinds |= {type(v).__name__ for v in values}
        else:
            return frozenset()
    return frozenset(kinds)


@cache
def _holds_models(annotation: Any) -> bool:
    """Whether a field's type holds config models (a model, a list or dict of them...)."""
    if isinstance(annotation, type):
        return issubclass(annotation, BaseModel)
    return any(_holds_models(arg) for arg in get_args(annotation) if not isinstance(arg, str))


def _flatten(annotation: Any) -> list[Any]:
    origin = get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        return [a for arg in get_args(annotation) for a in _flatten(arg)]
    if origin is Annotated:
        return _flatten(get_args(annotation)[0])
    return [annotation]


def knob(default: Any = ..., *, description: str, **kwargs: Any) -> Any:
    """A field whose value may differ between environments (see module docstring)."""
    extra: dict[str, JsonValue] = {ENV_KNOB_KEY: True, **kwargs.pop("json_schema_extra", {})}
    return Field(default, description=description, json_schema_extra=extra, **kwargs)


def fixed(default: Any = ..., *, description: str, **kwargs: Any) -> Any:
    """A field that must hold the same value in every environment."""
    return Field(default, description=description, **kwargs)


HotfixReason = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=300),
]
"""``hotfix: <reason>`` on a prod model or GPU pool entry (see ``mlstack parity``)."""
