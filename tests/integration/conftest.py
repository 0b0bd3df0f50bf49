"""Shared by the integration tests: workers run on a thread of the test process."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from faena.worker import Worker


@pytest.fixture
def stop() -> Iterator[list[tuple[Worker, threading.Thread]]]:
    """Workers appended here are stopped at once (no grace) when the test ends, and their
    apps closed (a broker's sockets left to the GC warn in whatever test runs then)."""
    started: list[tuple[Worker, threading.Thread]] = []
    yield started
    for w, t in started:
        w.stop(graceful=False)
        t.join(10)
    for w, _t in started:
        w.app.close()
