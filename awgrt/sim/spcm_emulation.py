"""Run the unmodified ``spcm`` package on simulated cards.

:class:`~awgrt.sim.driver.EmulatedDriver` answers Spectrum's driver calls in Python. This module
puts it where ``spcm_core`` looks for the driver library (``libspcm_linux.so``), in one of two
*routes*:

``"c"``
    ``libspcm_emu.c`` (shipped next to this module) is compiled with the system C compiler into
    a cache directory (``$AWGRT_CACHE_DIR``, default ``$XDG_CACHE_HOME/awgrt`` or
    ``~/.cache/awgrt``; one sub-directory per hash of the source), with the soname
    ``libspcm_linux.so``, and loaded by absolute path (``RTLD_GLOBAL``) before ``spcm_core`` is
    imported. ``spcm_core``'s own ``cdll.LoadLibrary("libspcm_linux.so")`` then finds the loaded
    library by its soname. Every one of the 19 driver functions is real C with the driver's
    signature and forwards to Python callbacks, so the ctypes marshalling spcm does (int64 step
    entries with bit 63 set, byref pointers, byte counts, NULL handles) is exercised for real.
``"python"``
    For machines without a C compiler: while ``spcm_core`` is first imported, ctypes' loader
    hands it a stand-in library for ``libspcm_linux.so`` whose 19 functions are Python objects.
    ``spcm_core`` binds them exactly as it binds the real ones (including its own int64 / double /
    uint64 wrappers), and they accept the same ctypes arguments (``byref`` pointers, ``c_void_p``
    buffers, ``POINTER(c_uint64)`` handles) and convert them as C would (integers wrap to the
    parameter's width). No ``spcm`` internals are patched and ``SPCM_NO_DLL`` is not needed.

``"auto"`` (default) takes the C route when the library is already built in the cache or a C
compiler builds it, and the Python route otherwise. ``$AWGRT_SPCM_ROUTE`` or the ``route``
argument forces one. The two routes cannot share a process, and neither can work once
``spcm_core`` was imported without emulation: both cases raise :class:`SpcmEmulationError`.

Entry points:

- ``with awgrt.sim.emulated_spcm(card="M4i.6631-x8") as emu:`` (or
  ``cards=["M4i.6631-x8", "M4i.6622-x8"]``): ``import spcm`` works inside; the cards are
  ``/dev/spcm0``, ``/dev/spcm1``, ...; ``emu.card(0)`` is the :class:`SimulatedCard` behind
  ``/dev/spcm0``, ``emu.driver`` the :class:`EmulatedDriver`, ``emu.route`` ``"c"`` or
  ``"python"``. Once ``spcm`` is imported it stays bound to the emulation for the life of the
  process: a later ``emulated_spcm`` block (same route) drives fresh cards; outside any block
  every card open fails (``spcm.SpcmDeviceNotFound``) and every call returns ``ERR_INIT``.
  For example (spcm's own ``with Card`` block stops the card when it ends, so render inside it)::

      with emulated_spcm(card="M4i.6631-x8") as emu:
          import spcm
          with spcm.Card("/dev/spcm0") as card:
              ...  # channels, clock, Sequence: add_segment / add_step / write_setup
              card.start(spcm.M2CMD_CARD_ENABLETRIGGER, spcm.M2CMD_CARD_FORCETRIGGER)
              samples = emu.card(0).render(100_000)  # int16, (samples, channels of the card)

- A whole script, unmodified::

      AWGRT_EMULATE_SPCM=M4i.6631-x8 PYTHONPATH=$(python -m awgrt.sim.spcm_emulation --pythonpath) python my_script.py
      python -m awgrt.sim.spcm_emulation --card M4i.6631-x8 my_script.py args...

  ``AWGRT_EMULATE_SPCM`` holds comma-separated card models (``1`` means one M4i.6631-x8). The
  directory printed by ``--pythonpath`` holds a ``sitecustomize.py`` that activates emulation at
  interpreter start when the variable is set (and then runs any other ``sitecustomize`` that it
  shadows). With ``AWGRT_EMULATE_SPCM_RENDER=<samples>`` and ``AWGRT_EMULATE_SPCM_OUT=<file.npz>``
  (runner: ``--render N --out FILE``), the output of every card that was force-triggered is
  rendered for ``<samples>`` samples from its first force trigger, on a copy of the card taken at
  that moment, and saved at exit (see :meth:`EmulatedSpcm.save_renders`).
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import hashlib
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .. import spectrum as sp
from ..card import CARDS, CardSpec
from ..errors import AWGRTError, ProgramError
from .card import SimPolicy, SimulatedCard, trigger_latency_samples
from .driver import EmulatedDriver

__all__ = [
    "EmulatedSpcm",
    "SpcmEmulationError",
    "activate_from_environment",
    "build_library",
    "emulated_spcm",
    "find_compiler",
    "pythonpath_dir",
]

ENV_EMULATE = "AWGRT_EMULATE_SPCM"
ENV_ROUTE = "AWGRT_SPCM_ROUTE"
ENV_CACHE = "AWGRT_CACHE_DIR"
ENV_RENDER = "AWGRT_EMULATE_SPCM_RENDER"
ENV_OUT = "AWGRT_EMULATE_SPCM_OUT"
DEFAULT_CARD = "M4i.6631-x8"
LIBRARY_NAME = "libspcm_linux.so"
SOURCE = Path(__file__).with_name("libspcm_emu.c")
SITE_DIR = Path(__file__).with_name("_spcm_site")
ABI_VERSION = 1
ROUTES = ("auto", "c", "python")

ERR_INIT = 0x0001
ERR_ABORT = 0x0020
ERRORTEXTLEN = 200
SPC_M2CMD = sp.SPC_M2CMD

#: The 19 functions spcm_core binds from the driver library.
DRIVER_FUNCTIONS = (
    "spcm_hOpen",
    "spcm_vClose",
    "spcm_dwGetErrorInfo_i32",
    "spcm_dwGetErrorInfo_i64",
    "spcm_dwGetErrorInfo_d64",
    "spcm_dwGetParam_i32",
    "spcm_dwGetParam_i64",
    "spcm_dwGetParam_d64",
    "spcm_dwGetParam_ptr",
    "spcm_dwSetParam_i32",
    "spcm_dwSetParam_i64",
    "spcm_dwSetParam_d64",
    "spcm_dwSetParam_ptr",
    "spcm_dwSetParam_i64m",
    "spcm_dwDefTransfer_i64",
    "spcm_dwInvalidateBuf",
    "spcm_dwGetContBuf_i64",
    "spcm_dwDiscovery",
    "spcm_dwSendIDNRequest",
)


class SpcmEmulationError(AWGRTError, RuntimeError):
    """The spcm emulation cannot be set up: no spcm package, a route clash, spcm imported
    before emulation, a failed build of the C library, or an emulation already active."""


# ====================================================================== the bridge (both routes)


class _Bridge:
    """Forwards driver calls (plain ints, addresses, bytes) to an :class:`EmulatedDriver`.

    Every method returns what the driver returns; a Python exception inside the emulation never
    escapes into ctypes: it becomes error ``ERR_ABORT`` on that handle, with the exception in
    the text returned by ``GetErrorInfo``, and is kept in ``internal_errors``.
    """

    def __init__(self, emu: EmulatedSpcm) -> None:
        self.emu = emu
        self.driver = emu.driver
        self.internal_errors: list[BaseException] = []
        self._pending: dict[int, tuple[int, int, int, str]] = {}

    def _internal(self, handle: int, where: str, register: int, value: int, exc: BaseException) -> int:
        self.internal_errors.append(exc)
        text = f"awgrt emulated driver: internal error in {where}: {type(exc).__name__}: {exc}"
        self._pending[handle] = (ERR_ABORT, register & 0xFFFFFFFF, value, text)
        return ERR_ABORT

    def open(self, device: bytes) -> int:
        try:
            return int(self.driver.open(device))
        except Exception as exc:  # noqa: BLE001 - reported through internal_errors
            self.internal_errors.append(exc)
            return 0

    def close(self, handle: int) -> None:
        try:
            self.driver.close(handle)
        except Exception as exc:  # noqa: BLE001
            self.internal_errors.append(exc)
        self._pending.pop(handle, None)

    def error_info(self, handle: int) -> tuple[int, int, int, bytes]:
        """(code, register, value, text as at most ERRORTEXTLEN - 1 bytes) of the last error; clears it."""
        try:
            if handle in self._pending:
                code, reg, value, text = self._pending.pop(handle)
            else:
                code, reg, value, text = self.driver.get_error_info(handle)
        except Exception as exc:  # noqa: BLE001
            self.internal_errors.append(exc)
            code, reg, value, text = ERR_ABORT, 0, 0, f"awgrt emulated driver: internal error in GetErrorInfo: {exc}"
        raw = text.encode("utf-8", errors="replace")[: ERRORTEXTLEN - 1]
        return int(code), int(reg) & 0xFFFFFFFF, int(value), raw

    def get_i64(self, handle: int, register: int) -> tuple[int, int]:
        try:
            code, value = self.driver.get_i64(handle, register)
            return int(code), int(value)
        except Exception as exc:  # noqa: BLE001
            return self._internal(handle, "GetParam_i64", register, 0, exc), 0

    def get_d64(self, handle: int, register: int) -> tuple[int, float]:
        try:
            code, value = self.driver.get_d64(handle, register)
            return int(code), float(value)
        except Exception as exc:  # noqa: BLE001
            return self._internal(handle, "GetParam_d64", register, 0, exc), 0.0

    def get_ptr(self, handle: int, register: int, size: int) -> tuple[int, bytes]:
        try:
            code, data = self.driver.get_ptr(handle, register, size)
            return int(code), bytes(data)
        except Exception as exc:  # noqa: BLE001
            return self._internal(handle, "GetParam_ptr", register, 0, exc), b""

    def set_i64(self, handle: int, register: int, value: int) -> int:
        try:
            code = int(self.driver.set_i64(handle, register, value))
        except Exception as exc:  # noqa: BLE001
            return self._internal(handle, "SetParam_i64", register, value, exc)
        if code == 0 and register == SPC_M2CMD:
            try:
                self.emu._after_command(handle, value)
            except Exception as exc:  # noqa: BLE001 - a failing hook must not look like a driver success
                return self._internal(handle, "a command hook", register, value, exc)
        return code

    def set_d64(self, handle: int, register: int, value: float) -> int:
        try:
            return int(self.driver.set_d64(handle, register, value))
        except Exception as exc:  # noqa: BLE001
            return self._internal(handle, "SetParam_d64", register, int(value) if np.isfinite(value) else 0, exc)

    def set_ptr(self, handle: int, register: int, data: bytes) -> int:
        try:
            return int(self.driver.set_ptr(handle, register, data))
        except Exception as exc:  # noqa: BLE001
            return self._internal(handle, "SetParam_ptr", register, len(data), exc)

    def def_transfer(self, handle: int, buf_type: int, direction: int, notify: int, address: int, offset: int, length: int) -> int:
        try:
            return int(self.driver.def_transfer(handle, buf_type, direction, notify, address, offset, length))
        except Exception as exc:  # noqa: BLE001
            return self._internal(handle, "DefTransfer_i64", buf_type, length, exc)

    def invalidate(self, handle: int, buf_type: int) -> int:
        try:
            return int(self.driver.invalidate_buf(handle, buf_type))
        except Exception as exc:  # noqa: BLE001
            return self._internal(handle, "InvalidateBuf", buf_type, 0, exc)


class _Process:
    """What this process has set up; shared by every emulation in it (spcm imports once)."""

    route: str | None = None  # set once spcm_core is bound to an emulation route
    bridge: _Bridge | None = None  # the active emulation's bridge; None between emulations
    lib: ctypes.CDLL | None = None  # C route: the loaded library
    callbacks: object | None = None  # C route: the registered callback struct (kept alive)
    lock = threading.RLock()


_P = _Process()


# ====================================================================== route "c": build and load


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


def _active() -> _Bridge | None:
    return _P.bridge


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


def find_compiler() -> str | None:
    """The C compiler to use: ``$CC`` if set (None if it does not exist), else ``cc``, ``gcc`` or ``clang`` on PATH."""
    cc = os.environ.get("CC")
    if cc:
        first = cc.split()[0]
        return cc if shutil.which(first) else None
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    return None


def cache_dir() -> Path:
    """``$AWGRT_CACHE_DIR``, else ``$XDG_CACHE_HOME/awgrt``, else ``~/.cache/awgrt``."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "awgrt"


