"""Running the ASGI app of ``faena server`` under uvicorn: listen first, then say so.

The socket is bound before anything is logged: a taken port is a clear error naming the
address (exit code 2, as for a bad option), never a ``server.started`` line followed by
uvicorn's exit code 3. ``server.started`` is logged once uvicorn accepts connections;
SIGTERM (or SIGINT) logs ``server.stopping``, open requests get ``grace_seconds`` to end,
then ``server.stopped`` is logged and the process exits 0.
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
import sys
from types import FrameType

import click
import uvicorn
from starlette.types import ASGIApp

_log = logging.getLogger("faena.server")
EXIT_STOPPED = 0
#: a port that cannot be bound is a configuration error, like a bad option
EXIT_CANNOT_LISTEN = 2
BACKLOG = 2048


class CannotListen(click.ClickException):
    exit_code = EXIT_CANNOT_LISTEN


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening; :class:`CannotListen` if it cannot be."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise CannotListen(
            f"faena server cannot listen on {host}:{port}: {exc}; give --host an address of "
            f"this machine (e.g. 127.0.0.1 or 0.0.0.0)"
        ) from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            hint = (
                f"port {port} is already in use by another process; stop it, or start "
                f"faena server with another --port (or FAENA_PORT)"
            )
        elif exc.errno == errno.EACCES:
            hint = f"port {port} needs privileges; use a port above 1023"
        else:
            hint = "give --host an address of this machine and a free --port"
        _log.error(
            f"faena server cannot listen on {host}:{port}: {exc.strerror or exc}",
            extra={"event": "server.failed", "host": host, "port": port, "error": str(exc)},
        )
        raise CannotListen(
            f"faena server cannot listen on {host}:{port}: {exc.strerror or exc}; {hint}"
        ) from exc
    sock.set_inheritable(True)
    return sock


class Server(uvicorn.Server):
    """uvicorn's server, logging faena's lifecycle events."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and not self.should_exit:
            host, port = self.config.host, self.config.port
            _log.info(
                f"faena server on http://{host}:{port} (Camunda clients: base URL "
                f"http://{host}:{port}/engine-rest)",
                extra={"event": "server.started", "host": host, "port": port},
            )

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        signals = [signal.Signals(s).name for s in self._captured_signals]
        _log.info(
            "faena server stopping: no new connections, open requests may end",
            extra={
                "event": "server.stopping",
                "signal": signals[0] if signals else None,
                "open_connections": len(self.server_state.connections),
                "grace_seconds": self.config.timeout_graceful_shutdown,
            },
        )
        await super().shutdown(sockets)
        _log.info("faena server stopped", extra={"event": "server.stopped"})


def _stopped(sig: int, frame: FrameType | None) -> None:
    """uvicorn raises the signal it caught again once it is done: then exit 0."""
    sys.exit(EXIT_STOPPED)


def serve(asgi: ASGIApp, host: str, port: int, *, grace_seconds: float) -> None:
    sock = listen(host, port)
    config = uvicorn.Config(
        asgi,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(grace_seconds),
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stopped)
    Server(config).run(sockets=[sock])
