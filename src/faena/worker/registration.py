"""The worker's entry in the broker's worker registry (``Broker.report_worker``).

The heartbeat thread registers the worker when it starts and sends its report again after
every beat (``running``, or ``draining`` once it stops claiming); the worker reports
``stopped`` as it exits. A worker whose reports stop for ``lost_after`` (one lease: three
missed heartbeats) reads as ``lost``. Records of workers gone for a day are pruned when a
worker registers. Each beat also gives :mod:`faena.worker.retention` its turn to prune
finished jobs (``App(retention=...)``, at most once per interval). The registry is for
operators: a failing report is logged once and never disturbs the leases or the jobs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from collections.abc import Callable, Sequence

from faena.brokers.protocol import Broker, WorkerReport
from faena.core.clock import Clock
from faena.version import __version__
from faena.worker.retention import Retention

_log = logging.getLogger("faena.worker")

#: records of workers not seen for this long are deleted when a worker registers
RETENTION_SECONDS = 86_400.0


class Registration:
    def __init__(
        self,
        broker: Broker,
        worker: str,
        queues: Sequence[str],
        concurrency: int,
        lease_seconds: float,
        clock: Clock,
        draining: Callable[[], bool],
        retention: Retention | None = None,
    ) -> None:
        self._retention = retention
        self._broker = broker
        self._clock = clock
        self._draining = draining
        self._failing = False
        self._registered = False
        self.report = WorkerReport(
            id=worker,
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=tuple(queues),
            concurrency=concurrency,
            version=__version__,
            started_at=clock.now(),
            lost_after=float(lease_seconds),
        )

    def beat(self) -> None:
        """Register (the first time) or report the current state."""
        if not self._registered:
            self._registered = self._send("running")
            if self._registered:
                self._quietly(
                    lambda: self._broker.prune_workers(self._clock.now() - RETENTION_SECONDS)
                )
        else:
            self._send("draining" if self._draining() else "running")
        if self._retention is not None:
            self._retention.tick()  # at most once per interval; never raises

    def stopped(self) -> None:
        self._send("stopped")

    def _send(self, state: str) -> bool:
        report = dataclasses.replace(self.report, state=state)
        return self._quietly(lambda: self._broker.report_worker(report))

    def _quietly(self, fn: Callable[[], object]) -> bool:
        try:
            fn()
        except Exception as exc:
            if not self._failing:
                self._failing = True
                _log.warning(
                    "worker registry report failed; the jobs are not affected",
                    extra={
                        "event": "worker.registry_failed",
                        "worker": self.report.id,
                        "error_type": type(exc).__name__,
                        "error_message": str(exc),
                    },
                )
            return False
        self._failing = False
        return True
