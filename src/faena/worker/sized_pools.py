"""The pools a worker counts as sized, whose jobs its adaptive prefetch never holds
(worker/adaptive.py ``pooled``): the app's (``App(pools=...)``) and the ones sized in the
store (``faena pools set``, or another app's), read again every ``REFRESH_SECONDS``.

A named pool's jobs count as pooled anyway; what the store adds is the default pool sized
there without the app knowing, so that its jobs, which may all share a small pool, are not
prefetched (a prefetched job holds its pool's slot while it waits). Every store has a size
for the default pool (``DEFAULT_POOL_SLOTS`` until someone sets another): it counts as
sized once it is not that.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping

from faena.brokers.protocol import PoolStat
from faena.core.pools import DEFAULT_POOL, DEFAULT_POOL_SLOTS
from faena.errors import BrokerError

#: how often the store's pool sizes are read again (a pool sized meanwhile counts from then)
REFRESH_SECONDS = 10.0


class SizedPools:
    def __init__(
        self,
        app_pools: Callable[[], Mapping[str, int]],
        store_pools: Callable[[], list[PoolStat]] | None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        every: float = REFRESH_SECONDS,
    ) -> None:
        """``store_pools``: the store's pools (None: a job source without pools)."""
        self._app = app_pools
        self._read = store_pools
        self._monotonic = monotonic
        self._every = every
        self._next = 0.0  # monotonic time of the next read
        self._store: dict[str, int] = {}

    def refresh(self) -> None:
        """Read the store's pools if ``REFRESH_SECONDS`` passed since the last read (the
        worker calls it before its turns, outside its lock). A failed read keeps what the
        last one said: the broker's trouble is the turn's to report."""
        if self._read is None:
            return
        now = self._monotonic()
        if now < self._next:
            return
        self._next = now + self._every
        with contextlib.suppress(BrokerError):
            self._store = {
                p.pool: p.size
                for p in self._read()
                if p.pool != DEFAULT_POOL or p.size != DEFAULT_POOL_SLOTS
            }

    def __call__(self) -> Mapping[str, int]:
        """The sized pools: the store's as last read, and the app's over them."""
        app = self._app()
        return {**self._store, **app} if self._store else app
