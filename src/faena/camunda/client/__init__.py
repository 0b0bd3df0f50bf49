"""faena as a Camunda 7 external-task client: :class:`ExternalTaskClient` (in
:mod:`faena.camunda.client.client`) works the topics of an engine on faena's worker runtime,
through the adapter of :mod:`faena.camunda.client.source`.

The HTTP calls need httpx, the ``camunda`` extra; the pure parts (a subscription, the task a
handler gets, :class:`BpmnError`) load without it.
"""
