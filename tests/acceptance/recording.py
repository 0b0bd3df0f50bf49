"""Jobs of the acceptance apps record their own start and end, for overlap checks."""

from __future__ import annotations

import os
import time

import faena


def record(kind: str, path: str) -> None:
    """Append ``kind job_id attempt pid time`` to ``path`` in one small O_APPEND write, which
    is atomic between processes."""
    job = faena.current_job()
    assert job is not None
    line = f"{kind} {job.id} {job.attempt} {os.getpid()} {time.time():.6f}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
