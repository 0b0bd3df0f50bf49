"""Errors of the autoscaling package."""

from __future__ import annotations

from faena.errors import FaenaError


class ManifestError(FaenaError):
    """An HPA or Deployment manifest (or a load spec) cannot be used as written.

    The message names the field, the offending value and the fix.
    """

    def __init__(self, field: str, value: object, fix: str, *, source: str | None = None) -> None:
        self.field = field
        self.value = value
        self.fix = fix
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{field}: {value!r} is not valid; {fix}")


class LoadSpecError(ManifestError):
    """A simulator load spec cannot be used as written."""


class ReplicaCalcError(FaenaError):
    """One metric could not produce a replica proposal (upstream returns an error).

    The controller treats it like upstream: that metric gives no proposal this cycle.
    """
