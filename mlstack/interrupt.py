"""Ctrl-C: one SIGINT ends every ``mlstack`` command promptly, cleanly, with exit 130.

Python turns SIGINT into ``KeyboardInterrupt`` wherever the main thread happens to be:
inside the Pulumi mocks' asyncio loop (tracebacks of cancelled tasks, a false
``SynthError``), or waiting for worker threads that keep running (a hang until a
second Ctrl-C). Instead, :func:`install` sets a handler that

1. stops the child processes the tools started (:func:`run`, :func:`popen`) and
   everything they started in turn: each child leads a process group of its own
   (:func:`popen`), the group gets SIGTERM, then SIGKILL after a grace period, and the
   handler waits until no member is left running (``git worktree add`` checks files out in a
   child of its own, which would otherwise go on writing into a directory the
   cleanups are removing);
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
_group_leaders: set[int] = set()
"""Pids of recorded children that lead a process group of their own."""
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


def owned_mkdtemp(prefix: str) -> Path:
    """``tempfile.mkdtemp`` named ``<prefix><pid>-<random>``: the owner's pid in the
    name lets a later run tell a leftover of a killed run (:func:`sweep_stale`)."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (in this pid namespace; a zombie does not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: kill(0) said it exists
    fields = stat.rpartition(")")[2].split()
    return not fields or fields[0] not in "ZX"


