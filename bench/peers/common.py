"""Shared helpers for the peer benchmarks: the no-op job body, worker
process handling, the four measurements and the JSON-line output.

Method (identical for every peer):
  * every job body is ``job_body(lat)``: when ``lat`` is true it first
    RPUSHes ``time.time()`` to ``bench:starts``; it always INCRs ``bench:done``
    (Redis DB 15, also for the SQLite and PostgreSQL peers).  That is one
    Redis round trip per job (two for latency jobs), the same for all peers.
  * enqueue_one / enqueue_bulk: no worker running; wall time of the enqueue
    loop / bulk call only.
  * drain: the N jobs of enqueue_bulk (or N jobs enqueued one by one where
    there is no bulk API) left queued, no worker yet; clock starts right before the
    worker process is spawned (``subprocess.Popen``) and stops when
    ``bench:done`` reaches N (polled every 2 ms).  Nothing is subtracted:
    worker start-up (imports, connecting) is inside the figure.
  * latency: worker started and warmed up with 20 jobs; then 300 jobs, one at
    a time: t0 = time.time() right before the enqueue call, the job pushes
    its own start time, the producer BLPOPs it before enqueuing the next.
    latency = start - t0 (enqueue call included).
"""

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time

import redis

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
PG_DSN = os.environ.get("BENCH_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=faena_bench")
HERE = os.path.dirname(os.path.abspath(__file__))

N_ONE = int(os.environ.get("BENCH_N_ONE", 5000))
N_BULK = int(os.environ.get("BENCH_N_BULK", 20000))
N_DRAIN = int(os.environ.get("BENCH_N_DRAIN", 20000))
N_LAT = int(os.environ.get("BENCH_N_LAT", 300))
N_WARM = 20
DRAIN_TIMEOUT = float(os.environ.get("BENCH_DRAIN_TIMEOUT", 150))
#: BENCH_ONLY=drain: fill the queue and time the drain only (bench/drain_rounds.sh);
#: BENCH_ONLY=enqueue: time the enqueues only (bench/enqueue_rounds.sh)
DRAIN_ONLY = os.environ.get("BENCH_ONLY") == "drain"
ENQUEUE_ONLY = os.environ.get("BENCH_ONLY") == "enqueue"

_r = None
_r_pid = None


def rconn():
    """Per-process Redis client (re-created after fork)."""
    global _r, _r_pid
    if _r is None or _r_pid != os.getpid():
        _r = redis.Redis.from_url(REDIS_URL)
        _r_pid = os.getpid()
    return _r


def job_body(lat=False):
    r = rconn()
    if lat:
        r.rpush("bench:starts", repr(time.time()))
    r.incr("bench:done")


def flush_redis():
    redis.Redis.from_url(REDIS_URL).flushdb()


def emit(system, metric, value, unit, n, version, settings):
    line = {
        "system": system,
        "metric": metric,
        "value": None if value is None else round(value, 2),
        "unit": unit,
        "n": n,
        "version": version,
        "settings": settings,
    }
    print(json.dumps(line), flush=True)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


