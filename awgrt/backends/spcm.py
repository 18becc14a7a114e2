"""SpcmBackend: the backend protocol on a real Spectrum card through the ``spcm`` package.

``spcm`` is imported lazily, inside this backend only: without the package or Spectrum's driver
library, making the backend works and ``open()`` fails with a message saying what to install
(or how to dry-run on the emulated driver, :func:`awgrt.sim.emulated_spcm`).

On open the backend reads the card's own sequence-mode limits (memory, ``AVAILMAXSEGMENT``,
``AVAILMAXSTEPS``, ``AVAILMAXLOOP``, channels, maximum clock) into a :class:`~awgrt.card.CardSpec`
and checks every program against them (and against the data-sheet spec of the model) before
anything is written. Uploads talk to the card's registers through spcm's ``Card`` object and its
DMA call directly, never through ``spcm.Sequence``, whose defaults (loops = 0, one segment
written as MAXSEGMENTS = 1) are outside the documented range.

Every ``SpcmException`` becomes a :class:`~awgrt.errors.CardError` naming the register, the
value and what the backend was doing; a failed upload leaves the card stopped; closing always
stops the output. A card is used by one backend in one process at a time (a lock file per card).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import spectrum as sp
from .._progress import Progress
from ..card import CARDS, XIO_LINES, CardSpec, ClockConfig, as_int64
from ..errors import CardError, ProgramError
from ..program import CompiledSequenceProgram, StepEvent
from .base import BackendBase, CardReadback, OutputConfig, check_seconds

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "SpcmBackend needs Spectrum's 'spcm' package and driver: pip install 'awgrt[card]' and install the Spectrum "
    "driver (libspcm_linux.so / spcm_win64.dll) for your card; to dry-run without a card use awgrt.sim.emulated_spcm()"
)

_OPEN_IN_PROCESS: set[str] = set()


def import_spcm():
    """The spcm package, or :class:`~awgrt.errors.CardError` saying what to install."""
    try:
        import spcm  # noqa: PLC0415 - lazily, so the rest of awgrt never needs it
    except Exception as exc:  # spcm raises a bare Exception when the driver library is missing
        raise CardError(f"{INSTALL_HINT} ({type(exc).__name__}: {exc})", code=None, op="open") from exc
    return spcm


class _CardLock:
    """One process per card: an exclusive ``filelock`` lock per card (keyed by its serial
    number), plus a per-process registry.

    The lock lives in the system's temporary directory. ``filelock`` refuses to open a lock path
    that is a symlink, so a link planted there cannot redirect a write; the owner note beside it
    is written with ``O_NOFOLLOW`` for the same reason. The operating system releases the lock
    when its process dies, so a killed process never blocks the next one. Every ``OSError``
    becomes a :class:`~awgrt.errors.CardError` naming the lock file.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key)
        self.path = Path(tempfile.gettempdir()) / f"awgrt-spcm-{safe}.lock"
        self.owner_path = self.path.with_suffix(".owner")
        self._lock: Any = None

    def _fail(self, problem: str) -> CardError:
        return CardError(f"card {self.key!r}: {problem} (lock file {self.path})", code=None, op="open")

    def acquire(self) -> None:
        import filelock  # noqa: PLC0415 - only SpcmBackend needs it

        if self.key in _OPEN_IN_PROCESS:
            raise self._fail("already open in this process")
        lock = filelock.FileLock(str(self.path), timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise self._fail(f"in use by {self._owner()}") from None
        except OSError as exc:
            raise self._fail(f"cannot take the lock: {exc.strerror or exc}") from None
        self._lock = lock
        _OPEN_IN_PROCESS.add(self.key)
        self._write_owner()

    def _write_owner(self) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.owner_path, flags, 0o644)
            with os.fdopen(fd, "w") as fh:
                fh.write(f"process {os.getpid()}")
        except OSError:
            pass  # only a courtesy for the message of a process that finds the card busy

    def _owner(self) -> str:
        try:
            fd = os.open(self.owner_path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd) as fh:
                return fh.read(100).strip() or "another process"
        except OSError:
            return "another process"

    def release(self) -> None:
        if self._lock is not None:
            try:
                self._lock.release()
            except OSError as exc:
                raise self._fail(f"cannot release the lock: {exc.strerror or exc}") from None
            finally:
                self._lock = None
                _OPEN_IN_PROCESS.discard(self.key)


