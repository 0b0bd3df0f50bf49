"""The Camunda 7 external-task protocol, both ways: ``faena server`` answers Camunda clients
(:mod:`faena.camunda.server`), and :class:`ExternalTaskClient` works the topics of a Camunda
engine or of a faena server. Camunda's vocabulary stays inside this package.

The client speaks HTTP through httpx, the ``camunda`` extra (``pip install 'faena[camunda]'``);
its names are imported on first use, so the server side (``faena server``) never needs httpx.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from faena.camunda.client.subscription import Subscription
from faena.camunda.client.task import BpmnError, ExternalTask
from faena.camunda.variables import FileValue

if TYPE_CHECKING:
    from faena.camunda.client.client import ExternalTaskClient, run_subscriptions
    from faena.camunda.client.engine import EngineError

__all__ = [
    "BpmnError",
    "EngineError",
    "ExternalTask",
    "ExternalTaskClient",
    "FileValue",
    "Subscription",
    "run_subscriptions",
]

#: the client's names, in the module that needs httpx
_CLIENT = {
    "ExternalTaskClient": "faena.camunda.client.client",
    "run_subscriptions": "faena.camunda.client.client",
    "EngineError": "faena.camunda.client.engine",
}


def __getattr__(name: str) -> Any:
    module = _CLIENT.get(name)
    if module is None:
        raise AttributeError(f"module 'faena.camunda' has no attribute {name!r}")
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name != "httpx":
            raise
        raise ImportError(
            f"faena.camunda.{name} needs httpx, which is not installed: "
            f"pip install 'faena[camunda]'"
        ) from exc
