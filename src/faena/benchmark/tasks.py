"""The benchmark's app: a no-op task the worker process of ``faena bench`` runs. Its broker
comes from ``--broker``; each run uses a queue of its own (``faena-bench-<hex>``), so the
benchmark never takes the user's jobs and the user's workers never take its own."""

from __future__ import annotations

from faena.app import App

app = App()


@app.task(name="faena.bench.noop", retries=0)
def noop() -> None:
    """Nothing: the job's cost is faena's and the broker's alone."""
