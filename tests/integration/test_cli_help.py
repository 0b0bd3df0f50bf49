"""Start-up time (bench/startup.py, docs/benchmarks.md): ``faena --help`` lists every command
without importing the command modules, and what only some apps use loads on first use."""

from __future__ import annotations

import subprocess
import sys


def _stdout(code: str) -> str:
    """What ``code`` prints in a fresh interpreter (what is imported at start is the point)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_faena_help_imports_no_command_module() -> None:
    out = _stdout(
        "import sys; from faena.cli.main import cli, COMMAND_MODULES\n"
        "try:\n    cli.main(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        "print([m for m in COMMAND_MODULES if m in sys.modules])"
    )
    assert out.strip().splitlines()[-1] == "[]"
    assert "worker" in out and "pipelines" in out  # the listing is there


def test_an_app_without_cron_schedules_does_not_import_croniter() -> None:
    """croniter and dateutil load with the first cron expression, not with ``faena.App``."""
    out = _stdout(
        "import sys, faena\n"
        "app = faena.App(broker='memory://')\n"
        "@app.task()\ndef t(): pass\n"
        "app.schedule('tick', task=t, every=60)\n"
        "print('croniter' in sys.modules)\n"
        "app.schedule('nightly', task=t, cron='0 2 * * *')\n"
        "print('croniter' in sys.modules)\n"
    )
    assert out.split() == ["False", "True"]


def test_a_sqlite_worker_of_sync_tasks_does_not_import_asyncio() -> None:
    """asyncio (~30 ms) loads with the first async task's executor, not with every worker."""
    out = _stdout(
        "import sys, faena, faena.worker.runtime, faena.cli.worker\n"
        "from faena.brokers.sqlite.broker import SQLiteBroker\n"
        "print(sorted(m for m in sys.modules if m == 'asyncio'))\n"
    )
    assert out.strip() == "[]"


#: what a Redis worker of plain thread tasks must not load before it is ready (issue 23):
#: the web stack, the Zeebe gateway, the metrics exposition, the autoscaler, the scheduler
#: of an app without schedules, and the process executor's subprocess and multiprocessing
WORKER_NEVER_LOADS = (
    "pydantic", "fastapi", "starlette", "uvicorn", "grpc", "httpx", "prometheus_client",
    "yaml", "faena.web", "faena.zeebe", "faena.camunda", "faena.autoscale", "faena.pipelines",
    "faena.schedules", "faena.observability.metrics", "faena.worker.processes",
    "multiprocessing", "ctypes",
)  # fmt: skip


def test_a_redis_worker_loads_only_what_it_needs_until_ready() -> None:
    """The worker's entry path (the CLI command, the app, the Redis broker, the worker) and
    an app without schedules; each module named above loads on first use only."""
    out = _stdout(
        "import sys, faena, faena.cli.main, faena.cli.worker, faena.worker.runtime\n"
        "from faena.brokers.redis.broker import RedisBroker\n"
        "app = faena.App()\n"
        "@app.task()\ndef t(): pass\n"
        f"names = {WORKER_NEVER_LOADS!r}\n"
        "print(sorted(m for m in sys.modules if any(m == n or m.startswith(n + '.') "
        "for n in names)))\n"
    )
    assert out.strip().splitlines()[-1] == "[]"
