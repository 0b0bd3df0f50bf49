"""The seed's Camunda external-task worker (workflow/camunda/worker/python/worker.py) on faena.

``faena worker camunda_worker.worker:client`` works the topic through faena's runtime: slots,
heartbeats (extendLock), retries, the graceful drain on SIGTERM and JSON logs. The engine is
CAMUNDA_REST_URL: faena server's /engine-rest here, or a Camunda 7 engine.
"""

from __future__ import annotations

import os
from typing import Any

from faena.camunda import BpmnError, ExternalTask, ExternalTaskClient

#: the unlock of tasks still running when the grace is over is one HTTP call bounded by this:
#: terminationGracePeriodSeconds covers GRACE_SECONDS + HTTP_TIMEOUT_SECONDS (a test checks)
GRACE_SECONDS = float(os.environ.get("FAENA_GRACE", "25"))
HTTP_TIMEOUT_SECONDS = 10.0


def handle_task(task: ExternalTask) -> dict[str, Any]:
    order_id = task.get_variable("orderId")
    if task.get_variable("amount", 0) < 0:
        raise BpmnError("NEGATIVE_AMOUNT", f"order {order_id} has a negative amount")
    return {"orderId": order_id, "processed": True}


_user = os.environ.get("CAMUNDA_USER")
client = ExternalTaskClient(
    base_url=os.environ.get("CAMUNDA_REST_URL", "http://camunda-platform:8080"),
    auth=(_user, os.environ["CAMUNDA_PASSWORD"]) if _user else None,
    max_tasks=int(os.environ.get("MAX_TASKS", "10")),
    grace=GRACE_SECONDS,
    http_timeout=HTTP_TIMEOUT_SECONDS,
    auto_start=False,  # faena worker runs it in the foreground
)
client.subscribe(os.environ.get("TOPIC", "process-order"), handle_task)
