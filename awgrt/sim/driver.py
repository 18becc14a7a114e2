"""An emulation of Spectrum's driver library on top of :class:`~awgrt.sim.SimulatedCard` s.

:class:`EmulatedDriver` answers the driver's calls in plain Python values: a handle is a small
positive integer (0 is the NULL handle spcm uses for driver-wide queries), every call returns
Spectrum's error code (0 = OK) and, for reads, the value. The bridge in
:mod:`awgrt.sim.spcm_emulation` puts it behind the 19 C functions of ``libspcm_linux.so`` (a
small C library forwarding to Python, or Python stand-ins), so that the unmodified ``spcm``
package drives simulated cards.

Every model of the M4i/M4x.66xx family (:data:`awgrt.CARDS`) is served with its own type code,
channels, clock range and memory. Registers with an effect on the output are **emulated**
(mapped onto the simulated card): card identity, limits and feature bits, channel enable /
amplitude / output / stop level, sample rate, the trigger masks (software, Ext0, Ext1), the
sequence registers, the standard-mode memory size, segment size and loops, DMA of data
(``DefTransfer`` then ``M2CMD_DATA_STARTDMA``), ``M2CMD`` commands (WAITREADY and WAITTRIGGER
included), ``M2STATUS`` and ``SPC_SEQMODE_STATUS``, and the replay modes single, continuous,
single-restart, multi, gated (standard; its gates from :meth:`SimulatedCard.external_gate`), FIFO
single, FIFO multi and sequence. Set-up registers whose effect the
simulated card does not model are **stored** (checked, then read back as written:
:data:`STORED_DEFAULTS`): clock mode (internal PLL or external reference), reference frequency,
clock output and its termination, Ext0/Ext1 trigger modes, levels, coupling and termination,
trigger delay, output offset, filter, differential and doubled outputs, asynchronous I/O, pre-
and posttrigger. Read-only answers: available clock modes, oversampling factor (1), clock output
frequency, the trigger's available masks, modes, levels and delay. The multi-purpose lines X0-X2
take their modes (asynchronous in/out, trigger out, run and arm state: stored; synchronous digital
output of a channel's bit: emulated, the line's level played and the channel left the bits below,
:meth:`SimulatedCard.render`'s ``lines``). Values a card does
not take are refused with the driver's invalid-value error (the ranges marked [assume] in the
constants below are not published for this family), FIFO gated replay with "not emulated", the DDS
mode as a missing firmware option, and any other register with the invalid-register error, as a
card without that feature refuses it.
A refused call sets the handle's error (code, register, value, text) for ``GetErrorInfo``, as
the real driver does, and changes nothing.

Time: on the ``"virtual"`` clock the card's samples pass only when the caller advances or
renders it; on the ``"wall"`` clock (whole scripts) every call first moves a started card on to
the host's present (:data:`CLOCKS`).
"""

from __future__ import annotations

import ctypes
import math
import time
from dataclasses import dataclass, field

import numpy as np

from .. import spectrum as sp
from ..card import CARDS, XIO_LINES, XIO_MODES, CardSpec
from ..errors import CardError, ProgramError
from .card import FIFO_MODES, MAX_STANDARD_LOOPS, SPC_LOOPS, SPC_MEMSIZE, SPC_SEGMENTSIZE, SimPolicy, SimulatedCard

# --------------------------------------------------------------------------- more registers
SPC_PCITYP = 2000
SPC_PCIVERSION = 2010
SPC_PCIEXTFEATURES = 2121
SPC_PCISERIALNO = 2030
SPC_PCIMEMSIZE = 2110
SPC_FNCTYPE = 2001
SPC_MIINST_MODULES = 1100
SPC_MIINST_CHPERMODULE = 1110
SPC_MIINST_BYTESPERSAMPLE = 1120
SPC_MIINST_BITSPERSAMPLE = 1125
SPC_MIINST_MAXADCVALUE = 1126
SPC_MIINST_MINADCLOCK = 1130
SPC_MIINST_MAXADCLOCK = 1140
SPC_MIINST_ISDEMOCARD = 1175
SPC_GETDRVVERSION = 1200
SPC_GETKERNELVERSION = 1210
SPC_GETDRVTYPE = 1220
SPC_WRITE_TO_LOG = 121  # spcm_core writes its log line here with a NULL handle
SPC_CHENABLE = 11000
SPC_CHCOUNT = 11001
SPC_SAMPLERATE = 20000
SPC_AMP0 = 30010
SPC_AMP_STEP = 100  # SPC_AMP1 = SPC_AMP0 + 100, ...
SPC_ENABLEOUT0 = 30091
SPC_CH0_CUSTOM_STOP = 206050
SPC_TRIG_ORMASK = 40410
SPC_TRIG_EXT0_MODE = 40510
SPC_TRIG_EXT0_LEVEL0 = 42320
SPC_TIMEOUT = 295130
SPC_CLOCKMODE = 20200
SPC_CM_INTPLL = 1
SPC_OFFS0 = 30000
SPC_FILTER0 = 30080
SPC_CH_STEP = 100  # per-channel registers: channel n at the channel-0 register + 100 n
SPC_TRIG_TERM = 40110
SPC_TRIG_EXT0_ACDC = 40120
SPC_TRIG_ANDMASK = 40430
SPC_TRIG_EXT1_MODE = 40511
SPC_TRIG_DELAY = 40810
SPC_TRIG_EXT1_LEVEL0 = 42321
SPC_TRIG_EXT0_LEVEL1 = 42330
SPC_SPECIALCLOCK = 295100
SPCM_XX_ASYNCIO = 47220

