"""The local supervisor's decisions, on a ManualClock: no process, no sleeping.

Each expected value is derived by hand from the HPA rules (docs/hpa-spec.md sections 3, 7):
the supervisor must decide exactly what the cluster's HPA (and ``faena simulate``) would.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence

import pytest
from tests.autoscale_fakes import BEHAVIOR, QUEUE_EXTERNAL, T0, hpa, make_supervisor

from faena.autoscale.autoscaler import Autoscaler, Decision
from faena.autoscale.hpa import ControllerConfig
from faena.autoscale.hpa_calc import PodSample
from faena.autoscale.signals import (
    DEFAULT_REQUESTS,
    Requests,
    Signals,
    WorkerView,
    pitfalls,
    queue_depths,
    queue_series_milli,
    watched_queues,
)
from faena.autoscale.spec import LabelSelector
from faena.autoscale.supervisor import WorkerCommand
from faena.brokers.protocol import QueueStat
from faena.core.clock import ManualClock

LONG_AGO = T0 - 3600

CPU_50 = """\
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
"""


def ready_workers(n: int) -> tuple[WorkerView, ...]:
    return tuple(WorkerView(f"w-{i}", LONG_AGO, LONG_AGO) for i in range(n))


def run_queue(scaler: Autoscaler, clock: ManualClock, queue: int) -> Decision:
    clock.advance(15)
    now = clock.now()
    signals = Signals(now, ready_workers(scaler.replicas), {"etl": queue, "other": 999})
    return scaler.decide(signals, now)


def test_scale_up_policies_then_stabilized_policy_limited_scale_down() -> None:
    clock = ManualClock(T0)
    scaler = Autoscaler(hpa(QUEUE_EXTERNAL, BEHAVIOR), replicas=1)
    # (queue, desired, reason, what held it back); ceil(100 / 5) = 20 wanted throughout the
    # burst, ceil(0 / 5) = 0 after it
    expected: Sequence[tuple[int, int, str, str | None]] = [
        # t=15: from 1, Pods 1+2=3 vs Percent ceil(1*2)=2 -> Max picks 3
        (100, 3, "ScaleUpLimit", "scaleUp policy Pods 2 per 30s"),
        # t=30: the +2 of t=15 is inside both 30 s periods: period start 1 -> still 3
        (100, 3, "ScaleUpLimit", "scaleUp policy Pods 2 per 30s"),
        # t=45: that event is 30 s old (not inside): start 3 -> Pods 5, Percent 6 -> 6
        (100, 6, "ScaleUpLimit", "scaleUp policy Percent 100% per 30s"),
        (100, 6, "ScaleUpLimit", "scaleUp policy Percent 100% per 30s"),
        # t=75: start 6 -> 12, above maxReplicas 10
        (100, 10, "TooManyReplicas", None),
        # t=90..120: the queue is empty but proposals of 20 (t=30..75) are inside the 60 s
        # scale-down window: stay
        (0, 10, "DesiredWithinRange", "scaleDown stabilization window 60s"),
        (0, 10, "DesiredWithinRange", "scaleDown stabilization window 60s"),
        (0, 10, "DesiredWithinRange", "scaleDown stabilization window 60s"),
        # t=135: the last 20 (t=75) is 60 s old: stabilized 0, Percent 50 of 10 -> 5
        (0, 5, "ScaleDownLimit", "scaleDown policy Percent 50% per 60s"),
        # t=150..180: the -5 of t=135 is inside the 60 s period: start 10 -> limit 5
        (0, 5, "ScaleDownLimit", "scaleDown policy Percent 50% per 60s"),
        (0, 5, "ScaleDownLimit", "scaleDown policy Percent 50% per 60s"),
        (0, 5, "ScaleDownLimit", "scaleDown policy Percent 50% per 60s"),
        # t=195: start 5 -> int(2.5) = 2
        (0, 2, "ScaleDownLimit", "scaleDown policy Percent 50% per 60s"),
        (0, 2, "ScaleDownLimit", "scaleDown policy Percent 50% per 60s"),
        (0, 2, "ScaleDownLimit", "scaleDown policy Percent 50% per 60s"),
        (0, 2, "ScaleDownLimit", "scaleDown policy Percent 50% per 60s"),
        # t=255: start 2 -> int(1.0) = 1 = minReplicas
        (0, 1, "TooFewReplicas", None),
        # t=270: still wants 0, minReplicas holds it (the reason stays TooFewReplicas)
        (0, 1, "TooFewReplicas", None),
    ]
    got = []
    for queue, *_ in expected:
        d = run_queue(scaler, clock, queue)
        got.append((queue, d.desired, d.reason, d.limited_by))
    assert got == list(expected)
    # the controller recorded its own scale events, as upstream does (the policies above
    # measured their periods from them); outdated ones get overwritten
    ups = {(e.replica_change, e.timestamp - T0) for e in scaler.state.scale_up_events}
    downs = {(e.replica_change, e.timestamp - T0) for e in scaler.state.scale_down_events}
    assert (4, 75) in ups
    assert (1, 255) in downs


def test_decision_reports_metric_values() -> None:
    clock = ManualClock(T0)
    scaler = Autoscaler(hpa(QUEUE_EXTERNAL, BEHAVIOR), replicas=2)
    d = run_queue(scaler, clock, 37)
    # External AverageValue: ceil(37 / 5) = 8; status shows the per-worker value in milli-units,
    # ceil(37000 / 2)
    assert d.metric_desired == 8
    assert d.metrics[0].as_dict() == {
        "metric": "External/celery_queue_length",
        "current": "18500m",
        "proposal": 8,
        "target": "5",
    }
    assert (d.current, d.desired, d.rescale) == (2, 4, True)  # +2 pods or +100 %: 4


def test_within_tolerance_keeps_the_count() -> None:
    clock = ManualClock(T0)
    scaler = Autoscaler(hpa(QUEUE_EXTERNAL, BEHAVIOR), replicas=4)
    # 21 / (5 * 4) = 1.05: inside 0.9..1.1 -> status replicas (4), not ceil(21 / 5) = 5
    d = run_queue(scaler, clock, 21)
    assert (d.metric_desired, d.desired) == (4, 4)


def test_first_sync_cannot_scale_down_inside_the_window() -> None:
    # a new controller seeds its history with the current count (hpa-spec 2.2)
    clock = ManualClock(T0)
    scaler = Autoscaler(hpa(QUEUE_EXTERNAL, BEHAVIOR), replicas=6)
    d = run_queue(scaler, clock, 0)
    assert (d.metric_desired, d.desired, d.limited_by) == (
        0,
        6,
        "scaleDown stabilization window 60s",
    )


def test_broker_failure_means_no_scaling() -> None:
    scaler = Autoscaler(hpa(QUEUE_EXTERNAL, BEHAVIOR), replicas=3)
    d = scaler.decide(Signals(T0, ready_workers(3), None, "BrokerError: locked"), T0)
    assert (d.desired, d.reason, d.metric_desired) == (3, "FailedGetMetrics", None)
    assert d.metrics[0].error is not None and "BrokerError: locked" in d.metrics[0].error


def test_cpu_of_a_just_started_worker_does_not_count() -> None:
    """A new worker burns CPU while importing: during the CPU initialization period only a
    sample whose whole window follows its readiness counts (hpa-spec 3.2)."""
    spec = hpa(CPU_50, BEHAVIOR)
    config = ControllerConfig()
    now = T0
    old = WorkerView("w-0", LONG_AGO, LONG_AGO, cpu=PodSample(1000, now, 15))
    # started 10 s ago, ready 4 s ago: its 15 s sample straddles the transition
    new = WorkerView("w-1", now - 10, now - 4, cpu=PodSample(600, now, 15))
    scaler = Autoscaler(spec, replicas=2, requests=Requests(1000, None), config=config)
    d = scaler.decide(Signals(now, (old, new), {}), now)
    # w-1 unready: 100 % on w-0 alone, ratio 2 with an unready pod -> w-1 filled with 0:
    # 1000 / 2000 = 50 % -> ratio 1.0, within tolerance: stay at 2. (Counting w-1 as ready
    # would give 80 %, ratio 1.6, 4 workers.)
    assert (d.metric_desired, d.desired) == (2, 2)
    # 16 s later a full window after readiness: 100 % and 100 % -> ceil(2 * 2) = 4
    later = now + 16
    old2 = WorkerView("w-0", LONG_AGO, LONG_AGO, cpu=PodSample(1000, later, 15))
    new2 = WorkerView("w-1", now - 10, now - 4, cpu=PodSample(1000, later, 15))
    d = scaler.decide(Signals(later, (old2, new2), {}), later)
    assert (d.metric_desired, d.desired) == (4, 4)


def test_memory_of_a_worker_without_readiness_counts() -> None:
    spec = hpa(
        """\
    - type: Resource
      resource: {name: memory, target: {type: Utilization, averageUtilization: 80}}
