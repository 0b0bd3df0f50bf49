"""The drain targets of issue #3 from interleaved rounds (bench/drain_rounds.sh), or with
``--enqueue`` its enqueue targets (bench/enqueue_rounds.sh): each round's figures and
ratios, and their medians.

    .venv/bin/python bench/ratios.py bench/results/rounds-*.jsonl
    .venv/bin/python bench/ratios.py --enqueue bench/results/enqueue-rounds-*.jsonl
    .venv/bin/python bench/ratios.py --defaults bench/results/default-rounds-*.jsonl
    .venv/bin/python bench/ratios.py --sqlite bench/results/sqlite-rounds-*.jsonl
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict

#: faena's Redis drains: one process; with --prefetch 8; --processes 2 (as Celery prefork);
#: at --log-level WARNING, the level the peers run at (no line per job)
REDIS_SYSTEMS = (
    "faena-redis",
    "faena-redis-prefetch8",
    "faena-redis-p2",
    "faena-redis-warning",
    "faena-redis-p2-warning",
)
#: per round, the fastest of the Celery drains the round ran (pools and prefetch settings)
CELERY_BEST = "celery-redis-best"

#: (faena system, peer system, the ratio issue #3 asks for)
TARGETS = (
    *(
        (ours, peer, target)
        for ours in REDIS_SYSTEMS
        for peer, target in (
            ("huey-redis", 1.0),
            ("celery-redis-prefork", 4.0),
            ("celery-redis-threads", 4.0),
            (CELERY_BEST, 4.0),
        )
    ),
    ("faena-postgres", "procrastinate-pg", 5.0),
    ("faena-postgres-prefetch8", "procrastinate-pg", 5.0),
    ("faena-postgres-warning", "procrastinate-pg", 5.0),
)


#: (faena system, peer system, the ratio issue #3 asks for) of enqueue one by one
ENQUEUE_TARGETS = (
    ("faena-redis", "huey-redis", 1.0),
    ("faena-postgres", "procrastinate-pg", 2.0),
)
#: (faena system, peer system, the ratio) of issue 23's drains at default settings
#: (bench/default_rounds.sh); faena's -prefetch0 and -prefetch8 drains beside its default
DEFAULT_TARGETS = tuple(
    (ours + variant, peer, target)
    for ours, peer, target in (
        ("faena-redis", "huey-redis", 2.0),
        ("faena-redis", CELERY_BEST, 6.0),
        ("faena-postgres", "procrastinate-pg", 10.0),
        ("faena-sqlite", "huey-sqlite", 2.5),
    )
    for variant in ("", "-prefetch0", "-prefetch8")
)
#: issue 23's SQLite rows (bench/sqlite_rounds.sh): (metric, faena system, peer, the ratio);
#: faena-sqlite-b... is faena from the run's B_SRC tree, beside this checkout's
SQLITE_TARGETS = tuple(
    (metric, ours.replace("faena-sqlite", tree, 1), "huey-sqlite", target)
    for tree in ("faena-sqlite", "faena-sqlite-b")
    for metric, ours, target in (
        ("enqueue_one", "faena-sqlite(sync=enqueue)", 1.0),
        ("drain", "faena-sqlite", 2.5),
    )
)
#: bulk enqueue: at least this many jobs/s
BULK_TARGET = 50_000


def load(paths: list[str], metric: str) -> dict[int, dict[str, float]]:
    """``metric``'s values by round, then by system. The rounds of several files are numbered
    on from one file to the next (each file numbers its own from 1)."""
    out: dict[int, dict[str, float]] = defaultdict(dict)
    for path in paths:
        base = max(out, default=0)
        with open(path) as f:
            for line in f:
                if not line.startswith("{"):
                    continue
                row = json.loads(line)
                if row.get("metric") == metric and row.get("value") is not None:
                    out[base + row.get("round", 0)][row["system"]] = row["value"]
    return out


def main(paths: list[str]) -> None:
    if paths and paths[0] == "--enqueue":
        enqueue(paths[1:])
        return
    if paths and paths[0] == "--sqlite":
        sqlite(paths[1:])
        return
    targets = TARGETS
    if paths and paths[0] == "--defaults":
        targets, paths = DEFAULT_TARGETS, paths[1:]
    drains = load(paths, "drain")
    for figures in drains.values():
        celery = [v for k, v in figures.items() if k.startswith("celery-redis-")]
        if celery:
            figures[CELERY_BEST] = max(celery)
    rounds = _figures("drain (jobs/s)", drains)
    print("| ratio | target | " + " | ".join(f"round {r}" for r in rounds) + " | median | met |")
    print("|---|---|" + "---|" * (len(rounds) + 2))
    for ours, peer, target in targets:
        ratios = [
            drains[r][ours] / drains[r][peer]
            for r in rounds
            if ours in drains[r] and peer in drains[r]
        ]
        if not ratios:
            continue
        median = statistics.median(ratios)
        cells = " | ".join(f"{x:.2f}" for x in ratios)
        verdict = "yes" if median >= target else "no"
        print(f"| {ours} / {peer} | {target:.1f}x | {cells} | {median:.2f} | {verdict} |")


def _figures(title: str, by_round: dict[int, dict[str, float]]) -> list[int]:
    rounds = sorted(by_round)
    print(f"| {title} | " + " | ".join(f"round {r}" for r in rounds) + " | median |")
    print("|---|" + "---|" * (len(rounds) + 1))
    for system in sorted({s for r in rounds for s in by_round[r]}):
        values = [by_round[r].get(system) for r in rounds]
        known = [v for v in values if v is not None]
        cells = ["n/a" if v is None else f"{v:,.0f}" for v in values]
        median = f"{statistics.median(known):,.0f}" if known else "n/a"
        print(f"| {system} | " + " | ".join(cells) + f" | {median} |")
    print()
    return rounds


def enqueue(paths: list[str]) -> None:
    one, bulk = load(paths, "enqueue_one"), load(paths, "enqueue_bulk")
    rounds = _figures("enqueue 1-by-1 (jobs/s)", one)
    _figures("bulk enqueue (jobs/s)", bulk)
    print("| target | " + " | ".join(f"round {r}" for r in rounds) + " | median | met |")
    print("|---|" + "---|" * (len(rounds) + 2))
    for ours, peer, target in ENQUEUE_TARGETS:
        ratios = [one[r][ours] / one[r][peer] for r in rounds if ours in one[r] and peer in one[r]]
        if ratios:
            median = statistics.median(ratios)
            cells = " | ".join(f"{x:.2f}" for x in ratios)
            verdict = "yes" if median >= target else "no"
            print(f"| {ours} / {peer} >= {target:.1f}x | {cells} | {median:.2f} | {verdict} |")
    for ours in ("faena-redis", "faena-postgres"):
        rates = [bulk[r][ours] for r in rounds if ours in bulk[r]]
        if rates:
            median = statistics.median(rates)
            cells = " | ".join(f"{x:,.0f}" for x in rates)
            verdict = "yes" if median >= BULK_TARGET else "no"
            print(f"| {ours} bulk >= {BULK_TARGET:,}/s | {cells} | {median:,.0f} | {verdict} |")


def sqlite(paths: list[str]) -> None:
    figures = {metric: load(paths, metric) for metric in ("enqueue_one", "enqueue_bulk", "drain")}
    _figures("enqueue 1-by-1 (jobs/s)", figures["enqueue_one"])
    _figures("bulk enqueue (jobs/s)", figures["enqueue_bulk"])
    _figures("drain, default settings (jobs/s)", figures["drain"])
    rounds = sorted({r for got in figures.values() for r in got})
    print("| target | " + " | ".join(f"round {r}" for r in rounds) + " | median | met |")
    print("|---|" + "---|" * (len(rounds) + 2))
    for metric, ours, peer, target in SQLITE_TARGETS:
        got = figures[metric]
        ratios = [got[r][ours] / got[r][peer] for r in rounds if ours in got[r] and peer in got[r]]
        if ratios:
            median = statistics.median(ratios)
            cells = " | ".join(f"{x:.2f}" for x in ratios)
            verdict = "yes" if median >= target else "no"
            print(
                f"| {metric}: {ours} / {peer} >= {target:.1f}x | {cells} | {median:.2f} "
                f"| {verdict} |"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