SPC_CLOCKOUT = 20110
SPC_CLOCKOUTFREQUENCY = 20111
SPC_CLOCK50OHM = 20120
SPC_REFERENCECLOCK = 20140
SPC_AVAILCLOCKMODES = 20201
SPC_CM_EXTREFCLOCK = 0x20
SPC_OVERSAMPLINGFACTOR = 200123
SPC_MIINST_MINEXTREFCLOCK = 1148
SPC_MIINST_MAXEXTREFCLOCK = 1149
SPC_TRIG_EXT1_ACDC = 40121
SPC_TRIG_AVAILORMASK = 40400
SPC_TRIG_AVAILANDMASK = 40420
SPC_TRIG_EXT0_AVAILMODES = 40500
SPC_TRIG_EXT1_AVAILMODES = 40501
SPC_TRIG_AVAILDELAY = 40800
SPC_TRIG_AVAILDELAY_STEP = 40801
SPC_TRIG_EXT_AVAIL0_MIN, SPC_TRIG_EXT_AVAIL0_MAX, SPC_TRIG_EXT_AVAIL0_STEP = 42340, 42341, 42342
SPC_TRIG_EXT_AVAIL1_MIN, SPC_TRIG_EXT_AVAIL1_MAX, SPC_TRIG_EXT_AVAIL1_STEP = 42345, 42346, 42347
SPC_DIFF0 = 30040
SPC_DOUBLEOUT0 = 30041
#: Clock modes of an M4i/M4x.66xx: the internal PLL and the PLL locked to an external reference
#: (every 66xx has the reference input and the clock output [doc]).
CLOCK_MODES = SPC_CM_INTPLL | SPC_CM_EXTREFCLOCK
#: Trigger edge/level modes [doc: the M4i/M4x manual's trigger chapter, tables 87 and 91]: Ext0 is
#: a window comparator with two levels (edges, both edges, re-arm, levels, the four window modes),
#: Ext1 one level (edges, both edges, high and low level).
SPC_TM = {"none": 0x0, "pos": 0x1, "neg": 0x2, "both": 0x4, "high": 0x8, "low": 0x10, "winenter": 0x20, "winleave": 0x40, "inwin": 0x80, "outsidewin": 0x100}
SPC_TM_REARM = 0x01000000
EXT0_MODES = sum(SPC_TM.values()) | SPC_TM_REARM
EXT1_MODES = SPC_TM["pos"] | SPC_TM["neg"] | SPC_TM["both"] | SPC_TM["high"] | SPC_TM["low"]
#: Trigger levels, mV: -10000..+10000 mV on Ext0 (both levels) and Ext1 [doc: table 93]; the step
#: is read from the card (SPC_TRIG_EXT_AVAILx_STEP) [assume: 1 mV].
TRIGGER_LEVEL_MV = (-10_000, 10_000, 1)
#: Trigger delay, samples: 0 (none) or 16 .. 8 Gi - 16 in steps of 16 on 16-bit cards [doc: table 85].
TRIGGER_DELAY = ((8 << 30) - 16, 16)


#: Registers a write to is refused as to a card's read-only registers.
READ_ONLY: tuple[int, ...] = (sp.SPC_M2STATUS, sp.SPC_SEQMODE_STATUS, SPC_PCITYP, SPC_PCISERIALNO, SPC_MIINST_MAXADCVALUE)
READ_ONLY += (200, 201, SPC_CLOCKOUTFREQUENCY, SPC_OVERSAMPLINGFACTOR)  # 200, 201: AVAIL_USER_LEN / POS

#: Set-up registers the emulated card keeps as written (value read back), with their values
#: after opening. Any other register outside the ones the card model answers is refused with
#: Spectrum's invalid-register error, as a card without that feature refuses it.
STORED_DEFAULTS = {
    SPC_CLOCKMODE: SPC_CM_INTPLL,
    SPCM_XX_ASYNCIO: 0,
    10100: 0,  # SPC_POSTTRIGGER (spcm's Multi sets it; replay does not use it)
    10030: 0,  # SPC_PRETRIGGER
    SPC_SPECIALCLOCK: 0,
    SPC_TRIG_ORMASK: 0x1,  # software
    SPC_TRIG_ANDMASK: 0,
    SPC_TRIG_EXT0_MODE: 0,
    SPC_TRIG_EXT1_MODE: 0,
    SPC_TRIG_EXT0_LEVEL0: 0,
    SPC_TRIG_EXT0_LEVEL1: 0,
    SPC_TRIG_EXT1_LEVEL0: 0,
    SPC_TRIG_TERM: 0,
    SPC_TRIG_EXT0_ACDC: 1,  # AC coupling is the default [doc: table 90]
    SPC_TRIG_DELAY: 0,
    SPC_TRIG_EXT1_ACDC: 0,
    SPC_CLOCKOUT: 0,
    SPC_CLOCK50OHM: 0,
    SPC_REFERENCECLOCK: 10_000_000,
    **{SPC_OFFS0 + SPC_CH_STEP * ch: 0 for ch in range(8)},
    **{SPC_FILTER0 + SPC_CH_STEP * ch: 0 for ch in range(8)},
    **{SPC_DIFF0 + SPC_CH_STEP * ch: 0 for ch in range(0, 8, 2)},
    **{SPC_DOUBLEOUT0 + SPC_CH_STEP * ch: 0 for ch in range(0, 8, 2)},
}


def _check_setup(reg: int, value: int | float, spec: CardSpec) -> None:
    """Refuse a set-up value the card does not take, as the driver does (ERR_VALUE)."""

    def bad(text: str) -> None:
        raise CardError(text, code=sp.ERR_VALUE)

    v = int(value)
    if reg == SPC_CLOCKMODE and v not in (SPC_CM_INTPLL, SPC_CM_EXTREFCLOCK):
        bad(f"clock mode {v:#x} is not available (this card: internal PLL {SPC_CM_INTPLL:#x}, external reference {SPC_CM_EXTREFCLOCK:#x})")
    lo, hi = spec.reference_clock_hz
    if reg == SPC_REFERENCECLOCK and not lo <= v <= hi:
        bad(f"reference clock {v} Hz is outside {lo:.0f}..{hi:.0f} Hz")
    if reg in (SPC_CLOCKOUT, SPC_CLOCK50OHM, SPC_TRIG_TERM, SPC_TRIG_EXT0_ACDC, SPC_TRIG_EXT1_ACDC) and v not in (0, 1):
        bad(f"{v} is not 0 or 1")
    if reg in (SPC_TRIG_EXT0_MODE, SPC_TRIG_EXT1_MODE):
        allowed = EXT0_MODES if reg == SPC_TRIG_EXT0_MODE else EXT1_MODES
        if v & ~allowed:
            bad(f"trigger mode {v:#x} is not one this input offers ({allowed:#x})")
    if reg in (SPC_TRIG_EXT0_LEVEL0, SPC_TRIG_EXT0_LEVEL1, SPC_TRIG_EXT1_LEVEL0) and not TRIGGER_LEVEL_MV[0] <= v <= TRIGGER_LEVEL_MV[1]:
        bad(f"trigger level {v} mV is outside {TRIGGER_LEVEL_MV[0]}..{TRIGGER_LEVEL_MV[1]} mV")
    if reg == SPC_TRIG_DELAY and not (0 <= v <= TRIGGER_DELAY[0] and v % TRIGGER_DELAY[1] == 0):
        bad(f"trigger delay {v} must be a multiple of {TRIGGER_DELAY[1]} in 0..{TRIGGER_DELAY[0]} samples")
    for first in (SPC_DIFF0, SPC_DOUBLEOUT0):
        ch, rest = divmod(reg - first, SPC_CH_STEP)
        if rest == 0 and 0 <= ch < 8:
            if ch + 1 >= spec.physical_channels:
                bad(f"channel {ch} has no partner channel {ch + 1} on this card for a differential or doubled output")
            if v not in (0, 1):
                bad(f"{v} is not 0 or 1")


