"""A real moto server on 127.0.0.1 (free port) in a child process, stopped by its PID.

Used by ``tests/conftest.py`` (session fixture) and ``benchmarks/model_push_bench.py``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class MotoServerError(RuntimeError):
    """The moto server did not come up."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def moto_server(
    start_timeout_s: float = START_TIMEOUT_S, python: str = sys.executable
) -> Iterator[str]:
    """Start ``python -m moto.server``; yield its endpoint URL; stop it by PID on exit."""
    port = free_port()
    process = subprocess.Popen(
        [python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
                break
            except OSError:
                if process.poll() is not None:
                    raise MotoServerError(
                        f"moto server exited with {process.returncode} before answering"
                    ) from None
                if time.monotonic() > deadline:
                    raise MotoServerError(
                        f"moto server did not answer on {url} within {start_timeout_s:g} s"
                    ) from None
                time.sleep(0.1)
        yield url
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server by its PID, SIGKILL it if it does not exit in time."""
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


def reset(url: str, timeout_s: float = 30.0) -> None:
    """Empty every moto backend (buckets, objects, ...)."""
    request = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=timeout_s)
