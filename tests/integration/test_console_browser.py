"""The web console (``/``) in a real Chromium, against a real ``faena server`` process and a
real ``faena worker``: every page loads without a console error, the overview's counts,
charts and percentiles render, a search finds a job by a text in its args, cursor pages go
older and newer, a dead job is retried from its page and the worker then succeeds it, a pool
is resized from the pools page, a queue is paused and resumed from the queues page, the worker
shows on the workers page with a real ``faena autoscale``'s state in its Autoscaling section,
and a 375 px screen has no horizontal scroll.

Needs Debian's ``chromium`` (``/usr/bin/chromium``) and Python ``playwright`` (the dev extra;
its own browser download is not used). ``FAENA_WRITE_SCREENSHOTS=1`` rewrites
``docs/img/console-*.png``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import need
from tests.integration.test_camunda_support import http, running_server, wait_for

import faena

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "docs" / "img"
WRITE_SHOTS = os.environ.get("FAENA_WRITE_SCREENSHOTS") == "1"

TASKS = """
import os
import faena

app = faena.App(broker=os.environ["CONSOLE_BROKER"])


@app.task(name="flaky", queue="console", retries=0)
def flaky(n: int) -> dict:
    if not os.path.exists(os.environ["CONSOLE_OK"]):
        raise RuntimeError(f"the flag file is not there yet (n={n})")
    return {"n": n, "ok": True}
"""


def _need_browser() -> None:
    need(os.path.exists(CHROMIUM), f"no {CHROMIUM} (apt-get install chromium)")
    need(
        importlib.util.find_spec("playwright") is not None,
        "Python playwright is not installed (pip install -e '.[dev]')",
    )


@pytest.fixture
def worker_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "consoleapp.py").write_text(textwrap.dedent(TASKS))
    return dict(
        os.environ,
        CONSOLE_BROKER=f"sqlite:///{tmp_path / 'console.db'}",
        CONSOLE_OK=str(tmp_path / "ok.flag"),
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(tmp_path)]),
        PYTHONUNBUFFERED="1",
    )


@pytest.fixture
def worker(tmp_path: Path, worker_env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with open(tmp_path / "worker.log", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "faena.cli.main", "worker", "consoleapp:app",
             "--queues", "console", "--concurrency", "2", "--log-format", "json"],
            cwd=tmp_path, env=worker_env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


HPA = """
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: idle-worker}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: idle-worker}
  minReplicas: 1
  maxReplicas: 2
  metrics:
    - type: External
      external:
        metric: {name: celery_queue_length, selector: {matchLabels: {queue: idle}}}
        target: {type: AverageValue, averageValue: "10"}
"""


@pytest.fixture
def autoscaler(tmp_path: Path, worker_env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``faena autoscale`` (one worker on a queue no job uses): its state is in the
    store for the workers page's Autoscaling section."""
    (tmp_path / "hpa.yaml").write_text(HPA)
    with open(tmp_path / "autoscale.log", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "faena.cli.main", "autoscale", "consoleapp:app",
             "--hpa", "hpa.yaml", "--queues", "idle", "--sync-period", "1",
             "--log-format", "json"],
            cwd=tmp_path, env=worker_env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _api(url: str, path: str) -> Any:
    status, _, body = http("GET", f"{url}/api/v1{path}")
    assert status == 200, body
    return json.loads(body)


def _shot(page: Any, name: str) -> None:
    if WRITE_SHOTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"console-{name}.png"), full_page=True)


