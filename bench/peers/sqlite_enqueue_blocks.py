"""faena's and Huey's durable SQLite enqueue one by one, in alternating blocks in one process.

    .venv/bin/python bench/peers/sqlite_enqueue_blocks.py [--blocks 40] [--block 100] \
        [--src /tmp/main/src]

This machine's fsync latency moves by several times within a minute (other programs write to
the same disk), so two enqueue runs even seconds apart are not comparable. Here faena and
Huey take turns every ``--block`` jobs (the order flips every block), each on its own file in
the same folder, and each block's rate is set against the neighbouring block of the other:
the median of those ratios is the comparison. Both commit durably in the same sense: WAL
mode, synchronous=FULL (faena's default sync=enqueue; Huey's SqliteHuey defaults leave
SQLite's compiled default FULL), one fdatasync of the WAL per enqueue.

``--src`` picks the faena source tree (default: this checkout's). Huey comes from the peers'
virtualenv (bench/rounds_common.sh makes it), put last on the path so that faena's own
dependencies are those of faena's virtualenv. Prints one JSON line per system (the median
block's rate; the CPU time per enqueue, apart from the wall time) and the median ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def faena_enqueuer(path: Path):  # type: ignore[no-untyped-def]
    import faena

    app = faena.App(broker=f"sqlite:///{path}")
    app.broker  # noqa: B018 - create the schema
    return lambda: app.enqueue("noop", queue="bench")


def huey_enqueuer(path: Path):  # type: ignore[no-untyped-def]
    from huey import SqliteHuey

    huey = SqliteHuey("bench", filename=str(path))

    @huey.task(name="noop")
    def noop() -> None:
        return None

    return noop


def timed(fn, n: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        fn()
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=40)
    parser.add_argument("--block", type=int, default=100)
    parser.add_argument("--src", type=Path, default=Path(__file__).resolve().parents[2] / "src")
    args = parser.parse_args()
    sys.path.insert(0, str(args.src))  # this faena, not an installed one
    peers = Path(__file__).resolve().parents[1] / ".venv-peers" / "lib"
    sys.path.extend(str(p) for p in sorted(peers.glob("python3*/site-packages")))
    folder = Path(tempfile.mkdtemp(prefix="faena-enq-blocks-"))
    systems = {"faena-sqlite": faena_enqueuer(folder / "faena.db")}
    systems["huey-sqlite"] = huey_enqueuer(folder / "huey.db")
    for fn in systems.values():  # warm up: tables, statements, WAL files
        timed(fn, 50)
    wall: dict[str, list[float]] = {k: [] for k in systems}
    cpu: dict[str, list[float]] = {k: [] for k in systems}
    names = list(systems)
    for b in range(args.blocks):
        for name in names if b % 2 == 0 else names[::-1]:
            w, c = timed(systems[name], args.block)
            wall[name].append(w)
            cpu[name].append(c)
    ratios = [h / f for f, h in zip(wall["faena-sqlite"], wall["huey-sqlite"], strict=True)]
    load = os.getloadavg()[0]
    for name in names:
        rates = [args.block / w for w in wall[name]]
        print(
            json.dumps(
                {
                    "system": name,
                    "metric": "enqueue_one_blocks",
                    "value": round(statistics.median(rates), 1),
                    "unit": "jobs/s",
                    "cpu_us_per_job": round(1e6 * statistics.median(cpu[name]) / args.block, 1),
                    "blocks": args.blocks,
                    "block": args.block,
                    "loadavg": load,
                    "src": str(args.src) if name.startswith("faena") else None,
                }
            ),
            flush=True,
        )
    print(
        json.dumps(
            {
                "system": "faena-sqlite/huey-sqlite",
                "metric": "enqueue_one_blocks_ratio",
                "value": round(statistics.median(ratios), 3),
                "unit": "x",
                "quartiles": [round(q, 3) for q in statistics.quantiles(ratios, n=4)],
                "loadavg": load,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
