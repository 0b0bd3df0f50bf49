"""Several worker processes under one command: ``faena worker APP --processes N``.

The supervisor starts N children, each a whole worker (its own broker connections, heartbeat
and leases) with its share of ``--concurrency``. Jobs then run in parallel across processes,
not one at a time under one interpreter's lock, as with Celery's prefork pool. The
supervisor never touches the broker itself. It forwards SIGTERM and SIGINT (a second signal
makes the children release their jobs at once), restarts a child that died (the dead child's
jobs come back after one lease, as for any lost worker), and exits 0 once every child has
stopped cleanly.

A child that exits with an error code within ``STARTUP_SECONDS`` of its start failed to
start (a bad app path, an unreachable broker): restarting it would only loop, so the
supervisor stops the others and exits with that child's code. A child killed by a signal
(out of memory, ``kill -9``) is always started again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType

from faena.errors import ConfigError

STARTUP_SECONDS = 5.0
RESTART_DELAY_SECONDS = 1.0
_POLL_SECONDS = 0.1

_log = logging.getLogger("faena.worker")


def split_concurrency(concurrency: int, processes: int) -> list[int]:
    """Each process's share of ``concurrency`` (they differ by one at most)."""
    if processes < 1:
        raise ConfigError(f"--processes must be >= 1, got {processes}")
    if concurrency < processes:
        raise ConfigError(
            f"--processes {processes} needs --concurrency of at least {processes} (each "
            f"process runs at least one job at a time), got --concurrency {concurrency}; "
            f"raise --concurrency or lower --processes"
        )
    base, extra = divmod(concurrency, processes)
    return [base + (1 if i < extra else 0) for i in range(processes)]


@dataclass
class _Child:
    index: int
    argv: list[str]
    env: dict[str, str] | None
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restart_at: float | None = None


def _parent_death_signal() -> Callable[[], None] | None:
    """A function for the child, between fork and exec, that asks Linux to send it SIGTERM
    when the supervisor dies (even by SIGKILL); None where that is not available. ctypes is
    loaded here, before any fork: the child may only call the function."""
    if sys.platform != "linux":
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def ask() -> None:  # pragma: no cover - runs in the child
        prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG

    return ask


class Supervisor:
    """Runs one command (argv, environment) per child and keeps them running until told
    to stop."""

    def __init__(
        self,
        commands: Sequence[tuple[list[str], dict[str, str] | None]],
        *,
        startup_seconds: float = STARTUP_SECONDS,
        restart_delay: float = RESTART_DELAY_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not commands:
            raise ConfigError("a supervisor needs at least one child command")
        self._children = [_Child(i, list(a), e) for i, (a, e) in enumerate(commands)]
        self._startup = startup_seconds
        self._restart_delay = restart_delay
        self._now = monotonic
        self._signals: list[int] = []
        self.stopping = False
        self.failed_code: int | None = None
        self._preexec = _parent_death_signal()

    # signals ---------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop(signum)

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Stop: forward ``signum`` to every child (each drains, or releases at once on a
        second signal) and start no new one."""
        self.stopping = True
        self._signals.append(signum)
        for child in self._children:
            child.restart_at = None
            if child.proc is not None and child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(signum)

    # children ----------------------------------------------------------------------------
    def _start(self, child: _Child) -> None:
        # Own process group: a terminal's Ctrl-C reaches the supervisor only, which forwards
        # it once (a child that got it twice would release its jobs at once).
        child.proc = subprocess.Popen(
            child.argv,
            env=child.env,
            process_group=0,
            preexec_fn=self._preexec,
        )
        child.started = self._now()
        child.restart_at = None
        if self.stopping:  # a signal came while it started: it gets the last one too
            with contextlib.suppress(ProcessLookupError):
                child.proc.send_signal(self._signals[-1])

    def _reap(self, child: _Child) -> None:
        """A child exited: keep its code if we are stopping, else restart it or give up."""
        assert child.proc is not None
        code = child.proc.returncode
        if self.stopping:
            # killed by the very signal we passed on (it came before the child installed its
            # handlers, or after it removed them): it had stopped, as asked
            if code != 0 and -code not in self._signals and self.failed_code is None:
                self.failed_code = code
            return
        pid = child.proc.pid
        if code > 0 and self._now() - child.started < self._startup:
            _log.error(
                f"worker process {child.index} (pid {pid}) exited with code {code} while "
                f"starting; stopping the other processes (see its error above)",
                extra={
                    "event": "worker.error",
                    "status": "start_failed",
                    "worker_process": child.index,
                    "pid": pid,
                    "exit_code": code,
                },
            )
            self.failed_code = code
            self.stop()
            return
        _log.warning(
            f"worker process {child.index} (pid {pid}) exited with code {code}; starting "
            f"another in {self._restart_delay:g} s (its jobs come back after one lease)",
            extra={
                "event": "worker.process_exited",
                "status": "restarting",
                "worker_process": child.index,
                "pid": pid,
                "exit_code": code,
            },
        )
        child.restart_at = self._now() + self._restart_delay

    def step(self) -> bool:
        """Reap exited children and start the ones due; True while any child runs or is due
        to start again."""
        alive = False
        now = self._now()
        for child in self._children:
            proc = child.proc
            if proc is not None and proc.returncode is None:
                if proc.poll() is None:
                    alive = True
                    continue
                self._reap(child)
            if child.restart_at is not None and not self.stopping:
                if now >= child.restart_at:
                    self._start(child)
                alive = True
        return alive

    def run(self, install_signals: bool = True) -> int:
        if install_signals:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        try:
            for child in self._children:
                self._start(child)
            while self.step():
                time.sleep(_POLL_SECONDS)
        finally:
            if not self.stopping:  # an exception in here: never leave children behind
                self.stop()
            for child in self._children:
                if child.proc is not None:
                    child.proc.wait()
        return 0 if self.failed_code is None else self.failed_code


def child_command(
    app_path: str,
    share: int,
    *,
    queues: str | None,
    isolation: str | None,
    grace: float,
    lease: float | None,
    log_format: str,
    log_level: str,
    broker: str | None,
    metrics_announce: str | None = None,
    prefetch: int | str = "auto",
) -> tuple[list[str], dict[str, str]]:
    """The command and environment of one child: the same worker, one process, its share of
    the slots. The broker URL goes in the environment (``FAENA_BROKER_URL``), never in the
    command line, where ``ps`` would show its password. With ``metrics_announce`` (a file),
    the child serves its metrics on a loopback port and writes the port there."""
    argv = [sys.executable, "-m", "faena.cli.main", "worker", app_path]
    argv += ["--processes", "1", "--concurrency", str(share), "--metrics-port", "0"]
    if metrics_announce:
        argv += ["--metrics-announce", metrics_announce]
    argv += ["--grace", repr(grace), "--log-format", log_format, "--log-level", log_level]
    if queues:
        argv += ["--queues", queues]
    if isolation:
        argv += ["--isolation", isolation]
    if prefetch != "auto":  # the children's default is the supervisor's
        argv += ["--prefetch", str(prefetch)]
    if lease is not None:
        argv += ["--lease", repr(lease)]
    env = dict(os.environ)
    if broker:
        env["FAENA_BROKER_URL"] = broker
    return argv, env
