"""How components reject bad plain inputs: one error listing every problem."""

from __future__ import annotations

from collections.abc import Sequence


class ComponentArgsError(ValueError):
    """A component's Args hold invalid values; ``problems`` has one line each."""

    def __init__(self, component: str, name: str, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"{component} {name!r}: invalid args:\n  " + "\n  ".join(problems))


def require_valid(component: str, name: str, problems: Sequence[str]) -> None:
    """Raise :class:`ComponentArgsError` when ``problems`` is not empty.

    Each problem reads ``field: value received: what is allowed``.
    """
    if problems:
        raise ComponentArgsError(component, name, problems)
