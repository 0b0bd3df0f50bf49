"""A worker on a thread of the test process (the unit tests' way to run one)."""

from __future__ import annotations

import threading
from typing import Any

import faena
from faena.worker import Worker


def run(app: faena.App, **options: Any) -> tuple[Worker, threading.Thread]:
    """A worker for ``app`` on its own thread (no signal handlers), started."""
    w = Worker(app, install_signals=False, **options)
    t = threading.Thread(target=w.run, daemon=True)
    t.start()
    return w, t
