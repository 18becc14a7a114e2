"""The Python route: stand-ins for the driver library's 19 functions, handed to ``spcm_core``
through ctypes' loader (see :mod:`awgrt.sim.spcm_emulation`)."""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable
from typing import Any

from ._emu_common import DRIVER_FUNCTIONS, ERR_INIT, LIBRARY_NAME, SpcmEmulationError, _active


def _value(arg) -> int | float:
    """The number a ctypes argument carries (what C would receive), for ints, floats and ctypes scalars."""
    return arg.value if isinstance(arg, ctypes._SimpleCData) else arg


def _as(ctype, arg) -> Any:
    """``arg`` converted as a C call converts it to parameter type ``ctype`` (integers wrap)."""
    v = _value(arg)
    return ctype(v).value if v is not None else 0


def _handle_of(arg) -> int:
    """The integer behind a driver handle: a ``POINTER(c_uint64)`` from spcm_hOpen, None (NULL) or an int."""
    if arg is None or arg is False:
        return 0
    if isinstance(arg, int):
        return arg
    return ctypes.cast(arg, ctypes.c_void_p).value or 0


def _address_of(arg) -> int:
    """The address a pointer argument passes: ``byref(x)``, a pointer, ``c_void_p``, a ctypes array or an int."""
    if arg is None:
        return 0
    if isinstance(arg, int):
        return arg
    if type(arg).__name__ == "CArgObject":  # byref(obj): what ctypes passes is obj's address
        return ctypes.addressof(arg._obj)
    if isinstance(arg, ctypes.c_void_p):
        return arg.value or 0
    if isinstance(arg, ctypes._Pointer | ctypes.c_char_p):
        return ctypes.cast(arg, ctypes.c_void_p).value or 0
    if isinstance(arg, ctypes.Array | ctypes.Structure | ctypes.Union | ctypes._SimpleCData):
        return ctypes.addressof(arg)
    raise TypeError(f"cannot pass {type(arg).__name__} as a pointer")


def _store(ctype, address: int, value) -> None:
    if address:
        ctype.from_address(address).value = value


class _StandIn:
    """A Python object standing for one C function of the driver library.

    It is called with the same ctypes arguments spcm passes to the C function and converts them
    as C would. ``argtype`` / ``argtypes`` / ``restype`` may be set (spcm_core sets them) and
    ``restype`` is honoured for ``spcm_hOpen`` (a pointer handle, NULL when the open failed).
    """

    def __init__(self, name: str, fn: Callable) -> None:
        self.__name__ = name
        self._fn = fn
        self.argtype = self.argtypes = None
        self.restype = ctypes.c_uint32

    def __call__(self, *args):
        return self._fn(self, *args)

    def __repr__(self) -> str:
        return f"<awgrt emulated driver function {self.__name__}>"


def _py_open(fn: _StandIn, name) -> object:
    if isinstance(name, bytes | bytearray):
        raw = bytes(name)
    elif isinstance(name, str):
        raw = name.encode()
    else:
        address = _address_of(name)
        raw = ctypes.string_at(address) if address else b""
    raw = raw.split(b"\0", 1)[0]
    b = _active()
    handle = b.open(raw) if b is not None else 0
    restype: Any = fn.restype
    if restype is None or restype in (ctypes.c_uint32, ctypes.c_int):
        return handle
    if handle:
        return ctypes.cast(ctypes.c_void_p(handle), restype)
    return restype()


def _py_close(fn: _StandIn, handle) -> None:
    b = _active()
    if b is not None:
        b.close(_handle_of(handle))


def _py_error(value_type) -> Callable:
    def call(fn: _StandIn, handle, reg_p, value_p, text_p) -> int:
        b = _active()
        if b is None:
            code, reg, value, text = ERR_INIT, 0, 0, b"awgrt emulated driver: no emulation is active"
        else:
            code, reg, value, text = b.error_info(_handle_of(handle))
        _store(ctypes.c_uint32, _address_of(reg_p), reg)
        _store(value_type, _address_of(value_p), value)
        address = _address_of(text_p)
        if address:
            ctypes.memmove(address, text + b"\0", len(text) + 1)
        return code

    return call


def _py_get(kind: str, value_type) -> Callable:
    def call(fn: _StandIn, handle, register, value_p) -> int:
        b = _active()
        if b is None:
            return ERR_INIT
        reg = _as(ctypes.c_int32, register)
        code, value = b.get_d64(_handle_of(handle), reg) if kind == "d64" else b.get_i64(_handle_of(handle), reg)
        _store(value_type, _address_of(value_p), value_type(value).value)
        return code

    return call


def _py_get_ptr(fn: _StandIn, handle, register, buffer, size) -> int:
    b = _active()
    if b is None:
        return ERR_INIT
    address, n = _address_of(buffer), _as(ctypes.c_uint64, size)
    code, data = b.get_ptr(_handle_of(handle), _as(ctypes.c_int32, register), n if address else 0)
    if address and n:
        ctypes.memmove(address, data[: n - 1] + b"\0", min(len(data) + 1, n))
    return code


def _py_set_int(value_type) -> Callable:
    def call(fn: _StandIn, handle, register, value) -> int:
        b = _active()
        if b is None:
            return ERR_INIT
        return b.set_i64(_handle_of(handle), _as(ctypes.c_int32, register), _as(ctypes.c_int64, _as(value_type, value)))

    return call


