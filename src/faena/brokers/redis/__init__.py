"""The Redis broker (``redis://HOST:6379/0?prefix=NAME``); needs ``pip install 'faena[redis]'``."""

from faena.brokers.redis.broker import RedisBroker

__all__ = ["RedisBroker"]
