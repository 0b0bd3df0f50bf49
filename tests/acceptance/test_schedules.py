"""Three real ``faena worker`` processes run the scheduler over ten minutes of simulated time
(a clock file they all read): every tick is enqueued exactly once, on SQLite, PostgreSQL and
Redis, and SIGKILLing one of them half-way changes nothing."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import faena
from tests.acceptance.conftest import Cluster, wait_until

T0 = 1_800_000_000.0  # a multiple of 60: every schedule's ticks line up with it
SIMULATED = 600.0
STEP = 2.0  # simulated seconds per step
STEP_REAL = 0.05  # real seconds per step: ten minutes in about 15 s


def set_clock(path: Path, t: float) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(repr(t))
    os.replace(tmp, path)


def test_three_schedulers_enqueue_each_tick_once_and_a_kill_changes_nothing(
    cluster: Cluster,
) -> None:
    clock = cluster.tmp / "clock"
    set_clock(clock, T0)
    cluster.env["ACC_CLOCK"] = str(clock)
    procs = [
        cluster.worker_of("tests.acceptance.schedapp:app", "--queues", "idle") for _ in range(3)
    ]
    reader = faena.App(broker=cluster.url)
    try:
        wait_until(
            lambda: len(reader.broker.schedule_states()) == 3, 60, "the schedules to be armed"
        )
        t = T0
        while t < T0 + SIMULATED:
            t = min(t + STEP, T0 + SIMULATED)
            set_clock(clock, t)
            if t == T0 + SIMULATED / 2:
                procs[1].send_signal(signal.SIGKILL)  # mid-way, whatever it is doing
            time.sleep(STEP_REAL)
        end = T0 + SIMULATED

        def caught_up() -> bool:
            last = {s.name: s.last_tick for s in reader.broker.schedule_states()}
            return last == {"every5": end, "minutely": end, "every7": end - end % 7}

        wait_until(caught_up, 30, "the last ticks to be fired")
        jobs = reader.broker.list_jobs(queue="sched", limit=1000)
    finally:
        reader.close()
        cluster.stop_all()
    assert procs[1].returncode == -signal.SIGKILL
    fired = Counter((j.args[0], j.kwargs["at"]) for j in jobs)
    assert [k for k, n in fired.items() if n > 1] == [], "a tick was enqueued twice"
    every5 = sorted(at for name, at in fired if name == "every5")
    minutely = sorted(at for name, at in fired if name == "minutely")
    # catch_up: every tick after the arming at T0, each once
    assert len(every5) == SIMULATED / 5 and len(minutely) == SIMULATED / 60
    keys = Counter(j.idempotency_key for j in jobs)
    assert all(n == 1 for n in keys.values()) and len(keys) == len(jobs)
    every7 = [at for name, at in fired if name == "every7"]
    assert 0 < len(every7) <= SIMULATED // 7  # skip: never more than the ticks, never twice
    # which processes fired what (each log line names its process)
    fires: Counter[str] = Counter()
    for n in range(3):
        for line in cluster.log(n).splitlines():
            if line.startswith("{") and '"schedule.fired"' in line:
                fires[json.loads(line).get("scheduler", "?")] += 1
    assert sum(fires.values()) == len(jobs), fires
    print(f"fires by process: {dict(fires)}")