def _py_set_i64m(fn: _StandIn, handle, register, high, low) -> int:
    b = _active()
    if b is None:
        return ERR_INIT
    word = (_as(ctypes.c_uint32, high) << 32) | _as(ctypes.c_uint32, low)
    return b.set_i64(_handle_of(handle), _as(ctypes.c_int32, register), _as(ctypes.c_int64, word))


def _py_set_d64(fn: _StandIn, handle, register, value) -> int:
    b = _active()
    if b is None:
        return ERR_INIT
    return b.set_d64(_handle_of(handle), _as(ctypes.c_int32, register), float(_value(value)))


def _py_set_ptr(fn: _StandIn, handle, register, buffer, size) -> int:
    b = _active()
    if b is None:
        return ERR_INIT
    n = _as(ctypes.c_uint64, size)
    if isinstance(buffer, bytes | bytearray):
        data = bytes(buffer[:n])
    else:
        address = _address_of(buffer)
        data = ctypes.string_at(address, n) if address and n else b""
    return b.set_ptr(_handle_of(handle), _as(ctypes.c_int32, register), data)


def _py_def_transfer(fn: _StandIn, handle, buf_type, direction, notify, buffer, offset, length) -> int:
    b = _active()
    if b is None:
        return ERR_INIT
    u32, u64 = ctypes.c_uint32, ctypes.c_uint64
    return b.def_transfer(
        _handle_of(handle), _as(u32, buf_type), _as(u32, direction), _as(u32, notify), _address_of(buffer), _as(u64, offset), _as(u64, length)
    )


def _py_invalidate(fn: _StandIn, handle, buf_type) -> int:
    b = _active()
    return b.invalidate(_handle_of(handle), _as(ctypes.c_uint32, buf_type)) if b is not None else ERR_INIT


def _py_get_cont_buf(fn: _StandIn, handle, buf_type, buffer_pp, length_p) -> int:
    _store(ctypes.c_void_p, _address_of(buffer_pp), None)
    _store(ctypes.c_uint64, _address_of(length_p), 0)
    return ERR_INIT if _active() is None else 0


def _py_none_found(fn: _StandIn, *args) -> int:
    return 0


_PY_FUNCTIONS: dict[str, Callable] = {
    "spcm_hOpen": _py_open,
    "spcm_vClose": _py_close,
    "spcm_dwGetErrorInfo_i32": _py_error(ctypes.c_int32),
    "spcm_dwGetErrorInfo_i64": _py_error(ctypes.c_int64),
    "spcm_dwGetErrorInfo_d64": _py_error(ctypes.c_double),
    "spcm_dwGetParam_i32": _py_get("i64", ctypes.c_int32),
    "spcm_dwGetParam_i64": _py_get("i64", ctypes.c_int64),
    "spcm_dwGetParam_d64": _py_get("d64", ctypes.c_double),
    "spcm_dwGetParam_ptr": _py_get_ptr,
    "spcm_dwSetParam_i32": _py_set_int(ctypes.c_int32),
    "spcm_dwSetParam_i64": _py_set_int(ctypes.c_int64),
    "spcm_dwSetParam_d64": _py_set_d64,
    "spcm_dwSetParam_ptr": _py_set_ptr,
    "spcm_dwSetParam_i64m": _py_set_i64m,
    "spcm_dwDefTransfer_i64": _py_def_transfer,
    "spcm_dwInvalidateBuf": _py_invalidate,
    "spcm_dwGetContBuf_i64": _py_get_cont_buf,
    "spcm_dwDiscovery": _py_none_found,
    "spcm_dwSendIDNRequest": _py_none_found,
}
assert set(_PY_FUNCTIONS) == set(DRIVER_FUNCTIONS)


class _StandInLibrary:
    """What ctypes' loader returns for ``libspcm_linux.so`` on the Python route."""

    _name = f"{LIBRARY_NAME} (awgrt emulated driver, Python route)"
    _handle = 0

    def __init__(self) -> None:
        for name, fn in _PY_FUNCTIONS.items():
            setattr(self, name, _StandIn(name, fn))

    def __getattr__(self, name: str):
        raise AttributeError(f"the emulated driver library has no function {name!r}")

    def __getitem__(self, name: str):
        return getattr(self, name)


def _install_python_route() -> None:
    library = _StandInLibrary()
    loaders = [ctypes.cdll] + ([ctypes.windll] if hasattr(ctypes, "windll") else [])
    originals = [loader.LoadLibrary for loader in loaders]

    def load(original):
        def load_library(name, *args, **kwargs):
            if os.path.basename(str(name)).startswith(("libspcm_linux", "spcm_win")):
                return library
            return original(name, *args, **kwargs)

        return load_library

    for loader, original in zip(loaders, originals):
        loader.LoadLibrary = load(original)
    try:
        import spcm_core  # noqa: F401 - binds the stand-ins through the loader above
    finally:
        for loader in loaders:
            del loader.LoadLibrary  # back to the class's own method
    bound = getattr(sys.modules["spcm_core.pyspcm"], "spcmDll", None)
    if bound is not library:
        raise SpcmEmulationError("spcm_core did not bind the emulated driver's Python stand-ins")
