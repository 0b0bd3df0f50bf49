"""Observability: JSON logs, Prometheus metrics, dashboards and alert rules."""
