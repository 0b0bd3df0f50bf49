"""Generators and loaders that write or read files of their own (moved out of the unit
tests, which touch no file): the dashboards' --check mode, a load spec's trace file."""

from __future__ import annotations

from pathlib import Path

from faena.autoscale.sim_load import parse_load_spec
from faena.observability import dashboards as gen


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
