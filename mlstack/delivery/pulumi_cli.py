"""Finding and running the Pulumi CLI.

Everything in mlstack that needs the engine goes through here, so a missing CLI
is reported the same way everywhere: one line naming how to install it, exit
code 2 (:class:`PulumiCliMissingError` is a :class:`~mlstack.errors.UsageError`).
The offline tools (synth, plan, diff, ``rollback --dry-run``) never call this.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlstack.errors import MlstackError, UsageError

if TYPE_CHECKING:
    from pulumi.automation import Stack

INSTALL_HINT = "install it with `curl -fsSL https://get.pulumi.com | sh` (https://www.pulumi.com/docs/iac/download-install/)"


class PulumiCliMissingError(UsageError):
    """The Pulumi CLI is not installed where mlstack looks for it."""

    def __init__(self, needed_for: str) -> None:
        super().__init__(f"{needed_for} needs the Pulumi CLI, which is not on PATH; {INSTALL_HINT}")


class PulumiCliBrokenError(UsageError):
    """A ``pulumi`` was found but does not work as the CLI: it cannot be started, or
    ``pulumi version`` fails or prints no version (exit 2, like a missing one)."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(
            f"{path} does not work as the Pulumi CLI: {problem}; reinstall it or put a "
            f"working one first on PATH ({INSTALL_HINT})"
        )


VERSION_TIMEOUT_S = 60
_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:[-+][0-9A-Za-z.+-]*)?$")


class PulumiCommandError(MlstackError):
    """The CLI ran and exited non-zero."""


LOCKED_MARKER = "the stack is currently locked by"
"""How the DIY backend refuses an operation on a locked stack (pulumi/pulumi
``pkg/backend/diy/lock.go``, ``checkForLock``): this sentence, then one line per lock
``  <lock URL>: created by <user>@<host> (pid <n>) at <RFC 3339 time>``."""


class StackLockedError(PulumiCommandError):
    """The stack is locked by another (possibly dead) update; never retried."""


def lock_report(output: str) -> str | None:
    """The lock message and its lock lines from the CLI's output, None if not locked."""
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if LOCKED_MARKER in line:
            found = [line.strip().removeprefix("error: ")]
            found += [
                extra.strip()
                for extra in lines[index + 1 :]
                if extra.startswith("  ") and ": created by " in extra
            ]
            return "\n".join(found)
    return None


