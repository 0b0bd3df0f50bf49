"""The drain targets of issue #3 from interleaved rounds (bench/drain_rounds.sh): each round's
ratios, and their median.

    .venv/bin/python bench/ratios.py bench/results/rounds-*.jsonl
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict

#: faena's Redis drains: one process; --processes 2 (as Celery prefork); each also at
#: --log-level WARNING, the level the peers run at (no line per job)
REDIS_SYSTEMS = ("faena-redis", "faena-redis-p2", "faena-redis-warning", "faena-redis-p2-warning")

#: (faena system, peer system, the ratio issue #3 asks for)
TARGETS = (
    *(
        (ours, peer, target)
        for ours in REDIS_SYSTEMS
        for peer, target in (
            ("huey-redis", 1.0),
            ("celery-redis-prefork", 4.0),
            ("celery-redis-threads", 4.0),
        )
    ),
    ("faena-postgres", "procrastinate-pg", 5.0),
    ("faena-postgres-warning", "procrastinate-pg", 5.0),
)


def main(paths: list[str]) -> None:
    drains: dict[int, dict[str, float]] = defaultdict(dict)
    for path in paths:
        with open(path) as f:
            for line in f:
                if not line.startswith("{"):
                    continue
                row = json.loads(line)
                if row.get("metric") == "drain" and row.get("value") is not None:
                    drains[row.get("round", 0)][row["system"]] = row["value"]
    rounds = sorted(drains)
    print("| drain (jobs/s) | " + " | ".join(f"round {r}" for r in rounds) + " | median |")
    print("|---|" + "---|" * (len(rounds) + 1))
    systems = sorted({s for r in rounds for s in drains[r]})
    for system in systems:
        values = [drains[r].get(system) for r in rounds]
        known = [v for v in values if v is not None]
        cells = ["n/a" if v is None else f"{v:,.0f}" for v in values]
        median = f"{statistics.median(known):,.0f}" if known else "n/a"
        print(f"| {system} | " + " | ".join(cells) + f" | {median} |")
    print()
    print("| ratio | target | " + " | ".join(f"round {r}" for r in rounds) + " | median | met |")
    print("|---|---|" + "---|" * (len(rounds) + 2))
    for ours, peer, target in TARGETS:
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


if __name__ == "__main__":
    main(sys.argv[1:])
