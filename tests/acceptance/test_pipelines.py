"""A 20-step ETL pipeline through real worker processes, one of them SIGKILLed mid-run: the
run completes with every step succeeded once, and only the killed step runs again."""

from __future__ import annotations

import signal
from collections import defaultdict

import pytest

from faena.core.dependencies import RunState
from faena.core.states import JobState
from faena.pipelines import declared
from tests.acceptance.conftest import Cluster, max_overlap, wait_until

pytestmark = pytest.mark.slow

APP = "tests.acceptance.pipeapp:app"


def test_sigkill_mid_run_reruns_only_the_killed_step(cluster: Cluster) -> None:
    from tests.acceptance import pipeapp

    lease = 3.0
    cluster.env["ACC_LEASE"] = str(lease)
    cluster.env["ACC_STEP_SECONDS"] = "0.6"
    producer = pipeapp.app
    producer.use_broker(cluster.url)
    try:
        pipeline = declared(producer)["etl_daily"]
        assert len(pipeline.steps) == 20
        run = pipeline.run(day="2026-11-27")
        assert run.created
        victim = cluster.worker("--concurrency", "1", app=APP)
        cluster.worker("--concurrency", "3", app=APP)

        def victim_busy() -> bool:
            started: dict[str, int] = defaultdict(int)
            for kind, job_id, _attempt, pid, _ts in cluster.records():
                if pid == victim.pid:
                    started[job_id] += 1 if kind == "start" else -1
            return any(n > 0 for n in started.values()) and len(cluster.records()) > 8

        wait_until(victim_busy, 60, "the victim to be running a step mid-run", step=0.02)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)

        def finished() -> bool:
            got = producer.broker.get_run(run.id)
            return got is not None and got.state is not RunState.RUNNING

        wait_until(finished, 90, "the run to end")
        got = producer.broker.get_run(run.id)
        assert got is not None and got.state is RunState.SUCCEEDED
        assert {s.state for s in got.steps} == {JobState.SUCCEEDED}

        records = cluster.records()
        starts: dict[str, list[tuple[int, int]]] = defaultdict(list)
        ends: dict[str, int] = defaultdict(int)
        for kind, job_id, attempt, pid, _ts in records:
            if kind == "start":
                starts[job_id].append((attempt, pid))
            else:
                ends[job_id] += 1
        step_ids = {s.job_id for s in got.steps}
        assert set(starts) == step_ids
        killed = [
            j
            for j in step_ids
            if any(pid == victim.pid for _a, pid in starts[j])
            and ends[j] == 1
            and len(starts[j]) == 2
        ]
        assert len(killed) == 1, starts
        [k] = killed
        assert sorted(a for a, _pid in starts[k]) == [1, 2]
        for job_id in step_ids - {k}:
            assert len(starts[job_id]) == 1, (job_id, starts[job_id])
        assert all(ends[j] == 1 for j in step_ids)  # every step succeeded once
        # the pools held: dq_pool has one slot, etl_pool three
        by_id = {s.job_id: s.name for s in got.steps}
        dq_records = [r for r in records if by_id[r[1]].startswith("dq")]
        etl_records = [r for r in records if not by_id[r[1]].startswith("dq")]
        # the killed attempt never wrote its end: leave it out of the overlap count
        alive = [r for r in dq_records + etl_records if not (r[1] == k and r[2] == 1)]
        assert max_overlap([r for r in alive if by_id[r[1]].startswith("dq")]) <= 1
        assert max_overlap([r for r in alive if not by_id[r[1]].startswith("dq")]) <= 3
    finally:
        producer.close()