class Worker:
    """A worker subprocess, always killed (whole process group) on exit."""

    def __init__(self, argv, env=None):
        self.argv = argv
        e = dict(os.environ, PYTHONPATH=HERE, PYTHONUNBUFFERED="1")
        e.update(env or {})
        self.env = e
        self.proc = None
        self.logf = None

    def __enter__(self):
        self.logf = open(
            os.path.join(
                os.environ.get("BENCH_LOG_DIR", "/tmp"),
                f"peer-worker-{os.path.basename(sys.argv[0])}.log",
            ),
            "ab",
        )
        self.proc = subprocess.Popen(
            self.argv,
            cwd=HERE,
            env=self.env,
            stdout=self.logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def check(self):
        if self.proc.poll() is not None:
            raise RuntimeError(
                "worker exited early (rc={}): {}".format(self.proc.returncode, " ".join(self.argv))
            )

    def __exit__(self, *exc):
        if self.proc is None:
            return False
        # start_new_session=True: the process group id is the worker's pid,
        # so forked children (prefork pools, worker-pool) are signalled too.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(4)
                break
            except subprocess.TimeoutExpired:
                continue
        time.sleep(0.3)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # leftovers, if any
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(5)
        self.logf.close()
        return False


def time_it(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure_enqueue(n, enqueue_fn):
    """jobs/s of ``enqueue_fn(n)`` (no worker running)."""
    return n / time_it(lambda: enqueue_fn(n))


def measure_drain(n, fill_fn, worker_argv, env=None, reset=None):
    """Fill the queue with ``fill_fn(n)``, then time a worker to finish it."""
    r = rconn()
    if fill_fn is not None:
        r.delete("bench:done")
        fill_fn(n)
    with Worker(worker_argv, env) as w:
        t0 = time.perf_counter()
        deadline = t0 + DRAIN_TIMEOUT
        while True:
            done = int(r.get("bench:done") or 0)
            if done >= n:
                break
            if time.perf_counter() > deadline:
                raise RuntimeError("drain timeout: %d/%d done" % (done, n))
            w.check()
            time.sleep(0.002)
        elapsed = time.perf_counter() - t0
    return n / elapsed


def measure_latency(enqueue_lat_fn, worker_argv, env=None, n=None):
    """p50/p95/p99 enqueue-to-start (ms) with one job in flight at a time."""
    n = n or N_LAT
    r = rconn()
    r.delete("bench:starts")
    samples = []
    with Worker(worker_argv, env) as w:
        for i in range(N_WARM + n):
            t0 = time.time()
            enqueue_lat_fn()
            got = None
            deadline = time.monotonic() + (60 if i == 0 else 15)
            while got is None:
                w.check()
                got = r.blpop(["bench:starts"], timeout=1)
                if got is None and time.monotonic() > deadline:
                    raise RuntimeError("latency job %d never started" % i)
            if i >= N_WARM:
                samples.append((float(got[1]) - t0) * 1000.0)
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return {"latency_p50": q[49], "latency_p95": q[94], "latency_p99": q[98]}


def run_all(
    system,
    version,
    settings,
    *,
    enqueue_one,
    enqueue_bulk,
    fill,
    worker_argv,
    enqueue_lat,
    reset,
    env=None,
    bulk_note=None,
    n_lat=None,
    n_drain=None,
):
    """Run the four measurements for one system and emit JSON lines.

    ``reset()`` cleans the backend (FLUSHDB / drop tables) between steps.
    ``enqueue_bulk`` may be None (no bulk API: value null, unit "n/a").
    """
    reset()
    if not DRAIN_ONLY:
        log("[%s] enqueue_one n=%d" % (system, N_ONE))
        v = measure_enqueue(N_ONE, enqueue_one)
        emit(system, "enqueue_one", v, "jobs/s", N_ONE, version, settings)
        reset()
    rconn().delete("bench:done")
    # The N_BULK jobs of enqueue_bulk (or, without a bulk API, N_DRAIN jobs
    # from ``fill``) stay queued and are the ones the drain step processes.
    if DRAIN_ONLY and enqueue_bulk is not None:
        log("[%s] drain: filling n=%d" % (system, N_BULK))
        enqueue_bulk(N_BULK)
        n_drain = N_BULK
    elif enqueue_bulk is None:
        if ENQUEUE_ONLY:
            reset()
            return
        if not DRAIN_ONLY:
            emit(
                system,
                "enqueue_bulk",
                None,
                "n/a",
                N_BULK,
                version,
                settings + "; " + (bulk_note or "no bulk enqueue API"),
            )
        n_drain = n_drain or N_DRAIN
        log("[%s] drain: filling n=%d" % (system, n_drain))
        fill(n_drain)
    else:
        log("[%s] enqueue_bulk n=%d" % (system, N_BULK))
        v = measure_enqueue(N_BULK, enqueue_bulk)
        emit(
            system,
            "enqueue_bulk",
            v,
            "jobs/s",
            N_BULK,
            version,
            settings + ("; " + bulk_note if bulk_note else ""),
        )
        n_drain = N_BULK
    if ENQUEUE_ONLY:
        reset()
        return
    log("[%s] drain n=%d" % (system, n_drain))
    v = measure_drain(n_drain, None, worker_argv, env)
    emit(system, "drain", v, "jobs/s", n_drain, version, settings)
    reset()
    if DRAIN_ONLY:
        return
    n_lat = n_lat or N_LAT
    log("[%s] latency n=%d" % (system, n_lat))
    lat = measure_latency(enqueue_lat, worker_argv, env, n_lat)
    for k, val in lat.items():
        emit(system, k, val, "ms", n_lat, version, settings)
    reset()


def _sigterm(signum, frame):
    raise SystemExit(128 + signum)


def main_guard(fn):
    """Run fn(); report a failure as a JSON line and exit 1.

    SIGTERM (e.g. from ``timeout`` in run_peers.sh) becomes SystemExit so
    the ``finally`` blocks still kill the worker process groups, which live
    in their own sessions and would otherwise outlive the driver.
    """
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGHUP, _sigterm)
    try:
        fn()
    except Exception as e:
        import traceback

        traceback.print_exc()
        print(
            json.dumps(
                {
                    "system": os.path.basename(sys.argv[0]),
                    "metric": "error",
                    "value": None,
                    "unit": "n/a",
                    "n": 0,
                    "version": "",
                    "settings": repr(e)[:300],
                }
            ),
            flush=True,
        )
        sys.exit(1)


def ensure_pg_db():
    """Create the dedicated database (faena_bench) if it is missing."""
    import psycopg

    dbname = psycopg.conninfo.conninfo_to_dict(PG_DSN)["dbname"]
    admin = psycopg.conninfo.make_conninfo(PG_DSN, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as c:
        if not c.execute("select 1 from pg_database where datname = %s", (dbname,)).fetchone():
            c.execute(f'create database "{dbname}"')


def pg_exec(sql):
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as c:
        c.execute(sql)
