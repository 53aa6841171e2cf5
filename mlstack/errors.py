"""Errors the CLI turns into one-line messages and exit codes.

Exit codes: 0 ok, 2 invalid config or usage, 1 anything else.
"""

from __future__ import annotations


class MlstackError(Exception):
    """A failure the user can act on; printed without a traceback."""

    exit_code = 1


class UsageError(MlstackError):
    """Bad arguments, bad config, or a missing prerequisite (such as the Pulumi CLI)."""

    exit_code = 2
