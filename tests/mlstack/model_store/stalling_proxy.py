"""An HTTP proxy in front of the moto server that holds chosen requests unanswered.

Lets a test catch ``mlstack model push`` or ``fetch`` mid-transfer (the request is
observably in flight: :attr:`StallingProxy.stalled` is set) and interrupt it there,
instead of racing a sleep against a fast local server.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

Stall = Callable[[str, str], bool]
"""(method, path with query) -> hold this request."""


@dataclass
class StallingProxy:
    url: str
    stalled: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    stall: Stall | None = None


@contextmanager
def stalling_proxy(upstream: str, stall: Stall) -> Iterator[StallingProxy]:
    """Forward every request to ``upstream``; hold those ``stall`` picks until the
    context ends (or ``proxy.stall`` is set to None)."""
    target = urlsplit(upstream)
    state = StallingProxy(url="", stall=stall)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return None

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            picked = state.stall
            if picked is not None and picked(self.command, self.path):
                state.stalled.set()
                state.release.wait()
                self.close_connection = True
                return
            conn = http.client.HTTPConnection(target.hostname or "", target.port, timeout=60)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = target.netloc
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            finally:
                conn.close()
            self.send_response(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
