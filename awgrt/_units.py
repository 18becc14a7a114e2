"""Physical quantities at the edge: a pint ``Quantity`` (spcm's ``units``, or any object with
``.to(unit).magnitude``) becomes a plain number in the unit awgrt uses, once, where it comes in;
plain numbers pass through as they are (hertz, seconds, radians, millivolts, micrometres)."""

from __future__ import annotations

from typing import Any

from .errors import ProgramError


def is_quantity(value: Any) -> bool:
    return hasattr(value, "magnitude") and hasattr(value, "to") and hasattr(value, "units")


def in_unit(value: Any, unit: str, what: str, *, op: str | None = None, segment: str | None = None) -> Any:
    """``value`` in ``unit`` when it is a quantity (a list or tuple element by element); as is
    otherwise. A quantity of another dimension is a :class:`~awgrt.errors.ProgramError`."""
    if is_quantity(value):
        try:
            return value.to(unit).magnitude
        except Exception as exc:  # noqa: BLE001 - pint's DimensionalityError and kin, without importing pint
            raise ProgramError(f"{what}={value} cannot be taken in {unit}: {exc}", segment=segment, op=op, value=str(value)) from None
    if isinstance(value, (list, tuple)) and any(is_quantity(v) for v in value):
        return type(value)(in_unit(v, unit, what, op=op, segment=segment) for v in value)
    return value


def whole_mv(value: Any, what: str, op: str) -> Any:
    """Millivolts as the card takes them: a quantity (or list of them) in mV, made an int when
    it is a whole number (500.0 mV from 0.5 V); anything else as is, for the caller's checks."""
    value = in_unit(value, "mV", what, op=op)

    def whole(v: Any) -> Any:
        return int(round(v)) if isinstance(v, float) and abs(v - round(v)) < 1e-9 else v

    return type(value)(whole(v) for v in value) if isinstance(value, (list, tuple)) else whole(value)