def test_the_console_in_chromium(
    tmp_path: Path,
    worker_env: dict[str, str],
    worker: subprocess.Popen[bytes],
    autoscaler: subprocess.Popen[bytes],
) -> None:
    _need_browser()
    from playwright.sync_api import expect, sync_playwright

    broker = worker_env["CONSOLE_BROKER"]
    app = faena.App(broker=broker, pools={"etl_pool": 4, "reports": 2})
    app.broker.setup()
    dead = app.enqueue("flaky", args=[1], queue="console", retries=0).id
    for n in range(3):
        app.enqueue("load_table", args=[f"t{n}"], queue="etl", pool="etl_pool")
    app.enqueue("send_report", kwargs={"to": "ops"}, queue="reports", delay=3600)
    app.close()

    def is_dead() -> bool:
        return bool(_api(server.url, f"/jobs/{dead}")["state"] == "dead")

    with running_server(broker, tmp_path, "--no-auth") as server:
        wait_for(is_dead, 60, "the flaky job to fail for good (dead)")
        errors: list[str] = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.on(
                    "console",
                    lambda m: (
                        errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None
                    ),
                )
                page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))

                page.goto(server.url + "/")
                expect(page.locator("h1")).to_have_text("Overview")
                expect(page.locator("#state-counts .card").first).to_be_visible()
                expect(page.locator("#state-counts")).to_contain_text("dead")
                expect(page.locator("#totals")).to_contain_text("pool slots used / size")
                # real counts (count_by_state), the per-minute charts and the percentiles
                expect(page.locator('#state-counts a[href="#/jobs?state=queued"]')).to_contain_text(
                    "3"
                )
                expect(page.locator('#state-counts a[href="#/jobs?state=dead"]')).to_contain_text(
                    "1"
                )
                expect(page.locator("#throughput svg.chart")).to_be_visible()
                expect(page.locator("#failures svg.chart rect.c-bad")).to_have_count(1)
                expect(page.locator("#failures")).to_contain_text("1 dead")
                expect(page.locator("#latency")).to_contain_text("p95")
                expect(page.locator("#latency tbody tr")).to_have_count(2)
                _shot(page, "overview")

                page.get_by_role("navigation").get_by_role("link", name="Queues").click()
                expect(page.locator("h1")).to_have_text("Queues")
                expect(page.locator("#queues")).to_contain_text("etl")
                expect(page.locator("#queues")).to_contain_text("reports")
                # pause a queue from its row, then resume it
                page.get_by_role("button", name="Pause etl").click()
                expect(page.locator("#status")).to_contain_text("Queue etl paused")
                paused = {q["queue"]: q["paused"] for q in _api(server.url, "/queues")["queues"]}
                assert paused == {"etl": True, "reports": False}
                expect(page.get_by_role("button", name="Resume etl")).to_be_visible()
                _shot(page, "queues")
                page.get_by_role("button", name="Resume etl").click()
                expect(page.locator("#status")).to_contain_text("Queue etl resumed")
                expect(page.get_by_role("button", name="Pause etl")).to_be_visible()
                assert not any(q["paused"] for q in _api(server.url, "/queues")["queues"])

                # the worker process is in the registry; the autoscaler's state beside it
                def synced() -> bool:
                    found = _api(server.url, "/autoscaler")["autoscalers"]
                    return bool(found) and found[0]["reason"] != "Starting"

                wait_for(synced, 60, "faena autoscale to report its first sync")
                page.get_by_role("navigation").get_by_role("link", name="Workers").click()
                expect(page.locator("h1")).to_have_text("Workers")
                expect(page.locator("#workers")).to_contain_text("running")
                expect(page.locator("#workers")).to_contain_text("console")
                scaling = page.locator("#autoscaling")
                expect(scaling).to_contain_text("idle-worker")
                expect(scaling).to_contain_text("live")
                expect(scaling).to_contain_text("External/celery_queue_length: 0 vs target 10")
                expect(scaling).to_contain_text("minReplicas 1")
                _shot(page, "workers")

                # resize a pool from the pools page; the API then shows the new size
                page.get_by_role("navigation").get_by_role("link", name="Pools").click()
                expect(page.locator("h1")).to_have_text("Pools")
                expect(page.locator("#pools")).to_contain_text("etl_pool")
                page.get_by_role("button", name="Resize etl_pool").click()
                expect(page.get_by_label("Pool", exact=True)).to_have_value("etl_pool")
                page.get_by_label("Slots", exact=True).fill("9")
                page.get_by_role("button", name="Resize pool").click()
                expect(page.locator("#status")).to_contain_text("etl_pool now has 9 slots")
                sizes = {p["pool"]: p["size"] for p in _api(server.url, "/pools")["pools"]}
                assert sizes["etl_pool"] == 9
                expect(page.locator("#pools")).to_contain_text("9")
                _shot(page, "pools")

                # jobs: the filters and the dead job's page
                page.get_by_role("navigation").get_by_role("link", name="Jobs").click()
                expect(page.locator("h1")).to_have_text("Jobs")
                expect(page.locator("#jobs tbody tr")).to_have_count(5)
                # search by a text in the args (either case), then the time range, then clear
                page.get_by_label("Search").fill("T1")
                page.get_by_role("button", name="Filter").click()
                expect(page.locator("#jobs tbody tr")).to_have_count(1)
                expect(page.locator("#jobs")).to_contain_text("load_table")
                _shot(page, "jobs-search")
                page.get_by_label("Enqueued").select_option("1h")
                page.get_by_role("button", name="Filter").click()
                expect(page.locator("#jobs tbody tr")).to_have_count(1)
                page.get_by_role("button", name="Clear").click()
                expect(page.locator("#jobs tbody tr")).to_have_count(5)
                _shot(page, "jobs")
                # cursor pages of two: older, older, then newer again, each job once
                page.goto(server.url + "/#/jobs?limit=2")
                seen = []
                for n in (2, 2, 1):
                    expect(page.locator("#jobs tbody tr")).to_have_count(n)
                    seen += page.locator("#jobs tbody tr td:first-child").all_inner_texts()
                    if n == 1:
                        expect(page.locator("#next")).to_be_disabled()
                        break
                    page.locator("#next").click()
                    expect(page.locator("#where")).to_contain_text(f"page {len(seen) // 2 + 1}")
                assert len(set(seen)) == 5
                page.locator("#prev").click()
                expect(page.locator("#where")).to_contain_text("page 2")
                expect(page.locator("#jobs tbody tr td:first-child").first).to_have_text(seen[2])
                page.get_by_role("navigation").get_by_role("link", name="Jobs").click()
                expect(page.locator("#jobs tbody tr")).to_have_count(5)
                page.get_by_label("State").select_option("dead")
                page.get_by_role("button", name="Filter").click()
                expect(page.locator("#jobs tbody tr")).to_have_count(1)
                expect(page.locator("#retry-dead")).to_be_enabled()
                page.locator(f'a[href="#/jobs/{dead}"]').click()
                expect(page.locator("h1")).to_contain_text(dead)
                expect(page.locator("#error")).to_contain_text("flag file is not there yet")
                expect(page.locator("#traceback")).to_contain_text("RuntimeError")
                expect(page.locator("#args")).to_contain_text('"args"')
                # the attempt timeline: each ended attempt, its outcome and error
                expect(page.locator("#attempts tbody tr").last).to_contain_text("dead")
                expect(page.locator("#attempts")).to_contain_text("flag file is not there yet")
                _shot(page, "job-dead")

                # the job may now succeed: retry it; the worker runs it; the page follows
                Path(worker_env["CONSOLE_OK"]).write_text("ok")
                page.get_by_role("button", name="Retry").click()
                expect(page.locator("#status")).to_contain_text("queued again")
                expect(page.locator("#job .state")).to_have_text("succeeded", timeout=60_000)
                expect(page.locator("#result")).to_contain_text('"ok": true')
                expect(page.get_by_role("button", name="Retry")).to_be_disabled()
                assert _api(server.url, f"/jobs/{dead}")["state"] == "succeeded"
                _shot(page, "job")

                # a narrow screen: every page renders, nothing scrolls sideways
                narrow = browser.new_page(viewport={"width": 375, "height": 740})
                narrow.on("pageerror", lambda e: errors.append(f"pageerror (375px): {e}"))
                for route, heading in [
                    ("#/overview", "Overview"),
                    ("#/queues", "Queues"),
                    ("#/pools", "Pools"),
                    ("#/jobs", "Jobs"),
                    ("#/workers", "Workers"),
                    (f"#/jobs/{dead}", "Job"),
                ]:
                    narrow.goto(f"{server.url}/{route}")
                    expect(narrow.locator("h1")).to_contain_text(heading)
                    expect(narrow.locator("main table, main .cards, main dl").first).to_be_visible()
                    overflow = narrow.evaluate(
                        "document.documentElement.scrollWidth - window.innerWidth"
                    )
                    assert overflow <= 0, f"{route} scrolls {overflow} px sideways at 375 px"
                _shot(narrow, "narrow-job")
            finally:
                browser.close()
        assert errors == []


