"""Reading files as untrusted input: regular files only, bounded in size, decoded strictly.

Every loader of awgrt (intent programs, saved programs, calibrations and their data, the HIL rig
file) reads through :func:`read_file` and, for JSON, :func:`strict_json`, so a FIFO or a device
never blocks, a huge file is never read whole, and ambiguous or malformed text is refused the
way a database refuses it: duplicate keys, non-UTF-8 bytes, NaN or infinite numbers, integers of
more than :data:`MAX_INT_DIGITS` digits, nesting deeper than :data:`MAX_NESTING`. Each problem is
a :class:`~awgrt.errors.SerializationError` naming the file (and the key, where there is one).
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any

from .errors import SerializationError

#: Largest text file read (bytes).
MAX_TEXT_BYTES = 64 * 2**20
#: Deepest JSON nesting accepted (an intent program needs about 6 levels).
MAX_NESTING = 32
#: Longest integer accepted in JSON (loop counts and sample counts need at most 19 digits).
MAX_INT_DIGITS = 40


def regular_file(path: str | Path, what: str) -> int:
    """Open ``path`` for reading without blocking and check it is a regular file; returns the
    descriptor (the caller closes it). A FIFO, a device, a socket or a directory is refused."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise SerializationError(f"{path}: cannot read the {what}: {exc.strerror or exc}", value=str(path)) from None
    try:
        mode = os.fstat(fd).st_mode
    except OSError as exc:
        os.close(fd)
        raise SerializationError(f"{path}: cannot read the {what}: {exc.strerror or exc}", value=str(path)) from None
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
        raise SerializationError(f"{path} is {kind}, not a regular file: cannot be read as the {what}", value=str(path))
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return fd


def read_file(path: str | Path, what: str, max_bytes: int = MAX_TEXT_BYTES) -> bytes:
    """The bytes of the regular file ``path`` (at most ``max_bytes``; a larger file is refused)."""
    fd = regular_file(path, what)
    with os.fdopen(fd, "rb") as fh:
        try:
            data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise SerializationError(f"{path}: cannot read the {what}: {exc.strerror or exc}", value=str(path)) from None
    if len(data) > max_bytes:
        raise SerializationError(f"{path}: the {what} is larger than {max_bytes} bytes", value=str(path))
    return data


def read_text(path: str | Path, what: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """:func:`read_file` decoded as UTF-8, strictly."""
    return decode(read_file(path, what, max_bytes), f"{path}: the {what}")


def decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SerializationError(f"{where} is not UTF-8 text (byte {exc.start}: {data[exc.start : exc.start + 1]!r})", value=exc.start) from None


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"the key {key!r} appears twice in one object (which copy was meant is ambiguous)")
        out[key] = value
    return out


class _Refused(ValueError):
    pass


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"an integer of {len(text.lstrip('-'))} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:40]} is beyond a float")
    return value


def _constant(text: str) -> Any:
    raise _Refused(f"{text} is not a number JSON allows")


def _depth(value: Any) -> int:
    depth, level = 0, [value]
    while level:
        depth += 1
        if depth > MAX_NESTING:
            break
        level = [v for x in level if isinstance(x, (dict, list)) for v in (x.values() if isinstance(x, dict) else x)]
    return depth


def strict_json(text: str | bytes, where: str) -> Any:
    """``text`` parsed as JSON, strictly (see module doc); ``where`` names the file in errors."""
    if isinstance(text, bytes):
        text = decode(text, where)
    try:
        value = json.loads(text, object_pairs_hook=_pairs, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except _Refused as exc:
        raise SerializationError(f"{where}: {exc}") from None
    except RecursionError:
        raise SerializationError(f"{where}: JSON nested too deeply (at most {MAX_NESTING} levels)") from None
    except ValueError as exc:  # json.JSONDecodeError included
        raise SerializationError(f"{where}: not valid JSON: {exc}") from None
    if _depth(value) > MAX_NESTING:
        raise SerializationError(f"{where}: JSON nested more than {MAX_NESTING} levels deep")
    return value
