"""The heartbeat: renews leases from its own thread, independent of the jobs' code.

It also reaps leases that other (dead) workers let expire, and passes on cancel requests.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from faena.brokers.protocol import HeartbeatResult, Reaped, WorkerSource
from faena.core.clock import SYSTEM_CLOCK, Clock
from faena.core.job import Lease
from faena.core.lease import heartbeat_interval
from faena.errors import BrokerError
from faena.worker.outage import Outage
from faena.worker.registration import Registration

_log = logging.getLogger("faena.worker")


class Heartbeat:
    def __init__(
        self,
        broker: WorkerSource,
        worker: str,
        lease_seconds: float,
        leases: Callable[[], list[Lease]],
        on_result: Callable[[HeartbeatResult, list[Lease], float], None],
        on_reaped: Callable[[list[Reaped]], None],
        outage: Outage | None = None,
        clock: Clock = SYSTEM_CLOCK,
        registration: Registration | None = None,
    ) -> None:
        self._broker = broker
        self._worker = worker
        self._lease_seconds = lease_seconds
        self._leases = leases
        self._on_result = on_result
        self._on_reaped = on_reaped
        self._outage = outage
        self._clock = clock
        self._registration = registration
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="faena-heartbeat", daemon=True)
        self.beats = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        interval = heartbeat_interval(self._lease_seconds)
        if self._registration is not None:
            self._registration.beat()  # registers the worker (never raises)
        while not self._stop.wait(interval):
            try:
                self.beat()
            except Exception as exc:
                if self._outage is not None and isinstance(exc, BrokerError):
                    self._outage.failed(exc)  # logged once per outage, not once per beat
                    continue
                _log.warning(
                    "heartbeat failed; retrying at the next interval",
                    extra={
                        "event": "worker.heartbeat_failed",
                        "worker": self._worker,
                        "error_type": type(exc).__name__,
                        "error_message": str(exc),
                    },
                )

    def beat(self) -> None:
        leases = self._leases()
        if leases:
            at = self._clock.now()  # the broker's deadlines run from here at least
            result = self._broker.heartbeat(self._worker, leases, self._lease_seconds)
            self._on_result(result, leases, at)
        self.beats += 1
        reaped = self._broker.reap()
        if self._outage is not None:
            self._outage.succeeded()
        if reaped:
            self._on_reaped(reaped)
        if self._registration is not None:
            self._registration.beat()  # after the leases: it never delays their renewal
