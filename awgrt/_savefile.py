"""Reading a saved program (``.npz``) as untrusted input.

A saved file is a zip of ``.npy`` members: ``meta`` (JSON as bytes) and ``seg0``, ``seg1``, ...
(int16 samples, shape (n_samples, n_channels)). Nothing in it is believed before it is checked:

- every member's declared size is checked against what the file can hold (a stored member is no
  larger than the file; a deflated one no larger than :data:`MAX_DEFLATE_RATIO` times its
  compressed size) before anything is allocated, and every ``.npy`` header (dtype, shape) is read
  and checked before its data;
- segment data must be int16, or another integer or float dtype whose every value is an exact
  integer within int16 (a checked cast); anything else (40000, 0.5, NaN, object arrays) is refused;
- the metadata must have every field with the right type.

Every problem is a :class:`~awgrt.errors.SerializationError` naming the file and the field.
"""

from __future__ import annotations

import math
import numbers
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ._files import regular_file, strict_json
from .errors import SerializationError

#: Deflate cannot expand data by more than about 1032:1; anything claiming more is corrupt.
MAX_DEFLATE_RATIO = 1100
#: Largest metadata member accepted (bytes).
MAX_META_BYTES = 64 * 2**20

_INT16 = np.iinfo(np.int16)


class SaveFile:
    """An opened ``.npz`` whose members are read with the checks of the module doc."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        os.close(regular_file(self.path, "saved program"))  # a FIFO or a device would block the zip reader
        try:
            self.size = self.path.stat().st_size
            self.zip = zipfile.ZipFile(self.path)
        except OSError as exc:
            raise SerializationError(f"{self.path}: cannot read: {exc.strerror or exc}", value=str(self.path)) from None
        except zipfile.BadZipFile as exc:
            raise SerializationError(f"{self.path}: not a saved program (not a zip/.npz file: {exc})", value=str(self.path)) from None

        names = self.zip.namelist()
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            self.zip.close()
            raise SerializationError(f"{self.path}: member {twice[0]!r} appears twice (which copy was meant is ambiguous)", value=twice[0])

    def __enter__(self) -> SaveFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.zip.close()

    def fail(self, field: str, problem: str, value: Any = None) -> SerializationError:
        return SerializationError(f"{self.path}: field {field!r}: {problem}", op=f"load {field}", value=value)

    def _info(self, field: str) -> zipfile.ZipInfo:
        try:
            info = self.zip.getinfo(f"{field}.npy")
        except KeyError:
            raise self.fail(field, "missing from the file") from None
        if info.compress_type == zipfile.ZIP_STORED:
            limit = self.size
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            limit = info.compress_size * MAX_DEFLATE_RATIO
        else:
            raise self.fail(field, f"compressed with an unsupported method ({info.compress_type})")
        if info.file_size > limit:
            raise self.fail(field, f"claims {info.file_size} bytes, more than the file can hold ({limit})", info.file_size)
        return info

    def array(self, field: str, max_bytes: int | None = None) -> np.ndarray:
        """One ``.npy`` member, header checked before its data is read."""
        info = self._info(field)
        if max_bytes is not None and info.file_size > max_bytes:
            raise self.fail(field, f"{info.file_size} bytes, more than the {max_bytes} allowed", info.file_size)
        try:
            with self.zip.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version in ((2, 0), (3, 0)):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"unknown .npy version {version}")
                if any(not isinstance(d, int) or d < 0 for d in shape):
                    raise self.fail(field, f"shape {shape} has a negative dimension", shape)
                if dtype.hasobject or dtype.kind not in "iuf" or dtype.subdtype is not None:
                    raise self.fail(field, f"dtype {dtype} is not numeric samples", str(dtype))
                count = math.prod(shape)
                nbytes = count * dtype.itemsize
                if nbytes > info.file_size:
                    raise self.fail(field, f"shape {shape} of {dtype} needs {nbytes} bytes, the member holds {info.file_size}", shape)
                raw = f.read(nbytes)
        except SerializationError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise self.fail(field, f"unreadable ({exc})") from None
        if len(raw) != nbytes:
            raise self.fail(field, f"truncated: {len(raw)} of {nbytes} bytes", len(raw))
        out = np.frombuffer(raw, dtype=dtype, count=count)
        return out.reshape(shape[::-1]).T if fortran else out.reshape(shape)

    def meta(self) -> dict[str, Any]:
        """The metadata member as a JSON object."""
        raw = self.array("meta", MAX_META_BYTES)
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise self.fail("meta", f"must be bytes (uint8, 1-D), got {raw.dtype} of shape {raw.shape}")
        try:
            meta = strict_json(raw.tobytes(), "the metadata")
        except SerializationError as exc:
            raise self.fail("meta", exc.detail.removeprefix("the metadata: ")) from None
        if not isinstance(meta, dict):
            raise self.fail("meta", f"must be a JSON object, got {type(meta).__name__}")
        return meta

    def samples(self, field: str, n_channels: int) -> np.ndarray:
        """Segment samples as read-only native int16 of shape (n_samples, n_channels): int16
        as stored, or an exact, checked cast from another integer or float dtype."""
        a = self.array(field)
        if a.ndim != 2 or a.shape[1] != n_channels or a.shape[0] < 1:
            raise self.fail(field, f"shape {a.shape} is not (n_samples >= 1, {n_channels} channels)", a.shape)
        if a.dtype.kind == "i" and a.dtype.itemsize == 2:
            out = a.astype(np.int16)  # native byte order, own copy
        else:
            if a.dtype.kind == "f":
                bad = ~np.isfinite(a) | (a != np.round(a))
            else:
                bad = np.zeros(a.shape, dtype=bool)
            bad |= (a < _INT16.min) | (a > _INT16.max)
            if bad.any():
                i, ch = np.argwhere(bad)[0]
                raise self.fail(field, f"sample {i} channel {ch} is {a[i, ch]!r}: not an exact int16 value", a[i, ch].item())
            out = a.astype(np.int16)
        out.flags.writeable = False
        return out


def need(file: SaveFile, meta: dict[str, Any], key: str, kind: str) -> Any:
    """``meta[key]`` checked to be of ``kind``: "int", "real", "str", "list" or "dict"."""
    if key not in meta:
        raise file.fail(f"meta.{key}", "missing")
    return check_value(file, f"meta.{key}", meta[key], kind)


def check_value(file: SaveFile, field: str, v: Any, kind: str) -> Any:
    ok = {
        "int": lambda: isinstance(v, numbers.Integral) and not isinstance(v, bool),
        "bool": lambda: isinstance(v, bool),
        "real": lambda: isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v),
        "str": lambda: isinstance(v, str),
        "list": lambda: isinstance(v, list),
        "dict": lambda: isinstance(v, dict),
    }[kind]()
    if not ok:
        raise file.fail(field, f"must be {kind}, got {v!r}"[:200], v if not isinstance(v, (list, dict)) else None)
    return v
