"""Merging the metrics of ``--processes`` children (pure: no process, no socket)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest
from tests.metrics_samples import BUCKET_1, COUNT, LENGTH, PROCESSED, RUNNING, exposition

from faena.observability.metrics_merge import (
    ProcessMerger,
    Scrape,
    parse,
)


def values(families: list) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:  # type: ignore[type-arg]
    return {key: v for fam in families for key, v in fam.samples.items()}


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
