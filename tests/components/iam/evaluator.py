"""A small evaluator of identity-policy statements, for tests only.

It implements the parts of AWS's evaluation logic the stack's policies use: explicit
Deny wins, then any Allow; ``Action``/``Resource`` with ``*`` wildcards (actions
case-insensitively); condition operators ``StringEquals``, ``StringEqualsIfExists``,
``ArnEquals``, ``Null`` and ``ForAnyValue:StringEquals``. A key absent from the request
fails every operator but ``...IfExists`` and ``Null: true`` (as in AWS).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

Context = Mapping[str, str | list[str]]


def _as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _condition_holds(operator: str, key: str, expected: Any, context: Context) -> bool:
    present = key in context
    values = _as_list(context[key]) if present else []
    wanted = _as_list(expected)
    if operator == "Null":
        return (not present) == (wanted[0].lower() == "true")
    if operator.endswith("IfExists") and not present:
        return True
    if not present:
        return False
    base = operator.removesuffix("IfExists")
    if base in ("StringEquals", "ArnEquals"):
        return any(v == w for v in values for w in wanted)
    if base == "ForAnyValue:StringEquals":
        return any(v in wanted for v in values)
    raise NotImplementedError(operator)


def _matches(statement: Mapping[str, Any], action: str, resource: str, context: Context) -> bool:
    actions = _as_list(statement.get("Action", []))
    if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions):
        return False
    resources = _as_list(statement.get("Resource", []))
    if not any(fnmatch.fnmatchcase(resource, r) for r in resources):
        return False
    for operator, keys in (statement.get("Condition") or {}).items():
        for key, expected in keys.items():
            if not _condition_holds(operator, key, expected, context):
                return False
    return True


def allowed(
    statements: Iterable[Mapping[str, Any]],
    action: str,
    resource: str,
    context: Context | None = None,
) -> bool:
    """Whether the statements allow ``action`` on ``resource`` for a request ``context``."""
    context = context or {}
    listed = list(statements)
    denied = any(s["Effect"] == "Deny" and _matches(s, action, resource, context) for s in listed)
    return not denied and any(
        s["Effect"] == "Allow" and _matches(s, action, resource, context) for s in listed
    )
