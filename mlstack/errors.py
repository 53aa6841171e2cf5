"""Errors the CLI turns into one-line messages, and the exit-code contract.

Every ``mlstack`` command (``mlstack model ...`` included) exits with:

====  =====================================================================================
code  meaning
====  =====================================================================================
0     done; the checked thing passed
1     the checked thing failed or the operation did: a finding, a breach, a failed check,
      a damaged model version, an AWS call or a ``pulumi`` command that failed, a full disk
2     usage or bad input, nothing done: an option value out of range, an unknown stack, a
      bad stack file or config, a bad file or ``--out`` path, data that breaks its format
      (a model manifest), a missing or broken prerequisite (the Pulumi CLI)
130   interrupted by Ctrl-C (SIGINT), cleaned up; 128+N for another caught signal N
====  =====================================================================================

:class:`MlstackError` carries 1, :class:`UsageError` 2; ``mlstack.cli.main`` maps them
(and click's own usage errors, also 2); ``mlstack.interrupt`` exits 130.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class MlstackError(Exception):
    """A failure the user can act on; printed without a traceback."""

    exit_code = EXIT_FAILED


class UsageError(MlstackError):
    """Bad arguments, bad input or config, or a missing or broken prerequisite."""

    exit_code = EXIT_USAGE