def sweep_stale(
    prefix: str, remove: Callable[[Path], None] | None = None, where: Path | None = None
) -> list[Path]:
    """Remove what killed runs left: entries ``<prefix><pid>-*`` of the temp directory
    (or ``where``) whose pid no longer runs. A SIGKILL (or a second Ctrl-C) cannot run
    cleanups, so every run sweeps at the start of the same work. ``remove`` defaults to
    a recursive delete; returns the entries removed."""
    import tempfile

    directory = where or Path(tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(directory.glob(f"{prefix}*"))
    except OSError:
        return removed
    for entry in entries:
        owner, dash, _ = entry.name[len(prefix) :].partition("-")
        if not dash or not owner.isdigit() or pid_alive(int(owner)):
            continue
        with suppress(OSError):
            (remove or _remove_tree)(entry)
            removed.append(entry)
    return removed


def _remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def temporary_directory(prefix: str) -> Iterator[Path]:
    """A temp directory removed on exit and on interrupt; leftovers of killed runs with
    the same prefix are swept first."""
    sweep_stale(prefix)
    path = owned_mkdtemp(prefix)
    try:
        with cleanup(lambda: shutil.rmtree(path, ignore_errors=True)):
            yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def popen(command: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen`` whose child, and whatever it starts, is stopped on interrupt
    (forget it with :func:`release` once waited for).

    Where the handler is installed, the child leads a new process group, so the handler
    reaches its descendants; a terminal's Ctrl-C then reaches only this process, whose
    handler passes it on, and stdin defaults to ``/dev/null`` (a member of a background
    group that reads the terminal would be stopped). Where it is not (``mlstack.cli.main``
    called in-process), the child stays in the caller's group, so a terminal's Ctrl-C
    reaches it as Python's default behaviour expects, even when a worker thread started
    it. Started and recorded under the lock the handler takes, so a worker thread never
    starts a child the handler misses; none is started once an interrupt is under way."""
    own_group = _state["installed"] and "process_group" not in kwargs
    if own_group:
        kwargs["process_group"] = 0
        kwargs.setdefault("stdin", subprocess.DEVNULL)
    with _lock:
        if _state["interrupting"]:
            raise KeyboardInterrupt
        child = subprocess.Popen(command, **kwargs)
        _children[child.pid] = child
        if own_group:
            _group_leaders.add(child.pid)
    return child


def release(child: subprocess.Popen[Any]) -> None:
    with _lock:
        _children.pop(child.pid, None)
        _group_leaders.discard(child.pid)


def run(
    command: Sequence[str], *, timeout: float | None = None, **kwargs: Any
) -> subprocess.CompletedProcess[Any]:
    """``subprocess.run(..., capture_output=True)`` whose child is stopped on interrupt,
    and killed with its descendants on a timeout or an exception (a ``KeyboardInterrupt``
    where the handler is not installed)."""
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    child = popen(command, **kwargs)
    try:
        try:
            out, err = child.communicate(timeout=timeout)
        except BaseException:
            if child.poll() is None:
                stop_group(child, grace_s=0)
                child.communicate()
            raise
        return subprocess.CompletedProcess(command, child.returncode, out, err)
    finally:
        release(child)


def _processes() -> Iterator[tuple[int, str, int, int]]:
    """``(pid, state, parent pid, process group)`` of every process, from Linux
    ``/proc``; nothing elsewhere."""
    with suppress(OSError):
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid pgrp ...: comm may hold spaces or parentheses.
            fields = stat.rpartition(")")[2].split()
            if len(fields) > 2:
                yield int(entry.name), fields[0], int(fields[1]), int(fields[2])


def _have_proc() -> bool:
    return Path("/proc/self/stat").exists()


def _live(pids: set[int]) -> bool:
    """Whether any of ``pids`` still runs (a zombie does not)."""
    return any(pid in pids and state not in "ZX" for pid, state, _, _ in _processes())


def _tree(pid: int) -> set[int]:
    """``pid`` and its live descendants, from ``/proc`` (just ``pid`` without it)."""
    children: dict[int, list[int]] = {}
    for found, state, parent, _ in _processes():
        if state not in "ZX":
            children.setdefault(parent, []).append(found)
    tree, todo = {pid}, [pid]
    while todo:
        for kid in children.get(todo.pop(), []):
            if kid not in tree:
                tree.add(kid)
                todo.append(kid)
    return tree


class _Target:
    """One process to stop: its whole process group when it leads one (``group``), else
    it and the descendants it had when the stop began. ``child``: its ``Popen``, when
    there is one (reaped while waiting; without ``/proc`` the only way to see it end)."""

    def __init__(
        self, pid: int, *, group: bool, child: subprocess.Popen[Any] | None = None
    ) -> None:
        self.pid, self.group, self.child = pid, group, child
        self.pids = set() if group else _tree(pid)

    @classmethod
    def of(cls, child: subprocess.Popen[Any]) -> _Target:
        return cls(child.pid, group=child.pid in _group_leaders, child=child)

    def signal(self, signum: int) -> None:
        if self.group:
            with suppress(OSError):
                os.killpg(self.pid, signum)
            return
        for pid in self.pids:
            with suppress(OSError):
                os.kill(pid, signum)

    def running(self) -> bool:
        ended = self.child is not None and self.child.poll() is not None
        if _have_proc():
            if self.group:
                return _live({pid for pid, _, _, group in _processes() if group == self.pid})
            return _live(self.pids)
        if not ended:
            return self.child is not None
        if not self.group:
            return False
        try:
            os.killpg(self.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True


def stop_group(child: subprocess.Popen[Any], *, grace_s: float = GRACE_S) -> None:
    """SIGTERM ``child`` and its descendants (its process group, when it leads one),
    SIGKILL them after ``grace_s`` (at once with 0), and return once none runs (or, should
    one survive SIGKILL, after another grace)."""
    stop_groups([child], grace_s=grace_s)


def stop_groups(children: Sequence[subprocess.Popen[Any]], *, grace_s: float = GRACE_S) -> None:
    """:func:`stop_group` for several children at once: one grace period for all."""
    _stop([_Target.of(child) for child in children], grace_s)


def _stop(targets: list[_Target], grace_s: float) -> None:
    for target in targets:
        target.signal(signal.SIGTERM if grace_s > 0 else signal.SIGKILL)
    for signum in (signal.SIGKILL, None):
        deadline = time.monotonic() + max(grace_s, 0.5)
        left = list(targets)
        while left and time.monotonic() < deadline:
            left = [target for target in left if target.running()]
            if left:
                time.sleep(0.02)
        if not left or signum is None:
            break
        for target in left:
            target.signal(signum)
    for target in targets:
        if target.group:  # a member forked as the scan ran would have been missed
            target.signal(signal.SIGKILL)


def _own_children() -> list[int]:
    """Process ids whose parent is this process (Linux ``/proc``; empty elsewhere)."""
    me = os.getpid()
    return [pid for pid, _, parent, _ in _processes() if parent == me]


def _stop_strays(pids: list[int]) -> None:
    """Stop, as recorded children are stopped, children nobody recorded: one started by
    the main thread as the signal arrived, before :func:`popen` recorded it."""
    _stop([_Target(pid, group=False) for pid in pids], GRACE_S)


def _stop_children() -> None:
    with _lock:
        _state["interrupting"] = True  # popen starts nothing from here on
        children = list(_children.values())
    stop_groups(children)
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
        # RuntimeError: the signal landed inside a write to stdout ("reentrant call inside
        # <_io.BufferedWriter>"); the exit below must still happen.
        with suppress(OSError, ValueError, RuntimeError):
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
