"""Run the ``mlstack`` console script in a subprocess and Ctrl-C it at a chosen moment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MLSTACK = Path(sys.executable).with_name("mlstack")
PROMPT_S = 120.0
"""A hang guard, not a speed target: one SIGINT must end the process without a second
one. Removing a worktree on a machine shared by many jobs can take tens of seconds."""


@dataclass(frozen=True)
class Interrupted:
    code: int
    stdout: str
    stderr: str
    seconds_to_exit: float
    alive_at_signal: bool


def interrupt_when(
    args: list[str],
    ready: Callable[[subprocess.Popen[str]], bool],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout: float = 240.0,
) -> Interrupted:
    """Start ``mlstack args``, wait until its Ctrl-C handler is installed and
    ``ready(process)``, send one SIGINT, wait. (Before the handler, Python's default
    SIGINT handling applies: on a loaded machine a fixed delay may still fall there.)"""
    process = subprocess.Popen(
        [str(MLSTACK), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while not (handles_sigterm(process.pid) and ready(process)):
            if process.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        alive = process.poll() is None
        sent = time.monotonic()
        if alive:
            process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=PROMPT_S + 60)
        return Interrupted(process.returncode, out, err, time.monotonic() - sent, alive)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def handles_sigterm(pid: int) -> bool:
    """Whether ``pid`` catches SIGTERM (``SigCgt`` in ``/proc/<pid>/status``): Python
    does not by default, ``mlstack.interrupt.install`` does."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def children_running(marker: str) -> list[str]:
    """Command lines of processes mentioning ``marker`` (e.g. a private temp dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline:
            found.append(cmdline)
    return found


def env_with_tmp(tmp: Path) -> dict[str, str]:
    """The environment with a private TMPDIR (to see what the process leaves behind)."""
    tmp.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "TMPDIR": str(tmp), "PYTHONDONTWRITEBYTECODE": "1"}


def assert_clean_exit(result: Interrupted) -> None:
    """Exit 130 after one SIGINT (no hang), one line on stderr, no traceback."""
    assert result.alive_at_signal, "the command finished before the signal: nothing tested"
    assert result.code == 130, (result.code, result.stderr[-2000:])
    assert result.seconds_to_exit < PROMPT_S
    assert result.stderr.strip().splitlines() == ["interrupted"], result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
