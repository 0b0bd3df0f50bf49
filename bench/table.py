"""Turn benchmark JSON lines (bench/results/*.jsonl) into the Markdown table of
docs/benchmarks.md.

    .venv/bin/python bench/table.py bench/results/run-*.jsonl
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

COLUMNS = (
    ("enqueue_one", "enqueue 1-by-1 (jobs/s)"),
    ("enqueue_bulk", "bulk enqueue (jobs/s)"),
    ("drain", "drain 20k, 1 worker x2 (jobs/s)"),
    ("drain_noop", "drain, no-op jobs (faena only)"),
    ("latency_p50", "p50 (ms)"),
    ("latency_p95", "p95 (ms)"),
    ("latency_p99", "p99 (ms)"),
)


def main(paths: list[str]) -> None:
    table: dict[str, dict[str, float | None]] = defaultdict(dict)
    for path in paths:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                row = json.loads(line)
                table[row["system"]][row["metric"]] = row.get("value")
    header = "| system | " + " | ".join(title for _, title in COLUMNS) + " |"
    print(header)
    print("|" + "---|" * (len(COLUMNS) + 1))
    for system in sorted(table):
        cells = []
        for metric, _ in COLUMNS:
            value = table[system].get(metric)
            cells.append(
                "n/a" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.2f}"
            )
        print(f"| {system} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