def _library_path(base: Path | None = None) -> Path:
    source = SOURCE.read_bytes()
    key = hashlib.sha256(source + f"|{ABI_VERSION}|{sys.platform}|{platform.machine()}".encode()).hexdigest()[:16]
    return (base or cache_dir()) / f"libspcm_emu-{key}" / LIBRARY_NAME


def _writable_build_dir(target: Path) -> Path:
    """``target``'s directory, created; if the default cache cannot be written (and
    ``$AWGRT_CACHE_DIR`` is unset), a per-user directory under the system temp dir instead."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if os.access(target.parent, os.W_OK):
            return target
    except OSError:
        pass
    if os.environ.get(ENV_CACHE):
        raise SpcmEmulationError(f"cannot write the emulated driver library into {target.parent} (${ENV_CACHE})")
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    fallback = _library_path(Path(tempfile.gettempdir()) / f"awgrt-cache-{uid}")
    try:
        fallback.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpcmEmulationError(f"cannot write the emulated driver library into {target.parent} nor {fallback.parent}: {exc} (set ${ENV_CACHE})") from exc
    return fallback


def build_library(*, force: bool = False) -> Path:
    """Compile ``libspcm_emu.c`` into the cache (once per source hash) and return the path of the
    built ``libspcm_linux.so``. If the default cache is not writable, a per-user directory in the
    system temp dir is used. Concurrent builds are safe (each writes a temporary file, then
    renames it into place). Raises :class:`SpcmEmulationError` with the compiler's output if
    there is no compiler or the build fails."""
    if not sys.platform.startswith("linux"):
        raise SpcmEmulationError(f"the C route needs Linux (ELF sonames); this is {sys.platform}: use route='python'")
    target = _library_path()
    if target.exists() and not force:
        return target
    cc = find_compiler()
    if cc is None:
        raise SpcmEmulationError("no C compiler found (set CC, or install cc/gcc/clang); route='python' needs none")
    target = _writable_build_dir(target)
    if target.exists() and not force:
        return target
    try:
        fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=target.parent)
    except OSError as exc:
        raise SpcmEmulationError(f"cannot write the emulated driver library into {target.parent}: {exc} (set ${ENV_CACHE})") from exc
    os.close(fd)
    cmd = [*cc.split(), "-shared", "-fPIC", "-O2", "-std=c99", f"-Wl,-soname,{LIBRARY_NAME}", "-o", tmp, str(SOURCE)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise SpcmEmulationError(f"building the emulated driver library failed: {' '.join(cmd)}\n{proc.stderr.strip()}")
        os.replace(tmp, target)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SpcmEmulationError(f"building the emulated driver library failed: {' '.join(cmd)}: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


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


# ====================================================================== route "python": stand-ins


def _value(arg) -> int | float:
    """The number a ctypes argument carries (what C would receive), for ints, floats and ctypes scalars."""
    return arg.value if isinstance(arg, ctypes._SimpleCData) else arg


def _as(ctype, arg) -> int | float:
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
    restype = fn.restype
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


# ====================================================================== the emulation object


def _route_requested(route: str | None) -> str:
    r = (route or os.environ.get(ENV_ROUTE) or "auto").strip().lower()
    if r not in ROUTES:
        raise SpcmEmulationError(f"spcm emulation route {r!r}: choose one of {', '.join(ROUTES)} (argument route= or ${ENV_ROUTE})")
    return r


def _ensure_route(requested: str) -> tuple[str, str]:
    """Bind spcm_core to the emulation (once per process); return (route, why)."""
    with _P.lock:
        if _P.route is not None:
            if requested not in ("auto", _P.route):
                raise SpcmEmulationError(
                    f"this process already emulates the spcm driver through the {_P.route!r} route; the {requested!r} route "
                    "cannot share a process with it (spcm binds the driver library once): use a fresh process"
                )
            return _P.route, "already set up in this process"
        if "spcm_core" in sys.modules or "spcm" in sys.modules:
            raise SpcmEmulationError(
                "spcm / spcm_core was imported before the emulation was activated, so it is bound to the real driver library "
                f"(or to none): activate the emulation before the first `import spcm` (e.g. run the script with {ENV_EMULATE} set, "
                "or with `python -m awgrt.sim.spcm_emulation`)"
            )
        if importlib.util.find_spec("spcm_core") is None:
            raise SpcmEmulationError("the spcm package is not installed: pip install 'awgrt[card]' (or pip install spcm)")
        why = "forced"
        if requested == "auto":
            try:
                _install_c_route()
                route, why = "c", "C library built with the system compiler"
            except SpcmEmulationError as exc:
                if "spcm_core" in sys.modules:
                    raise
                _install_python_route()
                route, why = "python", f"C route unavailable ({exc.detail.splitlines()[0]})"
        elif requested == "c":
            _install_c_route()
            route = "c"
        else:
            _install_python_route()
            route = "python"
        _P.route = route
        return route, why


def _copy_card(card: SimulatedCard) -> SimulatedCard:
    """An independent copy of a simulated card (its immutable spec and policy are shared)."""
    return copy.deepcopy(card, {id(card.spec): card.spec, id(card.policy): card.policy})


def _normalise_cards(card: str | CardSpec | None, cards: Sequence[str | CardSpec] | None) -> dict[str, str | CardSpec]:
    if card is not None and cards is not None:
        raise SpcmEmulationError("give card= or cards=, not both")
    models = list(cards) if cards is not None else [card if card is not None else DEFAULT_CARD]
    if not models:
        raise SpcmEmulationError("cards= is empty: emulate at least one card")
    return {f"/dev/spcm{i}": m for i, m in enumerate(models)}


class EmulatedSpcm:
    """One emulation: simulated cards behind ``/dev/spcm0``, ``/dev/spcm1``, ... that the
    unmodified ``spcm`` package drives (see module doc). Made by :func:`emulated_spcm`.

    Attributes: ``driver`` (the :class:`EmulatedDriver`), ``route`` (``"c"`` or ``"python"``),
    ``route_reason`` (why that route), ``paths`` (device paths, in card order).
    """

    def __init__(self, cards: dict[str, str | CardSpec], *, policy: SimPolicy | None = None, route: str | None = None) -> None:
        try:
            self.driver = EmulatedDriver(cards, policy=policy)
        except KeyError as exc:
            raise SpcmEmulationError(f"unknown card model {exc.args[0]!r}: emulate one of {', '.join(CARDS)}") from exc
        self.paths = list(cards)
        self._route_requested = _route_requested(route)
        self.route: str | None = None  # set by activate()
        self.route_reason = ""
        self._hooks: list[Callable[[int, int], None]] = []
        self._bridge: _Bridge | None = None
        self.render_samples = 0
        self._snapshots: dict[int, SimulatedCard] = {}

    # ------------------------------------------------------------------ cards

    def card(self, index: int = 0) -> SimulatedCard:
        """The :class:`SimulatedCard` behind ``/dev/spcm<index>`` (its output can be rendered)."""
        if not 0 <= index < len(self.paths):
            raise ProgramError(f"card {index}: this emulation has {len(self.paths)} card(s)", op="card", value=index)
        return self.driver.cards[self.paths[index]]

    @property
    def library_path(self) -> Path | None:
        """C route: the built ``libspcm_linux.so`` that spcm_core is bound to; None on the Python route."""
        return Path(_P.lib._name) if self.route == "c" and _P.lib is not None else None

    @property
    def internal_errors(self) -> list[BaseException]:
        """Python exceptions raised inside the emulation (each was reported to spcm as ERR_ABORT)."""
        return self._bridge.internal_errors if self._bridge is not None else []

    def on_command(self, hook: Callable[[int, int], None]) -> Callable[[], None]:
        """Call ``hook(card_index, command_bits)`` after every M2CMD write the card accepted;
        returns a function that removes the hook. An exception in a hook reaches spcm as ERR_ABORT."""
        self._hooks.append(hook)
        return lambda: self._hooks.remove(hook) if hook in self._hooks else None

    def _after_command(self, handle: int, command: int) -> None:
        path = self.driver.path_of(handle)
        if path is None:
            return
        index = self.paths.index(path)
        triggering = command & sp.M2CMD_CARD_FORCETRIGGER or (command & sp.M2CMD_CARD_ENABLETRIGGER and self.driver.software_trigger_selected(handle))
        if self.render_samples and triggering and index not in self._snapshots:
            self._snapshots[index] = _copy_card(self.card(index))  # its first trigger: forced, or software on enable
        for hook in self._hooks:
            hook(index, command)

    # ------------------------------------------------------------------ render at force trigger

    def record_renders(self, n_samples: int) -> None:
        """From now on, keep a copy of each card as it is right after its first trigger (a force
        trigger, or the software trigger firing on enable), so that :meth:`renders` can show its first ``n_samples`` output samples from
        that trigger, whatever the script does later (stop, close, more uploads)."""
        if n_samples < 0:
            raise ProgramError(f"n_samples={n_samples!r} must be >= 0", op="render", value=n_samples)
        self.render_samples = int(n_samples)

    def renders(self) -> dict[int, dict[str, object]]:
        """For each card force-triggered since :meth:`record_renders`: ``samples`` (int16 of shape
        (n_samples, card channels), row 0 = the trigger sample), ``sample_rate_hz``,
        ``latency`` (samples from trigger to the first sequence sample, the card's model) and
        ``events`` (rows of (sample from trigger, step, segment))."""
        out = {}
        for index, snap in sorted(self._snapshots.items()):
            card = _copy_card(snap)
            start = card.now
            samples = card.render(self.render_samples)
            events = np.array([(e.sample - start, e.step, e.segment) for e in card.events_between(start, card.now)], dtype=np.int64).reshape(-1, 3)
            out[index] = {
                "samples": samples,
                "sample_rate_hz": card.sample_rate_hz,
                "latency": trigger_latency_samples(card.sample_rate_hz),
                "events": events,
            }
        return out

    def save_renders(self, path: str | os.PathLike) -> Path:
        """Write :meth:`renders` to an ``.npz``: ``card<i>`` (samples), ``card<i>_sample_rate_hz``,
        ``card<i>_latency``, ``card<i>_events``; for a card that was never triggered
        ``card<i>_note`` says so (also on stderr). Returns the path."""
        arrays = {}
        renders = self.renders()
        for index, r in renders.items():
            arrays[f"card{index}"] = r["samples"]
            arrays[f"card{index}_sample_rate_hz"] = np.float64(r["sample_rate_hz"])
            arrays[f"card{index}_latency"] = np.int64(r["latency"])
            arrays[f"card{index}_events"] = r["events"]
        for index, dev in enumerate(self.paths):
            if index not in renders:  # say so, rather than leave a silent gap
                note = f"{dev} was never triggered (no force trigger, no software trigger on enable): nothing to render"
                arrays[f"card{index}_note"] = np.array(note)
                sys.stderr.write(f"awgrt spcm emulation: {note}\n")
        path = Path(path)
        with open(path, "wb") as f:
            np.savez(f, **arrays)
        return path

    # ------------------------------------------------------------------ activation

    def activate(self) -> EmulatedSpcm:
        """Make this emulation the one spcm talks to; one at a time per process."""
        with _P.lock:
            if _P.bridge is not None:
                raise SpcmEmulationError("an spcm emulation is already active in this process: leave it first (emulations do not nest)")
            self._bridge = _Bridge(self)
            _P.bridge = self._bridge  # active before spcm_core binds: it queries the driver version at import
            try:
                self.route, self.route_reason = _ensure_route(self._route_requested)
            except BaseException:
                _P.bridge = self._bridge = None
                raise
        return self

    def deactivate(self) -> None:
        """Close every card left open (stopping it) and detach from spcm: later driver calls
        fail with ERR_INIT and opens fail, until another emulation is activated."""
        with _P.lock:
            if _P.bridge is not self._bridge or self._bridge is None:
                return
            for handle in self.driver.open_handles():
                self._bridge.close(handle)
            _P.bridge = None

    def __enter__(self) -> EmulatedSpcm:
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def __repr__(self) -> str:
        cards = ", ".join(f"{p}: {self.driver.specs[p].name}" for p in self.paths)
        return f"<EmulatedSpcm route={self.route!r} {cards}>"


@contextmanager
def emulated_spcm(
    card: str | CardSpec | None = None,
    *,
    cards: Sequence[str | CardSpec] | None = None,
    policy: SimPolicy | None = None,
    route: str | None = None,
) -> Iterator[EmulatedSpcm]:
    """Emulate Spectrum cards for the unmodified ``spcm`` package inside a ``with`` block.

    ``card`` (one model, default ``"M4i.6631-x8"``) or ``cards`` (several) become ``/dev/spcm0``,
    ``/dev/spcm1``, ...; ``policy`` is the :class:`SimPolicy` of the simulated cards; ``route``
    is ``"auto"`` (default, or ``$AWGRT_SPCM_ROUTE``), ``"c"`` or ``"python"`` (see module doc).
    On leaving the block, cards still open are closed (their output stopped). Raises
    :class:`SpcmEmulationError` if spcm was imported before any emulation, the route clashes
    with the one this process uses, or another emulation is active.
    """
    emu = EmulatedSpcm(_normalise_cards(card, cards), policy=policy, route=route)
    with emu:
        yield emu


# ====================================================================== whole-script mode


_ENV_EMULATION: EmulatedSpcm | None = None


def _cards_from_env(value: str) -> list[str]:
    v = value.strip()
    if v.lower() in ("1", "true", "yes", "on"):
        return [DEFAULT_CARD]
    return [m.strip() for m in v.split(",") if m.strip()]


def activate_from_environment() -> EmulatedSpcm | None:
    """Activate emulation for the whole process if ``$AWGRT_EMULATE_SPCM`` is set (see module doc);
    return it (the same object on later calls), or None if the variable is unset or empty.

    The emulation stays active until the process ends (cards a script leaves open are closed by
    spcm's own clean-up). With ``$AWGRT_EMULATE_SPCM_RENDER`` and ``$AWGRT_EMULATE_SPCM_OUT`` set,
    the renders are saved at exit."""
    global _ENV_EMULATION
    if _ENV_EMULATION is not None:
        return _ENV_EMULATION
    value = os.environ.get(ENV_EMULATE, "")
    if not value.strip() or value.strip().lower() in ("0", "false", "no", "off"):
        return None
    emu = EmulatedSpcm(_normalise_cards(None, _cards_from_env(value)), route=None).activate()
    render = os.environ.get(ENV_RENDER, "").strip()
    out = os.environ.get(ENV_OUT, "").strip()
    if render:
        emu.record_renders(int(render))
        if out:
            import atexit

            atexit.register(emu.save_renders, out)
    _ENV_EMULATION = emu
    return emu


def pythonpath_dir() -> Path:
    """The directory to put on ``PYTHONPATH`` for the whole-script mode (holds a ``sitecustomize.py``)."""
    return SITE_DIR


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m awgrt.sim.spcm_emulation``: print the PYTHONPATH entry, build the C library,
    or run a script on emulated cards."""
    parser = argparse.ArgumentParser(
        prog="python -m awgrt.sim.spcm_emulation",
        description="Run an unmodified spcm script on simulated Spectrum cards.",
    )
    parser.add_argument("--pythonpath", action="store_true", help=f"print the directory to put on PYTHONPATH (with {ENV_EMULATE}=MODEL) and exit")
    parser.add_argument("--build", action="store_true", help="build the C route's library into the cache, print its path and exit")
    parser.add_argument("--card", action="append", dest="cards", metavar="MODEL", help=f"card model; repeat for /dev/spcm1, ... (default {DEFAULT_CARD})")
    parser.add_argument("--route", choices=ROUTES, default=None, help=f"driver route (default ${ENV_ROUTE} or auto)")
    parser.add_argument("--render", type=int, default=0, metavar="N", help="render N samples of each card from its first force trigger")
    parser.add_argument("--out", default=None, metavar="FILE.npz", help="where --render saves the samples")
    parser.add_argument("script", nargs="?", help="the script to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the script's arguments")
    ns = parser.parse_args(argv)
    if ns.pythonpath:
        print(pythonpath_dir())
        return 0
    if ns.build:
        try:
            print(build_library())
        except SpcmEmulationError as exc:
            print(f"{parser.prog}: error: {exc}", file=sys.stderr)
            return 2
        return 0
    if not ns.script:
        parser.error("give a script to run (or --pythonpath / --build)")
    if ns.render and not ns.out:
        parser.error("--render needs --out FILE.npz")
    import runpy

    try:
        emu = EmulatedSpcm(_normalise_cards(None, ns.cards or [DEFAULT_CARD]), route=ns.route).activate()
    except SpcmEmulationError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    if ns.render:
        emu.record_renders(ns.render)
    sys.argv = [ns.script, *ns.args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(ns.script)))
    try:
        runpy.run_path(ns.script, run_name="__main__")
    finally:
        if ns.render:
            emu.save_renders(ns.out)
    return 0


if __name__ == "__main__":
    # run the package's copy of this module, so that the process state is the one awgrt.sim uses
    from awgrt.sim.spcm_emulation import main as _main

    sys.exit(_main())
