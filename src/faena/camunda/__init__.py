"""The Camunda 7 external-task protocol, both ways: ``faena server`` answers Camunda clients
(:mod:`faena.camunda.server`), and :class:`ExternalTaskClient` works the topics of a Camunda
engine or of a faena server. Camunda's vocabulary stays inside this package."""

from faena.camunda.client import ExternalTaskClient, run_subscriptions
from faena.camunda.engine import EngineError
from faena.camunda.subscription import Subscription
from faena.camunda.task import BpmnError, ExternalTask
from faena.camunda.variables import FileValue

__all__ = [
    "BpmnError",
    "EngineError",
    "ExternalTask",
    "ExternalTaskClient",
    "FileValue",
    "Subscription",
    "run_subscriptions",
]
