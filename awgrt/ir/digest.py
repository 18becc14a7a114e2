"""Canonical JSON and content digests shared by every IR stage.

A digest is the SHA-256 of canonical JSON: keys sorted, no whitespace, floats written with
``repr`` (shortest string that round-trips exactly), NaN and infinities refused. Equal values give
equal digests on every machine and Python version that keeps ``float.__repr__`` exact.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from typing import Any

import numpy as np

_PLAIN = (int, float, str, bool)


@functools.cache
def _shown_fields(cls: type) -> tuple[tuple[str, ...], Any]:
    """A dataclass's fields that are part of its plain form (those shown by repr), and its OP."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.repr), getattr(cls, "OP", None)


def to_plain(value: Any) -> Any:
    """Turn dataclasses, tuples, mappings and numpy scalars into JSON-ready plain values."""
    if value is None or type(value) in _PLAIN:
        return value
    if type(value) in (list, tuple):
        if all(v is None or type(v) in _PLAIN for v in value):
            return value  # json writes a tuple of plain values as the same array
        return [to_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names, op = _shown_fields(type(value))
        out = {name: to_plain(getattr(value, name)) for name in names}
        if op is not None:
            out = {"op": op, **out}
        return out
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def canonical_json(value: Any) -> str:
    """Canonical JSON text of ``value`` (see module docstring)."""
    return json.dumps(to_plain(value), sort_keys=True, separators=(",", ":"), allow_nan=False)


def digest_of(*parts: Any) -> str:
    """Hex SHA-256 over the canonical JSON of ``parts``; bytes-like parts are hashed raw."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, (bytes, bytearray, memoryview)):
            h.update(b"B")
            h.update(bytes(part))
        else:
            h.update(b"J")
            h.update(canonical_json(part).encode())
        h.update(b"\x00")
    return h.hexdigest()
