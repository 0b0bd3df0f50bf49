"""Kubernetes resource quantities ("10", "500m", "256Mi", "1Gi", "1.5", "2e3") as exact numbers.

The HPA feeds ``Quantity.MilliValue()`` into its arithmetic: the value in thousandths, rounded
up to a whole milli-unit. :func:`parse_quantity` returns an exact :class:`~fractions.Fraction`
and :func:`to_milli` does that rounding.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
_QUANTITY = re.compile(
    r"^(?P<sign>[+-]?)(?P<number>\d+(?:\.\d*)?|\.\d+)"
    r"(?:(?P<exp>[eE][+-]?\d+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$"
)

QUANTITY_HINT = "write a number with an optional suffix, e.g. 10, 0.5, 500m, 256Mi, 1Gi, 2k"


class QuantityFormatError(ValueError):
    """The text is not a Kubernetes quantity."""


def parse_quantity(text: str | int | float) -> Fraction:
    """Parse a quantity exactly. YAML numbers (``10``, ``0.5``) are accepted too."""
    if isinstance(text, bool):
        raise QuantityFormatError(f"{text!r} is a boolean, not a quantity; {QUANTITY_HINT}")
    if isinstance(text, int):
        return Fraction(text)
    if isinstance(text, float):
        if not math.isfinite(text):
            raise QuantityFormatError(f"{text!r} is not finite; {QUANTITY_HINT}")
        return Fraction(repr(text))
    match = _QUANTITY.match(text.strip())
    if match is None:
        raise QuantityFormatError(f"{text!r} is not a Kubernetes quantity; {QUANTITY_HINT}")
    number = Fraction(match["number"])
    if match["exp"]:
        number *= Fraction(10) ** int(match["exp"][1:])
    else:
        suffix = match["suffix"] or ""
        number *= _BINARY[suffix] if suffix in _BINARY else _DECIMAL[suffix]
    return -number if match["sign"] == "-" else number


def to_milli(value: Fraction) -> int:
    """``MilliValue()``: thousandths, rounded up (away from zero) to a whole milli-unit."""
    scaled = value * 1000
    return math.ceil(scaled) if scaled >= 0 else -math.ceil(-scaled)


def milli(text: str | int | float) -> int:
    """Shorthand for ``to_milli(parse_quantity(text))``."""
    return to_milli(parse_quantity(text))


def format_milli(value_milli: int) -> str:
    """Render a milli-value the way ``kubectl`` would for small numbers (``500m``, ``10``)."""
    if value_milli % 1000 == 0:
        return str(value_milli // 1000)
    return f"{value_milli}m"