""",
        BEHAVIOR,
    )
    mib = 2**20 * 1000
    starting = WorkerView("w-1", T0 - 2, None, memory=PodSample(500 * mib, T0, 15))
    ready = WorkerView("w-0", LONG_AGO, LONG_AGO, memory=PodSample(500 * mib, T0, 15))
    scaler = Autoscaler(spec, replicas=2, requests=DEFAULT_REQUESTS)
    d = scaler.decide(Signals(T0, (ready, starting), {}), T0)
    # no readiness rules for memory: 1000 / 1024 MiB = 97 % -> ratio 97/80 -> ceil(2.425) = 3
    assert (d.metric_desired, d.desired) == (3, 3)


def test_pods_queue_metric_reproduces_the_seed_pitfall() -> None:
    spec = hpa(
        """\
    - type: Pods
      pods:
        metric: {name: celery_queue_length}
        target: {type: AverageValue, averageValue: "10"}
""",
        max_replicas=200,
    )
    assert pitfalls(spec) and "N times too many" in pitfalls(spec)[0]
    scaler = Autoscaler(spec, replicas=5)
    d = scaler.decide(Signals(T0, ready_workers(5), {"etl": 200}), T0)
    # every worker reports the whole queue: average 200, ratio 20, ceil(20 * 5) = 100
    # (the External AverageValue form would ask ceil(200 / 10) = 20)
    assert d.metric_desired == 100
    assert (d.desired, d.reason) == (10, "ScaleUpLimit")  # legacy path: max(2 x 5, 4)


def test_external_value_target_is_flagged() -> None:
    spec = hpa(
        """\
    - type: External
      external:
        metric: {name: celery_queue_length}
        target: {type: Value, value: "10"}
