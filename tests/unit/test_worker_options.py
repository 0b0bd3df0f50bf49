"""A worker's and a ``--processes`` supervisor's options, checked before anything runs: how
slots are split, what a child's command line carries, what is refused (no process, no
thread: the supervisor and prefetch at work are in tests/integration)."""

from __future__ import annotations

from typing import Any

import pytest

import faena
from faena.brokers.memory import MemoryBroker
from faena.errors import ConfigError
from faena.worker import Worker
from faena.worker.prefork import Supervisor, child_command, split_concurrency


def test_concurrency_is_split_across_processes() -> None:
    assert split_concurrency(2, 2) == [1, 1]
    assert split_concurrency(7, 3) == [3, 2, 2]
    assert split_concurrency(16, 1) == [16]


def test_fewer_slots_than_processes_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="--processes 4 needs --concurrency of at least 4"):
        split_concurrency(2, 4)
    with pytest.raises(ConfigError, match="--processes must be >= 1"):
        split_concurrency(2, 0)


def test_child_command_keeps_the_broker_url_out_of_the_command_line() -> None:
    argv, env = child_command(
        "app:app",
        3,
        queues="a,b",
        isolation=None,
        grace=5.0,
        lease=None,
        log_format="json",
        log_level="INFO",
        broker="redis://:secret@127.0.0.1:6379/0",
    )
    assert "secret" not in " ".join(argv)
    assert env["FAENA_BROKER_URL"] == "redis://:secret@127.0.0.1:6379/0"
    i = argv.index("--processes")
    assert argv[i + 1] == "1" and argv[argv.index("--concurrency") + 1] == "3"
    assert argv[argv.index("--metrics-port") + 1] == "0"
    assert "--metrics-announce" not in argv, "no metrics unless the supervisor serves them"
    assert "--prefetch" not in argv, "the children's default (auto) unless asked otherwise"


def _child_argv(**options: Any) -> list[str]:
    """A child's command line with the supervisor's defaults and ``options``."""
    defaults: dict[str, Any] = {
        "queues": None,
        "isolation": None,
        "grace": 5.0,
        "lease": None,
        "log_format": "json",
        "log_level": "INFO",
        "broker": None,
    }
    argv, _env = child_command("app:app", 1, **{**defaults, **options})
    return argv


def test_each_child_prefetches_what_the_supervisor_was_told() -> None:
    argv = _child_argv(prefetch=8)
    assert argv[argv.index("--prefetch") + 1] == "8"
    argv = _child_argv(prefetch=0)
    assert argv[argv.index("--prefetch") + 1] == "0", "off is passed on: it is not the default"


def test_a_child_of_a_supervisor_with_metrics_announces_its_port() -> None:
    argv = _child_argv(metrics_announce="/tmp/faena-metrics-x/process-0.json")
    assert argv[argv.index("--metrics-announce") + 1] == "/tmp/faena-metrics-x/process-0.json"


def test_a_supervisor_needs_a_child() -> None:
    with pytest.raises(ConfigError, match="at least one child"):
        Supervisor([])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--processes", "3", "--concurrency", "2"], "--processes 3 needs --concurrency of at"),
    ],
)
def test_the_command_refuses_what_processes_cannot_do(extra: list[str], message: str) -> None:
    from click.testing import CliRunner

    from faena.cli.main import cli

    result = CliRunner().invoke(cli, ["worker", "tests.acceptance.accapp:app", *extra])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_prefetch_must_not_be_negative() -> None:
    app = faena.App(broker=MemoryBroker())
    with pytest.raises(ConfigError, match="prefetch must be 'auto' or an int >= 0.*got -1"):
        Worker(app, prefetch=-1)
    with pytest.raises(ConfigError, match="got 'lots'"):
        Worker(app, prefetch="lots")  # type: ignore[arg-type]


def test_the_worker_prefetches_adaptively_unless_told_a_number() -> None:
    app = faena.App(broker=MemoryBroker())
    for prefetch, shown, capacity in (("auto", "auto", 16), (0, 0, 16), (3, 3, 19)):
        w = Worker(app, prefetch=prefetch) if prefetch != "auto" else Worker(app)
        try:
            assert w.prefetch == shown
            assert w._ledger.capacity == capacity, "auto sizes it turn by turn, from 0"
            assert (w._adaptive is not None) == (prefetch == "auto")
        finally:
            w.close()


def test_the_command_takes_auto_or_a_number_for_prefetch() -> None:
    from faena.cli.worker import PrefetchType

    t = PrefetchType()
    assert t.convert("auto", None, None) == "auto"
    assert t.convert("AUTO", None, None) == "auto"
    assert t.convert("0", None, None) == 0
    assert t.convert("8", None, None) == 8
    assert t.convert(4, None, None) == 4


def test_the_command_refuses_a_negative_prefetch() -> None:
    from click.testing import CliRunner

    from faena.cli.main import cli

    result = CliRunner().invoke(cli, ["worker", "tests.acceptance.accapp:app", "--prefetch", "-1"])
    assert result.exit_code == 2, result.output
    assert "--prefetch" in result.output and "-1 is not >= 0" in result.output
    result = CliRunner().invoke(cli, ["worker", "tests.acceptance.accapp:app", "--prefetch", "x"])
    assert result.exit_code == 2, result.output
    assert "'x' is neither 'auto' nor a whole number" in result.output
