"""Reports of simulator runs: summary figures, a CSV timeline, a PNG plot."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from faena.autoscale.simulator import SimResult


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (``p`` in 0..100); ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Summary:
    scenario: str
    tasks: int
    completed: int
    max_backlog: int
    wait_p50_s: float | None
    wait_p95_s: float | None
    wait_p99_s: float | None
    burst_drain_s: tuple[float | None, ...]
    replica_seconds: float
    scale_events: int
    max_replicas: int
    released: int


def summarize(result: SimResult) -> Summary:
    replicas = [row.desired_replicas for row in result.timeline] or [0]
    return Summary(
        scenario=result.scenario,
        tasks=len(result.waits),
        completed=result.completed,
        max_backlog=result.max_backlog,
        wait_p50_s=percentile(result.waits, 50),
        wait_p95_s=percentile(result.waits, 95),
        wait_p99_s=percentile(result.waits, 99),
        burst_drain_s=result.burst_drain_s,
        replica_seconds=result.replica_seconds,
        scale_events=len(result.scale_events),
        max_replicas=max(max(replicas), *(e.new for e in result.scale_events), 0),
        released=result.released,
    )


def _fmt(value: float | None, unit: str = "s") -> str:
    if value is None:
        return "-"
    return f"{value:.1f}{unit}"


def format_summaries(summaries: Sequence[Summary]) -> str:
    """A plain-text table, one column per scenario."""
    rows: list[tuple[str, list[str]]] = [
        ("tasks (completed)", [f"{s.tasks} ({s.completed})" for s in summaries]),
        ("max backlog", [str(s.max_backlog) for s in summaries]),
        ("wait p50", [_fmt(s.wait_p50_s) for s in summaries]),
        ("wait p95", [_fmt(s.wait_p95_s) for s in summaries]),
        ("wait p99", [_fmt(s.wait_p99_s) for s in summaries]),
        (
            "burst drain",
            [
                ", ".join(_fmt(d) if d is not None else "not drained" for d in s.burst_drain_s)
                or "-"
                for s in summaries
            ],
        ),
        ("replica-seconds", [f"{s.replica_seconds:.0f}" for s in summaries]),
        ("scale events", [str(s.scale_events) for s in summaries]),
        ("max replicas", [str(s.max_replicas) for s in summaries]),
        ("released jobs", [str(s.released) for s in summaries]),
    ]
    header = ["", *(s.scenario for s in summaries)]
    widths = [max(len(header[0]), *(len(r[0]) for r in rows))]
    for i in range(len(summaries)):
        widths.append(max(len(header[i + 1]), *(len(r[1][i]) for r in rows)))
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for label, cells in rows:
        line = [label.ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(cells, widths[1:], strict=True)
        ]
        lines.append("  ".join(line))
    return "\n".join(lines)


TIMELINE_COLUMNS = (
    "scenario",
    "t_seconds",
    "desired_replicas",
    "pods",
    "ready_pods",
    "queue_depth",
    "running",
    "oldest_wait_seconds",
)


def write_timeline_csv(results: Sequence[SimResult], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(TIMELINE_COLUMNS)
        for result in results:
            for row in result.timeline:
                writer.writerow(
                    [
                        result.scenario,
                        f"{row.t:g}",
                        row.desired_replicas,
                        row.pods,
                        row.ready_pods,
                        row.queue_depth,
                        row.running,
                        f"{row.oldest_wait_s:.3f}",
                    ]
                )


def plot_timeline(results: Sequence[SimResult], path: Path, *, title: str = "") -> None:
    """Replicas, queue depth and oldest wait over time, one line per scenario (PNG)."""
    import matplotlib  # optional dependency (faena[plot]), imported only when plotting

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    for result in results:
        minutes = [row.t / 60 for row in result.timeline]
        axes[0].step(
            minutes,
            [r.desired_replicas for r in result.timeline],
            where="post",
            label=result.scenario,
        )
        axes[1].plot(minutes, [r.queue_depth for r in result.timeline], label=result.scenario)
        axes[2].plot(minutes, [r.oldest_wait_s for r in result.timeline], label=result.scenario)
    axes[0].set_ylabel("replicas")
    axes[1].set_ylabel("queue depth")
    axes[2].set_ylabel("oldest wait (s)")
    axes[2].set_xlabel("minutes")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
