"""faena: durable background jobs with pools, leases, HPA-exact autoscaling and Camunda tasks."""

from faena.errors import FaenaError

__all__ = ["FaenaError"]
__version__ = "0.1.0"
