"""What faena's one-job SQLite enqueue costs, in parts, without the fsync (issue 23's durable
enqueue row waits on one fsync on both sides; this is the work around it).

    .venv/bin/python bench/sqlite_insert_parts.py [--rounds 6] [--block 1000] [--out FILE]

On copies of one new store, each opened at ``synchronous=NORMAL`` in WAL mode (no fsync per
commit), the broker's own one-job statement (``queries.INSERT_ONE``, autocommit) runs in
blocks that take turns: on the store as it is, without the counting trigger
``faena_count_inserted``, without the index ``faena_jobs_due``, without both, and without
both and the listing indexes ``faena_jobs_task`` and ``faena_jobs_state`` too (what those
cost; the console needs them). Beside them, in the same turns, the whole ``App.enqueue`` at
``sync=normal`` and, when the peers' virtualenv (bench/.venv-peers) holds Huey, Huey's
``SqliteHuey(fsync=False)`` enqueue. The WAL frames (pages) the commits write are counted
in blocks of 100 after the timed ones. One JSON line per variant (medians of the rounds) on
stdout, and in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

#: variant -> the triggers and indexes dropped from its copy of the store
VARIANTS: dict[str, list[str]] = {
    "statement": [],
    "statement without the count trigger": ["faena_count_inserted"],
    "statement without faena_jobs_due": ["faena_jobs_due"],
    "statement without both": ["faena_count_inserted", "faena_jobs_due"],
    "statement without both, task and state indexes": [
        "faena_count_inserted",
        "faena_jobs_due",
        "faena_jobs_task",
        "faena_jobs_state",
    ],
}


#: inserts whose WAL frames are counted (their frames stay under wal_autocheckpoint's 1000)
FRAMES_BLOCK = 100


def frames(conn: sqlite3.Connection) -> int:
    """The frames in the WAL now (``wal_checkpoint(PASSIVE)``'s log column)."""
    return int(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])


def statement_runner(path: Path, drops: list[str]) -> tuple[Callable[[], None], sqlite3.Connection]:
    from faena.brokers.sqlite import queries as q
    from faena.core import lifecycle
    from faena.core.job import NewJob

    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for name in drops:
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        conn.execute(f"DROP INDEX IF EXISTS {name}")

    def insert() -> None:
        job = lifecycle.create(NewJob(task="noop", queue="bench"), time.time())
        conn.execute(q.INSERT_ONE, (*q.insert_row(job), job.pool))

    return insert, conn


def huey_runner(path: Path) -> tuple[Callable[[], None], sqlite3.Connection] | None:
    peers = ROOT / "bench" / ".venv-peers" / "lib"
    sys.path.extend(str(p) for p in sorted(peers.glob("python3*/site-packages")))
    try:
        from huey import SqliteHuey
    except ImportError:
        return None
    huey = SqliteHuey("bench", filename=str(path), fsync=False)

    @huey.task(name="noop")
    def noop() -> None:
        return None

    noop()  # the tables
    return noop, sqlite3.connect(path, isolation_level=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--block", type=int, default=1000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import faena

    folder = Path(tempfile.mkdtemp(prefix="faena-insert-parts-"))
    app = faena.App(broker=f"sqlite:///{folder / 'app.db'}?sync=normal")
    app.enqueue("noop", queue="bench")  # the schema, the pool
    main_conn = sqlite3.connect(folder / "app.db", isolation_level=None)
    main_conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all in the file: the copies
    runners: dict[str, tuple[Callable[[], None], sqlite3.Connection]] = {}
    for n, (name, drops) in enumerate(VARIANTS.items()):
        copy = folder / f"v{n}.db"
        shutil.copy(folder / "app.db", copy)
        runners[name] = statement_runner(copy, drops)
    runners["App.enqueue, sync=normal"] = (lambda: app.enqueue("noop", queue="bench"), main_conn)
    huey = huey_runner(folder / "huey.db")
    if huey is not None:
        runners["Huey enqueue, fsync=False"] = huey
    times: dict[str, list[float]] = {k: [] for k in runners}
    pages: dict[str, list[float]] = {k: [] for k in runners}
    for fn, _conn in runners.values():  # warm up: statements, WAL files
        for _ in range(100):
            fn()
    names = list(runners)
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            fn, conn = runners[name]
            t0 = time.perf_counter()
            for _ in range(args.block):
                fn()
            elapsed = time.perf_counter() - t0
            times[name].append(1e6 * elapsed / args.block)
    for name in names:  # 100 inserts: fewer frames than an automatic checkpoint waits for
        fn, conn = runners[name]
        for _ in range(3):
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            for _ in range(FRAMES_BLOCK):
                fn()
            pages[name].append(frames(conn) / FRAMES_BLOCK)
    load = os.getloadavg()[0]
    out = args.out.open("a") if args.out else None
    for name in names:
        line = json.dumps(
            {
                "variant": name,
                "us_per_insert": round(statistics.median(times[name]), 1),
                "rounds_us": [round(t, 1) for t in times[name]],
                "wal_frames_per_insert": round(statistics.median(pages[name]), 2),
                "block": args.block,
                "loadavg": load,
            }
        )
        print(line, flush=True)
        if out is not None:
            out.write(line + "\n")
    if out is not None:
        out.close()
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
