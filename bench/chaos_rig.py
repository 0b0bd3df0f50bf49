"""What the chaos harness runs and breaks: the broker of each backend (with the proxy in
front and the disk under it), the worker processes and the producer (the sampler is in
bench/chaos_sampler.py).

Nothing here touches state others use: Redis is a ``redis-server`` of its own (AOF on, a
free port); PostgreSQL is a schema of its own on the shared server, and only connections
whose ``application_name`` is this run's are ever terminated; SQLite lives on a small tmpfs
of its own (when this runs as root), unmounted at the end whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from bench.chaos_proxy import Proxy

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get("FAENA_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
POOL, PARALLELISM, LEASE = 3, 8, 3.0


def reader(url: str) -> Any:
    """An app that reads the store and never writes its settings (pools, cap)."""
    import faena

    app = faena.App(broker=url)
    app.open_existing()
    return app


class SteppedClock:
    """The producer's clock: the wall clock plus a step the harness sets and takes back."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset


class Backend:
    """One broker, its URLs (the workers' through the proxy, the harness's direct) and the
    faults it can take."""

    name = ""
    faults: tuple[str, ...] = ()

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.proxy: Proxy | None = None

    @property
    def url(self) -> str:  # the harness's own: producer, sampler, checks
        raise NotImplementedError

    @property
    def worker_url(self) -> str:
        return self.url

    def memory(self) -> int:
        """The broker's memory (bytes), for the soak."""
        return 0

    def gauges(self) -> dict[str, float]:
        """What the soak samples of the broker besides its memory (per backend)."""
        return {}

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.close()


class SqliteBackend(Backend):
    name = "sqlite"
    faults: tuple[str, ...] = ("diskfull",)

    def __init__(self, tmp: Path, disk_mb: int = 64) -> None:
        super().__init__(tmp)
        self.disk = tmp / "disk"
        self.disk.mkdir()
        self.mounted = False
        if os.geteuid() == 0 and shutil.which("mount"):
            mount = ["mount", "-t", "tmpfs", "-o", f"size={disk_mb}m", "tmpfs", str(self.disk)]
            self.mounted = subprocess.run(mount, capture_output=True).returncode == 0
        if not self.mounted:  # not root, or no right to mount (a container)
            print(f"no tmpfs of its own at {self.disk}: no full-disk faults", file=sys.stderr)
            self.faults = ()  # no file system of our own to fill

    @property
    def url(self) -> str:
        return f"sqlite:///{self.disk / 'chaos.db'}"

    def fill(self) -> Path:
        """Fill the file system to the last byte; the file to delete to free it."""
        filler = self.disk / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for size in (1 << 20, 4096, 1):  # down to the last byte
                chunk = b"\0" * size
                with contextlib.suppress(OSError):
                    while True:
                        os.write(fd, chunk)
        finally:
            os.close(fd)
        return filler

    def memory(self) -> int:
        files = [self.disk / n for n in ("chaos.db", "chaos.db-wal", "chaos.db-shm")]
        return sum(f.stat().st_size for f in files if f.exists())

    def close(self) -> None:
        super().close()
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.disk)], check=False)
            self.mounted = False


class PostgresBackend(Backend):
    name = "postgres"
    faults = ("terminate", "drop", "delay", "halfopen")

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        tag = uuid.uuid4().hex[:10]
        self.schema, self.appname = f"chaos_{tag}", f"faena_chaos_{tag}"
        self.proxy = Proxy(("127.0.0.1", 5432))

    def _url(self, port: int) -> str:
        base = PG.replace("127.0.0.1:5432", f"127.0.0.1:{port}")
        return f"{base}?schema={self.schema}&application_name={self.appname}"

    @property
    def url(self) -> str:
        return self._url(5432)

    @property
    def worker_url(self) -> str:
        assert self.proxy is not None
        return self._url(self.proxy.port)

    def _sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(PG, autocommit=True) as conn:
            cur = conn.execute(query, args)
            return cur.fetchall() if cur.description else []

    def terminate(self) -> int:
        """``pg_terminate_backend`` of this run's connections only (its application_name)."""
        rows = self._sql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            self.appname,
        )
        return int(rows[0][0])

    def memory(self) -> int:
        """The resident memory of this run's server backends (same machine)."""
        pids = self._sql(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", self.appname
        )
        total = 0
        for (pid,) in pids:
            with contextlib.suppress(psutil.Error):
                total += psutil.Process(pid).memory_info().rss
        return total

    def gauges(self) -> dict[str, float]:
        """The jobs table's size (``pg_total_relation_size``: table, indexes, TOAST) and the
        number of this run's server backends."""
        rows = self._sql(
            "SELECT pg_total_relation_size(format('%%I.jobs', %s::text)::regclass), "
            "(SELECT count(*) FROM pg_stat_activity WHERE application_name = %s)",
            self.schema,
            self.appname,
        )
        size, backends = rows[0]
        return {"jobs_table_mb": round(int(size) / 2**20, 2), "pg_backends": int(backends)}

    def close(self) -> None:
        super().close()
        with contextlib.suppress(Exception):
            self.terminate()
            self._sql(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


class RedisBackend(Backend):
    name = "redis"
    faults = ("restart", "drop", "delay", "halfopen")

    def __init__(self, tmp: Path) -> None:
        from tests.redis_server import RedisServer, free_port

        super().__init__(tmp)
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: apt-get install redis-server")
        data = tmp / "redis"
        data.mkdir()
        self.server = RedisServer(binary, free_port(), data)
        self.server.start()
        self.proxy = Proxy(("127.0.0.1", self.server.port))
        self.prefix = f"chaos{uuid.uuid4().hex[:8]}"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.server.port}/0?prefix={self.prefix}"

    @property
    def worker_url(self) -> str:
        assert self.proxy is not None
        return f"redis://127.0.0.1:{self.proxy.port}/0?prefix={self.prefix}"

    def restart(self, down: float) -> None:
        """SIGKILL the server (AOF, fsync always: nothing acknowledged is lost), restart it."""
        proc = self.server.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        time.sleep(down)
        self.server.start()

    def memory(self) -> int:
        import redis

        client = redis.Redis(port=self.server.port)
        try:
            return int(client.info("memory")["used_memory"])
        finally:
            client.close()

    def close(self) -> None:
        super().close()
        self.server.stop()


