"""The worker: claim -> run -> report, with a heartbeat and a graceful drain."""

from faena.worker.runtime import Worker

__all__ = ["Worker"]
