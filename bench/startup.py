"""Start-up time of faena against Celery and RQ (issue 23): the CLI's ``--help``, the
package's import, and a worker from its launch until it says it is ready to take jobs, all on
Redis, in interleaved rounds (one of each system per round), medians at the end.

    .venv/bin/python bench/startup.py [--rounds 10] [--redis redis://127.0.0.1:6379/13]

Celery and RQ run from the peers' virtualenv (bench/.venv-peers, made and filled from
bench/requirements-peers.txt as bench/run_peers.sh does). "Ready" is each worker's own line:
faena's ``worker.started`` event, Celery's ``celery@HOST ready.``, RQ's ``Listening on``.
Each worker consumes a queue of this run's own and is stopped with SIGTERM once ready; the
Redis database is never flushed. Celery runs at its defaults (prefork, mingle and gossip on)
and, in a second row, with ``--without-mingle --without-gossip`` (mingle waits for replies
from other nodes at start). One JSON line per measurement on stdout, the table on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEERS_VENV = ROOT / "bench" / ".venv-peers"
FAENA = Path(sys.executable).parent / "faena"

CELERY_APP = """
from celery import Celery
app = Celery("startup", broker={url!r})
@app.task
def noop():
    return None
"""
FAENA_APP = """
import faena
app = faena.App()
@app.task(queue={queue!r})
def noop():
    return None
"""


def peers_python() -> Path:
    py = PEERS_VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r",
         str(ROOT / "bench" / "requirements-peers.txt")],
        check=True,
    )  # fmt: skip
    return py


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True, timeout=120)
    return time.perf_counter() - started


def until_ready(argv: list[str], marker: str, cwd: Path, env: dict[str, str]) -> float:
    """Seconds from the launch of a worker until a line of its output holds ``marker``."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if marker in line:
                return time.perf_counter() - started
        raise RuntimeError(f"{argv[:3]} exited before {marker!r}:\n{''.join(seen[-20:])}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    opts = parser.parse_args()
    peers = peers_python()
    # pip compiles an installed wheel's modules (the peers' venv has its .pyc); an editable
    # faena under PYTHONDONTWRITEBYTECODE=1 (this machine's environment) would compile every
    # module at every start instead: compile faena as its wheel install would
    import compileall

    import faena

    compileall.compile_dir(str(Path(faena.__file__).parent), quiet=1)
    peer_bin = peers.parent
    run = uuid.uuid4().hex[:8]
    queue = f"startup-{run}"
    work = Path(tempfile.mkdtemp(prefix="faena-startup-"))
    (work / "faena_startup.py").write_text(FAENA_APP.format(queue=queue))
    (work / "celery_startup.py").write_text(CELERY_APP.format(url=opts.redis))
    env = {**os.environ, "PYTHONPATH": str(work)}
    faena_broker = f"{opts.redis}?prefix=startup{run}"
    celery = [str(peer_bin / "celery"), "-A", "celery_startup", "worker", "-c", "2", "-Q", queue,
              "-n", f"startup-{run}@%h", "-l", "INFO"]  # fmt: skip
    faena_worker = [str(FAENA), "worker", "faena_startup:app", "--broker", faena_broker,
                    "--concurrency", "2", "--log-format", "json"]  # fmt: skip
    rq_worker = [str(peer_bin / "rq"), "worker", "-u", opts.redis, queue]
    quiet_celery = [*celery, "--without-mingle", "--without-gossip"]
    cases = {
        ("faena", "help"): lambda: timed([str(FAENA), "--help"], work, env),
        ("celery", "help"): lambda: timed([str(peer_bin / "celery"), "--help"], work, env),
        ("rq", "help"): lambda: timed([str(peer_bin / "rq"), "--help"], work, env),
        ("faena", "import"): lambda: timed([sys.executable, "-c", "import faena"], work, env),
        ("celery", "import"): lambda: timed([str(peers), "-c", "import celery"], work, env),
        ("rq", "import"): lambda: timed([str(peers), "-c", "import rq"], work, env),
        ("faena", "worker ready"): lambda: until_ready(faena_worker, '"worker.started"', work, env),
        ("celery", "worker ready"): lambda: until_ready(celery, " ready.", work, env),
        ("celery (no mingle, no gossip)", "worker ready"): lambda: until_ready(
            quiet_celery, " ready.", work, env
        ),
        ("rq", "worker ready"): lambda: until_ready(rq_worker, "Listening on", work, env),
    }
    figures: dict[tuple[str, str], list[float]] = {case: [] for case in cases}
    for round_ in range(1, opts.rounds + 1):
        for (system, what), measure in cases.items():
            seconds = measure()
            figures[(system, what)].append(seconds)
            print(json.dumps({"system": system, "measure": what, "round": round_,
                              "seconds": round(seconds, 4)}), flush=True)  # fmt: skip
    print(f"{'measure':<14} {'system':<32} median ms  (min-max)", file=sys.stderr)
    for (system, what), values in figures.items():
        ms = [v * 1000 for v in values]
        print(f"{what:<14} {system:<32} {statistics.median(ms):9.0f}  "
              f"({min(ms):.0f}-{max(ms):.0f})", file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    main()
