"""``faena demo`` end to end, as ``make demo`` runs it (a real process): it is ``faena up`` on
the demo app, so its console and API answer while it runs; the burst makes the autoscaler
scale out and back in, which the report's scale events show; the poison job ends dead; the
commands it prints run as printed; ``--serve`` keeps it up until Ctrl-C, then exits 0."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _start(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "faena.cli.main", "demo", "--port", "0", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


class Lines:
    """The demo's output, read on a thread as it comes."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                found = re.search(pattern, line)
                if found:
                    return found
            if not self._thread.is_alive():
                break
            time.sleep(0.1)
        raise AssertionError(f"no line matching {pattern!r} in:\n{self.text}")

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def join(self, stream: IO[str]) -> None:
        self._thread.join(10)
        stream.close()


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.status, answer.read().decode()


def _get_json(url: str) -> Any:
    status, body = _get(url)
    assert status == 200, body
    return json.loads(body)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_the_demo_serves_its_console_scales_out_and_in_and_reports(tmp_path: Path) -> None:
    proc = _start(tmp_path, "--days", "13")
    assert proc.stdout is not None
    out = Lines(proc.stdout)
    try:
        url = out.wait_for(r"^console: (http://127\.0\.0\.1:\d+)/", 60).group(1)
        # while it runs: the console, the API (the autoscaler's state), one /metrics
        status, page = _get(url + "/")
        assert status == 200 and "faena console" in page
        deadline = time.monotonic() + 30
        while not (scalers := _get_json(url + "/api/v1/autoscaler")["autoscalers"]):
            assert time.monotonic() < deadline, "the autoscaler never reported its state"
            time.sleep(0.2)
        assert scalers[0]["name"] == "demo-worker" and scalers[0]["max_replicas"] == 4
        _, metrics = _get(url + "/metrics")
        assert 'faena_desired_workers{pool="demo-worker"}' in metrics
        assert "celery_queue_length" in metrics
        assert proc.wait(180) == 0, out.text
    finally:
        _stop(proc)
    out.join(proc.stdout)
    text = out.text
    assert "== faena demo report ==" in text
    assert "dead       1" in text and "succeeded  389" in text
    # the scale events of the report: out above the minimum, then back to it
    report = text[text.index("== faena demo report ==") :]
    events = [(int(a), int(b)) for a, b in re.findall(r"scale (\d+) -> (\d+) workers", report)]
    assert events, report
    assert events[0][1] > events[0][0] == 1, events  # out first
    assert any(b < a for a, b in events) and events[-1][1] == 1, events  # back in, to 1
    # the commands it prints run as printed (not a bare `faena` the shell may not find)
    shown = re.search(r"inspect: (.+)$", text, re.M)
    kept = re.search(r"database kept for inspection: (.+)$", text, re.M)
    assert shown is not None and kept is not None
    for line in (shown.group(1), kept.group(1)):
        done = subprocess.run(
            shlex.split(line),
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
        )
        assert done.returncode == 0, (line, done.stderr)
        assert "dead" in done.stdout


def test_serve_keeps_the_platform_up_after_the_report_until_sigint(tmp_path: Path) -> None:
    proc = _start(tmp_path, "--days", "2", "--serve")
    assert proc.stdout is not None
    out = Lines(proc.stdout)
    try:
        url = out.wait_for(r"^serving (http://127\.0\.0\.1:\d+)/ until Ctrl-C", 120).group(1)
        assert "== faena demo report ==" in out.text
        assert _get_json(url + "/api/v1/jobs?state=succeeded&limit=1")["jobs"]
        time.sleep(1)
        assert proc.poll() is None, out.text  # still serving
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, out.text
    finally:
        _stop(proc)
    out.join(proc.stdout)
    assert "database kept for inspection" in out.text
