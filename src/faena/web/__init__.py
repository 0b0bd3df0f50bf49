"""faena's HTTP server: health, a JSON API over jobs, and the Camunda routes.

``create_app`` is imported on first use: the Camunda routes (``faena.camunda.server``) read
their bodies through :mod:`faena.web.body`, and importing that module runs this package's
``__init__``, which must not import ``faena.web.app`` (it imports the Camunda routes back).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faena.web.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from faena.web.app import create_app

        return create_app
    raise AttributeError(f"module 'faena.web' has no attribute {name!r}")