"""
    )
    assert pitfalls(spec) and "Value target" in pitfalls(spec)[0]
    assert not pitfalls(hpa(QUEUE_EXTERNAL))


def test_queue_series_follow_the_selector() -> None:
    queues = {"etl": 7, "dq": 3}
    assert queue_series_milli(None, queues) == (3000, 7000)  # one series per queue, summed
    assert queue_series_milli(LabelSelector((("queue", "etl"),)), queues) == (7000,)
    assert watched_queues(hpa(QUEUE_EXTERNAL)) == {"etl"}
    stats = [QueueStat("dq", 3, 0, 1, 0.5)]
    assert queue_depths(lambda: stats, ["etl"]) == {"etl": 0, "dq": 3}  # empty queues count 0


def test_unknown_metric_fails_and_blocks_scale_down() -> None:
    spec = hpa(
        QUEUE_EXTERNAL
        + """\
    - type: External
      external:
        metric: {name: kafka_lag}
        target: {type: AverageValue, averageValue: "100"}
""",
        BEHAVIOR,
    )
    scaler = Autoscaler(spec, replicas=3)
    d = scaler.decide(Signals(T0, ready_workers(3), {"etl": 0}), T0 + 1000)
    # one metric failed and the valid one wants fewer: no scale-down on partial data
    assert (d.desired, d.reason) == (3, "FailedGetMetrics")
    assert "no signal" in (d.metrics[1].error or "")


# ------------------------------------------------------------- process side, with fakes


def test_supervisor_spawns_and_stops_the_newest_workers() -> None:
    queue = [100]
    sup, procs = make_supervisor(queue)
    sup.tick(T0)
    assert len(procs) == 1
    procs[0].stdout = None
    sup.workers[0].ready_at = T0  # as if it printed worker.started
    d = sup.sync(T0 + 15)
    assert (d.current, d.desired) == (1, 3) and len(procs) == 3
    sup.workers[1].ready_at = T0 + 16  # worker 3 is still starting
    queue[0] = 0
    t = T0 + 15
    for _ in range(4):  # the 20 of T0+15 leaves the 60 s window at T0+75: 3 -> int(1.5) = 1
        t += 15
        d = sup.sync(t)
    assert (d.current, d.desired) == (3, 1)
    # the not-ready worker goes first, then the most recently started ready one
    assert procs[2].signals == [signal.SIGTERM] and procs[1].signals == [signal.SIGTERM]
    assert procs[0].signals == []
    sup.tick(t)
    assert [w.proc.pid for w in sup.workers] == [procs[0].pid]


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_worker_command_line(fmt: str) -> None:
    argv = WorkerCommand("m:app", queues="a,b", concurrency=3, grace=7.5, log_format=fmt).argv()
    assert argv[1:5] == ["-m", "faena.cli.main", "worker", "m:app"]
    joined = " ".join(argv)
    assert "--queues a,b --concurrency 3" in joined and "--grace 7.5" in joined
    assert f"--log-format {fmt}" in joined and "--broker" not in joined
