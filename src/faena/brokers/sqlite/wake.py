"""Cross-process wake-ups for the SQLite broker, without polling.

Each waiting worker binds a Unix datagram socket in a folder derived from the database path;
whoever makes work runnable sends one byte to every socket there. A socket whose owner died
refuses the datagram and is removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import tempfile
import threading
from pathlib import Path


def wake_dir(db_path: str) -> Path:
    digest = hashlib.sha256(os.path.realpath(db_path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"faena-wake-{digest}"


class SocketWaker:
    """A bound datagram socket; readable when someone signalled new work."""

    _counter = 0
    _lock = threading.Lock()

    def __init__(self, directory: Path) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with SocketWaker._lock:
            SocketWaker._counter += 1
            n = SocketWaker._counter
        self.path = directory / f"{os.getpid()}-{n}.sock"
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(self.path))
        self._sock.setblocking(False)

    def fileno(self) -> int:
        return self._sock.fileno()

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while True:
                self._sock.recv(64)

    def close(self) -> None:
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class Notifier:
    """Sends wake-ups to every waker of one database; caches the folder listing. Its socket
    is made on the first wake-up there is a waker for (a producer that never enqueues holds
    none) and closed by :meth:`close`."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._mtime_ns = -1
        self._targets: list[str] = []
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def notify(self) -> None:
        with self._lock:
            try:
                mtime = os.stat(self._dir).st_mtime_ns
            except FileNotFoundError:
                return
            if mtime != self._mtime_ns:
                self._mtime_ns = mtime
                self._targets = [str(p) for p in self._dir.glob("*.sock")]
            if not self._targets:
                return
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)
            sock = self._sock
            for target in list(self._targets):
                try:
                    sock.sendto(b"\x01", target)
                except BlockingIOError:
                    pass  # its buffer is full: it has wake-ups pending anyway
                except (ConnectionRefusedError, FileNotFoundError):
                    with contextlib.suppress(OSError):
                        os.unlink(target)  # the worker that bound it is gone
                except OSError:
                    pass

    def close(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
