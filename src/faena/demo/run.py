"""Drive the demo: ``faena up`` on the demo app (the server with the console, the autoscaled
workers), the load of :func:`faena.demo.load.demo_load` as runs of the ``etl_daily``
pipeline, progress lines, then the report.

The platform runs on the main thread (:func:`faena.cli.up.run_up`: it handles SIGINT and
SIGTERM); a :class:`Driver` thread enqueues the load, prints progress and the scale events
as they happen, and once every job has ended and the autoscaler is back at its minimum,
prints the report and stops the platform (or, with ``serve``, leaves it running until
Ctrl-C). The platform's and the workers' JSON logs go to files in the demo's folder.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any

import click

from faena.app import App
from faena.autoscale.manifest import load_hpa
from faena.autoscale.spec import HPASpec
from faena.autoscale.supervisor import Supervisor
from faena.core.states import TERMINAL
from faena.demo.load import demo_load
from faena.demo.report import faena_command, report, scale_line
from faena.observability import logs
from faena.pipelines import Pipeline

__all__ = ["Driver", "demo_spec", "run_demo"]

APP_PATH = "faena.demo.tasks:app"
SYNC_PERIOD = 2.0
PROGRESS_EVERY = 2.0
#: how long the demo waits for the scale-in once every job has ended
SCALE_IN_TIMEOUT = 90.0
GRACE = 10.0


def demo_spec(max_workers: int) -> HPASpec:
    """The demo's HPA (``faena/demo/hpa.yml``) with ``maxReplicas`` set to ``max_workers``."""
    text = (resources.files("faena.demo") / "hpa.yml").read_text(encoding="utf-8")
    spec = load_hpa(text, source="faena/demo/hpa.yml").spec
    return dataclasses.replace(spec, max_replicas=max(max_workers, spec.min_replicas))


class Driver:
    """The load, the progress and the report, on their own thread."""

    def __init__(
        self, app: App, pipeline: Pipeline, days: int, broker_url: str, serve: bool
    ) -> None:
        self.app = app
        self.pipeline = pipeline
        self.days = days
        self.broker_url = broker_url
        self.serve = serve
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.finished = False
        self._thread: threading.Thread | None = None

    def start(self, url: str, supervisor: Supervisor) -> None:
        click.echo(f"console: {url}/  (open it now: the Workers page shows the autoscaler)")
        self._thread = threading.Thread(
            target=self._run, args=(url, supervisor), name="faena-demo", daemon=True
        )
        self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join(5)

    def _run(self, url: str, supervisor: Supervisor) -> None:
        try:
            self._drive(supervisor)
            if self.finished and self.serve and not self.stop.is_set():
                click.echo(f"\nserving {url}/ until Ctrl-C (the workers stay at their minimum)")
                return
        except BaseException as exc:  # reported by the main thread once the platform stopped
            self.error = exc
        self.stop.set()

    def _drive(self, sup: Supervisor) -> None:
        t0 = time.time()
        steps = demo_load(self.days)
        total = sum(len(s.jobs) for s in steps)
        click.echo(
            f"load: {self.days} runs of pipeline etl_daily, {total} jobs (a day: 6 tables x "
            f"extract, then load, then 3 checks): a trickle, then a backfill burst; autoscaler "
            f"{sup.autoscaler.spec.min_replicas}..{sup.autoscaler.spec.max_replicas} workers, "
            f"sync every {sup.sync_period:g} s"
        )
        ids: list[str] = []
        run_ids: list[str] = []
        shown = 0  # decisions already printed
        next_progress = 0.0
        pending = list(steps)
        drained_at: float | None = None
        while not self.stop.is_set():
            now = time.time() - t0
            while pending and pending[0].at <= now:
                step = pending.pop(0)
                for day in step.days:  # one atomic broker call a run, its roots released
                    run = self.pipeline.run(day=day)
                    run_ids.append(run.id)
                    ids += [s.job_id for s in run.steps]
                click.echo(
                    f"+{now:5.1f} s  {step.label}: {len(step.days)} run(s) of etl_daily started"
                )
            for d in sup.decisions[shown:]:
                if d.rescale:
                    click.echo(scale_line(d, t0, sup.autoscaler.spec))
            shown = len(sup.decisions)
            counts = self.app.broker.count_by_state()
            finished = sum(n for (_q, s), n in counts.items() if s in TERMINAL)
            if now >= next_progress:
                next_progress = now + PROGRESS_EVERY
                click.echo(self._progress(now, finished, total, sup))
            if not pending and finished >= total:
                drained_at = drained_at or now
                at_min = sup.autoscaler.replicas == sup.autoscaler.spec.min_replicas
                if (at_min and sup.ready_count() == len(sup.workers)) or (
                    now - drained_at > SCALE_IN_TIMEOUT
                ):
                    break
            time.sleep(0.2)
        else:
            click.echo("demo stopped before its end: no report")
            return
        elapsed = time.time() - t0
        jobs = [j for j in (self.app.broker.get(i) for i in ids) if j is not None]
        runs = [r for r in (self.app.broker.get_run(i) for i in run_ids) if r is not None]
        spec = sup.autoscaler.spec
        report(jobs, elapsed, self.broker_url, list(sup.decisions), t0, spec, runs)
        self.finished = True

    def _progress(self, now: float, finished: int, total: int, sup: Supervisor) -> str:
        waiting = {q.queue: q.waiting for q in self.app.broker.queue_stats()}
        queues = " ".join(f"{q} {waiting.get(q, 0)}" for q in ("etl", "dq"))
        return (
            f"+{now:5.1f} s  finished {finished}/{total}  waiting {queues}  workers "
            f"{sup.ready_count()} ready / {sup.autoscaler.replicas} desired"
        )


