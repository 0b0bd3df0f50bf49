"""Generators, loaders and reports that write or read files of their own (moved out of the
unit tests, which touch no file): the dashboards' --check mode, a load spec's trace file,
the simulator's CSV and plot, the announcement files of ``--processes`` children."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.autoscale_samples import QUEUE_HPA, STUCK_LOAD
from tests.metrics_samples import LENGTH, PROCESSED, RUNNING, exposition

from faena.autoscale.manifest import load_hpa
from faena.autoscale.sim_load import parse_load_spec
from faena.autoscale.sim_report import (
    TIMELINE_COLUMNS,
    format_summaries,
    plot_timeline,
    summarize,
    write_timeline_csv,
)
from faena.autoscale.simulator import Scenario, simulate
from faena.observability import dashboards as gen
from faena.observability.metrics_merge import ChildrenCollector, announce


def test_check_mode_notices_a_stale_file(tmp_path: Path) -> None:
    assert gen.main(["--out", str(tmp_path)]) == 0
    (tmp_path / "faena-workers.json").write_text("{}")
    assert gen.main(["--out", str(tmp_path), "--check"]) == 1


def test_load_spec_sources(tmp_path: Path) -> None:
    (tmp_path / "trace.csv").write_text("t_seconds,count\n0,2\n10.5,1\n", encoding="utf-8")
    spec = parse_load_spec(
        {
            "arrivals": [
                {"constant": {"rate": 0.5, "start": 0, "end": 10}},
                {"steps": [{"at": 0, "rate": 0}, {"at": 20, "rate": 1}]},
                {"burst": {"at": 5, "count": 4, "over": 2}},
                {"trace": {"path": "trace.csv"}},
            ],
        },
        horizon=23,
        base_dir=tmp_path,
    )
    assert list(spec.arrivals) == sorted(spec.arrivals)
    assert list(spec.arrivals) == [
        0.0,
        0.0,
        0.0,
        2.0,
        4.0,
        5.0,
        5.5,
        6.0,
        6.0,
        6.5,
        8.0,
        10.5,
        20.0,
        21.0,
        22.0,
    ]
    assert spec.bursts[0].count == 4


def test_reports(tmp_path: Path) -> None:
    load = parse_load_spec(STUCK_LOAD, horizon=60)
    results = simulate(load, [Scenario("legacy", load_hpa(QUEUE_HPA).spec)], 60)
    summary = summarize(results[0])
    assert (summary.tasks, summary.max_backlog, summary.scale_events) == (51, 50, 2)
    text = format_summaries([summary])
    assert "max backlog" in text and "legacy" in text and "not drained" in text
    csv_path = tmp_path / "timeline.csv"
    write_timeline_csv(results, csv_path)
    with csv_path.open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == TIMELINE_COLUMNS
    assert len(rows) == 1 + len(results[0].timeline)
    png = tmp_path / "plot.png"
    plot_timeline(results, png, title="t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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