SPC_SEQMODE_AVAILMAXSTEPS = sp.SPC_SEQMODE_AVAILMAXSTEPS
SPC_AVAILCARDMODES = 9501
SPC_AVAILMEMSIZE_MIN = 10201
SPC_AVAILMEMSIZE_MAX = 10202
SPC_AVAILMEMSIZE_STEP = 10203
SPC_AVAILLOOPS_MIN = 10210
SPC_AVAILLOOPS_MAX = 10211
SPC_PCIMODULEVERSION = 2012
SPC_BASEPCBVERSION = 2014
SPC_PCIDATE = 2020
SPC_CALIBDATE = 2025
SPCM_FEAT_MULTI = 0x1
SPC_NUM_XIO_LINES = 600400
SPCM_X0_MODE = 600200
SPCM_X0_AVAILMODES = 600300
SPC_DATA_AVAIL_USER_LEN = 200
SPC_DATA_AVAIL_USER_POS = 201
SPC_DATA_AVAIL_CARD_LEN = 202
SPC_FILLSIZEPROMILLE = 200910
M2STAT_DATA_BLOCKREADY = 0x100
#: The replay modes emulated (SPC_CARDMODE value -> SimulatedCard.replay_mode).
EMULATED_MODES = {
    sp.SPC_REP_STD_SINGLE: "single",
    sp.SPC_REP_STD_CONTINUOUS: "continuous",
    sp.SPC_REP_STD_SINGLERESTART: "singlerestart",
    sp.SPC_REP_STD_MULTI: "multi",
    sp.SPC_REP_STD_GATE: "gate",
    sp.SPC_REP_FIFO_SINGLE: "fifo",
    sp.SPC_REP_FIFO_MULTI: "fifo_multi",
    sp.SPC_REP_STD_SEQUENCE: "sequence",
}
PCI_VERSION = 0x10001  # hardware and firmware version words the emulated card reports
PCB_VERSION = 0x10
CARD_DATE = (2024 << 16) | 1  # year << 16 | week

M2CMD_CARD_RESET = 0x1
M2CMD_CARD_WRITESETUP = 0x2
M2CMD_CARD_DISABLETRIGGER = 0x20
M2CMD_CARD_WAITREADY = 0x4000
M2CMD_CARD_WAITTRIGGER = 0x2000
SPCM_TYPE_AO = 0x02
SPC_TMASK_SOFTWARE = sp.SPC_TMASK_SOFTWARE
SPC_TMASK_EXT0 = sp.SPC_TMASK_EXT0
SPC_TMASK_EXT1 = 0x4
#: Card type codes (SPC_PCITYP): the series in bits 16-23 (M4i 0x07, M4x 0x08), the model number's
#: digits as hex below (M4i.6631-x8 = 0x76631), as Spectrum's register file lists them.
TYP_SERIES = {"M4i": 0x70000, "M4x": 0x80000}


def type_code(spec: CardSpec) -> int:
    """SPC_PCITYP of a model named like ``M4i.6631-x8``."""
    series, _, rest = spec.name.partition(".")
    model = rest.split("-")[0]
    return TYP_SERIES.get(series, 0x70000) | (int(model, 16) if model.isdigit() else 0)


DRIVER_VERSION = (7 << 24) | (6 << 16) | 22000  # 7.6 build 22000: new enough for spcm's log line

SPCM_BUF_DATA = 1000
SPCM_DIR_PCTOCARD = 0


@dataclass
class _Transfer:
    address: int
    offset: int
    length: int
    notify: int = 0


@dataclass
class _Fifo:
    """FIFO replay: the host's ring buffer (``length`` bytes at ``address``) and the card's view
    of it. ``user_len`` bytes from ``user_pos`` are the host's to fill; ``pending`` bytes from
    ``card_pos`` were handed to the card (SPC_DATA_AVAIL_CARD_LEN) and wait for room on board."""

    address: int
    length: int
    notify: int
    user_len: int
    user_pos: int = 0
    card_pos: int = 0
    pending: int = 0
    running: bool = False  # DATA_STARTDMA given


@dataclass
class Recording:
    """Samples a card played from sample ``start`` on, in the order the wall clock made them."""

    start: int
    chunks: list[np.ndarray]
    remaining: int


@dataclass
class _Handle:
    """One open card: its simulated card, register store, pending DMA and last error; on a wall
    clock, the host time the card's current sample corresponds to."""

    card: SimulatedCard
    serial: int
    registers: dict[int, int | float] = field(default_factory=dict)
    transfer: _Transfer | None = None
    error: tuple[int, int, int, str] = (0, 0, 0, "")
    timeout_ms: int = 0
    synced_at: float | None = None  # wall clock: time.monotonic() of the card's sample ``now``
    fifo: _Fifo | None = None


