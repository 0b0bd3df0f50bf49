"""Reading Kubernetes YAML: documents, and typed access to their fields that names the full
field path, the value and the fix in every :class:`ManifestError`."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import yaml

from faena.autoscale.errors import ManifestError
from faena.autoscale.quantity import QUANTITY_HINT, QuantityFormatError, parse_quantity, to_milli


class FieldReader:
    """Typed access to a YAML mapping that reports errors with the full field path."""

    def __init__(self, source: str | None) -> None:
        self.source = source

    def fail(self, path: str, value: object, fix: str) -> ManifestError:
        return ManifestError(path, value, fix, source=self.source)

    def mapping(self, value: object, path: str) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(path, value, "write a mapping (key: value lines) here")
        return value

    def only_keys(self, obj: Mapping[str, Any], path: str, allowed: set[str]) -> None:
        """Refuse a key not in ``allowed`` (``path`` "" for the document itself), naming the
        closest allowed one: a misspelt field is an error, never silently a default."""
        for key in obj:
            if key not in allowed:
                near = difflib.get_close_matches(str(key), sorted(allowed), n=1)
                hint = f"did you mean {near[0]!r}? " if near else ""
                raise self.fail(
                    f"{path}.{key}" if path else str(key),
                    obj[key],
                    f"unknown field; {hint}use one of {sorted(allowed)}",
                )

    def string(self, obj: Mapping[str, Any], key: str, path: str) -> str:
        value = obj.get(key)
        if not isinstance(value, str) or not value:
            raise self.fail(f"{path}.{key}", value, "give a non-empty string")
        return value

    def integer(
        self, obj: Mapping[str, Any], key: str, path: str, *, low: int, high: int | None = None
    ) -> int:
        value = obj.get(key)
        bounds = f">= {low}" if high is None else f"between {low} and {high}"
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"{path}.{key}", value, f"give a whole number {bounds}")
        if value < low or (high is not None and value > high):
            raise self.fail(f"{path}.{key}", value, f"give a whole number {bounds}")
        return value

    def quantity_milli(
        self, obj: Mapping[str, Any], key: str, path: str, *, allow_zero: bool = False
    ) -> int:
        value = obj.get(key)
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise self.fail(f"{path}.{key}", value, QUANTITY_HINT)
        try:
            milli = to_milli(parse_quantity(value))
        except QuantityFormatError:
            raise self.fail(f"{path}.{key}", value, QUANTITY_HINT) from None
        if milli < 0 or (milli == 0 and not allow_zero):
            least = "zero or more" if allow_zero else "greater than zero"
            raise self.fail(f"{path}.{key}", value, f"give a quantity {least}")
        return milli

    def choice(self, obj: Mapping[str, Any], key: str, path: str, options: list[str]) -> str:
        value = obj.get(key)
        if value not in options:
            raise self.fail(f"{path}.{key}", value, f"use one of {options}")
        return str(value)


def documents(text: str, source: str | None) -> list[Mapping[str, Any]]:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ManifestError(
            "(yaml)", str(exc).splitlines()[0], "fix the YAML syntax", source=source
        ) from exc
    for doc in docs:
        if not isinstance(doc, Mapping):
            raise ManifestError(
                "(document)", doc, "each YAML document must be a mapping", source=source
            )
    return docs


def the_one(text: str, kind: str, source: str | None) -> Mapping[str, Any]:
    """The single document of ``kind`` in a YAML text (documents of other kinds are skipped)."""
    found = [d for d in documents(text, source) if d.get("kind") == kind]
    if len(found) != 1:
        raise ManifestError(
            "kind", f"{len(found)} {kind} documents", f"give exactly one {kind} per file",
            source=source,
        )  # fmt: skip
    return found[0]


def header(r: FieldReader, doc: Mapping[str, Any], kind: str, api_versions: list[str]) -> None:
    if doc.get("kind") != kind:
        raise r.fail("kind", doc.get("kind"), f"expected kind: {kind}")
    if doc.get("apiVersion") not in api_versions:
        raise r.fail("apiVersion", doc.get("apiVersion"), f"use apiVersion: {api_versions[0]}")