def test_served_files_types_and_cache_headers_and_the_other_routes(tmp_path: Path) -> None:
    broker = f"sqlite:///{tmp_path / 'files.db'}"
    with running_server(broker, tmp_path, "--token", "adm1n-token") as server:
        for path, kind in [
            ("/", "text/html"),
            ("/static/console.js", "text/javascript"),
            ("/static/console.css", "text/css"),
        ]:
            status, headers, body = http("GET", server.url + path)  # no token: files only
            assert status == 200, (path, body)
            assert headers["content-type"].startswith(kind)
            assert headers["cache-control"] == "no-cache"
            assert "script-src 'self'" in headers["content-security-policy"]
            assert headers["x-content-type-options"] == "nosniff"
            again = http("GET", server.url + path, headers={"If-None-Match": headers["etag"]})
            assert again[0] == 304
        status, headers, body = http("HEAD", server.url + "/")
        assert (status, body) == (200, b"")
        assert int(headers["content-length"]) > 0
        status, _, body = http("GET", server.url + "/static/../app.py")
        assert status == 404
        assert http("GET", server.url + "/static/nope.js")[0] == 404
        auth = {"Authorization": "Bearer adm1n-token"}
        assert http("GET", server.url + "/healthz")[0] == 200
        assert http("GET", server.url + "/readyz")[0] == 401
        assert http("GET", server.url + "/readyz", headers=auth)[0] == 200
        assert http("GET", server.url + "/metrics", headers=auth)[0] == 200
        assert http("GET", server.url + "/openapi.json", headers=auth)[0] == 200
        assert http("GET", server.url + "/api/v1/jobs")[0] == 401
        assert http("GET", server.url + "/api/v1/jobs", headers=auth)[0] == 200
        assert http("GET", server.url + "/engine-rest/version")[0] == 401


