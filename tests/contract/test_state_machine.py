"""A hypothesis state machine over the broker protocol, run against every backend and against
the pure model of tests/contract/model.py: enqueue (pools, delays, priorities, idempotency
keys, a producer sending the same job again), claim, heartbeat, finish (succeed, fail and
retry, dead, cancelled; an attempt reported twice; a stale attempt's report), release, reap,
retry and cancel by hand, the parallelism cap, and the clock moving past leases. After every
step each job of the backend must be the model's, and no pool may hold more than its size.
A divergence shows up as the shortest sequence of calls hypothesis finds for it.

The CI profile keeps the four backends to well under a minute; ``FAENA_HYPOTHESIS_PROFILE=long``
runs many more and longer sequences (and keeps failures in hypothesis's example database).
Divergences found so far are pinned in test_found_by_state_machine.py.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from faena.brokers.protocol import Broker
from faena.core.clock import ManualClock
from faena.core.job import ErrorInfo, Lease, NewJob, Outcome
from faena.core.states import JobState
from faena.errors import InvalidTransitionError, UnknownPoolError
from tests.contract.conftest import BACKENDS, Backend
from tests.contract.model import Model, MSpec, Refused

POOLS = {"small": 2, "tiny": 1}
QUEUE_SETS = (("a",), ("b",), ("a", "b"))
PROFILES = {
    "ci": settings(
        max_examples=100,
        stateful_step_count=30,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    ),
    "long": settings(
        max_examples=400,
        stateful_step_count=80,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    ),
}
PROFILE = os.environ.get("FAENA_HYPOTHESIS_PROFILE", "ci")

specs = st.tuples(
    st.sampled_from(("a", "b")),
    st.sampled_from(("default_pool",) * 3 + ("small",) * 2 + ("tiny", "no_such_pool")),
    st.integers(1, 2),  # pool slots
    st.integers(0, 1),  # priority
    st.sampled_from((None, None, None, 5.0, 40.0)),  # delay
    st.integers(1, 3),  # max attempts
    st.sampled_from((None, None, "k1", "k2")),  # idempotency key
    st.sampled_from((0, 0, 0, 1, 2)),  # 0: a new job, else a job enqueued before, sent again
)
outcome_kinds = st.sampled_from(("succeeded", "succeeded", "failed", "dead", "cancelled"))


class BrokerMachine(RuleBasedStateMachine):
    """One fresh store per sequence: ``backend`` is set by the test that runs the class."""

    make_backend: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        backend: Backend = self.make_backend()
        self.broker: Broker = backend.open(self.clock)
        self.broker.setup()
        self.broker.set_pools(POOLS)
        self.model = Model({"default_pool": 128, **POOLS})
        self.leases: list[tuple[str, int]] = []  # every lease handed out, stale ones too
        self.ids: list[str] = []  # every job id created, in order
        self.results = 0
        self.made = 0

    def teardown(self) -> None:
        destroy = getattr(self.broker, "destroy", None)
        if callable(destroy):
            destroy()
        self.broker.close()

    # helpers ---------------------------------------------------------------------
    def _new_id(self) -> str:
        """Ids that are the same when hypothesis replays a sequence (fresh store each)."""
        self.made += 1
        return f"{self.made:032x}"

    def _lease(self, pick: int) -> tuple[str, int] | None:
        """A lease handed out: 0 is the latest, larger picks go back to stale ones."""
        return self.leases[-1 - pick % len(self.leases)] if self.leases else None

    def _job(self, pick: int) -> str | None:
        return self.ids[-1 - pick % len(self.ids)] if self.ids else None

    def _check_claim(self, got: Any, limit: int, queues: tuple[str, ...], lease: float) -> None:
        want = self.model.claim("w", list(queues), limit, lease, self.clock.now())
        assert [j.id for j in got.jobs] == want.claimed
        assert {r.job.id: r.new_state.value for r in got.reaped} == want.reaped
        if len(want.claimed) < limit:
            assert got.saturated == want.left, "saturated: runnable jobs were left"
        self.leases += [(j.id, j.attempt) for j in got.jobs]

    def _outcomes(
        self, picks: list[tuple[int, str, float | None]], twice: bool
    ) -> tuple[list[Outcome], list[Any]]:
        now = self.clock.now()
        outs, model = [], []
        chosen = [(self._lease(p), kind, delay) for p, kind, delay in picks]
        if twice and chosen:
            chosen.append(chosen[0])
        for lease, kind, delay in chosen:
            if lease is None:
                continue
            self.results += 1
            result = f'"r{self.results}"' if kind == "succeeded" else None
            etype = {"failed": "Boom", "dead": "Fatal"}.get(kind)
            retry_at = None if kind != "failed" or delay is None else now + delay
            error = None if etype is None else ErrorInfo(etype, "from the state machine")
            outs.append(Outcome(*lease, JobState(kind), result, error, retry_at))
            model.append((*lease, kind, etype, retry_at, result))
        return outs, model

    # producers ---------------------------------------------------------------------
    @initialize(batch=st.lists(specs, min_size=1, max_size=4))
    def start_with(self, batch: list[tuple[Any, ...]]) -> None:
        self.enqueue(batch)

    @rule(batch=st.lists(specs, min_size=1, max_size=3))
    def enqueue(self, batch: list[tuple[Any, ...]]) -> None:
        now = self.clock.now()
        news, model = [], []
        for queue, pool, slots, priority, delay, attempts, key, again in batch:
            job_id = self.ids[-again] if again and len(self.ids) >= again else self._new_id()
            run_at = None if delay is None else now + delay
            news.append(NewJob("t", queue, id=job_id, priority=priority, pool=pool,
                               pool_slots=slots, max_attempts=attempts, run_at=run_at,
                               idempotency_key=key))  # fmt: skip
            model.append(MSpec(job_id, queue, pool, slots, priority, attempts, key, run_at))
        try:
            want = self.model.enqueue(model, now)
        except KeyError:
            with pytest.raises(UnknownPoolError):
                self.broker.enqueue(news)
            return
        got = self.broker.enqueue(news)
        assert [j.id for j in got] == want
        self.ids += [i for i in dict.fromkeys(want) if i not in self.ids]

    # workers -----------------------------------------------------------------------
    @rule(
        queues=st.sampled_from(QUEUE_SETS),
        limit=st.integers(1, 4),
        lease=st.sampled_from((10.0, 30.0)),
    )
    def claim(self, queues: tuple[str, ...], limit: int, lease: float) -> None:
        self._check_claim(self.broker.claim("w", queues, limit, lease), limit, queues, lease)

    @precondition(lambda self: self.leases)
    @rule(picks=st.lists(st.integers(0, 50), min_size=1, max_size=3), lease=st.just(30.0))
    def heartbeat(self, picks: list[int], lease: float) -> None:
        # two attempts of one job may share a beat: each lease stands alone, the stale one
        # puts the job on ``lost`` and the live one is renewed (PostgreSQL kept the id off
        # ``lost`` when either held: test_found_by_state_machine.py)
        leases = [x for x in (self._lease(p) for p in picks) if x is not None]
        held = list(dict.fromkeys(leases))
        if not held:
            return
        got = self.broker.heartbeat("w", [Lease(*x) for x in held], lease)
        lost, cancel = self.model.heartbeat(held, lease, self.clock.now())
        assert (set(got.lost), set(got.cancel)) == (lost, cancel)

    @precondition(lambda self: self.leases)
    @rule(
        picks=st.lists(
            st.tuples(st.integers(0, 50), outcome_kinds, st.sampled_from((None, 0.0, 5.0))),
            min_size=1,
            max_size=2,
        ),
        twice=st.booleans(),
        then_claim=st.sampled_from((None, None, 1, 3)),
    )
    def finish(
        self, picks: list[tuple[int, str, float | None]], twice: bool, then_claim: int | None
    ) -> None:
        outs, model = self._outcomes(picks, twice)
        if not outs:
            return
        if then_claim is None:
            assert self.broker.finish(outs) == self.model.finish(model, self.clock.now())
            return
        done, got = self.broker.finish_and_claim(outs, "w", ("a", "b"), then_claim, 30.0)
        assert done == self.model.finish(model, self.clock.now())
        self._check_claim(got, then_claim, ("a", "b"), 30.0)

    @precondition(lambda self: self.leases)
    @rule(pick=st.integers(0, 50))
    def release(self, pick: int) -> None:
        lease = self._lease(pick)
        if lease is not None:
            assert self.broker.release([Lease(*lease)]) == self.model.release([lease])

    @rule()
    def reap(self) -> None:
        got = {r.job.id: r.new_state.value for r in self.broker.reap()}
        assert got == self.model.reap(self.clock.now())

    @rule(seconds=st.sampled_from((1.0, 5.0, 11.0, 31.0)))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    # operators ---------------------------------------------------------------------
    @precondition(lambda self: self.ids)
    @rule(pick=st.integers(0, 50))
    def retry(self, pick: int) -> None:
        job_id = self._job(pick)
        if job_id is None:
            return
        try:
            self.model.retry(job_id, self.clock.now())
        except Refused:
            with pytest.raises(InvalidTransitionError):
                self.broker.retry(job_id)
            return
        assert self.broker.retry(job_id).state is JobState.QUEUED

    @precondition(lambda self: self.ids)
    @rule(pick=st.integers(0, 50))
    def cancel(self, pick: int) -> None:
        job_id = self._job(pick)
        if job_id is None:
            return
        try:
            self.model.cancel(job_id)
        except Refused:
            with pytest.raises(InvalidTransitionError):
                self.broker.cancel(job_id)
            return
        assert self.broker.cancel(job_id).state.value == self.model.jobs[job_id].state

    @rule(limit=st.sampled_from((None, None, 1, 2, 3)))
    def set_parallelism(self, limit: int | None) -> None:
        self.broker.set_parallelism(limit)
        self.model.parallelism = limit

    # invariants --------------------------------------------------------------------
    @invariant()
    def every_job_is_the_models(self) -> None:
        got = {j.id: j for j in self.broker.list_jobs(limit=1000)}
        assert set(got) == set(self.model.jobs)
        for job_id, want in self.model.jobs.items():
            job = got[job_id]
            seen = (
                job.state.value,
                job.attempt,
                job.tries,
                job.max_attempts,
                job.cancel_requested,
                job.result_json,
                None if job.error is None else job.error.type,
                job.worker if job.state is JobState.RUNNING else None,
            )
            expected = (
                want.state,
                want.attempt,
                want.tries,
                want.max_attempts,
                want.cancel_requested,
                want.result_json,
                want.error_type,
                want.worker if want.state == "running" else None,
            )
            assert seen == expected, f"job {job_id}"
            assert job.run_at == pytest.approx(want.run_at, abs=1e-3), f"run_at of {job_id}"
            if want.state == "running":
                assert job.lease_expires_at == pytest.approx(want.lease_expires_at, abs=1e-3)

    @invariant()
    def pools_hold_no_more_than_their_size(self) -> None:
        now = self.clock.now()
        for stat in self.broker.pool_stats():
            assert 0 <= stat.used <= stat.size, stat
            if stat.pool in self.model.pools:
                assert stat.used == self.model.used(stat.pool, now), stat


@pytest.mark.parametrize("name", list(BACKENDS))
def test_every_backend_follows_the_model(name: str, tmp_path: Path) -> None:
    factory = BACKENDS[name]
    factory(tmp_path)  # skips (or fails under CI=true) when the service is missing
    stores = Path(tempfile.mkdtemp(dir=tmp_path))

    def make_backend() -> Backend:
        return factory(Path(tempfile.mkdtemp(dir=stores)))

    fields = {"make_backend": staticmethod(make_backend)}
    machine = type(f"{name.title()}Machine", (BrokerMachine,), fields)
    run_state_machine_as_test(machine, settings=PROFILES[PROFILE])
