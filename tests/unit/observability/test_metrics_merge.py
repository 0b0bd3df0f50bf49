"""Merging the metrics of ``--processes`` children (pure: no process, no socket)."""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from faena.observability.metrics_merge import (
    ChildrenCollector,
    ProcessMerger,
    Scrape,
    announce,
    parse,
)


def exposition(processed: float, observed: list[float], queue_length: float, running: float) -> str:
    """What one child serves: a counter, a histogram, a broker gauge, a per-process gauge."""
    r = CollectorRegistry()
    Counter("worker_tasks_processed", "attempts", ["queue"], registry=r).labels("q").inc(processed)
    h = Histogram("worker_task_duration_seconds", "run time", ["queue"], buckets=(1.0,), registry=r)
    for value in observed:
        h.labels("q").observe(value)
    Gauge("celery_queue_length", "jobs waiting", ["queue"], registry=r).labels("q").set(
        queue_length
    )
    Gauge("faena_worker_jobs_running", "running", registry=r).set(running)
    return generate_latest(r).decode()


def values(families: list) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:  # type: ignore[type-arg]
    return {key: v for fam in families for key, v in fam.samples.items()}


PROCESSED = ("worker_tasks_processed_total", (("queue", "q"),))
COUNT = ("worker_task_duration_seconds_count", (("queue", "q"),))
BUCKET_1 = ("worker_task_duration_seconds_bucket", (("le", "1.0"), ("queue", "q")))
LENGTH = ("celery_queue_length", (("queue", "q"),))
RUNNING = ("faena_worker_jobs_running", ())


def test_counters_and_histograms_add_up_and_broker_gauges_are_taken_once() -> None:
    merged = values(
        ProcessMerger().merge(
            [
                Scrape(0, 100, parse(exposition(3, [0.5, 2.0], 7, 1))),
                Scrape(1, 101, parse(exposition(4, [0.1], 7, 2))),
            ]
        )
    )
    assert merged[PROCESSED] == 7
    assert merged[COUNT] == 3
    assert merged[BUCKET_1] == 2
    assert merged[LENGTH] == 7, "the broker's figure, the same from each child: not doubled"
    assert merged[RUNNING] == 3, "a process's own gauge: summed"
    assert not any(name.endswith("_created") for name, _ in merged)


def test_a_child_that_does_not_answer_keeps_its_counts_but_not_its_gauges() -> None:
    merger = ProcessMerger()
    merger.merge(
        [
            Scrape(0, 100, parse(exposition(3, [0.5], 7, 1))),
            Scrape(1, 101, parse(exposition(4, [0.1], 7, 2))),
        ]
    )
    merged = values(
        merger.merge([Scrape(0, 100, parse(exposition(5, [0.5], 6, 1))), Scrape(1, 101, None)])
    )
    assert merged[PROCESSED] == 9, "5 from the first, the second's last 4"
    assert merged[RUNNING] == 1, "only the process that answered reports running jobs"
    assert merged[LENGTH] == 6


def test_a_replaced_child_s_counts_are_kept_so_totals_never_go_down() -> None:
    merger = ProcessMerger()
    merger.merge([Scrape(0, 100, parse(exposition(10, [0.5, 0.5], 0, 0)))])
    # the child died (no file yet, then its successor with pid 200 and fresh counters)
    assert values(merger.merge([Scrape(0, None, None)]))[PROCESSED] == 10
    merged = values(merger.merge([Scrape(0, 200, parse(exposition(2, [3.0], 0, 0)))]))
    assert merged[PROCESSED] == 12
    assert merged[COUNT] == 3
    assert merged[BUCKET_1] == 2, "the predecessor's buckets stay"
    again = values(merger.merge([Scrape(0, 200, parse(exposition(3, [3.0], 0, 0)))]))
    assert again[PROCESSED] == 13, "the predecessor is counted once, not at every scrape"


def test_a_late_answer_from_a_replaced_child_changes_nothing() -> None:
    merger = ProcessMerger()
    merger.merge([Scrape(0, 100, parse(exposition(10, [], 0, 0)))])
    merger.merge([Scrape(0, 200, parse(exposition(2, [], 0, 0)))])
    late = values(merger.merge([Scrape(0, 100, parse(exposition(11, [], 0, 0)))]))
    assert late[PROCESSED] == 12, "pid 100 was replaced: its late figures are not taken"
    assert values(merger.merge([Scrape(0, 200, parse(exposition(3, [], 0, 0)))]))[PROCESSED] == 13


def test_every_series_of_every_replaced_child_is_kept() -> None:
    def counts(**by_queue: float) -> list:  # type: ignore[type-arg]
        r = CollectorRegistry()
        c = Counter("worker_tasks_processed", "attempts", ["queue"], registry=r)
        for queue, n in by_queue.items():
            c.labels(queue).inc(n)
        return parse(generate_latest(r).decode())

    merger = ProcessMerger()
    merger.merge([Scrape(0, 100, counts(q=1))])
    merger.merge([Scrape(0, 200, counts(q=2, other=5))])  # a queue the first never saw
    merged = values(merger.merge([Scrape(0, 300, counts(q=1))]))
    assert merged[PROCESSED] == 4
    assert merged[("worker_tasks_processed_total", (("queue", "other"),))] == 5


def test_no_child_has_answered_yet_gives_no_families() -> None:
    assert ProcessMerger().merge([Scrape(0, None, None), Scrape(1, None, None)]) == []


def test_the_collector_reads_the_announced_ports_and_skips_what_it_cannot_use(
    tmp_path: Path,
) -> None:
    files = [tmp_path / f"process-{i}.json" for i in range(4)]
    files[0].write_text(json.dumps({"pid": 1, "port": 9001}))
    files[1].write_text(json.dumps({"pid": 2, "port": 9002}))  # answers something else
    files[2].write_text("{half a file")  # not announced whole: as if not announced
    bodies = {
        (9001, "/metrics"): exposition(3, [], 1, 1),
        (9002, "/metrics"): "<html>not metrics</html>\n",
        (9001, "/readyz"): "ready\n",
    }
    collector = ChildrenCollector(files, get=lambda port, path: bodies.get((port, path)))
    try:
        merged = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for metric in collector.collect()
            for s in metric.samples
        }
        assert merged[PROCESSED] == 3
        assert merged[RUNNING] == 1
        assert set(merged) == {PROCESSED, LENGTH, RUNNING}, "child 0's alone"
        assert not collector.all_ready(), "children 1 to 3 are not ready"
    finally:
        collector.close()
    first = ChildrenCollector(files[:1], get=lambda port, path: bodies.get((port, path)))
    try:
        assert first.all_ready()
    finally:
        first.close()


def test_a_child_announces_its_port_in_one_piece(tmp_path: Path) -> None:
    target = tmp_path / "process-0.json"
    announce(target, 9100)
    announce(target, 9200)  # a restarted child overwrites it
    data = json.loads(target.read_text())
    assert data["port"] == 9200 and isinstance(data["pid"], int)
    assert [p.name for p in tmp_path.iterdir()] == ["process-0.json"], "no temporary file left"
