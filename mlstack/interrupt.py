"""Ctrl-C: one SIGINT ends every ``mlstack`` command promptly, cleanly, with exit 130.

Python turns SIGINT into ``KeyboardInterrupt`` wherever the main thread happens to be:
inside the Pulumi mocks' asyncio loop (tracebacks of cancelled tasks, a false
``SynthError``), or waiting for worker threads that keep running (a hang until a
second Ctrl-C). Instead, :func:`install` sets a handler that

1. stops the child processes the tools started (:func:`run`, :func:`popen`):
   SIGTERM, then SIGKILL after a grace period;
2. runs the registered cleanups, newest first (:func:`cleanup`): temporary git
   worktrees, temp directories, partly written files;
3. prints one line, ``interrupted``, and leaves with exit code 130 at once
   (``os._exit``: no thread, atexit hook or event loop can hold the process).

A second SIGINT while cleaning up leaves immediately. Library code registers what it
must undo; the handler is installed only by the console entry point, so code calling
``mlstack.cli.main`` in-process (tests) keeps Python's default behaviour.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

EXIT_CODE = 130
"""128 + SIGINT, what shells report for a command ended by Ctrl-C."""
GRACE_S = 2.0

_lock = threading.RLock()
_cleanups: dict[int, Callable[[], None]] = {}
_children: dict[int, subprocess.Popen[Any]] = {}
_ids = itertools.count()
_state = {"installed": False, "interrupting": False}


@contextmanager
def cleanup(action: Callable[[], None]) -> Iterator[None]:
    """Run ``action`` if the process is interrupted inside the block (not otherwise)."""
    key = next(_ids)
    with _lock:
        _cleanups[key] = action
    try:
        yield
    finally:
        with _lock:
            _cleanups.pop(key, None)


@contextmanager
def temporary_directory(prefix: str) -> Iterator[Path]:
    """A temp directory removed on exit and on interrupt."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        with cleanup(lambda: shutil.rmtree(path, ignore_errors=True)):
            yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def popen(command: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen`` whose child is stopped on interrupt (forget it with
    :func:`release` once waited for). Started and recorded under the lock the handler
    takes, so a worker thread never starts a child the handler misses; none is started
    once an interrupt is under way."""
    with _lock:
        if _state["interrupting"]:
            raise KeyboardInterrupt
        child = subprocess.Popen(command, **kwargs)
        _children[child.pid] = child
    return child


def release(child: subprocess.Popen[Any]) -> None:
    with _lock:
        _children.pop(child.pid, None)


def run(
    command: Sequence[str], *, timeout: float | None = None, **kwargs: Any
) -> subprocess.CompletedProcess[Any]:
    """``subprocess.run(..., capture_output=True)`` whose child is stopped on interrupt."""
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    child = popen(command, **kwargs)
    try:
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            raise
        return subprocess.CompletedProcess(command, child.returncode, out, err)
    finally:
        release(child)


def _own_children() -> list[int]:
    """Process ids whose parent is this process (Linux ``/proc``; empty elsewhere)."""
    found = []
    me = os.getpid()
    with suppress(OSError):
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may hold spaces or parentheses.
            fields = stat.rpartition(")")[2].split()
            if len(fields) > 1 and fields[1] == str(me):
                found.append(int(entry.name))
    return found


def _stop_strays(pids: list[int]) -> None:
    """SIGTERM, then SIGKILL after the grace period, children nobody recorded: one
    started by the main thread as the signal arrived, before :func:`popen` recorded it."""
    for pid in pids:
        with suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    left = set(pids)
    while left and time.monotonic() < deadline:
        for pid in list(left):
            with suppress(ChildProcessError, OSError):
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done == 0:
                    continue
            left.discard(pid)
        time.sleep(0.02)
    for pid in left:
        with suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _stop_children() -> None:
    with _lock:
        _state["interrupting"] = True  # popen starts nothing from here on
        children = list(_children.values())
    for child in children:
        if child.poll() is None:
            with suppress(OSError):
                child.terminate()
    for child in children:
        try:
            child.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            with suppress(OSError):
                child.kill()
        except OSError:
            pass
    known = {child.pid for child in children}
    _stop_strays([pid for pid in _own_children() if pid not in known])


def _run_cleanups() -> None:
    with _lock:
        actions = [action for _, action in sorted(_cleanups.items(), reverse=True)]
    for action in actions:
        with suppress(BaseException):
            action()


def _handler(signum: int, frame: Any) -> None:
    del frame
    if _state["interrupting"]:
        os._exit(EXIT_CODE)
    _state["interrupting"] = True
    try:
        _stop_children()
        _run_cleanups()
    finally:
        with suppress(OSError, ValueError):
            sys.stdout.flush()
        with suppress(OSError):
            os.write(2, b"interrupted\n")
        os._exit(EXIT_CODE if signum == signal.SIGINT else 128 + signum)


def install() -> None:
    """Handle SIGINT (and SIGTERM) as described above; main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    _state["installed"] = True


def installed() -> bool:
    return _state["installed"]
