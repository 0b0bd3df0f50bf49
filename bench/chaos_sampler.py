"""The chaos harness's sampler: about every second, what the logs gained and the store's
live leases, fed to the continuous checks (bench.chaos_check.Watch)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from bench.chaos_check import LiveLease, Watch, parse_event, parse_record
from bench.chaos_rig import PARALLELISM, POOL, Worker, reader

from faena.core.states import JobState


class Tail:
    """The complete lines a file gained since the last read (a line still being written
    waits for the next)."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0

    def lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        cut = data.rfind(b"\n") + 1
        self.offset += cut
        return data[:cut].decode(errors="replace").splitlines()


class Sampler(threading.Thread):
    """The continuous checks (bench.chaos_check.Watch), about every second: the attempts'
    log and the workers' logs since the last sample, then the store's live leases; also
    each sample's (pool slots in use, jobs running) for the final check."""

    def __init__(self, url: str, log: Path, workers: list[Worker], every: float = 1.0) -> None:
        super().__init__(name="chaos-sampler", daemon=True)
        self.app = reader(url)
        self.every = every
        self.watch = Watch(POOL, PARALLELISM)
        self.log, self.workers = Tail(log), workers
        self.tails: dict[Path, Tail] = {}
        self.samples: list[tuple[int, int]] = []
        self.unreadable: list[float] = []  # when the store could not be read (a fault)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every):
            self.sample()

    def sample(self) -> None:
        records = [r for r in map(parse_record, self.log.lines()) if r is not None]
        events = []
        for w in self.workers:
            for path in list(w.logs):
                tail = self.tails.setdefault(path, Tail(path))
                events += [e for e in map(parse_event, tail.lines()) if e is not None]
        leases: list[LiveLease] | None
        try:  # read after the logs: a start the log has is in the store already
            running = self.app.broker.list_jobs(state=JobState.RUNNING, limit=1000)
        except Exception:
            leases = None
            self.unreadable.append(time.time())
        else:
            now = time.time()
            leases = [
                LiveLease(j.id, j.attempt, j.pool, j.pool_slots)
                for j in running
                if (j.lease_expires_at or 0) > now
            ]
            pool = sum(x.slots for x in leases if x.pool == "limited")
            self.samples.append((pool, len(leases)))
        self.watch.observe(time.time(), records, events, leases)
