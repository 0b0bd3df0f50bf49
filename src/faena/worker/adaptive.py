"""The adaptive prefetch (``--prefetch auto``, the default): how many jobs a worker claims
ahead of its free slots, decided from what it measured.

Pure decision logic: no threads, no clock of its own, no I/O. The worker feeds it the run
time of every attempt it ran and the duration of every broker call that claimed, and asks
how deep to prefetch. It answers under the worker's lock.

A prefetched job saves one broker round trip when a slot frees, and makes the job wait for
that slot meanwhile. That is worth it only while the wait is short compared with the round
trip it saves; otherwise the job could have started at once on another, idle worker. So:

- the mean run time (an EWMA over the attempts this worker ran, whatever their task or queue:
  one claim serves all the worker's queues) and the mean round trip (an EWMA of the claims'
  durations) are measured; nothing is prefetched before ``WARMUP`` attempts were seen;
- it prefetches only while the mean run is at most ``HOLD_RTTS`` round trips, and then the
  largest depth whose last job is expected to wait at most that long
  (``depth * mean_run / concurrency``), at most ``DEPTH_PER_SLOT`` per slot: no-op jobs get
  the cap;
- one run longer than :meth:`long_after` drops it to 0 at once, and the mean starts again
  from that run: short jobs must bring it back down before the worker prefetches again;
- the worker lets its waiting prefetched jobs go once no slot freed for :meth:`long_after`
  (:meth:`stalled`): the running jobs are long, the waiting ones run elsewhere;
- a job of a pool (:func:`pooled`) is never held: one claimed into the prefetch is released
  at once (by the worker), and the depth stays 0 until ``POOL_QUIET`` attempts in a row had
  no pool, so a worker whose queues carry pooled jobs claims only for its free slots.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from faena.core.job import Job
from faena.core.pools import DEFAULT_POOL

ALPHA = 0.2  # weight of the newest sample in the means
WARMUP = 8  # attempts seen before the first prefetch
HOLD_RTTS = 4.0  # the longest expected wait of a prefetched job, in round trips
DEPTH_PER_SLOT = 4  # the deepest prefetch, per slot (Celery's default multiplier)
LONG_RTTS = 16.0  # a run this many round trips long is a long job ...
LONG_FLOOR = 0.02  # ... if it is this long at least (seconds: a GC pause or a busy CPU's
# scheduling delay is not one; measured: on this 2-core machine at load 9, 5 ms did drop it)
POOL_QUIET = 64  # attempts without a pool before a worker that saw one prefetches again


def pooled(job: Job, sized: Mapping[str, int]) -> bool:
    """Whether the job takes a slot of a pool that may be small: any pool but the default
    one, and the default one too when it is sized (``sized``: the app's pools and the
    store's, worker/sized_pools.py)."""
    return job.pool != DEFAULT_POOL or DEFAULT_POOL in sized


class AdaptivePrefetch:
    def __init__(self, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.concurrency = concurrency
        self.cap = DEPTH_PER_SLOT * concurrency
        self.run_mean: float | None = None  # seconds
        self.rtt_mean: float | None = None  # seconds
        self.seen = 0  # attempts measured
        self.since_pool = POOL_QUIET  # attempts since the last pooled job

    # what the worker measured -------------------------------------------------------
    def ran(
        self, seconds: float, job: Job | None = None, sized: Mapping[str, int] | None = None
    ) -> None:
        """An attempt ran ``seconds`` (``job``: which one, to see its pool; ``sized``: the
        sized pools, see :func:`pooled`)."""
        seconds = max(seconds, 0.0)
        self.seen += 1
        if job is not None and pooled(job, sized or {}):
            self.since_pool = 0
        else:
            self.since_pool += 1
        if self.run_mean is None or seconds > self.long_after():
            self.run_mean = seconds  # a long job: the mean starts again from it
        else:
            self.run_mean += ALPHA * (seconds - self.run_mean)

    def round_trip(self, seconds: float) -> None:
        """A broker call that claimed took ``seconds``."""
        seconds = max(seconds, 0.0)
        if self.rtt_mean is None:
            self.rtt_mean = seconds
        else:
            self.rtt_mean += ALPHA * (seconds - self.rtt_mean)

    def claimed_pooled(self) -> None:
        """A pooled job came in a claim: no prefetch until the pools have been quiet."""
        self.since_pool = 0

    def stalled_seen(self) -> None:
        """The running jobs held the waiting ones for :meth:`long_after`: they are long."""
        self.run_mean = max(self.run_mean or 0.0, self.long_after())

    # what it decides ----------------------------------------------------------------
    def long_after(self) -> float:
        """A run at least this long (seconds) is a long job."""
        return max(LONG_FLOOR, LONG_RTTS * (self.rtt_mean or 0.0))

    def depth(self) -> int:
        """Jobs to hold beyond the slots now."""
        if self.seen < WARMUP or self.since_pool < POOL_QUIET:
            return 0
        if self.run_mean is None or self.rtt_mean is None or self.rtt_mean <= 0:
            return 0
        if self.run_mean > HOLD_RTTS * self.rtt_mean:
            return 0  # jobs are not short: a prefetched one would wait too long
        if self.run_mean <= 0:
            return self.cap
        budget = HOLD_RTTS * self.rtt_mean * self.concurrency  # slot-seconds of waiting
        return max(0, min(self.cap, math.floor(budget / self.run_mean)))

    def refill_at(self) -> float:
        """The prefetched jobs the slots run during one round trip, at least one a slot: a
        turn that tops the prefetch up is due once no more than this many wait, and the
        reports of ended jobs may wait for it until then (inf: not measured yet)."""
        if self.run_mean is None or self.rtt_mean is None or self.run_mean <= 0:
            return math.inf
        return self.concurrency * max(1.0, self.rtt_mean / self.run_mean)

    def stalled(self, waiting: int, last_progress: float, now: float) -> bool:
        """Let the ``waiting`` prefetched jobs go: no slot freed since ``last_progress``
        (monotonic seconds) for :meth:`long_after`."""
        return waiting > 0 and now - last_progress >= self.long_after()

    def stall_check_in(self, waiting: int, last_progress: float, now: float) -> float | None:
        """Seconds until :meth:`stalled` may turn true (None: nothing waits)."""
        if waiting <= 0:
            return None
        return max(0.0, last_progress + self.long_after() - now)