@dataclass(frozen=True)
class PulumiCli:
    """A located ``pulumi`` executable."""

    path: Path

    def run(
        self,
        args: Sequence[str],
        cwd: Path,
        env: Mapping[str, str] | None = None,
        *,
        capture: bool = False,
        echo: Callable[[str], None] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``pulumi <args>`` in ``cwd``; raise :class:`PulumiCommandError` on failure.

        With ``capture`` the output is returned; otherwise it goes to the terminal.
        """
        full_env = {**os.environ, **(env or {})}
        if echo is not None:
            echo("$ pulumi " + " ".join(_quote(a) for a in args))
        try:
            if capture:
                result = subprocess.run(
                    [str(self.path), *args],
                    cwd=cwd,
                    env=full_env,
                    text=True,
                    capture_output=True,
                    check=False,
                )
                errors = result.stderr or ""
            else:
                result, errors = _run_streaming([str(self.path), *args], cwd, full_env)
        except OSError as exc:
            raise PulumiCliBrokenError(self.path, _start_problem(exc)) from None
        if result.returncode != 0:
            command = f"`pulumi {' '.join(args[:2])}`"
            locked = lock_report(errors + "\n" + (result.stdout or ""))
            if locked:
                raise StackLockedError(
                    f"{command} refused: {locked}\nA lock whose update is no longer running is "
                    "stale: check that no deploy or rollback of this stack runs, then remove it "
                    "with `pulumi cancel` (docs/operations.md, 'A stale lock'). Not retried."
                )
            detail = errors.strip().splitlines()[-1:]
            raise PulumiCommandError(
                f"{command} exited with {result.returncode}" + (f": {detail[0]}" if detail else "")
            )
        return result

    def version(self) -> str:
        """``pulumi version`` (``3.272.0``); :class:`PulumiCliBrokenError` when it cannot run,
        fails, or prints something else than a version."""
        env = {**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true"}
        try:
            done = subprocess.run(
                [str(self.path), "version"],
                capture_output=True,
                text=True,
                errors="replace",
                env=env,
                timeout=VERSION_TIMEOUT_S,
                check=False,
            )
        except OSError as exc:
            raise PulumiCliBrokenError(self.path, _start_problem(exc)) from None
        except subprocess.TimeoutExpired:
            raise PulumiCliBrokenError(
                self.path, f"`pulumi version` did not answer within {VERSION_TIMEOUT_S} s"
            ) from None
        if done.returncode != 0:
            detail = (done.stderr.strip().splitlines() or ["no message"])[-1][:200]
            raise PulumiCliBrokenError(
                self.path, f"`pulumi version` exited with {done.returncode} ({detail})"
            )
        printed = done.stdout.strip()
        if not _SEMVER.fullmatch(printed):
            raise PulumiCliBrokenError(
                self.path, f"`pulumi version` printed {printed[:80]!r}, not a version"
            )
        return printed.removeprefix("v")

    def select_stack(
        self, stack: str, work_dir: Path, env: Mapping[str, str] | None = None
    ) -> Stack:
        """The Automation API's handle on ``stack`` of the program in ``work_dir``.

        The SDK's ``PulumiCommand`` runs ``pulumi version`` with ``check_output`` and
        parses it (pulumi/automation/_cmd.py, ``PulumiCommand.__init__`` and
        ``_parse_and_validate_pulumi_version``): a CLI that fails there would surface as a
        ``CalledProcessError`` or "probably an internal error", so :meth:`version` runs the
        same command first and says what is wrong."""
        from pulumi import automation as auto
        from pulumi.automation.errors import InvalidVersionError

        self.version()
        # PulumiCommand runs `pulumi` from PATH, or `<root>/bin/pulumi`.
        on_path = shutil.which("pulumi") == str(self.path)
        try:
            command = auto.PulumiCommand(root=None if on_path else str(self.path.parent.parent))
        except (OSError, subprocess.CalledProcessError) as exc:  # changed since version()
            raise PulumiCliBrokenError(self.path, f"`pulumi version` failed ({exc})") from None
        except InvalidVersionError as exc:  # e.g. older than the SDK's minimum
            raise PulumiCliBrokenError(self.path, str(exc)) from None
        workspace = auto.LocalWorkspace(
            work_dir=str(work_dir), pulumi_command=command, env_vars=dict(env or {})
        )
        return auto.Stack.select(stack, workspace)


def _run_streaming(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str]
) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run with stdout on the terminal and stderr passed through line by line, kept
    (bounded) so a failure can be explained."""
    import sys
    from collections import deque

    kept: deque[str] = deque(maxlen=200)
    with subprocess.Popen(
        list(argv), cwd=cwd, env=dict(env), text=True, stderr=subprocess.PIPE
    ) as process:
        assert process.stderr is not None
        for line in process.stderr:
            sys.stderr.write(line)
            kept.append(line)
        code = process.wait()
    return subprocess.CompletedProcess(list(argv), code, None, "".join(kept)), "".join(kept)


def find_pulumi(needed_for: str) -> PulumiCli:
    """The Pulumi CLI: on PATH, else in ``$PULUMI_HOME/bin`` (default ``~/.pulumi/bin``),
    where the installer puts it. Raises :class:`PulumiCliMissingError` (exit 2) when absent.
    """
    found = shutil.which("pulumi")
    if found:
        return PulumiCli(Path(found))
    home = Path(os.environ.get("PULUMI_HOME", Path.home() / ".pulumi")) / "bin" / "pulumi"
    if home.is_file() and os.access(home, os.X_OK):
        return PulumiCli(home)
    raise PulumiCliMissingError(needed_for)


def _start_problem(exc: OSError) -> str:
    return f"cannot start it ({exc.strerror or exc})"


def _quote(arg: str) -> str:
    return arg if arg and all(c.isalnum() or c in "-_./:=@" for c in arg) else repr(arg)