def test_the_console_with_tokens_pasted_in_the_login_field(tmp_path: Path) -> None:
    _need_browser()
    from playwright.sync_api import expect, sync_playwright

    broker = f"sqlite:///{tmp_path / 'tokens.db'}"
    app = faena.App(broker=broker, pools={"etl_pool": 4})
    app.broker.setup()
    app.close()
    (tmp_path / "read.token").write_text("r3ad-token\n")
    extra = ("--token", "adm1n-token", "--read-token-file", str(tmp_path / "read.token"))
    with running_server(broker, tmp_path, *extra) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(server.url + "/#/pools")
            expect(page.locator("#status")).to_contain_text("needs a token")
            # a read token: the pages show; a change is refused and the page says why
            page.get_by_label("API token").fill("r3ad-token")
            page.get_by_role("button", name="Use token").click()
            expect(page.locator("#pools")).to_contain_text("etl_pool")
            assert "r3ad-token" not in page.url
            assert page.evaluate("sessionStorage.getItem('faena.token')") == "r3ad-token"
            page.get_by_label("Pool", exact=True).fill("etl_pool")
            page.get_by_label("Slots", exact=True).fill("7")
            page.get_by_role("button", name="Resize pool").click()
            expect(page.locator("#status")).to_have_class("status error")
            expect(page.locator("#status")).to_contain_text("read")
            # the admin token: the same change is made
            page.get_by_role("button", name="Forget").click()
            page.get_by_label("API token").fill("adm1n-token")
            page.get_by_role("button", name="Use token").click()
            page.get_by_role("button", name="Resize pool").click()
            expect(page.locator("#status")).to_contain_text("etl_pool now has 7 slots")
            status, _, body = http(
                "GET", server.url + "/api/v1/pools", headers={"Authorization": "Bearer r3ad-token"}
            )
            assert status == 200, body
            assert {p["pool"]: p["size"] for p in json.loads(body)["pools"]}["etl_pool"] == 7
        finally:
            browser.close()
    assert "r3ad-token" not in server.log.read_text()
    assert "adm1n-token" not in server.log.read_text()
