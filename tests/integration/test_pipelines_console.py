"""The pipelines page (``/static/pipelines.html``) in a real Chromium against a real
``faena server``: the declared pipeline, its runs, and a run drawn as a graph whose steps
carry their states."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.integration.test_camunda_support import running_server
from tests.integration.test_console_browser import CHROMIUM, _need_browser

import faena
from faena.core.job import Outcome
from faena.core.states import JobState

APP = """
import faena
from faena.pipelines import Pipeline

app = faena.App(broker={broker!r})


@app.task(queue="etl")
def step() -> None: ...


etl = Pipeline(app, "etl_daily", key="{{day}}")
extract = etl.step("extract", step)
parts = [etl.step(f"transform_{{i}}", step, after=extract) for i in range(3)]
etl.step("load", step, after=parts)
"""


def test_a_run_is_drawn_as_a_graph_with_each_steps_state(tmp_path: Path) -> None:
    _need_browser()
    from playwright.sync_api import expect, sync_playwright

    broker = f"sqlite:///{tmp_path / 'p.db'}"
    (tmp_path / "pipeconsoleapp.py").write_text(textwrap.dedent(APP.format(broker=broker)))
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        import pipeconsoleapp  # type: ignore[import-not-found]

        app: faena.App = pipeconsoleapp.app
        run = pipeconsoleapp.etl.run(day="2026-11-27")
        [first] = app.broker.claim("w", ["etl"], 1, 30).jobs
        app.broker.finish([Outcome(first.id, first.attempt, JobState.SUCCEEDED)])
        with running_server(broker, tmp_path, "--no-auth", "pipeconsoleapp:app") as server:
            errors: list[str] = []
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                try:
                    page = browser.new_page(viewport={"width": 1280, "height": 800})
                    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
                    page.on(
                        "console",
                        lambda m: errors.append(m.text) if m.type == "error" else None,
                    )
                    page.goto(server.url + "/static/pipelines.html")
                    expect(page.locator("#pipelines")).to_contain_text("etl_daily (5 steps)")
                    page.get_by_role("link", name="etl_daily").click()
                    page.get_by_role("link", name="etl_daily:2026-11-27").click()
                    steps = page.locator("svg g[data-step]")
                    expect(steps).to_have_count(5)
                    expect(page.locator('g[data-step="extract"]')).to_have_attribute(
                        "data-state", "succeeded"
                    )
                    for i in range(3):  # released: due, ready for a worker
                        expect(page.locator(f'g[data-step="transform_{i}"]')).to_have_attribute(
                            "data-waiting", "false"
                        )
                    expect(page.locator('g[data-step="load"]')).to_have_attribute(
                        "data-waiting", "true"
                    )
                    expect(page.locator("svg path")).to_have_count(6)  # the edges
                    page.get_by_role("button", name="Cancel run").click()
                    expect(page.locator("#run h2")).to_contain_text("cancelled")
                finally:
                    browser.close()
            assert errors == []
        got = app.broker.get_run(run.id)
        assert got is not None and got.state.value == "cancelled"
        app.close()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("pipeconsoleapp", None)
