"""The parallelism cap an app writes to its store: its own when it names one, none when it
says ``None``, and the store's left alone when it says nothing (found by bench/chaos.py: a
producer's bare ``App(broker=url)`` lifted the workers' cap of 8, and 14 jobs ran at once)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

import faena
from faena.brokers.url import open_broker
from faena.cli.main import cli


def cap_of(url: str) -> int | None:
    broker = open_broker(url, existing=True)
    try:
        return broker.get_parallelism()
    finally:
        broker.close()


def opened(url: str, **settings: int | None) -> None:
    app = faena.App(broker=url, **settings)  # type: ignore[arg-type]
    app.broker.setup()
    app.close()


def test_an_app_that_names_no_cap_leaves_the_stored_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'faena.db'}"
    opened(url, parallelism=8)  # the workers' app
    assert cap_of(url) == 8
    opened(url)  # a producer's bare app
    assert cap_of(url) == 8, "a bare app lifted the workers' cap"
    opened(url, parallelism=3)
    assert cap_of(url) == 3
    opened(url, parallelism=None)  # said: no cap
    assert cap_of(url) is None


def test_faena_migrate_leaves_the_cap(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'faena.db'}"
    opened(url, parallelism=8)
    result = CliRunner().invoke(cli, ["migrate", "--broker", url])
    assert result.exit_code == 0, result.output
    assert cap_of(url) == 8
