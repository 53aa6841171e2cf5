"""Ctrl-C: one SIGINT ends a command promptly with exit 130 and one line, cleaned up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stacks.config import PROJECT_ROOT
from tests.mlstack.interrupt_helpers import (
    assert_clean_exit,
    children_running,
    env_with_tmp,
    interrupt_when,
)

pytestmark = pytest.mark.slow


def _after(seconds: float):
    start = time.monotonic()
    return lambda _process: time.monotonic() - start >= seconds


# A whole `plan dev` takes ~3.7 s on an idle 2-core machine (imports ~1.5 s): 2 s lands in
# the synth; later, the plan may already be writing its result.
@pytest.mark.parametrize("delay", [0.8, 2.0], ids=["while-importing", "during-synth"])
def test_plan_ends_at_once_on_one_sigint(tmp_path: Path, delay: float) -> None:
    out = tmp_path / "plan" / "dev.json"
    result = interrupt_when(
        ["plan", "dev", "--out", str(out)],
        _after(delay),
        cwd=PROJECT_ROOT,
        env=env_with_tmp(tmp_path / "tmp"),
    )
    assert_clean_exit(result)
    assert "SynthError" not in result.stderr
    assert not out.exists()
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.fixture
def silent_endpoint() -> Iterator[tuple[str, threading.Event]]:
    """An S3 endpoint that accepts connections and never answers (a call in flight)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    called = threading.Event()
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)
            called.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", called
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in held:
            conn.close()
        server.close()


def test_a_hanging_s3_call_ends_on_one_sigint(
    tmp_path: Path, silent_endpoint: tuple[str, threading.Event]
) -> None:
    url, called = silent_endpoint
    env = {
        **env_with_tmp(tmp_path / "tmp"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    result = interrupt_when(
        ["model", "list", "--bucket", "mlstack-test-models", "--endpoint-url", url],
        lambda _p: called.is_set(),
        cwd=PROJECT_ROOT,
        env=env,
    )
    assert called.is_set(), "the command never reached the endpoint"
    assert_clean_exit(result)
    assert children_running(str(tmp_path)) == []


_STRAY = """
import subprocess, sys, time
from mlstack import interrupt
interrupt.install()
# Started behind the handler's back, as when SIGINT lands inside Popen before popen()
# has recorded the child.
stray = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print(stray.pid, flush=True)
time.sleep(120)
"""


def test_an_unrecorded_child_is_stopped_too(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _STRAY], stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT
    )
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    parent.send_signal(signal.SIGINT)
    assert parent.wait(timeout=30) == 130
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # reaped by init once its parent is gone
    alive = Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text()
    if alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive


def test_no_child_starts_once_an_interrupt_is_under_way(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlstack import interrupt

    monkeypatch.setitem(interrupt._state, "interrupting", True)
    with pytest.raises(KeyboardInterrupt):
        interrupt.popen(["true"])


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


# The child exits on SIGTERM at once; its own child (the grandchild) keeps writing into a
# directory, as `git worktree add`'s checkout does, unless the signal reaches it too.
_GRANDCHILD = """
import subprocess, sys, time
from mlstack import interrupt
interrupt.install()
writer = (
    "import os, sys, time\\n"
    "while True:\\n"
    "    open(os.path.join(sys.argv[1], str(time.monotonic_ns())), 'w').close()\\n"
    "    time.sleep(0.005)\\n"
)
child_code = (
    "import subprocess, sys, time\\n"
    f"w = subprocess.Popen([sys.executable, '-c', {writer!r}, sys.argv[1]] + sys.argv[2:])\\n"
    "print(w.pid, flush=True)\\n"
    "time.sleep(120)\\n"
)
child = interrupt.popen(
    [sys.executable, "-c", child_code, *sys.argv[1:]], stdout=subprocess.PIPE, text=True
)
print(child.stdout.readline().strip(), flush=True)
time.sleep(120)
"""


def _start_with_grandchild(out: Path, *extra: str) -> tuple[subprocess.Popen[str], int]:
    parent = subprocess.Popen(
        [sys.executable, "-c", _GRANDCHILD, str(out), *extra],
        stdout=subprocess.PIPE,
        text=True,
        cwd=PROJECT_ROOT,
    )
    assert parent.stdout is not None
    return parent, int(parent.stdout.readline())


def test_a_grandchild_is_stopped_before_the_cleanups_run(tmp_path: Path) -> None:
    parent, grandchild = _start_with_grandchild(tmp_path)
    deadline = time.monotonic() + 30
    while not any(tmp_path.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert any(tmp_path.iterdir()), "the grandchild never wrote: nothing tested"
    parent.send_signal(signal.SIGINT)
    assert parent.wait(timeout=30) == 130
    still_running = _running(grandchild)
    if still_running:
        os.kill(grandchild, signal.SIGKILL)
    assert not still_running
    written = sorted(tmp_path.iterdir())
    time.sleep(0.2)
    assert sorted(tmp_path.iterdir()) == written, "something still writes after exit"


def test_a_timed_out_run_kills_the_childs_descendants(tmp_path: Path) -> None:
    from mlstack import interrupt

    pid_file = tmp_path / "grandchild.pid"
    # The pid file appears whole (a rename), long before the timeout.
    script = (
        f"sleep 120 >/dev/null 2>&1 & echo $! > {pid_file}.tmp; mv {pid_file}.tmp {pid_file}; wait"
    )
    with pytest.raises(subprocess.TimeoutExpired):
        interrupt.run(["sh", "-c", script], timeout=5.0)
    grandchild = int(pid_file.read_text())
    still_running = _running(grandchild)
    if still_running:
        os.kill(grandchild, signal.SIGKILL)
    assert not still_running


def test_without_the_handler_a_child_stays_in_the_callers_process_group() -> None:
    # In-process use (no handler): a terminal's Ctrl-C must reach the child directly,
    # even one a worker thread started, as Python's default behaviour expects.
    from mlstack import interrupt

    assert not interrupt.installed()
    child = interrupt.popen(["sleep", "30"])
    try:
        assert os.getpgid(child.pid) == os.getpgid(0)
    finally:
        interrupt.stop_group(child)
        interrupt.release(child)
    assert child.poll() is not None
