"""Wake-ups over Redis pub/sub: scripts ``PUBLISH`` a queue name on ``{prefix}:wake`` whenever
work may have become runnable; a daemon thread listens and writes a byte to a pipe that the
worker waits on with ``select``. After a lost connection the thread subscribes again (with
backoff) and wakes the worker once, in case it missed something while disconnected.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import RedisError

_LISTEN_TIMEOUT = 1.0  # seconds between checks of the stop flag while idle
_BACKOFF_CAP = 2.0


class RedisWaker:
    def __init__(self, connect: Callable[[], Any], channel: str, queues: Sequence[str]) -> None:
        self._connect = connect
        self._channel = channel
        self._queues = frozenset(queues)
        self._stop = threading.Event()
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        # Subscribe before returning: an enqueue right after waker() must not be missed.
        try:
            self._pubsub: Any = self._subscribe()
        except BaseException:
            os.close(self._r)
            os.close(self._w)
            raise
        self._thread = threading.Thread(
            target=self._run, name=f"faena-redis-waker:{channel}", daemon=True
        )
        self._thread.start()

    def fileno(self) -> int:
        return self._r

    def drain(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._r, 4096):
                pass

    def close(self) -> None:
        """Stop listening; the thread closes its connection and the pipe on its way out."""
        self._stop.set()

    # the listening thread ---------------------------------------------------------------
    def _subscribe(self) -> Any:
        pubsub = self._connect().pubsub()
        try:
            pubsub.subscribe(self._channel)
            # Wait for the server's confirmation, so the subscription is in force.
            for _ in range(50):
                message = pubsub.get_message(timeout=0.1)
                if message is not None and message.get("type") == "subscribe":
                    return pubsub
            raise RedisError(f"no confirmation of SUBSCRIBE {self._channel} within 5 s")
        except BaseException:
            pubsub.close()
            raise

    def _poke(self) -> None:
        with contextlib.suppress(OSError):  # already readable
            os.write(self._w, b"\x01")

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    message = self._pubsub.get_message(timeout=_LISTEN_TIMEOUT)
                except (RedisError, OSError, ValueError, AttributeError):
                    self._resubscribe()
                    continue
                if message is not None and message.get("type") == "message":
                    data = message.get("data")
                    if not self._queues or data in self._queues:
                        self._poke()
        finally:
            with contextlib.suppress(Exception):
                self._pubsub.close()
            for fd in (self._r, self._w):
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _resubscribe(self) -> None:
        with contextlib.suppress(Exception):
            self._pubsub.close()
        delay = 0.02
        while not self._stop.wait(delay):
            try:
                self._pubsub = self._subscribe()
            except (RedisError, OSError):
                delay = min(delay * 2, _BACKOFF_CAP)
                continue
            self._poke()  # something may have been published while we were away
            return
