"""What a config rule reports: :class:`Problem`, and how key paths are spelt.

A leaf module: the config sections (``stacks.schema.*``) and the root model
(``stacks.config``) both import it, and it imports neither (only ``components.redact``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from components.redact import redact_text, redact_value

NAMESPACE = "mlstack"

MISSING: Any = object()
"""The value of a :class:`Problem` about a key that is absent (rendered without ``got``)."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a stack file."""

    path: str
    value: Any
    message: str

    def render(self) -> str:
        """``path: message (got value)``; the one place problems become text, so secrets
        are hidden here (``components.redact``): URL credentials and queries, values of
        secret-named keys, credential shapes, in the message as in the value."""
        key = self.path.rpartition(".")[2].rpartition(":")[2].split("[", 1)[0]
        shown = show_value(self.value, key)
        text = f"{self.path}: {redact_text(self.message)}"
        return text + (f" (got {shown})" if shown else "")


def show_value(value: Any, key: str = "") -> str:
    """The offending value as shown in an error (JSON, secrets hidden, at most 120 chars)."""
    if value is MISSING:
        return ""
    if isinstance(value, SecretStr):
        return "[secret]"
    text = json.dumps(redact_value(value, key), default=str, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


def key_path(loc: Iterable[str | int]) -> str:
    """``('cluster', 'version')`` -> ``mlstack:cluster.version``; ints become ``[i]``."""
    out = NAMESPACE + ":"
    first = True
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += part if first else f".{part}"
        first = False
    return out
