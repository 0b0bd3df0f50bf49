"""faena as a Camunda 7 engine: the ``/engine-rest`` external-task routes of ``faena server``
over a faena broker.

The routes (:mod:`faena.camunda.server.routes`) need starlette, the ``web`` extra; their names
here are imported on first use, so the pure parts (the task mapping, request checks, queries,
the service) load without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faena.camunda.server.routes import BasicAuth, CamundaAPI, basic_checker

__all__ = ["BasicAuth", "CamundaAPI", "basic_checker"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'faena.camunda.server' has no attribute {name!r}")
    return getattr(importlib.import_module("faena.camunda.server.routes"), name)
