"""Huey: RedisHuey and SqliteHuey, one consumer process, 2 worker threads.

usage: python huey_bench.py [redis|sqlite|sqlite-nofsync ...]  (default: all)

"sqlite" is SqliteStorage with its defaults: WAL and no synchronous pragma,
so SQLite's default synchronous=FULL applies and every commit (each enqueue
and each dequeue) fsyncs the WAL.  "sqlite-nofsync" passes huey's own
``fsync=False`` (synchronous=OFF) to show what that costs.
The consumer imports ``huey_bench.huey``; BENCH_HUEY selects the storage.
"""

import os
import sys

import common
import huey as huey_pkg
from huey import RedisHuey, SqliteHuey

KIND = os.environ.get("BENCH_HUEY", "redis")
SQLITE_FILE = os.environ.get("BENCH_HUEY_SQLITE", "/tmp/faena-bench-huey.sqlite3")

if KIND == "sqlite-nofsync":
    huey = SqliteHuey("bench", filename=SQLITE_FILE, fsync=False)
elif KIND == "sqlite":
    # SqliteStorage defaults: journal_mode=wal, cache_mb=8, fsync=None
    # (huey issues no "pragma synchronous", so SQLite's compiled default
    # applies; the value in force is read back and reported below).
    huey = SqliteHuey("bench", filename=SQLITE_FILE)
else:
    # RedisStorage defaults: blocking=True (BRPOP, read_timeout=1s)
    huey = RedisHuey("bench", url=common.REDIS_URL)


@huey.task(name="noop")
def noop(lat=False):
    common.job_body(lat)


def reset():
    common.flush_redis()
    if KIND.startswith("sqlite"):
        huey.storage.flush_all()


def enqueue_one(n):
    for _ in range(n):
        noop()


def fill(n):
    # Pre-enqueue for drain: same rows noop() would write, in one transaction
    # (with synchronous=FULL one commit per job would take far longer).
    if not KIND.startswith("sqlite"):
        return enqueue_one(n)
    data = huey.serialize_task(noop.s())
    st = huey.storage
    with st.db(commit=True) as curs:
        curs.executemany(
            "insert into task (queue, data, priority) values (?, ?, 0)",
            [(st.name, st.to_blob(data))] * n,
        )


def sqlite_pragmas():
    rows = {}
    for p in ("journal_mode", "synchronous", "cache_size"):
        rows[p] = huey.storage.sql(f"pragma {p}", results=True)[0][0]
    sync_names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    how = (
        "fsync=False -> pragma synchronous=0"
        if KIND == "sqlite-nofsync"
        else "defaults, fsync=None -> no synchronous pragma issued"
    )
    return (
        "SqliteStorage ("
        + how
        + "): journal_mode={}, synchronous={} ({}), cache_size={}, file {}".format(
            rows["journal_mode"],
            rows["synchronous"],
            sync_names.get(rows["synchronous"], "?"),
            rows["cache_size"],
            SQLITE_FILE,
        )
    )


def main():
    flags = ["-w", "2", "-k", "thread"]
    argv = [
        os.path.join(os.path.dirname(sys.executable), "huey_consumer"),
        "huey_bench.huey",
        "-q",
        *flags,
    ]
    consumer = (
        "consumer: huey_consumer "
        + " ".join(flags)
        + " (defaults: -d 0.1 initial poll delay, -m 10 max delay, "
        "-b 1.15 backoff, periodic on)"
    )
    if KIND.startswith("sqlite"):
        system = "huey-" + KIND
        settings = sqlite_pragmas() + "; " + consumer
    else:
        system = "huey-redis"
        settings = "RedisHuey defaults (blocking=True BRPOP); " + consumer
    common.run_all(
        system,
        huey_pkg.__version__,
        settings,
        enqueue_one=enqueue_one,
        enqueue_bulk=None,
        fill=fill,
        worker_argv=argv,
        env={"BENCH_HUEY": KIND},
        enqueue_lat=lambda: noop(True),
        reset=reset,
        bulk_note="huey has no bulk enqueue API",
    )


def dispatch():
    # Each storage kind runs in its own interpreter (KIND is import-time).
    kinds = sys.argv[1:] or ["redis", "sqlite", "sqlite-nofsync"]
    if len(kinds) == 1 and os.environ.get("BENCH_HUEY") == kinds[0]:
        return main()
    import subprocess

    failed = []
    for kind in kinds:
        rc = subprocess.call(
            [sys.executable, os.path.abspath(__file__), kind], env=dict(os.environ, BENCH_HUEY=kind)
        )
        if rc:
            failed.append(kind)
    if failed:
        raise RuntimeError(f"huey failed: {failed}")


if __name__ == "__main__":
    # Run as the importable module "huey_bench" so task names match the
    # consumer's registry (huey names tasks "<module>.<name>").
    import huey_bench

    common.main_guard(huey_bench.dispatch)
