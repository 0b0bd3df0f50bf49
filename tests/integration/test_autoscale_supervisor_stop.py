"""The local supervisor's stop: SIGTERM to every worker, then a wait on the real clock for them
to exit (the decisions are unit tests, on a ManualClock: tests/unit/autoscale)."""

from __future__ import annotations

import signal

from tests.autoscale_fakes import T0, make_supervisor


def test_supervisor_replaces_a_dead_worker_and_backs_off_a_crash_loop() -> None:
    sup, procs = make_supervisor([0], replicas=2)
    sup.tick(T0)
    assert len(procs) == 2
    procs[1].code = 1  # dies 3 s after its start: a crash
    sup.tick(T0 + 3)
    assert len(procs) == 2 and len(sup.workers) == 1, "replacement waits 1 s"
    sup.tick(T0 + 4)
    assert len(procs) == 3 and procs[2].pid in [w.proc.pid for w in sup.workers]
    sup.shutdown()
    assert all(p.signals == [signal.SIGTERM] for p in (procs[0], procs[2]))
    assert sup.workers == []
