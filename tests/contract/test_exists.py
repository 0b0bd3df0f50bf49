"""``exists`` tells whether a store holds faena's data, and creates nothing while it looks."""

from __future__ import annotations

from faena.core.clock import ManualClock
from faena.core.job import NewJob
from tests.contract.conftest import Backend


def test_a_store_exists_once_set_up_and_looking_creates_nothing(
    backend: Backend, clock: ManualClock
) -> None:
    fresh = backend.open(clock)
    try:
        assert fresh.exists() is False
        assert fresh.exists() is False  # looking twice created nothing either
        fresh.setup()
        assert fresh.exists() is True
        fresh.enqueue([NewJob(task="t", queue="q")])
        assert fresh.exists() is True
    finally:
        destroy = getattr(fresh, "destroy", None)
        if callable(destroy):
            destroy()
        fresh.close()
