"""``faena autoscale`` for real: worker processes scaled by an HPA manifest on SQLite.

A burst of 150 short jobs scales the workers from 1 to maxReplicas 4 (the scale-up policy
doubles at most every 2 s), then 8 long jobs keep every worker busy while the scale-down
stabilization window (5 s) passes and the scale-down policy (1 worker per 2 s) stops them
one by one with SIGTERM: the drained workers finish their jobs, so every job runs exactly once.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

import faena
from faena.core.states import JobState
from tests.acceptance.conftest import ROOT, wait_until

pytestmark = pytest.mark.slow

BURST, BURST_SECONDS = 150, 0.3
LONG, LONG_SECONDS = 8, 8.0
GRACE = 12
DOWN_WINDOW, DOWN_PERIOD = 5, 2

HPA = f"""\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: nap-workers
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: nap-worker}}
  minReplicas: 1
  maxReplicas: 4
  metrics:
    - type: External
      external:
        metric:
          name: celery_queue_length
          selector: {{matchLabels: {{queue: scale}}}}
        target: {{type: AverageValue, averageValue: "5"}}
    - type: Resource
      resource:
        name: cpu
        target: {{type: Utilization, averageUtilization: 80}}
  behavior:
    scaleUp:
      stabilizationWindowSeconds: 0
      policies: [{{type: Percent, value: 100, periodSeconds: 2}}]
    scaleDown:
      stabilizationWindowSeconds: {DOWN_WINDOW}
      policies: [{{type: Pods, value: 1, periodSeconds: {DOWN_PERIOD}}}]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def events(log: Path, name: str) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text().splitlines():
        if f'"{name}"' not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == name:
            out.append(record)
    return out


def records(path: Path) -> list[tuple[str, str, int, int, float]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        kind, job_id, attempt, pid, ts = line.split()
        rows.append((kind, job_id, int(attempt), int(pid), float(ts)))
    return rows


def test_burst_scales_up_to_max_and_back_down_without_losing_a_job(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'autoscale.db'}"
    record = tmp_path / "record.log"
    (tmp_path / "hpa.yaml").write_text(HPA)
    out = tmp_path / "supervisor.log"
    port = free_port()
    pythonpath = os.pathsep.join([str(ROOT / "src"), str(ROOT)])  # this tree's faena
    env = dict(os.environ, AS_BROKER=url, AS_RECORD=str(record), PYTHONPATH=pythonpath)
    env["PYTHONUNBUFFERED"] = "1"
    producer = faena.App(broker=url)
    producer.enqueue_many("nap", [([BURST_SECONDS], {}) for _ in range(BURST)], queue="scale")
    with open(out, "wb") as sink:
        sup = subprocess.Popen(
            [
                *(sys.executable, "-m", "faena.cli.main", "autoscale"),
                "tests.acceptance.autoscale_app:app",
                *("--hpa", str(tmp_path / "hpa.yaml"), "--sync-period", "1"),
                *("--concurrency", "2", "--grace", str(GRACE), "--log-format", "json"),
                *("--metrics-port", str(port)),
            ],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:

        def succeeded() -> int:
            counts = producer.broker.count_by_state()
            return sum(n for (_q, state), n in counts.items() if state is JobState.SUCCEEDED)

        wait_until(lambda: succeeded() == BURST, 45, "the burst to finish")
        # keep all 8 slots of the 4 workers busy while the scale-down comes
        producer.enqueue_many("nap", [([LONG_SECONDS], {}) for _ in range(LONG)], queue="scale")

        def settled() -> bool:
            decisions = events(out, "autoscale.decision")
            return (
                succeeded() == BURST + LONG
                and bool(decisions)
                and decisions[-1]["desired"] == 1
                and decisions[-1]["workers"] == {"starting": 0, "ready": 1, "draining": 0}
            )

        wait_until(settled, 40, "every job done and the workers back to 1", step=0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            scrape = resp.read().decode()
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(GRACE + 10) == 0
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()
        producer.close()

    assert 'faena_desired_workers{pool="nap-worker"} 1.0' in scrape
    assert 'faena_workers{state="ready"} 1.0' in scrape
    assert 'celery_queue_length{queue="scale"} 0.0' in scrape

    decisions = events(out, "autoscale.decision")
    scalings = [d for d in decisions if d["rescale"]]
    t0 = decisions[0]["at"]
    figures = [(round(d["at"] - t0, 1), d["current"], d["desired"], d["reason"]) for d in scalings]
    print(f"\nscale events (s since first sync, from, to, reason): {figures}")
    assert max(d["desired"] for d in decisions) == 4, "reached maxReplicas"
    # the scale-up policy (Percent 100 per 2 s) held the first step to 1 -> 2
    first = scalings[0]
    assert (first["current"], first["desired"], first["reason"]) == (1, 2, "ScaleUpLimit")
    assert first["limited_by"] == "scaleUp policy Percent 100% per 2s"
    assert first["metric_desired"] > 4
    downs = [d for d in scalings if d["desired"] < d["current"]]
    assert [(d["current"], d["desired"]) for d in downs] == [(4, 3), (3, 2), (2, 1)]
    for earlier, later in itertools.pairwise(downs):
        assert later["at"] - earlier["at"] >= DOWN_PERIOD, "Pods 1 per 2 s"
    for down in downs:  # stabilization: no proposal above the new count in the last 5 s
        recent = [d for d in decisions if 0 <= down["at"] - d["at"] < DOWN_WINDOW]
        assert all((d["metric_desired"] or 0) <= down["desired"] for d in recent)
    assert not events(out, "autoscale.worker_died")

    # every job ran exactly once (no attempt lost to a scale-down) and succeeded
    rows = records(record)
    starts: dict[str, list[tuple[int, int, float]]] = defaultdict(list)
    ends: dict[str, list[tuple[int, int, float]]] = defaultdict(list)
    for kind, job_id, attempt, pid, ts in rows:
        (starts if kind == "start" else ends)[job_id].append((attempt, pid, ts))
    assert len(starts) == BURST + LONG
    assert all(len(s) == 1 and s[0][0] == 1 for s in starts.values()), "one attempt each"
    assert all(len(ends[j]) == 1 and ends[j][0][1] == s[0][1] for j, s in starts.items())
    stopping = {
        e["pid"]: e["at"]
        for e in events(out, "autoscale.worker_stopping")
        if "scale down" in e["message"]
    }
    assert len(stopping) == 3
    drained = [
        job_id
        for job_id, [(_a, pid, started)] in starts.items()
        if pid in stopping and started < stopping[pid] < ends[job_id][0][2]
    ]
    print(f"jobs finished by a worker after its SIGTERM (graceful drain): {len(drained)}")
    assert drained, "a scale-down stopped a worker with jobs in flight, and they finished"
