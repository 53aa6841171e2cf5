"""A moto server whose conditional writes are atomic, as S3 guarantees (test helper).

moto checks ``If-None-Match: *`` and then writes, in a threaded server, without a
lock: two racing requests can both pass the check, which real S3 never allows (one
gets 412 Precondition Failed). Tests of racing pushes need S3's semantics, so this
runs moto's own WSGI app with one lock held around every write that carries
``If-None-Match``; everything else runs concurrently as usual. Run as
``python tests/mlstack/model_store/atomic_moto.py PORT``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

_CONDITIONAL = threading.Lock()


class AtomicConditionalWrites:
    """WSGI middleware: writes with If-None-Match run one at a time, body included."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        conditional = "HTTP_IF_NONE_MATCH" in environ
        if not conditional or environ.get("REQUEST_METHOD") not in ("PUT", "POST"):
            return self.app(environ, start_response)
        with _CONDITIONAL:
            return list(self.app(environ, start_response))


def main(port: int) -> None:
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        "127.0.0.1",
        port,
        AtomicConditionalWrites(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main(int(sys.argv[1]))
