"""Retention on a schedule: the heartbeat thread (through :mod:`faena.worker.registration`)
deletes finished jobs older than ``App(retention=...)``, at most once per interval per worker
(:class:`faena.core.retention.PruneSchedule`). A failing prune is logged once and never
disturbs the heartbeat."""

from __future__ import annotations

import logging

from faena.brokers.protocol import OperatorStore
from faena.core.clock import Clock
from faena.core.retention import PRUNE_BATCH, PruneSchedule

_log = logging.getLogger("faena.worker")


class Retention:
    def __init__(
        self,
        store: OperatorStore,
        keep_seconds: float,
        clock: Clock,
        worker: str,
        schedule: PruneSchedule | None = None,
    ) -> None:
        self._store = store
        self._keep = keep_seconds
        self._clock = clock
        self._worker = worker
        self._schedule = PruneSchedule() if schedule is None else schedule
        self._failing = False

    def tick(self) -> int:
        """Prune if due; how many jobs were deleted (0 if not due or failed). Never raises."""
        now = self._clock.now()
        if not self._schedule.due(now):
            return 0
        try:
            deleted = self._store.prune(now - self._keep, limit=PRUNE_BATCH)
        except Exception as exc:
            if not self._failing:
                self._failing = True
                _log.warning(
                    "pruning finished jobs failed; retrying at the next interval",
                    extra={
                        "event": "worker.retention_failed",
                        "worker": self._worker,
                        "error_type": type(exc).__name__,
                        "error_message": str(exc),
                    },
                )
            return 0
        self._failing = False
        if deleted >= PRUNE_BATCH:
            self._schedule.again()  # more may be due: the next beat prunes the next batch
        if deleted > 0:
            _log.info(
                "finished jobs past their retention deleted",
                extra={
                    "event": "worker.retention_pruned",
                    "worker": self._worker,
                    "count": deleted,
                    "retention_seconds": self._keep,
                },
            )
        return deleted
