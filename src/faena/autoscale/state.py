"""The autoscaler's state in the store (``Broker.report_autoscaler``), so that every server
replica shows it (``GET /api/v1/autoscaler``, the console's workers page).

:class:`StateReporter` turns the supervisor's latest :class:`~faena.autoscale.autoscaler.Decision`
and its worker count into an :class:`~faena.brokers.protocol.AutoscalerReport`: sent after each
sync, and between syncs when the count of ready workers changes (a worker started or
stopped). It names the rule that held the count back when one did (a behaviour policy, a
stabilization window, min/max replicas, the tolerance). A failing report is logged once
(``autoscale.state_failed``) and never disturbs the scaling.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from collections.abc import Callable

from faena.autoscale.autoscaler import Decision
from faena.autoscale.hpa import FAILED_GET_METRICS
from faena.autoscale.hpa_behavior import TOO_FEW_REPLICAS, TOO_MANY_REPLICAS
from faena.autoscale.spec import HPASpec
from faena.brokers.protocol import AutoscalerMetric, AutoscalerReport

log = logging.getLogger("faena.autoscale")

#: ``reason`` of the record written before the first sync
STARTING = "Starting"
#: records of autoscalers not heard of for this long are deleted when one starts
RETENTION_SECONDS = 86_400.0
#: a record is stale after this many sync periods without a report (and at least 30 s)
STALE_SYNCS = 3


def held_by(decision: Decision, spec: HPASpec, tolerance: float) -> str | None:
    """The rule that kept the count from what the metrics proposed, if one did."""
    if decision.limited_by:
        return decision.limited_by
    wanted = decision.metric_desired
    over = wanted is not None and wanted > spec.max_replicas == decision.desired
    if decision.reason == TOO_MANY_REPLICAS or over:
        return f"maxReplicas {spec.max_replicas}"
    under = wanted is not None and wanted < spec.min_replicas == decision.desired
    if decision.reason == TOO_FEW_REPLICAS or under:
        return f"minReplicas {spec.min_replicas}"
    if decision.reason == FAILED_GET_METRICS:
        return "no metric could be read: the count is kept"
    off_target = any(m.current is not None and m.current != m.target for m in decision.metrics)
    if not decision.rescale and decision.metric_desired == decision.current and off_target:
        return f"tolerance: the metrics are within {tolerance:.0%} of their targets"
    return None


class StateReporter:
    """Sends one autoscaler's record to the store (``send`` is ``broker.report_autoscaler``)."""

    def __init__(
        self,
        send: Callable[[AutoscalerReport], None],
        *,
        name: str,
        spec: HPASpec,
        sync_period: float,
        tolerance: float = 0.1,
    ) -> None:
        self._send = send
        self.spec = spec
        self.tolerance = tolerance
        self.last: AutoscalerReport | None = None
        self.last_scale_at: float | None = None
        self._failing = False
        self._base = AutoscalerReport(
            name=name,
            host=socket.gethostname(),
            pid=os.getpid(),
            desired=spec.min_replicas,
            current=0,
            min_replicas=spec.min_replicas,
            max_replicas=spec.max_replicas,
            reason=STARTING,
            stale_after=max(STALE_SYNCS * sync_period, 30.0),
        )

    def starting(self, desired: int, ready: int) -> None:
        """Before the first sync: the count the supervisor starts with."""
        self._report(dataclasses.replace(self._base, desired=desired, current=ready))

    def synced(self, decision: Decision, ready: int) -> None:
        """After a sync: its decision, and the workers ready now."""
        if decision.rescale:
            self.last_scale_at = decision.at
        metrics = tuple(
            AutoscalerMetric(
                metric=m.metric,
                current=m.current,
                target=m.target,
                proposal=m.proposal,
                error=m.error,
            )
            for m in decision.metrics
        )
        self._report(
            dataclasses.replace(
                self._base,
                desired=decision.desired,
                current=ready,
                reason=decision.reason,
                metric_desired=decision.metric_desired,
                limited_by=held_by(decision, self.spec, self.tolerance),
                metrics=metrics,
                last_scale_at=self.last_scale_at,
            )
        )

    def workers_changed(self, ready: int) -> None:
        """Between syncs: report again if the count of ready workers moved."""
        if self.last is not None and self.last.current != ready:
            self._report(dataclasses.replace(self.last, current=ready))

    def _report(self, report: AutoscalerReport) -> None:
        self.last = report
        try:
            self._send(report)
        except Exception as exc:  # the store is for operators: scaling goes on without it
            if not self._failing:
                self._failing = True
                log.warning(
                    "autoscaler state report failed; scaling is not affected",
                    extra={
                        "event": "autoscale.state_failed",
                        "pool": report.name,
                        "error_type": type(exc).__name__,
                        "error_message": str(exc),
                    },
                )
            return
        self._failing = False
