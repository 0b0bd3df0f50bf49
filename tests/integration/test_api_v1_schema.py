"""``/api/v1`` against its own OpenAPI document (schemathesis): generated requests, valid and
not, never get a 5xx, and every answer fits the document (status, content type, schema).

Bounded: a few dozen examples per operation, on SQLite, well under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation.case import Case
from schemathesis.schemas import BaseSchema
from tests.integration.test_api_v1 import ADMIN, AS_ADMIN

import faena
from faena.web.app import create_app

#: examples per operation and mode: 16 runs, a few seconds each
EXAMPLES = 60
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaseSchema]:
    folder: Path = tmp_path_factory.mktemp("schema")
    app = faena.App(broker=f"sqlite:///{folder / 's.db'}")
    app.broker.setup()
    app.enqueue("seed.task", [1])
    asgi = create_app(app, admin_token=ADMIN)
    schema = schemathesis.openapi.from_asgi("/openapi.json", asgi, headers=AS_ADMIN)
    yield schema
    app.close()


PARAMETERLESS = {
    "/api/v1/queues",
    "/api/v1/pools",
    "/api/v1/workers",
    "/api/v1/autoscaler",
    "/api/v1/pipelines",
}
OPERATIONS = [
    ("GET", "/api/v1/jobs"),
    ("POST", "/api/v1/jobs"),
    ("GET", "/api/v1/jobs/{job_id}"),
    ("POST", "/api/v1/jobs/{job_id}/retry"),
    ("POST", "/api/v1/jobs/{job_id}/cancel"),
    ("GET", "/api/v1/queues"),
    ("GET", "/api/v1/pools"),
    ("PUT", "/api/v1/pools/{pool}"),
    ("POST", "/api/v1/queues/{queue}/pause"),
    ("POST", "/api/v1/queues/{queue}/resume"),
    ("GET", "/api/v1/workers"),
    ("GET", "/api/v1/stats"),
    ("GET", "/api/v1/autoscaler"),
    ("POST", "/api/v1/bulk/retry"),
    ("POST", "/api/v1/bulk/cancel"),
    ("GET", "/api/v1/pipelines"),
    ("GET", "/api/v1/pipelines/{name}/runs"),
    ("GET", "/api/v1/pipeline-runs/{run_id}"),
    ("POST", "/api/v1/pipeline-runs/{run_id}/retry"),
    ("POST", "/api/v1/pipeline-runs/{run_id}/cancel"),
]


#: (operation, mode): the routes that take no input have no invalid request to make
RUNS = [
    pytest.param(method, path, mode, id=f"{method} {path} {mode.value}")
    for method, path in OPERATIONS
    for mode in GenerationMode
    if not (mode is GenerationMode.NEGATIVE and path in PARAMETERLESS)
]


@pytest.mark.parametrize(("method", "path", "mode"), RUNS)
def test_the_api_keeps_to_its_document(
    api_schema: BaseSchema, method: str, path: str, mode: GenerationMode
) -> None:
    """``positive``: requests the document allows; ``negative``: requests it does not (each
    must be a documented 4xx, never a 5xx)."""
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case: Case) -> None:
        response = case.call(headers=AS_ADMIN)
        case.validate_response(response, checks=CHECKS)

    check()


def test_the_document_lists_every_operation(api_schema: BaseSchema) -> None:
    found = {(r.ok().method.upper(), r.ok().path) for r in api_schema.get_all_operations()}
    assert found == set(OPERATIONS)
