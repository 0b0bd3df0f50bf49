"""The supervisor of ``faena worker --processes N``, with real child processes (tiny Python
programs standing in for workers: what it supervises is processes and signals)."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from faena.errors import ConfigError
from faena.worker.prefork import Supervisor, child_command, split_concurrency

# A child that records each start and each SIGTERM in a file, exits 0 on its ``stop_after``-th
# SIGTERM, and exits with ``crash`` at once on its first start if ``crash`` is not 0.
CHILD = """
import os, signal, sys, time
path, stop_after, crash = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
first = not os.path.exists(path)
with open(path, "a") as f:
    f.write(f"start {os.getpid()}\\n")
if first and crash:
    sys.exit(crash) if crash > 0 else os.kill(os.getpid(), -crash)
got = []
def on_term(signum, frame):
    got.append(signum)
    with open(path, "a") as f:
        f.write(f"term {os.getpid()}\\n")
    if len(got) >= stop_after:
        sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, on_term)
while True:
    time.sleep(0.05)
"""


def child(path: Path, stop_after: int = 1, crash: int = 0) -> tuple[list[str], None]:
    return [sys.executable, "-c", CHILD, str(path), str(stop_after), str(crash)], None


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def run_in_thread(sup: Supervisor) -> tuple[threading.Thread, list[int]]:
    code: list[int] = []
    t = threading.Thread(target=lambda: code.append(sup.run(install_signals=False)))
    t.start()
    return t, code


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
    assert "--prefetch" not in argv, "no prefetch unless asked for"


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


def test_a_child_of_a_supervisor_with_metrics_announces_its_port() -> None:
    argv = _child_argv(metrics_announce="/tmp/faena-metrics-x/process-0.json")
    assert argv[argv.index("--metrics-announce") + 1] == "/tmp/faena-metrics-x/process-0.json"


def test_stop_forwards_the_signal_and_waits_for_every_child(tmp_path: Path) -> None:
    files = [tmp_path / "a", tmp_path / "b"]
    sup = Supervisor([child(f) for f in files])
    t, code = run_in_thread(sup)
    wait_for(lambda: all(lines(f) for f in files))
    sup.stop()
    t.join(20)
    assert code == [0]
    for f in files:
        assert lines(f)[2] == "term", "each child got SIGTERM"


def test_a_second_signal_is_forwarded_too(tmp_path: Path) -> None:
    f = tmp_path / "a"
    sup = Supervisor([child(f, stop_after=2)])
    t, code = run_in_thread(sup)
    wait_for(lambda: bool(lines(f)))
    sup.stop()
    wait_for(lambda: lines(f).count("term") == 1)
    assert t.is_alive(), "the child still drains"
    sup.stop(signal.SIGINT)
    t.join(20)
    assert code == [0] and lines(f).count("term") == 2


def test_a_child_killed_after_start_is_started_again(tmp_path: Path) -> None:
    f = tmp_path / "a"
    sup = Supervisor([child(f, crash=-signal.SIGKILL)], restart_delay=0.05)
    t, code = run_in_thread(sup)
    wait_for(lambda: lines(f).count("start") == 2)
    assert t.is_alive()
    sup.stop()
    t.join(20)
    assert code == [0]


def test_a_child_that_exits_with_an_error_while_starting_stops_the_rest(tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    sup = Supervisor([child(good), child(bad, crash=3)], restart_delay=0.05)
    t, code = run_in_thread(sup)
    t.join(20)
    assert code == [3], "the failing child's code"
    assert lines(bad).count("start") == 1, "not restarted in a loop"
    wait_for(lambda: "term" in lines(good))


def test_an_error_exit_after_the_start_window_is_restarted(tmp_path: Path) -> None:
    f = tmp_path / "a"
    sup = Supervisor([child(f, crash=3)], startup_seconds=0.0, restart_delay=0.05)
    t, code = run_in_thread(sup)
    wait_for(lambda: lines(f).count("start") == 2)
    sup.stop()
    t.join(20)
    assert code == [0]


def test_a_child_killed_by_the_signal_passed_on_has_stopped_cleanly(tmp_path: Path) -> None:
    """A child that has not installed its handlers yet (or has removed them) dies of the
    SIGTERM the supervisor passes on: that is the stop asked for, not a failure."""
    sleeper = ([sys.executable, "-c", "import time; time.sleep(60)"], None)
    sup = Supervisor([sleeper, child(tmp_path / "a")])
    t, code = run_in_thread(sup)
    wait_for(lambda: lines(tmp_path / "a"))
    sup.stop()
    t.join(20)
    assert code == [0]


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
