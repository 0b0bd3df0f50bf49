"""faena's HTTP server: health, a JSON API over jobs, and the Camunda routes."""

from faena.web.app import create_app

__all__ = ["create_app"]