#: How the emulated card's sample clock moves: ``"virtual"`` (only when the caller advances or
#: renders it, and WAIT commands let card time pass at once: tests), or ``"wall"`` (it follows the
#: host's monotonic clock times ``speed`` while the card is started, so polling loops, WAIT
#: commands and timeouts take the time they take on a card: whole scripts).
CLOCKS = ("virtual", "wall")
#: Wall clock: longest host sleep between looks at the card while a WAIT command waits.
WAIT_POLL_S = 0.002


class EmulatedDriver:
    """Spectrum's driver library in Python, over simulated cards (see module doc).

    ``cards`` maps a device path (``/dev/spcm0`` ...) to the card model it holds. Each path can be
    open once at a time, as with the real driver.
    """

    def __init__(
        self, cards: dict[str, str | CardSpec] | None = None, *, policy: SimPolicy | None = None, clock: str = "virtual", speed: float = 1.0
    ) -> None:
        if clock not in CLOCKS:
            raise ProgramError(f"clock={clock!r}: choose one of {', '.join(CLOCKS)}", op="emulated driver", value=clock)
        if not (isinstance(speed, int | float) and math.isfinite(speed) and speed > 0):
            raise ProgramError(f"speed={speed!r} must be a finite number > 0 (card seconds per host second)", op="emulated driver", value=speed)
        self.clock, self.speed = clock, float(speed)
        self.recordings: dict[int, Recording] = {}  # by id of the SimulatedCard
        cards = cards or {"/dev/spcm0": "M4i.6631-x8"}
        self.specs = {path: CARDS[c] if isinstance(c, str) else c for path, c in cards.items()}
        self.policy = policy or SimPolicy()
        self.cards: dict[str, SimulatedCard] = {path: SimulatedCard(spec, self.policy) for path, spec in self.specs.items()}
        self._handles: dict[int, _Handle] = {}
        self._path_of: dict[int, str] = {}
        self._next = 1
        self.calls: list[tuple[str, int]] = []  # (function, register) of every call, for tests
        self.log: list[str] = []

    def open_handles(self) -> list[int]:
        """Handles open now."""
        return list(self._handles)

    def software_trigger_selected(self, handle: int) -> bool:
        """Whether the trigger OR mask of ``handle``'s card includes the software trigger (which
        then fires as soon as triggers are enabled)."""
        h = self._handles.get(handle)
        return h is not None and bool(h.card.trigger_or_mask & SPC_TMASK_SOFTWARE)

    def path_of(self, handle: int) -> str | None:
        """The device path an open handle belongs to."""
        return self._path_of.get(handle)

    # ======================================================================= the 19 calls

    def open(self, device: bytes | str) -> int:
        """spcm_hOpen: a handle (> 0), or 0 if no such card or it is already open."""
        path = device.decode() if isinstance(device, bytes) else device
        self.calls.append(("hOpen", 0))
        if path not in self.cards or path in self._path_of.values():
            return 0
        handle = self._next
        self._next += 1
        card = self.cards[path]
        card.output_enabled = [False] * self.specs[path].physical_channels  # a card opens with its outputs off
        if card.state not in ("armed", "running"):
            card.set_replay_mode("single")  # ... in standard single replay
            card.set_trigger_masks(STORED_DEFAULTS[SPC_TRIG_ORMASK], STORED_DEFAULTS[SPC_TRIG_ANDMASK])  # software trigger only
        serial = 10000 + list(self.cards).index(path)
        self._handles[handle] = _Handle(self.cards[path], serial)
        self._path_of[handle] = path
        return handle

    def close(self, handle: int) -> None:
        """spcm_vClose: stops the card's output and releases the handle."""
        self.calls.append(("vClose", 0))
        h = self._handles.get(handle)
        if h is not None:
            self._sync(h)  # the card plays up to this moment, then stops
            h.card.stop()
        self._handles.pop(handle, None)
        self._path_of.pop(handle, None)

    def get_error_info(self, handle: int) -> tuple[int, int, int, str]:
        """spcm_dwGetErrorInfo_*: (code, register, value, text) of the last error; clears it."""
        h = self._handles.get(handle)
        if h is None:
            return (0, 0, 0, "")
        err, h.error = h.error, (0, 0, 0, "")
        return err

    def get_i64(self, handle: int, register: int) -> tuple[int, int]:
        if handle == 0:
            self.calls.append(("GetParam_i64", register))
            return self._driver_wide(register)
        return self._get("GetParam_i64", handle, register, int, 0)

    def get_d64(self, handle: int, register: int) -> tuple[int, float]:
        return self._get("GetParam_d64", handle, register, float, 0.0)

    def _sync(self, h: _Handle) -> None:
        """Wall clock: move the card on to the host's present (a stopped card keeps its time);
        FIFO data waiting for room on the card moves on board."""
        self._sync_clock(h)
        if h.fifo is not None and h.fifo.running and h.fifo.pending:
            self._fifo_move(h)

    def _sync_clock(self, h: _Handle) -> None:
        if self.clock != "wall" or h.synced_at is None:
            return
        c = h.card
        if c.state not in ("armed", "running"):
            h.synced_at = None
            return
        rate = self.speed * c.sample_rate_hz  # card samples per host second
        n = int((time.monotonic() - h.synced_at) * rate)
        if n <= 0:
            return
        h.synced_at += n / rate
        rec = self.recordings.get(id(c))
        if rec is not None and rec.remaining:  # what the card plays meanwhile is kept
            m = min(n, rec.remaining)
            rec.chunks.append(c.render(m))
            rec.remaining -= m
            n -= m
        if n:
            c.advance(n)

    def _fifo_move(self, h: _Handle) -> None:
        """Move handed-over FIFO data from the host's ring onto the card, as much as fits (the
        DMA is taken as instant: PCIe outruns the DACs); the host gets that space back."""
        f, c = h.fifo, h.card
        if f is None:
            return
        sample = 2 * c.n_channels
        room = (c.fifo_capacity - c.fifo_fill()) * sample
        m = min(f.pending, room)
        while m > 0:
            part = min(m, f.length - f.card_pos)
            raw = ctypes.string_at(f.address + f.card_pos, part)
            c.supply(np.frombuffer(raw, dtype="<i2"))
            f.card_pos = (f.card_pos + part) % f.length
            f.pending -= part
            f.user_len += part
            m -= part

    def _fifo_hand_over(self, h: _Handle, n_bytes: int) -> None:
        """SPC_DATA_AVAIL_CARD_LEN: the host filled ``n_bytes`` from its position."""
        f = h.fifo
        if f is None:
            raise CardError("SPC_DATA_AVAIL_CARD_LEN needs a FIFO transfer (DefTransfer in FIFO mode)", code=sp.ERR_FIFOSETUP)
        if h.card.underrun:
            raise CardError("the FIFO ran out of data and replay stopped (underrun)", code=sp.ERR_FIFOHWOVERRUN)
        if n_bytes < 0 or n_bytes > f.user_len or n_bytes % (2 * h.card.n_channels):
            raise CardError(f"{n_bytes} bytes handed over, {f.user_len} are the host's (whole samples only)", code=sp.ERR_VALUE)
        f.user_len -= n_bytes
        f.user_pos = (f.user_pos + n_bytes) % f.length
        f.pending += n_bytes
        if f.running:
            self._fifo_move(h)

    def record(self, card: SimulatedCard, n_samples: int) -> Recording:
        """Wall clock: keep the next ``n_samples`` samples ``card`` plays from now, as host time
        brings them about (later commands, triggers and stops included)."""
        rec = self.recordings[id(card)] = Recording(card.now, [], int(n_samples))
        return rec

    def _get(self, call: str, handle: int, register: int, convert, default):
        self.calls.append((call, register))
        h = self._handles.get(handle)
        if h is None:
            return sp.ERR_REG, default
        self._sync(h)
        try:
            return 0, convert(self._read(h, register))
        except CardError as exc:
            return self._failed(h, exc, register, 0), default

    def get_ptr(self, handle: int, register: int, size: int) -> tuple[int, bytes]:
        """String reads: the product name for ``SPC_PCITYP``."""
        self.calls.append(("GetParam_ptr", register))
        h = self._handles.get(handle)
        if h is None:
            return sp.ERR_REG, b""
        if register == SPC_PCITYP:
            return 0, h.card.spec.name.encode()[: max(0, size - 1)]
        return 0, b""

    def set_i64(self, handle: int, register: int, value: int) -> int:
        return self._set("SetParam_i64", handle, register, int(value))

    def set_d64(self, handle: int, register: int, value: float) -> int:
        return self._set("SetParam_d64", handle, register, float(value))

    def _set(self, call: str, handle: int, register: int, value: int | float) -> int:
        self.calls.append((call, register))
        h = self._handles.get(handle)
        if h is None:
            return sp.ERR_REG
        self._sync(h)
        try:
            self._write(h, register, value)
            return 0
        except CardError as exc:
            return self._failed(h, exc, register, int(value))

    def set_ptr(self, handle: int, register: int, data: bytes) -> int:
        self.calls.append(("SetParam_ptr", register))
        if handle == 0:
            if register == SPC_WRITE_TO_LOG:
                self.log.append(data.rstrip(b"\0").decode(errors="replace"))
            return 0
        return 0 if handle in self._handles else sp.ERR_REG

    def def_transfer(self, handle: int, buffer_type: int, direction: int, notify: int, address: int, offset: int, length: int) -> int:
        """spcm_dwDefTransfer_i64: remember where the data lies; it moves on DATA_STARTDMA."""
        self.calls.append(("DefTransfer_i64", buffer_type))
        h = self._handles.get(handle)
        if h is None:
            return sp.ERR_REG
        if buffer_type != SPCM_BUF_DATA or direction != SPCM_DIR_PCTOCARD:
            return self._failed(h, CardError("only PC-to-card data transfers are emulated", code=sp.ERR_FEATURE), buffer_type, direction)
        if length <= 0 or length % 2:
            return self._failed(h, CardError(f"transfer of {length} bytes is not whole int16 samples", code=sp.ERR_VALUE), buffer_type, length)
        if h.card.replay_mode in FIFO_MODES:
            sample = 2 * h.card.n_channels
            if length % sample or notify % sample or notify > length:
                problem = f"FIFO buffer of {length} bytes, notify {notify}: whole samples, notify within the buffer"
                return self._failed(h, CardError(problem, code=sp.ERR_FIFOSETUP), buffer_type, length)
            h.fifo = _Fifo(int(address), int(length), int(notify), int(length))
            return 0
        h.transfer = _Transfer(int(address), int(offset), int(length), int(notify))
        return 0

    def invalidate_buf(self, handle: int, buffer_type: int) -> int:
        h = self._handles.get(handle)
        if h is not None:
            h.transfer = None
        return 0

    # ======================================================================= registers

    def _driver_wide(self, register: int) -> tuple[int, int]:
        if register == SPC_GETDRVVERSION:
            return 0, DRIVER_VERSION
        if register == SPC_GETKERNELVERSION:
            return 0, DRIVER_VERSION
        if register == SPC_GETDRVTYPE:
            return 0, 0
        return sp.ERR_REG, 0

    def _failed(self, h: _Handle, exc: CardError, register: int, value: int) -> int:
        text = exc.detail if hasattr(exc, "detail") else str(exc)
        code = exc.code if exc.code is not None else sp.ERR_VALUE
        h.error = (code, register, value, f"{sp.ERROR_TEXTS.get(code, 'error')}: {text}")
        return code

    def _read(self, h: _Handle, reg: int) -> int | float:
        c, spec = h.card, h.card.spec
        fixed = {
            SPC_PCITYP: type_code(spec),
            SPC_FNCTYPE: SPCM_TYPE_AO,
            sp.SPC_PCIFEATURES: sp.SPCM_FEAT_SEQUENCE | SPCM_FEAT_MULTI,  # the replay modes emulated; no options
            SPC_PCIEXTFEATURES: 0,  # no firmware options (DDS, pulse generators, ...): spcm refuses them
            SPC_AVAILCARDMODES: sum(EMULATED_MODES),
            SPC_AVAILMEMSIZE_MIN: spec.min_segment_length(c.n_channels),
            SPC_AVAILMEMSIZE_MAX: spec.max_segment_length(c.n_channels, 1),
            SPC_AVAILMEMSIZE_STEP: spec.segment_granularity,
            SPC_AVAILLOOPS_MIN: 0,
            SPC_AVAILLOOPS_MAX: MAX_STANDARD_LOOPS,
            SPC_NUM_XIO_LINES: XIO_LINES,
            SPC_PCIVERSION: PCI_VERSION,
            SPC_BASEPCBVERSION: PCB_VERSION,
            SPC_PCIMODULEVERSION: 0,
            SPC_PCIDATE: CARD_DATE,
            SPC_CALIBDATE: CARD_DATE,
            SPC_PCISERIALNO: h.serial,
            SPC_PCIMEMSIZE: spec.memory_samples * 2,
            SPC_MIINST_MODULES: 1,
            SPC_MIINST_CHPERMODULE: spec.physical_channels,
            SPC_MIINST_BYTESPERSAMPLE: 2,
            SPC_MIINST_BITSPERSAMPLE: 16,
            SPC_MIINST_MAXADCVALUE: 32768,
            SPC_MIINST_MINADCLOCK: int(spec.min_sample_rate_hz),
            SPC_MIINST_MAXADCLOCK: int(spec.max_sample_rate_hz),
            SPC_MIINST_ISDEMOCARD: 0,
            sp.SPC_SEQMODE_AVAILMAXSEGMENT: spec.max_segments,
            sp.SPC_SEQMODE_AVAILMAXSTEPS: spec.max_steps,
            sp.SPC_SEQMODE_AVAILMAXLOOP: spec.max_loops,
            sp.SPC_SEQMODE_AVAILFEATURES: 0,
            SPC_GETDRVVERSION: DRIVER_VERSION,
            SPC_AVAILCLOCKMODES: CLOCK_MODES,
            SPC_OVERSAMPLINGFACTOR: 1,
            SPC_MIINST_MINEXTREFCLOCK: int(spec.reference_clock_hz[0]),
            SPC_MIINST_MAXEXTREFCLOCK: int(spec.reference_clock_hz[1]),
            SPC_TRIG_AVAILORMASK: SPC_TMASK_SOFTWARE | SPC_TMASK_EXT0 | SPC_TMASK_EXT1,
            SPC_TRIG_AVAILANDMASK: SPC_TMASK_EXT0 | SPC_TMASK_EXT1,
            SPC_TRIG_EXT0_AVAILMODES: EXT0_MODES,
            SPC_TRIG_EXT1_AVAILMODES: EXT1_MODES,
            SPC_TRIG_AVAILDELAY: TRIGGER_DELAY[0],
            SPC_TRIG_AVAILDELAY_STEP: TRIGGER_DELAY[1],
            SPC_TRIG_EXT_AVAIL0_MIN: TRIGGER_LEVEL_MV[0],
            SPC_TRIG_EXT_AVAIL0_MAX: TRIGGER_LEVEL_MV[1],
            SPC_TRIG_EXT_AVAIL0_STEP: TRIGGER_LEVEL_MV[2],
            SPC_TRIG_EXT_AVAIL1_MIN: TRIGGER_LEVEL_MV[0],
            SPC_TRIG_EXT_AVAIL1_MAX: TRIGGER_LEVEL_MV[1],
            SPC_TRIG_EXT_AVAIL1_STEP: TRIGGER_LEVEL_MV[2],
        }
        if reg in fixed:
            return fixed[reg]
        if reg == sp.SPC_M2STATUS:
            f = h.fifo
            block = f is not None and f.user_len >= max(f.notify, 1) and c.replay_mode in FIFO_MODES
            return c.status() | (M2STAT_DATA_BLOCKREADY if block else 0)
        if reg in (SPC_DATA_AVAIL_USER_LEN, SPC_DATA_AVAIL_USER_POS, SPC_DATA_AVAIL_CARD_LEN):
            f = h.fifo
            if f is None:
                return 0
            return {SPC_DATA_AVAIL_USER_LEN: f.user_len, SPC_DATA_AVAIL_USER_POS: f.user_pos, SPC_DATA_AVAIL_CARD_LEN: f.pending}[reg]
        if reg == SPC_FILLSIZEPROMILLE:
            return 1000 * c.fifo_fill() // c.fifo_capacity if c.replay_mode in FIFO_MODES else 0
        if reg == sp.SPC_SEQMODE_STATUS:
            return c.current_step()
        if reg == SPC_SAMPLERATE:
            return int(c.sample_rate_hz)
        if reg == SPC_CLOCKOUTFREQUENCY:  # [assume: the clock output carries the sample clock]
            return int(c.sample_rate_hz)
        if reg == SPC_CHENABLE:
            return (1 << c.n_channels) - 1
        if reg == SPC_CHCOUNT:
            return c.n_channels
        if reg == sp.SPC_SEQMODE_MAXSEGMENTS:
            return c.max_segments
        if reg == sp.SPC_SEQMODE_WRITESEGMENT:
            return c.write_segment
        if reg == sp.SPC_SEQMODE_SEGMENTSIZE:
            return c.slots[c.write_segment].size if c.max_segments else 0
        if reg == sp.SPC_SEQMODE_STARTSTEP:
            return c.start_step
        if sp.SPC_SEQMODE_STEPMEM0 <= reg < sp.SPC_SEQMODE_STEPMEM0 + spec.max_steps:
            entry = c.steps.get(reg - sp.SPC_SEQMODE_STEPMEM0)
            if entry is None:
                return 0
            from ..card import as_int64, encode_step_entry

            return as_int64(encode_step_entry(entry.segment, entry.next, entry.loops, on_trigger=entry.on_trigger, end=entry.end))
        ch = self._amp_channel(reg, spec)
        if ch is not None:
            return c.amplitude_mv[ch]
        if sp.SPC_CH0_STOPLEVEL <= reg < sp.SPC_CH0_STOPLEVEL + spec.physical_channels:
            return int(c.stop_levels[reg - sp.SPC_CH0_STOPLEVEL])
        if SPC_CH0_CUSTOM_STOP <= reg < SPC_CH0_CUSTOM_STOP + spec.physical_channels:
            return c.custom_stop[reg - SPC_CH0_CUSTOM_STOP]
        if reg == SPC_TIMEOUT:
            return h.timeout_ms
        if reg == SPC_GETKERNELVERSION:
            return DRIVER_VERSION
        ch = self._channel_register(reg, SPC_ENABLEOUT0, spec)
        if ch is not None:
            return int(c.output_enabled[ch])
        if reg == sp.SPC_CARDMODE:
            return h.registers.get(reg, sp.SPC_REP_STD_SINGLE)  # a card opens in standard single replay
        if reg == SPC_MEMSIZE:
            return c.memsize
        if reg == SPC_SEGMENTSIZE:
            return c.segment_size
        if reg == SPC_LOOPS:
            return c.loops
        if reg == SPC_TRIG_ORMASK:
            return c.trigger_or_mask
        if reg == SPC_TRIG_EXT0_LEVEL0:
            return c.ext0_level_mv
        if reg == SPC_TRIG_ANDMASK:
            return c.trigger_and_mask
        if (line := self._xio_line(reg, SPCM_X0_MODE)) is not None:
            return c.x_modes[line]
        if self._xio_line(reg, SPCM_X0_AVAILMODES) is not None:
            return XIO_MODES
        if reg in STORED_DEFAULTS:
            return h.registers.get(reg, STORED_DEFAULTS[reg])
        raise CardError(f"register {reg} is not available on the emulated {spec.name}", code=sp.ERR_REG)

    @staticmethod
    def _channel_register(reg: int, first: int, spec: CardSpec) -> int | None:
        """The channel whose copy of per-channel register ``first`` ``reg`` is, or None."""
        off = reg - first
        if off >= 0 and off % SPC_CH_STEP == 0 and off // SPC_CH_STEP < spec.physical_channels:
            return off // SPC_CH_STEP
        return None

    @staticmethod
    def _xio_line(reg: int, first: int) -> int | None:
        """The multi-purpose line X<n> whose copy of register ``first`` ``reg`` is, or None."""
        return reg - first if 0 <= reg - first < XIO_LINES else None

    @staticmethod
    def _amp_channel(reg: int, spec: CardSpec) -> int | None:
        off = reg - SPC_AMP0
        if off >= 0 and off % SPC_AMP_STEP == 0 and off // SPC_AMP_STEP < spec.physical_channels:
            return off // SPC_AMP_STEP
        return None

    def _write(self, h: _Handle, reg: int, value: int | float) -> None:
        c, spec = h.card, h.card.spec
        if reg == sp.SPC_M2CMD:
            self._command(h, int(value))
        elif reg == sp.SPC_CARDMODE:
            mode = int(value)
            if mode == sp.SPC_REP_STD_DDS:  # a firmware option: the card in hand does not have it
                raise CardError("card mode SPC_REP_STD_DDS needs the DDS firmware option, which this card does not have", code=sp.ERR_FEATURE)
            if mode not in EMULATED_MODES:  # refuse the others here, by name, not at the first DMA
                name = sp.REPLAY_MODES.get(mode, f"mode {mode:#x}")
                emulated = ", ".join(sp.REPLAY_MODES[m] for m in EMULATED_MODES)
                raise CardError(f"card mode {name} is not emulated (emulated: {emulated})", code=sp.ERR_FEATURE)
            c.set_replay_mode(EMULATED_MODES[mode])
            h.registers[reg] = mode
        elif reg == SPC_DATA_AVAIL_CARD_LEN:
            self._fifo_hand_over(h, int(value))
        elif reg == SPC_MEMSIZE:
            c.set_memsize(int(value))
        elif reg == SPC_SEGMENTSIZE:
            c.set_standard_segment_size(int(value))
        elif reg == SPC_LOOPS:
            c.set_loops(int(value))
        elif reg in (SPC_TRIG_ORMASK, SPC_TRIG_ANDMASK):
            masks = {SPC_TRIG_ORMASK: c.trigger_or_mask, SPC_TRIG_ANDMASK: c.trigger_and_mask, reg: int(value)}
            c.set_trigger_masks(masks[SPC_TRIG_ORMASK], masks[SPC_TRIG_ANDMASK])
        elif (line := self._xio_line(reg, SPCM_X0_MODE)) is not None:
            c.set_x_mode(line, int(value))
        elif reg == SPC_TRIG_EXT0_LEVEL0:
            _check_setup(reg, value, spec)
            c.ext0_level_mv = int(value)
        elif reg == SPC_SAMPLERATE:
            c.set_sample_rate(float(value))
        elif reg == SPC_CHENABLE:
            mask = int(value)
            n = bin(mask).count("1")
            if mask != (1 << n) - 1:
                raise CardError(f"channel mask {mask:#x}: enable channels 0..n-1", code=sp.ERR_CHANNEL)
            c.set_channels(n)
        elif reg == sp.SPC_SEQMODE_MAXSEGMENTS:
            c.set_max_segments(int(value))
        elif reg == sp.SPC_SEQMODE_WRITESEGMENT:
            c.select_segment(int(value))
        elif reg == sp.SPC_SEQMODE_SEGMENTSIZE:
            c.set_segment_size(int(value))
        elif reg == sp.SPC_SEQMODE_STARTSTEP:
            c.set_start_step(int(value))
        elif sp.SPC_SEQMODE_STEPMEM0 <= reg < sp.SPC_SEQMODE_STEPMEM0 + 8192:
            c.write_step(reg - sp.SPC_SEQMODE_STEPMEM0, int(value))
        elif (amp_ch := self._amp_channel(reg, spec)) is not None:
            c.set_amplitude(amp_ch, int(value))
        elif sp.SPC_CH0_STOPLEVEL <= reg < sp.SPC_CH0_STOPLEVEL + spec.physical_channels:
            ch = reg - sp.SPC_CH0_STOPLEVEL
            c.set_stop_level(ch, int(value), c.custom_stop[ch])
        elif SPC_CH0_CUSTOM_STOP <= reg < SPC_CH0_CUSTOM_STOP + spec.physical_channels:
            ch = reg - SPC_CH0_CUSTOM_STOP
            c.set_stop_level(ch, c.stop_levels[ch], int(value))
        elif reg == SPC_TIMEOUT:
            h.timeout_ms = int(value)
        elif reg in READ_ONLY:
            raise CardError(f"register {reg} is read-only", code=sp.ERR_REG)
        elif (out_ch := self._channel_register(reg, SPC_ENABLEOUT0, spec)) is not None:
            c.output_enabled[out_ch] = bool(int(value))
        elif reg in STORED_DEFAULTS:
            _check_setup(reg, value, spec)
            h.registers[reg] = value
        else:
            raise CardError(f"register {reg} is not available on the emulated {spec.name}", code=sp.ERR_REG)

    def _command(self, h: _Handle, cmd: int) -> None:
        c = h.card
        known = (
            sp.M2CMD_CARD_START
            | sp.M2CMD_CARD_ENABLETRIGGER
            | sp.M2CMD_CARD_FORCETRIGGER
            | sp.M2CMD_CARD_STOP
            | sp.M2CMD_DATA_STARTDMA
            | sp.M2CMD_DATA_WAITDMA
            | sp.M2CMD_DATA_STOPDMA
            | M2CMD_CARD_WAITREADY
            | M2CMD_CARD_WAITTRIGGER
            | M2CMD_CARD_RESET
            | M2CMD_CARD_WRITESETUP
            | M2CMD_CARD_DISABLETRIGGER
        )
        if cmd & ~known:
            raise CardError(f"command {cmd:#x} is not emulated", code=sp.ERR_VALUE)
        if cmd & M2CMD_CARD_RESET:
            c.stop()
        if cmd & sp.M2CMD_CARD_STOP:
            c.stop()
        if cmd & sp.M2CMD_DATA_STARTDMA:
            if h.fifo is not None and c.replay_mode in FIFO_MODES:
                h.fifo.running = True
                self._fifo_move(h)
            else:
                self._dma(h)
        if cmd & sp.M2CMD_DATA_STOPDMA and h.fifo is not None:
            h.fifo.running = False
        if cmd & sp.M2CMD_CARD_START:
            c.start()
            h.synced_at = time.monotonic()  # sample now = this host instant (used on a wall clock)
        if cmd & sp.M2CMD_CARD_ENABLETRIGGER:
            c.enable_trigger()  # the masks decide what triggers; software fires at once
        if cmd & sp.M2CMD_CARD_FORCETRIGGER:
            c.force_trigger()
        if cmd & M2CMD_CARD_DISABLETRIGGER:
            c.trigger_enabled = False
        if cmd & sp.M2CMD_DATA_WAITDMA and h.fifo is not None and c.replay_mode in FIFO_MODES:
            f = h.fifo

            def block_free() -> bool:
                if c.underrun:
                    raise CardError("the FIFO ran out of data and replay stopped (underrun)", code=sp.ERR_FIFOHWOVERRUN)
                self._fifo_move(h)
                return f.user_len >= max(f.notify, 2 * c.n_channels)

            self._wait(h, block_free, "free for the next notify block")
        if cmd & M2CMD_CARD_WAITTRIGGER:
            self._wait(h, lambda: c.triggered or c.state == "ready", "triggered")
        if cmd & M2CMD_CARD_WAITREADY:
            self._wait(h, lambda: c.state in ("ready", "idle"), "READY")

    def _dma(self, h: _Handle) -> None:
        t = h.transfer
        if t is None:
            raise CardError("DATA_STARTDMA without a defined transfer", code=sp.ERR_SEQUENCE)
        raw = ctypes.string_at(t.address, t.length)  # the offset is a position in card memory (bytes)
        sample_bytes = 2 * h.card.n_channels
        if t.offset % sample_bytes:
            raise CardError(f"card memory offset {t.offset} is not a whole sample of {h.card.n_channels} channels", code=sp.ERR_VALUE)
        samples = np.frombuffer(raw, dtype="<i2").copy()
        if h.card.replay_mode == "sequence":
            h.card.write_segment_data(samples, offset=t.offset // sample_bytes)
        else:
            h.card.write_memory(samples, offset=t.offset // sample_bytes)
        h.transfer = None

    def _wait(self, h: _Handle, done, what: str) -> None:
        """A WAIT command: return once ``done()``, or fail with ERR_TIMEOUT after the handle's
        timeout (SPC_TIMEOUT in ms; 0 = none, as on the card). On a wall clock the host really
        waits (polling the card); on a virtual clock card time passes at once, and a wait that
        could only end by the card running forever (no timeout, a sequence that never ends, no
        trigger coming) is refused instead of hanging the caller."""
        c = h.card
        if done():
            return
        rate = c.sample_rate_hz
        if self.clock == "wall":
            deadline = None if not h.timeout_ms else time.monotonic() + h.timeout_ms * 1e-3
            while not done():
                if c.state not in ("armed", "running"):
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    raise CardError(f"card not {what} before the timeout of {h.timeout_ms} ms", code=sp.ERR_TIMEOUT)
                time.sleep(WAIT_POLL_S if deadline is None else max(0.0, min(WAIT_POLL_S, deadline - time.monotonic())))
                self._sync(h)
            if not done():
                raise CardError(f"card not {what}: it is {c.state}", code=sp.ERR_TIMEOUT)
            return
        if h.timeout_ms:
            limit = c.now + round(h.timeout_ms * 1e-3 * rate)
            while not done() and c.now < limit and c.state in ("armed", "running"):
                c.advance(min(limit - c.now, max(1, round(1e-3 * rate))))
            if not done():
                raise CardError(f"card not {what} before the timeout of {h.timeout_ms} ms", code=sp.ERR_TIMEOUT)
            return
        # no timeout on a virtual clock: jump ahead while the card can still get there
        step = max(1, round(1e-3 * rate))
        for _ in range(64):
            if done() or c.state not in ("armed", "running"):
                break
            c.advance(step)
            step *= 2
        if not done():
            raise CardError(
                f"card never {what} (SPC_TIMEOUT 0 = wait forever, and its {c.state} output would go on forever): "
                "a card would hang here; set a timeout or use the wall clock",
                code=sp.ERR_SEQUENCE,  # not ERR_TIMEOUT: spcm would turn that into a bare SpcmTimeout and drop this text
            )
