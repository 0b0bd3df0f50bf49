"""Shared test settings: services a test needs skip locally and fail under CI=true."""

from __future__ import annotations

import contextlib
import os
import socket

import pytest

#: fixtures shared by several test folders
pytest_plugins = ["tests.redis_server"]

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_URL = os.environ.get("FAENA_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("FAENA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def sockets_open() -> int:
    """How many sockets this process holds (Linux's /proc/self/fd); skips elsewhere, and
    fails under CI=true (CI runs on Linux)."""
    need(os.path.isdir("/proc/self/fd"), "no /proc/self/fd to count this process's sockets with")
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # the listing's own, closed since
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def need(condition: bool, reason: str) -> None:
    """Skip when a service is missing; under CI=true, fail instead."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {reason}: .ci/run must provide it")
    pytest.skip(reason)
