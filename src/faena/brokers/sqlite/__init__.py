"""The embedded default broker: one SQLite file in WAL mode, shared by the processes of one
machine."""

from faena.brokers.sqlite.broker import SQLiteBroker

__all__ = ["SQLiteBroker"]
