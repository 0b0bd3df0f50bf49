"""An HPA, its policies and a supervisor whose workers are fakes, for the supervisor's unit
tests (decisions on a ManualClock) and its stop test in integration (which waits for real)."""

from __future__ import annotations

import io
import signal

from faena.autoscale.autoscaler import Autoscaler
from faena.autoscale.manifest import load_hpa
from faena.autoscale.spec import HPASpec
from faena.autoscale.supervisor import Supervisor, WorkerCommand
from faena.brokers.protocol import QueueStat
from faena.core.clock import ManualClock

T0 = 1_800_000_000.0


def hpa(metrics: str, behavior: str = "", min_replicas: int = 1, max_replicas: int = 10) -> HPASpec:
    text = f"""
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: w}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: w}}
  minReplicas: {min_replicas}
  maxReplicas: {max_replicas}
  metrics:
{metrics}
{behavior}
"""
    return load_hpa(text).spec


QUEUE_EXTERNAL = """\
    - type: External
      external:
        metric: {name: celery_queue_length, selector: {matchLabels: {queue: etl}}}
        target: {type: AverageValue, averageValue: "5"}
"""
# the repository's worker HPA policies: up +2 pods or +100 % per 30 s; down 50 % per 60 s,
# after a 60 s stabilization window (shortened from 300 s to keep the table short)
BEHAVIOR = """\
  behavior:
    scaleUp:
      stabilizationWindowSeconds: 0
      policies:
        - {type: Pods, value: 2, periodSeconds: 30}
        - {type: Percent, value: 100, periodSeconds: 30}
    scaleDown:
      stabilizationWindowSeconds: 60
      policies: [{type: Percent, value: 50, periodSeconds: 60}]
"""


class FakeProc:
    _next = 100_000

    def __init__(self) -> None:
        FakeProc._next += 1
        self.pid = FakeProc._next
        self.stdout = None
        self.code: int | None = None
        self.signals: list[int] = []

    def poll(self) -> int | None:
        return self.code

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        if sig == signal.SIGTERM:
            self.code = 0

    def kill(self) -> None:
        self.code = -9

    def wait(self, timeout: float | None = None) -> int | None:
        return self.code


class NoSampler:
    def sample(self, pid: int, now: float) -> tuple[None, None]:
        return None, None

    def forget(self, pid: int) -> None:
        pass


def make_supervisor(queue: list[int], replicas: int = 1) -> tuple[Supervisor, list[FakeProc]]:
    procs: list[FakeProc] = []

    def spawn(argv: list[str]) -> FakeProc:
        assert argv[3:5] == ["worker", "app:app"] and "--metrics-port" in argv
        procs.append(FakeProc())
        return procs[-1]

    scaler = Autoscaler(hpa(QUEUE_EXTERNAL, BEHAVIOR), replicas=replicas)
    sup = Supervisor(
        scaler,
        WorkerCommand("app:app", queues="etl", concurrency=2, grace=1),
        queue_stats=lambda: [QueueStat("etl", queue[0], 0, 0, 0.0)],
        known_queues=["etl"],
        clock=ManualClock(T0),
        spawn=spawn,  # type: ignore[arg-type]
        sampler=NoSampler(),  # type: ignore[arg-type]
        out=io.BytesIO(),
    )
    return sup, procs
