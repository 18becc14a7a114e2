"""What both driver routes of the spcm emulation share: names, the error, the bridge from C or
Python stand-ins to :class:`~awgrt.sim.driver.EmulatedDriver`, and the per-process state (see
:mod:`awgrt.sim.spcm_emulation`)."""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import spectrum as sp
from ..errors import AWGRTError

if TYPE_CHECKING:
    from .spcm_emulation import EmulatedSpcm

ENV_EMULATE = "AWGRT_EMULATE_SPCM"
ENV_ROUTE = "AWGRT_SPCM_ROUTE"
ENV_CACHE = "AWGRT_CACHE_DIR"
ENV_RENDER = "AWGRT_EMULATE_SPCM_RENDER"
ENV_OUT = "AWGRT_EMULATE_SPCM_OUT"
ENV_CLOCK = "AWGRT_EMULATE_SPCM_CLOCK"
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


def _active() -> _Bridge | None:
    return _P.bridge
