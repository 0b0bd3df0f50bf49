"""Limits hold with claimers in separate processes (backends that processes can share)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from faena.core.clock import SystemClock
from faena.core.job import NewJob
from tests.contract.conftest import BACKENDS, Backend


@pytest.fixture(params=[name for name in BACKENDS if name != "memory"])
def shared_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The backends that several processes can share (the memory one lives in one)."""
    return BACKENDS[request.param](tmp_path)


CLAIMER = textwrap.dedent(
    """
    import sys, time
    from faena.brokers.url import open_broker
    from faena.core.job import Outcome
    from faena.core.states import JobState

    url, name, out = sys.argv[1], sys.argv[2], sys.argv[3]
    broker = open_broker(url)
    lines, idle = [], 0
    while idle < 20:
        jobs = broker.claim(name, ["procs"], 2, 30).jobs
        if not jobs:
            idle += 1
            time.sleep(0.02)
            continue
        idle = 0
        for job in jobs:
            lines.append(f"start {job.id} {job.attempt} {time.time():.6f}")
        time.sleep(0.02)
        for job in jobs:
            lines.append(f"end {job.id} {job.attempt} {time.time():.6f}")
        done = broker.finish([Outcome(j.id, j.attempt, JobState.SUCCEEDED, "null") for j in jobs])
        assert all(done), done
    open(out, "w").write("\\n".join(lines) + "\\n")
    broker.close()
    """
)


@pytest.mark.parametrize("limit", ["pool", "parallelism"])
def test_limits_hold_across_processes(shared_backend: Backend, tmp_path: Path, limit: str) -> None:
    backend = shared_backend
    assert backend.url is not None
    broker = backend.open(SystemClock())
    broker.setup()
    try:
        broker.set_pools({"small": 3})
        broker.set_parallelism(2 if limit == "parallelism" else None)
        pool = "small" if limit == "pool" else "default_pool"
        jobs = broker.enqueue([NewJob(task="t", queue="procs", pool=pool) for _ in range(60)])
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", CLAIMER, backend.url, f"p{n}", str(tmp_path / f"{n}.log")]
            )
            for n in range(4)
        ]
        assert [p.wait(120) for p in procs] == [0, 0, 0, 0]
        events = []
        for n in range(4):
            for line in filter(None, (tmp_path / f"{n}.log").read_text().splitlines()):
                kind, job_id, attempt, ts = line.split()
                events.append((float(ts), 1 if kind == "start" else -1, job_id, int(attempt)))
        starts = [e for e in events if e[1] == 1]
        assert sorted(e[2] for e in starts) == sorted(j.id for j in jobs), "each job ran once"
        assert all(e[3] == 1 for e in starts)
        running = peak = 0
        for _ts, delta, *_ in sorted(events, key=lambda e: (e[0], e[1])):
            running += delta
            peak = max(peak, running)
        assert peak <= (3 if limit == "pool" else 2)
    finally:
        destroy = getattr(broker, "destroy", None)
        if callable(destroy):
            destroy()
        broker.close()
