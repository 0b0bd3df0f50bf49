"""The part of the Zeebe (Camunda 8) gateway protocol that job workers use, on faena's queues.

``faena server --zeebe-port`` serves it over gRPC (:mod:`faena.zeebe.serving`) beside the
HTTP routes, so an unmodified pyzeebe worker or the Node ``@camunda8/sdk`` job worker takes
faena jobs: a job type is a queue, a job key the job's enqueue sequence (``job_keys``), the
variables its keyword arguments. No BPMN engine: jobs come from faena's producers, pipelines
and HTTP API. docs/zeebe.md has the whole mapping.
"""
