"""Brokers: the stores behind one protocol (:mod:`faena.brokers.protocol`)."""

from faena.brokers.protocol import Broker, ClaimResult, PoolStat, QueueStat, Reaped, Waker
from faena.brokers.url import open_broker

__all__ = ["Broker", "ClaimResult", "PoolStat", "QueueStat", "Reaped", "Waker", "open_broker"]
