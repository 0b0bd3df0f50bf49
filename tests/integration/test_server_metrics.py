"""``faena server`` serves the broker's queue metrics at /metrics."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

import faena
from faena.web.app import create_app


def test_server_metrics_read_the_broker_at_scrape_time(tmp_path: Path) -> None:
    app = faena.App(broker=f"sqlite:///{tmp_path / 'm.db'}", pools={"etl_pool": 24})

    @app.task(queue="etl", pool="etl_pool")
    def load() -> None: ...

    for _ in range(3):
        load.enqueue()
    with TestClient(create_app(app)) as client:
        text = client.get("/metrics").text
        assert 'celery_queue_length{queue="etl"} 3.0' in text
        assert 'faena_pool_slots{pool="etl_pool"} 24.0' in text
        load.enqueue()
        assert 'celery_queue_length{queue="etl"} 4.0' in client.get("/metrics").text
    app.close()


def test_server_metrics_show_each_schedule_s_last_fire_from_the_store(tmp_path: Path) -> None:
    app = faena.App(broker=f"sqlite:///{tmp_path / 's.db'}")

    @app.task(queue="etl")
    def nightly() -> None: ...

    app.schedule("nightly", task=nightly, cron="0 2 * * *", tz="Europe/Madrid")
    with TestClient(create_app(app)) as client:
        text = client.get("/metrics").text
        # the longest gap is the 25 hours around the fall-back night
        assert 'faena_schedule_interval_seconds{schedule="nightly"} 90000.0' in text
        assert "faena_schedule_last_fire_timestamp_seconds{" not in text  # never fired yet
        app.broker.fire_schedule("nightly", 1_800_000_000.0, [])  # what a worker's round does
        text = client.get("/metrics").text
        assert 'faena_schedule_last_tick_timestamp_seconds{schedule="nightly"} 1.8e+09' in text
    app.close()
