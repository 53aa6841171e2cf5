"""Reusable Pulumi components: a library. Nothing here reads ``pulumi.Config``.

Every component follows the contract in ``docs/architecture.md``: a typed
``*Args`` dataclass, type token ``mlstack:<area>:<Name>``, children parented to
the component and named ``f"{name}-<role>"``, typed output attributes.
"""
