"""The PostgreSQL broker (``postgresql://user@host:5432/db?schema=faena``)."""

from faena.brokers.postgres.broker import PostgresBroker

__all__ = ["PostgresBroker"]
