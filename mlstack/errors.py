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

Messages reach the terminal through :func:`printable`: a control character (a file
name's ESC or BEL, a newline inside a value) is shown as an escape, never sent raw.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_BIDI_CONTROLS = frozenset(range(0x202A, 0x202F)) | frozenset(range(0x2066, 0x206A))
"""Unicode bidirectional embeddings, overrides and isolates (they reorder what follows)."""


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def is_control(ch: str) -> bool:
    """C0 (U+0000-U+001F), DEL, C1 (U+0080-U+009F), line/paragraph separators, bidi controls."""
    code = ord(ch)
    return code < 0x20 or 0x7F <= code <= 0x9F or code in (0x2028, 0x2029) or code in _BIDI_CONTROLS


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control character shown as ``\\xNN`` / ``\\uNNNN``.

    Ordinary text, non-ASCII letters included, is unchanged. ``keep_newlines``: ``\\n``
    stays a line break (a message that lists problems one per line); every other control
    character, ``\\r`` and tab included, is escaped."""
    if not any(is_control(ch) for ch in text):
        return text
    return "".join(
        ch if (keep_newlines and ch == "\n") or not is_control(ch) else _escape(ch) for ch in text
    )


class MlstackError(Exception):
    """A failure the user can act on; printed without a traceback."""

    exit_code = EXIT_FAILED


class UsageError(MlstackError):
    """Bad arguments, bad input or config, or a missing or broken prerequisite."""

    exit_code = EXIT_USAGE
