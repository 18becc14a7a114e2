"""The C route: ``libspcm_emu.c`` exports the driver's 19 functions and forwards each call to the
Python callbacks registered here (see :mod:`awgrt.sim.spcm_emulation`)."""

from __future__ import annotations

import ctypes
import sys

from ._emu_build import build_library
from ._emu_common import _P, ABI_VERSION, ERR_INIT, SpcmEmulationError, _active

_INT64 = ctypes.c_int64
_UINT32 = ctypes.c_uint32
_UINT64 = ctypes.c_uint64
_PTR = ctypes.c_void_p

_CB_OPEN = ctypes.CFUNCTYPE(_INT64, ctypes.c_char_p)
_CB_CLOSE = ctypes.CFUNCTYPE(None, _INT64)
_CB_ERROR = ctypes.CFUNCTYPE(_UINT32, _INT64, ctypes.POINTER(_UINT32), ctypes.POINTER(_INT64), _PTR, _UINT64)
_CB_GET_I64 = ctypes.CFUNCTYPE(_UINT32, _INT64, ctypes.c_int32, ctypes.POINTER(_INT64))
_CB_GET_D64 = ctypes.CFUNCTYPE(_UINT32, _INT64, ctypes.c_int32, ctypes.POINTER(ctypes.c_double))
_CB_GET_PTR = ctypes.CFUNCTYPE(_UINT32, _INT64, ctypes.c_int32, _PTR, _UINT64)
_CB_SET_I64 = ctypes.CFUNCTYPE(_UINT32, _INT64, ctypes.c_int32, _INT64)
_CB_SET_D64 = ctypes.CFUNCTYPE(_UINT32, _INT64, ctypes.c_int32, ctypes.c_double)
_CB_SET_PTR = ctypes.CFUNCTYPE(_UINT32, _INT64, ctypes.c_int32, _PTR, _UINT64)
_CB_DEF_TRANSFER = ctypes.CFUNCTYPE(_UINT32, _INT64, _UINT32, _UINT32, _UINT32, _PTR, _UINT64, _UINT64)
_CB_INVALIDATE = ctypes.CFUNCTYPE(_UINT32, _INT64, _UINT32)


class _Callbacks(ctypes.Structure):
    """Mirror of ``awgrt_spcm_callbacks`` in libspcm_emu.c (same field order)."""

    _fields_ = [
        ("open", _CB_OPEN),
        ("close", _CB_CLOSE),
        ("error", _CB_ERROR),
        ("get_i64", _CB_GET_I64),
        ("get_d64", _CB_GET_D64),
        ("get_ptr", _CB_GET_PTR),
        ("set_i64", _CB_SET_I64),
        ("set_d64", _CB_SET_D64),
        ("set_ptr", _CB_SET_PTR),
        ("def_transfer", _CB_DEF_TRANSFER),
        ("invalidate", _CB_INVALIDATE),
    ]


def emulation_active() -> bool:
    """True while an emulated driver answers spcm's calls in this process."""
    return _active() is not None


def _c_open(name: bytes | None) -> int:
    b = _active()
    return b.open(name or b"") if b is not None else 0


def _c_close(handle: int) -> None:
    b = _active()
    if b is not None:
        b.close(handle)


def _c_error(handle: int, reg_p, value_p, text_p: int | None, text_len: int) -> int:
    b = _active()
    if b is None:
        return ERR_INIT
    code, reg, value, text = b.error_info(handle)
    reg_p[0] = reg
    value_p[0] = value
    if text_p and text_len:
        ctypes.memmove(text_p, text[: text_len - 1] + b"\0", min(len(text) + 1, text_len))
    return code


def _c_get_i64(handle: int, register: int, value_p) -> int:
    b = _active()
    if b is None:
        return ERR_INIT
    code, value = b.get_i64(handle, register)
    value_p[0] = _INT64(value).value
    return code


def _c_get_d64(handle: int, register: int, value_p) -> int:
    b = _active()
    if b is None:
        return ERR_INIT
    code, value = b.get_d64(handle, register)
    value_p[0] = value
    return code


def _c_get_ptr(handle: int, register: int, buffer: int | None, size: int) -> int:
    b = _active()
    if b is None:
        return ERR_INIT
    code, data = b.get_ptr(handle, register, size)
    if buffer and size:
        ctypes.memmove(buffer, data[: size - 1] + b"\0", min(len(data) + 1, size))
    return code


def _c_set_i64(handle: int, register: int, value: int) -> int:
    b = _active()
    return b.set_i64(handle, register, value) if b is not None else ERR_INIT


def _c_set_d64(handle: int, register: int, value: float) -> int:
    b = _active()
    return b.set_d64(handle, register, value) if b is not None else ERR_INIT


def _c_set_ptr(handle: int, register: int, buffer: int | None, size: int) -> int:
    b = _active()
    if b is None:
        return ERR_INIT
    return b.set_ptr(handle, register, ctypes.string_at(buffer, size) if buffer and size else b"")


def _c_def_transfer(handle: int, buf_type: int, direction: int, notify: int, buffer: int | None, offset: int, length: int) -> int:
    b = _active()
    return b.def_transfer(handle, buf_type, direction, notify, buffer or 0, offset, length) if b is not None else ERR_INIT


def _c_invalidate(handle: int, buf_type: int) -> int:
    b = _active()
    return b.invalidate(handle, buf_type) if b is not None else ERR_INIT


def _install_c_route() -> None:
    path = build_library()
    lib = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    if lib.awgrt_spcm_abi_version() != ABI_VERSION:
        raise SpcmEmulationError(f"{path} has interface version {lib.awgrt_spcm_abi_version()}, expected {ABI_VERSION}: delete it to rebuild")
    callbacks = _Callbacks(
        _CB_OPEN(_c_open),
        _CB_CLOSE(_c_close),
        _CB_ERROR(_c_error),
        _CB_GET_I64(_c_get_i64),
        _CB_GET_D64(_c_get_d64),
        _CB_GET_PTR(_c_get_ptr),
        _CB_SET_I64(_c_set_i64),
        _CB_SET_D64(_c_set_d64),
        _CB_SET_PTR(_c_set_ptr),
        _CB_DEF_TRANSFER(_c_def_transfer),
        _CB_INVALIDATE(_c_invalidate),
    )
    lib.awgrt_spcm_register.argtypes = [ctypes.POINTER(_Callbacks), ctypes.c_uint64]
    lib.awgrt_spcm_register.restype = ctypes.c_int
    if lib.awgrt_spcm_register(ctypes.byref(callbacks), ctypes.sizeof(_Callbacks)) != 0:
        raise SpcmEmulationError(f"{path}: the callback table does not match this awgrt version: delete it to rebuild")
    _P.lib, _P.callbacks = lib, callbacks
    import spcm_core  # noqa: F401 - binds to the library loaded above, found by its soname

    bound = getattr(sys.modules["spcm_core.pyspcm"], "spcmDll", None)
    if bound is None or getattr(bound, "_handle", None) != lib._handle:
        raise SpcmEmulationError(f"spcm_core did not bind the emulated driver library {path} (it found {getattr(bound, '_name', None)!r}): use route='python'")
