"""A TCP proxy in front of a broker that the chaos harness turns bad and heals.

Modes, each until :meth:`Proxy.heal`:

- ``drop``: every connection is closed and new ones are refused (closed at once), as after a
  broker crash or a firewall that rejects;
- ``delay``: every chunk either way waits ``delay`` seconds before it is passed on;
- ``halfopen``: connections stay open but nothing passes either way (bytes are read and
  thrown away) and new ones are accepted and go nowhere: the peer sees no error, only
  silence, as behind a partition that drops packets; at the heal they are closed (as TCP
  keepalive or a retransmission timeout would end them).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class Proxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self.mode = "ok"
        self.delay = 0.0
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="chaos-proxy", daemon=True).start()

    def set(self, mode: str, delay: float = 0.0) -> None:
        with self._lock:
            self.mode, self.delay = mode, delay
            conns = list(self._open) if mode == "drop" else []
            if mode == "drop":
                self._open = []
        for s in conns:
            _close(s)

    def heal(self) -> None:
        with self._lock:
            was, self.mode, self.delay = self.mode, "ok", 0.0
            conns = list(self._open) if was == "halfopen" else []
            if was == "halfopen":
                self._open = []
        for s in conns:
            _close(s)

    def close(self) -> None:
        self.set("drop")
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            if self.mode == "drop":
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                refused = self.mode == "drop"
                if not refused:
                    self._open += [client, upstream]
            if refused:
                _close(client)
                _close(upstream)
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                mode, delay = self.mode, self.delay
                if mode == "halfopen":
                    continue  # silence: read and thrown away
                if mode == "delay" and delay > 0:
                    time.sleep(delay)
                dst.sendall(data)
        _close(src)
        _close(dst)


def _close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()