def _drop_handle(card) -> None:
    """Release an spcm card object's handle without the stop spcm's own close() sends (that card
    may be another process's), and keep its destructor from commanding an invalid handle."""
    with contextlib.suppress(Exception):
        if getattr(card, "_handle", None) and not getattr(card, "_closed", True):
            card.close_handle()
    card._closed = True


class SpcmBackend(BackendBase):
    """A Spectrum card through spcm (see module doc).

    Give ``device`` (``"/dev/spcm0"``), or ``serial_number``, or neither for the first AWG found.
    ``card`` optionally names the expected model; the card's reported limits always win where
    they are stricter.

    **Step entries.** The card exposes only its current step (``SPC_SEQMODE_STATUS``). Once a step
    listener is added (``Runtime.on_step``), a watcher thread reads it ``step_poll_hz`` times a
    second while the card runs and reports each change as entries: the new step, and the steps
    the step table's next pointers lead through from the last one seen (a step shorter than a
    poll period is still reported, in order). **Latency:** an entry is reported at most one poll
    cycle, 1 / ``step_poll_hz`` plus two driver calls (microseconds on a card), after the card
    entered it; :attr:`step_latency_s` is the longest cycle seen so far, the bound achieved on
    this host. Its ``sample`` is estimated from the host's clock since the start command (a step that
    was passed through between two polls gets the sample of the poll that found it), so it is
    as good as that latency. Listeners run on the watcher thread (``Runtime.on_step(...,
    asynchronous=True)`` hands them to a queue and a worker instead). Driver calls are serialised
    with the watcher's.
    """

    supports_step_events = True

    def __init__(
        self,
        device: str | None = None,
        *,
        serial_number: int | None = None,
        card: CardSpec | str | None = None,
        timeout_s: float = 10.0,
        step_poll_hz: float = 1000.0,
    ) -> None:
        expected = CARDS[card] if isinstance(card, str) else card
        super().__init__(expected or CARDS["M4i.6631-x8"])
        if serial_number is not None and (isinstance(serial_number, bool) or not isinstance(serial_number, int) or serial_number <= 0):
            problem = f"serial_number={serial_number!r} must be a card's serial number (an integer > 0), or None for the first AWG"
            raise ProgramError(problem, op="SpcmBackend", value=serial_number)
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not math.isfinite(timeout_s) or not 0.001 <= timeout_s <= 86_400:
            raise ProgramError(f"timeout_s={timeout_s!r} must be a number of seconds in 0.001..86400", op="SpcmBackend", value=timeout_s)
        if device is not None and not isinstance(device, str):
            raise ProgramError(f"device={device!r} must be a path such as '/dev/spcm0'", op="SpcmBackend", value=device)
        if not (isinstance(step_poll_hz, (int, float)) and 1.0 <= step_poll_hz <= 100_000.0):
            raise ProgramError(f"step_poll_hz={step_poll_hz!r} must be in 1..100000 polls per second", op="SpcmBackend", value=step_poll_hz)
        self.step_poll_hz = float(step_poll_hz)
        self._io = threading.RLock()  # one driver call at a time: the watcher's and everyone else's
        self._watcher: threading.Thread | None = None
        self._watching = threading.Event()
        self._started_at: float | None = None
        self._last_step: int | None = None
        #: The longest time between two reads of the current step so far: the achieved bound on
        #: how late a step entry is reported (1 / step_poll_hz plus the driver calls).
        self.step_latency_s = 0.0
        self.expected = expected
        self.device = device
        self.serial_number = serial_number
        self.timeout_s = timeout_s
        self._spcm: Any = None  # the spcm module, once opened
        self._card: Any = None  # spcm's card object, once opened
        self._lock: _CardLock | None = None
        self._doing = "idle"

    # ------------------------------------------------------------------ driver calls

    @contextlib.contextmanager
    def _step(self, doing: str):
        """Translate spcm's exceptions, naming what the backend was doing (one driver call at a
        time: the step watcher's are serialised with everyone else's)."""
        with self._io:
            self._doing = doing
            with self._translated(doing):
                yield

    @contextlib.contextmanager
    def _translated(self, doing: str):
        try:
            yield
        except CardError:
            raise
        except Exception as exc:
            spcm = self._spcm
            if spcm is not None and isinstance(exc, spcm.SpcmTimeout):
                raise CardError(f"timed out while {doing}", code=sp.ERR_TIMEOUT, op=doing) from exc
            if spcm is not None and isinstance(exc, spcm.SpcmException):
                err = getattr(exc, "error", None)
                reg, val, text = getattr(err, "register", None), getattr(err, "value", None), str(err or exc)
                raise CardError(f"driver refused while {doing}: {text} (value {val})", code=None, register=reg, op=doing) from exc
            raise

    def _set(self, register: int, value: int) -> None:
        self._card.set_i(register, int(value))

    def _get(self, register: int) -> int:
        return int(self._card.get_i(register))

    # ------------------------------------------------------------------ open / close

    def open(self) -> None:
        """Open the card, read its limits and put it in sequence replay mode."""
        if self._card is not None:
            return
        spcm = import_spcm()
        self._spcm = spcm
        where = self.device or (f"serial {self.serial_number}" if self.serial_number is not None else "first AWG")
        card, stage = None, "open"
        try:
            with self._step(f"opening {where}"):
                if self.device:
                    card = spcm.Card(self.device)
                elif self.serial_number is not None:
                    card = spcm.Card(serial_number=self.serial_number)
                else:
                    card = spcm.Card(card_type=spcm.SPCM_TYPE_AO)
                card.open()
                # one lock per physical card, whichever way it was named: by its serial number
                key = f"serial {card.sn()}"
            emulation = sys.modules.get("awgrt.sim.spcm_emulation")
            if emulation is not None and emulation.emulation_active():
                key = f"{key} (emulated in process {os.getpid()})"  # emulated cards belong to this process alone
            stage = "lock"
            lock = _CardLock(key)
            lock.acquire()  # before any command reaches the card: a busy card is left untouched
            self._lock, self._card = lock, card
            with self._step(f"stopping {where} (a process that held it may have died while it ran)"):
                card.cmd(spcm.M2CMD_CARD_STOP)  # a known state before anything else
            with self._step(f"opening {where}"):
                if not card.function_type() & spcm.SPCM_TYPE_AO:
                    raise CardError(f"{card.product_name()} is not an AWG", code=None, op="open")
                if not card.features() & spcm.SPCM_FEAT_SEQUENCE:
                    raise CardError(f"{card.product_name()} has no sequence replay option", code=sp.ERR_FEATURE, op="open")
                self.card = self._reported_spec()
                card.card_mode(spcm.SPC_REP_STD_SEQUENCE)
                self._set(spcm.SPC_TIMEOUT, int(self.timeout_s * 1000))
        except BaseException as exc:
            if card is not None and self._card is None:
                _drop_handle(card)  # never send a command to a card this backend does not own
            self._release()
            if isinstance(exc, CardError) and stage == "open" and _OPEN_IN_PROCESS:
                held = ", ".join(sorted(_OPEN_IN_PROCESS))
                raise CardError(
                    f"{where} could not be opened: it is missing, or already open in this process ({held}): {exc.detail}", code=exc.code, op="open"
                ) from exc
            raise
        self._opened = True

    def _reported_spec(self) -> CardSpec:
        spcm = self._spcm
        name = self._card.product_name()
        base = self.expected or CARDS.get(name.split()[0] if name else "", None)
        reported = CardSpec.from_reported(
            name or "Spectrum card",
            physical_channels=self._get(spcm.SPC_MIINST_MODULES) * self._get(spcm.SPC_MIINST_CHPERMODULE),
            max_sample_rate_hz=float(self._get(spcm.SPC_MIINST_MAXADCLOCK)),
            memory_bytes=self._get(spcm.SPC_PCIMEMSIZE),
            avail_max_segments=self._get(sp.SPC_SEQMODE_AVAILMAXSEGMENT),
            avail_max_steps=self._get(sp.SPC_SEQMODE_AVAILMAXSTEPS),
            avail_max_loops=self._get(sp.SPC_SEQMODE_AVAILMAXLOOP),
            base=base,
        )
        if self.expected is not None and reported.physical_channels < self.expected.physical_channels:
            raise CardError(f"expected a {self.expected.name} but the card {name!r} reports {reported.physical_channels} channels", code=None, op="open")
        return reported

    def add_step_listener(self, fn) -> None:
        super().add_step_listener(fn)
        if self._watcher is None or not self._watcher.is_alive():
            self._watching.set()
            self._watcher = threading.Thread(target=self._watch, name="awgrt-spcm-steps", daemon=True)
            self._watcher.start()

    def _watch(self) -> None:
        """The step watcher (see class doc): poll the current step while the card runs, and keep
        the longest poll cycle seen (:attr:`step_latency_s`)."""
        period = 1.0 / self.step_poll_hz
        last_read = None
        while self._watching.is_set():
            try:
                if self._card is not None and self._started_at is not None and self.program is not None and self._listeners:
                    with self._io:
                        step = self.current_step() if self.is_running() else None
                        started = self._started_at
                    now = time.monotonic()
                    if last_read is not None:
                        self.step_latency_s = max(self.step_latency_s, now - last_read)
                    last_read = now
                    if step is not None and step != self._last_step:
                        sample = round((now - started) * self.program.sample_rate_hz)
                        path = self._walk(self._last_step, step)
                        self._last_step = step
                        self._notify([StepEvent(sample, s, self.program.steps[s].segment) for s in path])
            except Exception as exc:  # noqa: BLE001 - a listener's or the driver's error must not kill the watcher silently
                log.warning("step watcher: %s: %s", type(exc).__name__, exc)
            time.sleep(period)

    def _walk(self, last: int | None, now: int) -> list[int]:
        """The steps entered from ``last`` to ``now`` by the step table's next pointers (just
        ``now`` when it is not reached that way, e.g. after a restart)."""
        steps = self.program.steps if self.program is not None else ()
        if last is None or not 0 <= last < len(steps) or not 0 <= now < len(steps):
            return [now]
        path, s = [], last
        for _ in range(len(steps)):
            if steps[s].end:
                break
            s = steps[s].next
            path.append(s)
            if s == now:
                return path
        return [now]

    def close(self) -> None:
        """Stop the output (always) and close the card."""
        self._watching.clear()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=1.0)
        self._watcher = None
        try:
            if self._card is not None:
                with contextlib.suppress(CardError), self._step("stopping on close"):
                    self._stop()
                with self._step("closing"):
                    self._card.close()
        finally:
            self._card = None
            self._release()
            self._opened = False

    def _release(self) -> None:
        if self._card is not None:
            with contextlib.suppress(Exception):
                self._card.close()
            self._card = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _require_open(self) -> None:
        if self._card is None:
            raise CardError("the card is not open: use 'with SpcmBackend(...)' or open()", code=None, op=self._doing)

    # ------------------------------------------------------------------ card operations

    def _configure(self, config: OutputConfig) -> None:
        self._require_open()
        spcm = self._spcm
        with self._step("configuring the outputs"):
            self._stop()
            self._set(spcm.SPC_CHENABLE, (1 << config.n_channels) - 1)
            for ch in range(config.n_channels):
                self._set(spcm.SPC_AMP0 + 100 * ch, config.amplitude_mv[ch])
                self._set(spcm.SPC_ENABLEOUT0 + 100 * ch, 1)
                self._set(sp.SPC_CH0_STOPLEVEL + ch, int(config.stop_level[ch]))
            clock = config.clock
            if clock.source == "external_reference":  # the PLL locked to the lab's reference: its frequency first
                self._set(spcm.SPC_CLOCKMODE, spcm.SPC_CM_EXTREFCLOCK)
                self._set(spcm.SPC_REFERENCECLOCK, int(clock.reference_hz or 0))
            else:
                self._set(spcm.SPC_CLOCKMODE, spcm.SPC_CM_INTPLL)
            self._set(spcm.SPC_CLOCKOUT, int(clock.output))
            self._set(spcm.SPC_SAMPLERATE, int(config.sample_rate_hz))
            if config.trigger == "external":
                self._set(spcm.SPC_TRIG_ORMASK, spcm.SPC_TMASK_EXT0)
                self._set(spcm.SPC_TRIG_EXT0_MODE, spcm.SPC_TM_POS)
                self._set(spcm.SPC_TRIG_EXT0_LEVEL0, config.trigger_level_mv)
            else:
                self._set(spcm.SPC_TRIG_ORMASK, spcm.SPC_TMASK_SOFTWARE)
            self._set(spcm.SPC_TRIG_ANDMASK, 0)
            actual = self._get(spcm.SPC_SAMPLERATE)
        if actual != int(config.sample_rate_hz):
            raise CardError(f"asked for {config.sample_rate_hz:g} S/s, the card runs at {actual} S/s", code=None, op="configure")

    def _dma(self, data: np.ndarray) -> None:
        spcm = self._spcm
        buf = np.ascontiguousarray(data, dtype="<i2")
        err = spcm.spcm_dwDefTransfer_i64(self._card._handle, spcm.SPCM_BUF_DATA, spcm.SPCM_DIR_PCTOCARD, 0, buf.ctypes.data_as(ctypes.c_void_p), 0, buf.nbytes)
        self._card._check_error(err)
        self._card.cmd(spcm.M2CMD_DATA_STARTDMA, spcm.M2CMD_DATA_WAITDMA)

    def _write_slot(self, index: int, program: CompiledSequenceProgram) -> None:
        seg = program.segments[index]
        with self._step(f"writing segment {index} ({seg.name!r}, {seg.n_samples} samples)"):
            self._set(sp.SPC_SEQMODE_WRITESEGMENT, index)
            self._set(sp.SPC_SEQMODE_SEGMENTSIZE, seg.n_samples)
            self._dma(seg.data)

    def _load(self, program: CompiledSequenceProgram) -> None:
        self._require_open()
        with self._step(f"setting MAXSEGMENTS={program.max_segments}"):
            self._set(sp.SPC_SEQMODE_MAXSEGMENTS, program.max_segments)
        total = sum(s.data.nbytes for s in program.segments)
        with Progress(total, "uploading") as bar:  # shown once it takes a second (GiB over PCIe)
            for i, seg in enumerate(program.segments):
                bar.note = f"segment {seg.name!r}"
                self._write_slot(i, program)
                bar.advance(seg.data.nbytes)
        self._write_steps(program)
        with self._step("reading the multi-purpose lines' modes"):
            current = [self._get(sp.SPCM_X0_MODE + line) for line in range(XIO_LINES)]
        for line, mode in self._line_modes(program, current).items():
            with self._step(f"setting X{line} to mode {mode:#x}"):
                self._set(sp.SPCM_X0_MODE + line, mode)

    def _update_segments(self, program: CompiledSequenceProgram, indices: list[int]) -> None:
        self._require_open()
        for i in indices:
            self._write_slot(i, program)

    def _write_steps(self, program: CompiledSequenceProgram) -> None:
        self._write_step_entries(program, list(range(len(program.steps))))
        with self._step(f"setting the start step {program.start_step}"):
            if self._get(sp.SPC_SEQMODE_STARTSTEP) != program.start_step:
                self._set(sp.SPC_SEQMODE_STARTSTEP, program.start_step)

    def _write_step_entries(self, program: CompiledSequenceProgram, indices: list[int]) -> None:
        self._require_open()
        for i in indices:
            step = program.steps[i]
            with self._step(f"writing step {i} ({step.name!r}: segment {step.segment}, next {step.next}, loops {step.loops})"):
                self._set(sp.SPC_SEQMODE_STEPMEM0 + i, as_int64(step.entry))

    def _start(self, force_trigger: bool) -> None:
        self._require_open()
        spcm = self._spcm
        with self._step("starting the card"):
            flags = [spcm.M2CMD_CARD_START, spcm.M2CMD_CARD_ENABLETRIGGER]
            if force_trigger:
                flags.append(spcm.M2CMD_CARD_FORCETRIGGER)
            self._card.cmd(*flags)
            self._started_at = time.monotonic()
            self._last_step = None

    def _stop(self) -> None:
        if self._card is None:
            return
        with self._step("stopping the card"):
            self._card.cmd(self._spcm.M2CMD_CARD_STOP)

    def force_trigger(self) -> None:
        self._require_open()
        with self._step("forcing a trigger"):
            self._card.cmd(self._spcm.M2CMD_CARD_FORCETRIGGER)

    def current_step(self) -> int:
        self._require_open()
        with self._step("reading the current step"):
            return self._get(sp.SPC_SEQMODE_STATUS)

    def is_running(self) -> bool:
        if self._card is None:
            return False
        with self._step("reading the status"):
            status = self._get(sp.SPC_M2STATUS)
        return bool(status & sp.M2STAT_CARD_PRETRIGGER) and not status & sp.M2STAT_CARD_READY

    def read_back(self, n_steps: int, n_slots: int) -> CardReadback:
        """The card's registers, read through spcm: output settings, slot count and sizes, start
        step and step entries. The replay memory's samples are not read back (``segment_data`` None:
        the driver transfers replay data from the PC to the card only)."""
        self._require_open()
        spcm = self._spcm
        with self._step("reading the card's set-up back"):
            n = bin(self._get(spcm.SPC_CHENABLE)).count("1")
            trigger = sp.trigger_source_of(self._get(spcm.SPC_TRIG_ORMASK))
            max_segments = self._get(sp.SPC_SEQMODE_MAXSEGMENTS)
            sizes = []
            for i in range(min(n_slots, max_segments)):
                self._set(sp.SPC_SEQMODE_WRITESEGMENT, i)
                sizes.append(self._get(sp.SPC_SEQMODE_SEGMENTSIZE))
            return CardReadback(
                sample_rate_hz=float(self._get(spcm.SPC_SAMPLERATE)),
                n_channels=n,
                amplitude_mv=tuple(self._get(spcm.SPC_AMP0 + 100 * ch) for ch in range(n)),
                stop_level=tuple(sp.StopLevel(self._get(sp.SPC_CH0_STOPLEVEL + ch)) for ch in range(n)),
                trigger=trigger,
                trigger_level_mv=self._get(spcm.SPC_TRIG_EXT0_LEVEL0),
                max_segments=max_segments,
                segment_sizes=tuple(sizes),
                start_step=self._get(sp.SPC_SEQMODE_STARTSTEP),
                step_words=tuple(self._get(sp.SPC_SEQMODE_STEPMEM0 + i) & (2**64 - 1) for i in range(n_steps)),
                segment_data=None,
                clock=self._read_clock(),
                x_modes=tuple(self._get(sp.SPCM_X0_MODE + line) for line in range(XIO_LINES)),
            )

    def _read_clock(self) -> ClockConfig:
        """The clock set-up as the card's registers hold it."""
        spcm = self._spcm
        external = self._get(spcm.SPC_CLOCKMODE) == spcm.SPC_CM_EXTREFCLOCK
        return ClockConfig(
            "external_reference" if external else "internal",
            float(self._get(spcm.SPC_REFERENCECLOCK)) if external else None,
            bool(self._get(spcm.SPC_CLOCKOUT)),
        )

    def wait_ready(self, timeout_s: float) -> None:
        check_seconds(timeout_s, "timeout_s", "wait_ready")
        self._require_open()
        spcm = self._spcm
        with self._step(f"waiting up to {timeout_s:g} s for READY"):
            self._set(spcm.SPC_TIMEOUT, max(1, int(timeout_s * 1000)))
            try:
                self._card.cmd(spcm.M2CMD_CARD_WAITREADY)
            finally:
                self._set(spcm.SPC_TIMEOUT, int(self.timeout_s * 1000))
