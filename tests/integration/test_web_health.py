"""``/readyz``'s probe: one thread of its own, one probe in flight however many ask."""

from __future__ import annotations

import asyncio
import threading

import pytest

from faena.web.health import Readiness


def test_a_stuck_probe_is_shared_and_times_out_then_a_fresh_one_answers() -> None:
    release = threading.Event()
    calls: list[str] = []

    def probe() -> None:
        calls.append(threading.current_thread().name)
        release.wait(30)

    readiness = Readiness(probe, timeout=0.2)

    async def ask(n: int) -> list[BaseException | None]:
        results = await asyncio.gather(
            *(readiness.check() for _ in range(n)), return_exceptions=True
        )
        return [r if isinstance(r, BaseException) else None for r in results]

    try:
        failures = asyncio.run(ask(10))
        assert all(isinstance(f, TimeoutError) for f in failures)
        assert "did not answer within 0.2 s" in str(failures[0])
        assert len(calls) == 1  # ten requests, one probe: a hung broker costs one thread
        assert calls[0].startswith("faena-readyz")
        release.set()
        assert asyncio.run(ask(1)) == [None]
        assert len(calls) <= 2
    finally:
        release.set()
        readiness.close()


def test_the_probe_error_is_raised() -> None:
    def probe() -> None:
        raise ConnectionError("broker down")

    readiness = Readiness(probe, timeout=5)
    with pytest.raises(ConnectionError, match="broker down"):
        asyncio.run(readiness.check())
    readiness.close()