BACKENDS = {"sqlite": SqliteBackend, "postgres": PostgresBackend, "redis": RedisBackend}

#: the worker processes: thread, process and prefork modes, some prefetching
WORKERS: dict[str, tuple[str, ...]] = {
    "thread": ("--concurrency", "4"),
    "process": ("--isolation", "process", "--concurrency", "2", "--prefetch", "2"),
    "prefork": ("--processes", "2", "--concurrency", "4", "--prefetch", "1"),
}


@dataclass
class Worker:
    """One ``faena worker`` command of bench.chaosapp, started again whenever it dies."""

    name: str
    args: tuple[str, ...]
    url: str
    tmp: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    paused: bool = False
    logs: list[Path] = field(default_factory=list)

    def start(self) -> None:
        log = self.tmp / f"worker-{self.name}-{self.starts}.log"
        self.logs.append(log)
        self.starts += 1
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "faena.cli.main", "worker", "bench.chaosapp:app",
                    "--broker", self.url, "--queues", "chaos", "--lease", str(LEASE),
                    "--grace", "1", "--no-scheduler", "--log-format", "json", *self.args,
                ],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killpg hits it alone
            )  # fmt: skip

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> list[int]:
        """The worker and every process under it (prefork children, process jobs' children)."""
        if not self.alive():
            return []
        assert self.proc is not None
        try:
            tree = psutil.Process(self.proc.pid)
            return [tree.pid, *(c.pid for c in tree.children(recursive=True))]
        except psutil.Error:
            return []

    def signal_group(self, sig: int) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.signal_group(signal.SIGCONT)
        self.signal_group(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(15)
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


def worker_env(log: Path) -> dict[str, str]:
    return dict(
        os.environ,
        CHAOS_LOG=str(log),
        CHAOS_LEASE=str(LEASE),
        CHAOS_POOL=str(POOL),
        CHAOS_PARALLELISM=str(PARALLELISM),
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]),  # this tree's faena
        PYTHONUNBUFFERED="1",
    )


class Keeper(threading.Thread):
    """Starts a worker again when it dies (killed or stopped by a fault), until told to
    stop."""

    def __init__(self, workers: list[Worker]) -> None:
        super().__init__(name="chaos-keeper", daemon=True)
        self.workers, self.done = workers, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.3):
            for w in self.workers:
                if not w.alive():
                    w.start()


#: the load: (weight, task, kwargs maker)
def job_mix(rng: random.Random) -> tuple[str, dict[str, Any], dict[str, Any]]:
    roll = rng.random()
    ms = rng.randint(0, 300)
    retry = {"retries": 12}
    if roll < 0.45:
        return "work", {"ms": ms}, retry
    if roll < 0.70:
        return "pooled", {"ms": ms}, {"pool": "limited", **retry}
    if roll < 0.82:
        return "work", {"ms": rng.randint(20, 120), "cpu": True}, retry
    if roll < 0.97:
        return "work", {"ms": ms, "fails": rng.randint(1, 2)}, retry
    return "poison", {}, {"retries": 2}


class Producer(threading.Thread):
    """Enqueues the load at ``rate`` jobs a second through its own app (its clock the
    stepped one); an enqueue that raises is not accepted and not retried."""

    def __init__(self, url: str, rate: float, seed: int) -> None:
        import faena

        super().__init__(name="chaos-producer", daemon=True)
        self.clock = SteppedClock()
        # the same cap and pools as the workers': an app opening the store applies its own
        # (an App without ``parallelism`` would lift the cap)
        self.app = faena.App(
            broker=url, clock=self.clock, pools={"limited": POOL}, parallelism=PARALLELISM
        )
        self.rate, self.rng = rate, random.Random(seed)
        self.accepted: list[str] = []
        self.due: dict[str, float] = {}  # a job for later: not to start before (real time)
        self.refused = 0
        self.done = threading.Event()

    def run(self) -> None:
        tick = 0.1
        owed = 0.0
        while not self.done.wait(tick):
            owed += self.rate * tick
            while owed >= 1:
                owed -= 1
                task, kwargs, options = job_mix(self.rng)
                # some jobs for later, by the producer's (stepped) clock: a delay or a run_at
                roll, later = self.rng.random(), self.rng.uniform(0.0, 2.0)
                if roll < 0.08:
                    options["delay"] = later
                elif roll < 0.16:
                    options["run_at"] = self.clock.now() + later
                try:
                    handle = self.app.enqueue(task, (), kwargs, queue="chaos", **options)
                except Exception:
                    self.refused += 1
                    continue
                self.accepted.append(handle.id)
                if roll < 0.16 and handle.job.run_at is not None:
                    self.due[handle.id] = handle.job.run_at  # as stored: workers' clocks read it
