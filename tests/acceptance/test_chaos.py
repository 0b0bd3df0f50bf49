"""A bounded chaos run per backend (bench/chaos.py): real workers in thread, process and
prefork modes, some prefetching, under load through a pool and a parallelism cap, while
faults are injected at random for 25 s; nothing lost, no success twice, fencing and the
limits held (also checked about every second while the run goes on), no job for later
started before its run_at, every dead job dead for its stated reason."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from bench.chaos import run_chaos
from bench.chaos_rig import PARALLELISM, POOL

from tests.conftest import need, port_open

pytestmark = pytest.mark.slow

SECONDS = 25.0


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "redis"])
def test_faults_lose_nothing_and_duplicate_nothing(backend: str, tmp_path: Path) -> None:
    if backend == "postgres":
        need(importlib.util.find_spec("psycopg") is not None, "psycopg is not installed")
        need(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432")
    if backend == "redis":
        need(shutil.which("redis-server") is not None, "redis-server is not installed")
    out = tmp_path / "chaos.jsonl"
    findings = run_chaos(backend, SECONDS, rate=15.0, seed=7, out=out)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    faults = [line["fault"] for line in lines if "fault" in line]
    assert len(faults) >= 5, f"only {len(faults)} faults were injected"
    assert findings.jobs >= 100
    assert findings.violations(POOL, PARALLELISM) == []
    assert findings.samples >= 10, "the continuous checks sampled the run"
    assert not findings.continuous and not findings.early_starts
    assert not findings.lost and not findings.duplicate_successes
    assert 0 < findings.max_pool <= POOL and findings.max_running <= PARALLELISM
    # only poison jobs end dead: of their own error, or lost when a fault killed the worker
    # during their last attempt (a lost lease spends an attempt, as for any other job)
    allowed = {"poison: Poison", "poison: WorkerLost"}
    assert set(findings.dead_by_reason) <= allowed, findings.dead_by_reason
