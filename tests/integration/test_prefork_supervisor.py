"""The supervisor of ``faena worker --processes N``, with real child processes (tiny Python
programs standing in for workers: what it supervises is processes and signals)."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

from faena.worker.prefork import Supervisor

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
