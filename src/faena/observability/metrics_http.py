"""A tiny HTTP endpoint for one process: ``/metrics``, ``/healthz``, ``/readyz``.

It runs in daemon threads (one per request) next to the worker, never in the job loop, so a
slow scrape cannot delay a job and a busy worker still answers its probes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

_log = logging.getLogger("faena.metrics")

StartResponse = Callable[..., Any]
Environ = dict[str, Any]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr: scrapes every few seconds are noise, not events."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _text(start: StartResponse, status: str, body: str) -> Iterable[bytes]:
    start(status, [("Content-Type", "text/plain; charset=utf-8")])
    return [body.encode()]


def make_app(
    registry: CollectorRegistry, ready: Callable[[], bool] | None = None
) -> Callable[[Environ, StartResponse], Iterable[bytes]]:
    """A WSGI app: ``/metrics`` (the registry), ``/healthz`` (the process answers) and
    ``/readyz`` (200 while ``ready()``, 503 otherwise: the pod leaves the Service)."""
    metrics = make_wsgi_app(registry)

    def app(environ: Environ, start: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == "/metrics":
            return metrics(environ, start)  # type: ignore[no-any-return]
        if path == "/healthz":
            return _text(start, "200 OK", "ok\n")
        if path == "/readyz":
            if ready is None or ready():
                return _text(start, "200 OK", "ready\n")
            return _text(start, "503 Service Unavailable", "not ready\n")
        return _text(start, "404 Not Found", "not found: try /metrics, /healthz or /readyz\n")

    return app


class MetricsServer:
    """The running endpoint: ``.port`` is the port actually bound, ``.close()`` stops it."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.addr = str(server.server_address[0])
        self.port = int(server.server_address[1])

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.addr in ("0.0.0.0", "") else self.addr
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(
    registry: CollectorRegistry,
    port: int,
    addr: str = "127.0.0.1",
    ready: Callable[[], bool] | None = None,
) -> MetricsServer:
    """Serve ``registry`` on ``addr:port`` (0 = any free port) in a daemon thread."""
    server = make_server(
        addr, port, make_app(registry, ready), server_class=_Server, handler_class=_QuietHandler
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="faena-metrics"
    )
    thread.daemon = True
    thread.start()
    metrics_server = MetricsServer(server, thread)
    where = {"addr": metrics_server.addr, "port": metrics_server.port}
    _log.info("metrics endpoint listening", extra={"event": "metrics.listening", **where})
    return metrics_server