def _opts(concurrency: int, broker_url: str) -> dict[str, Any]:
    """What ``faena up``'s options would be for the demo."""
    return {
        "queues": "etl,dq",
        "concurrency": concurrency,
        "grace": GRACE,
        "pool": None,
        "sync_period": SYNC_PERIOD,
        "metrics_port": 0,
        "metrics_addr": "127.0.0.1",
        "log_format": "json",
        "log_level": "INFO",
        "broker": broker_url,
    }


def run_demo(
    *, days: int, concurrency: int, max_workers: int, host: str, port: int, serve: bool
) -> int:
    from faena.cli.serving import CannotListen
    from faena.cli.up import run_up

    folder = Path(tempfile.mkdtemp(prefix="faena-demo-"))
    url = f"sqlite:///{folder / 'faena-demo.db'}"
    os.environ["FAENA_DEMO_BROKER"] = url
    from faena.demo.tasks import app, etl_daily

    click.echo(f"broker: {url}")
    click.echo(
        f"pools: etl_pool=24, dq_pool=8; parallelism 64; workers x concurrency {concurrency}"
    )
    click.echo(f"logs (JSON lines): {folder}/platform.log, {folder}/workers.log")
    driver = Driver(app, etl_daily, days, url, serve)
    with (
        open(folder / "platform.log", "w", encoding="utf-8") as platform_log,
        open(folder / "workers.log", "wb") as workers_log,
    ):
        logs.configure("json", "INFO", stream=platform_log)
        kwargs: dict[str, Any] = {
            "spec": demo_spec(max_workers),
            "host": host,
            "token": None,
            "no_auth": True,  # loopback only: the console may retry the dead job
            "deployment": None,
            "opts": _opts(concurrency, url),
            "stop": driver.stop,
            "on_ready": driver.start,
            "worker_out": workers_log,
        }
        try:
            try:
                code = run_up(app, APP_PATH, port=port, **kwargs)
            except CannotListen:
                if port == 0:
                    raise
                click.echo(f"port {port} is taken: the console gets a free port instead")
                code = run_up(app, APP_PATH, port=0, **kwargs)
        finally:
            driver.join()
            app.close()
    if driver.error is not None:
        raise driver.error
    click.echo(f"database kept for inspection: {faena_command()} jobs list --broker {url}")
    return code
