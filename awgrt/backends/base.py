"""The backend protocol: one small interface that every card backend implements.

A backend is a context manager (open on enter, close on exit; closing always stops the output).
Its ``card`` is the :class:`~awgrt.card.CardSpec` it checks programs against. The runtime and
users only ever speak this interface; which backend is behind it (the simulator or the real card
through spcm) makes no difference to them, as with pyvisa's ``@py`` / ``@sim`` backends.

:class:`BackendBase` holds what all backends share: argument checks, the program check before
any upload, and the rule that a failed upload leaves the card stopped, never half-programmed and
running.
"""

from __future__ import annotations

import abc
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, Self, get_args, runtime_checkable

import numpy as np

from .. import spectrum as sp
from .._units import in_unit, whole_mv
from ..card import INTERNAL_CLOCK, CardSpec, ClockConfig
from ..errors import AWGRTError, CardError, ProgramError, UnsupportedError
from ..program import CompiledSequenceProgram, StepEvent
from ..spectrum import StopLevel, stop_level_of

#: Where triggers come from.
TriggerSource = Literal["software", "external"]
TRIGGER_SOURCES: tuple[str, ...] = get_args(TriggerSource)
def check_seconds(value: object, what: str, op: str) -> None:
    """None, or a finite number of seconds >= 0 (NaN or inf would never come)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)) or float(value) < 0:
        raise ProgramError(f"{what}={value!r} must be a finite number of seconds >= 0", op=op, value=value)



@dataclass(frozen=True)
class OutputConfig:
    """How the card's outputs are set up: sample rate, enabled channels (0 .. n-1), amplitude
    per channel in mV (into 50 ohm), stop level per channel, trigger source and level."""

    sample_rate_hz: float
    n_channels: int
    amplitude_mv: tuple[int, ...]
    stop_level: tuple[StopLevel, ...]
    trigger: TriggerSource = "software"
    trigger_level_mv: int = 1000
    clock: ClockConfig = INTERNAL_CLOCK


@dataclass(frozen=True)
class CardReadback:
    """The card's state as read back from it. ``step_words``: the raw 64-bit entries of the first
    ``len(step_words)`` steps (unsigned); ``segment_data``: the samples of each used slot, int16
    (n_samples, n_channels), or None where the backend cannot read the card's memory back."""

    sample_rate_hz: float
    n_channels: int
    amplitude_mv: tuple[int, ...]
    stop_level: tuple[StopLevel, ...]
    trigger: str  # "software", "external", or the raw OR mask in words when it is neither
    trigger_level_mv: int | None
    max_segments: int
    segment_sizes: tuple[int, ...]
    start_step: int
    step_words: tuple[int, ...]
    segment_data: tuple[np.ndarray, ...] | None = None
    clock: ClockConfig | None = None  # None where the backend cannot read the clock set-up back
    x_modes: tuple[int, ...] | None = None  # the multi-purpose lines' modes (None: not read back)


@runtime_checkable
class Backend(Protocol):
    """The contract every backend keeps: the runtime and users speak only this.

    A new backend (another card family, a remote card) implements every member below; the
    conformance kit in ``tests/backend_conformance.py`` checks one against the contract, as it
    checks :class:`~awgrt.backends.SimBackend` and :class:`~awgrt.backends.SpcmBackend`.
    Subclassing :class:`BackendBase` gives the argument checks and the upload guarantees for free.

    Guarantees: nothing is written to the card before the program was checked against ``card``;
    any failure or interrupt during an upload leaves the card stopped and ``program`` None (the
    next upload is a full one); closing always stops the output.
    """

    #: The limits programs are checked against (the card's own, where it reports them).
    card: CardSpec
    #: The output set-up in force (None until :meth:`configure`).
    config: OutputConfig | None
    #: What the card's memory holds, as far as the backend knows (None: unknown or nothing).
    program: CompiledSequenceProgram | None
    #: Whether :meth:`add_step_listener` can report step entries.
    supports_step_events: bool

    def __enter__(self) -> Self:
        """Open the card (see :meth:`open`). Returns: the backend itself."""
        ...

    def __exit__(self, *exc: object) -> None:
        """Close the card (see :meth:`close`); never suppresses an exception."""
        ...

    def open(self) -> None:
        """Take the card for this process (opening twice is harmless).

        Raises: CardError if the card is missing, busy or unusable (naming which)."""
        ...

    def close(self) -> None:
        """Stop the output, always, and release the card. Raises: nothing for a card that
        is already closed."""
        ...

    def configure(
        self,
        *,
        sample_rate_hz: float,
        n_channels: int,
        amplitude_mv: int | Sequence[int] = 1000,
        stop_level: str | StopLevel | Sequence[str | StopLevel] = "zero",
        trigger: TriggerSource = "software",
        trigger_level_mv: int = 1000,
        clock: ClockConfig = INTERNAL_CLOCK,
    ) -> OutputConfig:
        """Set the clock (sample rate and :class:`ClockConfig`: source, reference, clock output),
        enabled channels (0 .. n_channels-1), amplitude (mV into 50 ohm) and stop level per
        channel (one value for all, or one each) and the trigger source.

        Returns: the :class:`OutputConfig` now in force (also ``self.config``).
        Raises: ProgramError for a value the card cannot take (naming it); CardError if the
        card refuses."""
        ...

    def load(self, program: CompiledSequenceProgram) -> None:
        """Full upload: stop, then write every memory slot, the step table and the start step.
        Configures from the program first if :meth:`configure` was not called.

        Raises: CardLimitError / ProgramError before anything is written if the program does
        not fit ``card`` or ``config``; CardError if the card refuses (the card is then stopped
        and ``program`` None)."""
        ...

    def update_segments(self, program: CompiledSequenceProgram, indices: Sequence[int]) -> None:
        """Rewrite the data of memory slots ``indices``; the layout (slot count and lengths) must
        equal the loaded program's. Does not stop the card.

        Raises: ProgramError if nothing is loaded or the layout changed; CardError as for load."""
        ...

    def write_steps(self, program: CompiledSequenceProgram) -> None:
        """Rewrite the step table only (same layout). Raises: as :meth:`update_segments`."""
        ...

    def write_live(self, program: CompiledSequenceProgram, slots: Sequence[int], steps: Sequence[int]) -> None:
        """Write memory slots ``slots`` and then step entries ``steps``, in that order, into a card
        that keeps running (an entry the sequencer has already read plays as it was); everything
        else in ``program`` must equal what the card holds. Raises: as :meth:`update_segments`."""
        ...

    def abandon(self) -> None:
        """Stop the card and forget what is loaded (``program`` = None). Never raises."""
        ...

    def start(self, *, force_trigger: bool = False) -> None:
        """Start replay, armed for triggers from the configured source; ``force_trigger``
        also triggers at once. Raises: ProgramError if nothing is loaded; CardError."""
        ...

    def force_trigger(self) -> None:
        """A software trigger now. Raises: CardError if the card refuses."""
        ...

    def stop(self) -> None:
        """Stop the output (the stop level is output). Harmless when stopped."""
        ...

    def current_step(self) -> int:
        """The step the sequencer is in now (the start step before the first trigger)."""
        ...

    def is_running(self) -> bool:
        """Whether the card is started and has not ended (armed or replaying)."""
        ...

    def wait_ready(self, timeout_s: float) -> None:
        """Wait until the card is READY (its sequence ended).

        Raises: CardError with Spectrum's timeout code after ``timeout_s``."""
        ...

    def add_step_listener(self, fn: Callable[[StepEvent], None]) -> None:
        """Call ``fn(StepEvent)`` once for every step entry from now on, in order.

        Raises: UnsupportedError where ``supports_step_events`` is False."""
        ...

    def read_back(self, n_steps: int, n_slots: int) -> CardReadback:
        """Read the card's state back from the card itself (never from what the backend
        remembers writing): output settings, slot count, the sizes of slots 0 .. n_slots-1, the
        start step, the raw entries of steps 0 .. n_steps-1, and the slots' samples where the
        card's memory can be read. Raises: CardError if the card refuses a read."""
        ...

    def remove_step_listener(self, fn: Callable[[StepEvent], None]) -> None:
        """Stop calling ``fn``. Raises: ValueError-compatible ProgramError if it was not added."""
        ...


class BackendBase(abc.ABC):
    """Shared behaviour of :class:`Backend` s; subclasses implement the ``_``-prefixed card
    operations (and set ``supports_step_events``)."""

    card: CardSpec
    supports_step_events: bool = True

    def __init__(self, card: CardSpec) -> None:
        self.card = card
        self.config: OutputConfig | None = None
        self.program: CompiledSequenceProgram | None = None
        self._listeners: list[Callable[[StepEvent], None]] = []
        self._opened = False

    # ------------------------------------------------------------------ context

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        self._opened = True

    def close(self) -> None:
        """Stop the output (always, opened or not) and release the card."""
        try:
            self.stop()
        finally:
            self._opened = False

    # ------------------------------------------------------------------ configuration

    def configure(
        self,
        *,
        sample_rate_hz: float,
        n_channels: int,
        amplitude_mv: int | Sequence[int] = 1000,
        stop_level: str | StopLevel | Sequence[str | StopLevel] = "zero",
        trigger: TriggerSource = "software",
        trigger_level_mv: int = 1000,
        clock: ClockConfig = INTERNAL_CLOCK,
    ) -> OutputConfig:
        """Set sample rate, the number of enabled channels (0 .. n_channels-1), amplitude (mV) and
        stop level per channel (one value for all, or one each), and the trigger source. Numbers
        may be pint quantities (``625 * units.MHz``, ``0.5 * units.V``)."""
        sample_rate_hz = in_unit(sample_rate_hz, "Hz", "sample_rate_hz", op="configure")
        amplitude_mv = whole_mv(amplitude_mv, "amplitude_mv", "configure")
        trigger_level_mv = whole_mv(trigger_level_mv, "trigger_level_mv", "configure")
        problem = self.card.sample_rate_problem(sample_rate_hz)
        if problem:
            raise ProgramError(problem, op="configure", value=sample_rate_hz)
        if isinstance(n_channels, bool) or not isinstance(n_channels, numbers.Integral) or n_channels not in self.card.channel_counts:
            raise ProgramError(f"{n_channels} channels: {self.card.name} runs with {list(self.card.channel_counts)}", op="configure", value=n_channels)
        n_channels = int(n_channels)
        try:
            amps = (amplitude_mv,) * n_channels if isinstance(amplitude_mv, numbers.Real) else tuple(amplitude_mv)
            levels_in = [stop_level] * n_channels if isinstance(stop_level, (str, StopLevel)) else list(stop_level)
        except TypeError:
            raise ProgramError(f"amplitude_mv={amplitude_mv!r} / stop_level={stop_level!r}: give one value or a list", op="configure") from None
        if len(amps) != n_channels or len(levels_in) != n_channels:
            raise ProgramError(f"give one amplitude and stop level, or one per channel ({n_channels})", op="configure", value=(amps, levels_in))
        amps = tuple(int(mv) if isinstance(mv, numbers.Integral) and not isinstance(mv, bool) else mv for mv in amps)
        for mv in amps:
            if isinstance(mv, bool) or not isinstance(mv, int) or not self.card.min_amplitude_mv <= mv <= self.card.max_amplitude_mv:
                raise ProgramError(
                    f"amplitude {mv!r} mV outside {self.card.min_amplitude_mv}..{self.card.max_amplitude_mv} mV of {self.card.name}",
                    op="configure",
                    value=mv,
                )
        if trigger not in TRIGGER_SOURCES:
            raise ProgramError(f"trigger {trigger!r} must be one of {TRIGGER_SOURCES}", op="configure", value=trigger)
        if not isinstance(clock, ClockConfig) or clock.problem(self.card):
            why = clock.problem(self.card) if isinstance(clock, ClockConfig) else f"clock={clock!r} must be a ClockConfig"
            raise ProgramError(str(why), op="configure", value=clock)
        config = OutputConfig(float(sample_rate_hz), n_channels, amps, tuple(stop_level_of(v) for v in levels_in), trigger, int(trigger_level_mv), clock)
        self._configure(config)
        self.config = config
        return config

    def _require_config(self, program: CompiledSequenceProgram) -> None:
        """Configure from the program if not done yet; check the program matches the set-up."""
        if self.config is None:
            self.configure(sample_rate_hz=program.sample_rate_hz, n_channels=program.n_channels)
        assert self.config is not None  # configure() sets it
        if program.sample_rate_hz != self.config.sample_rate_hz or program.n_channels != self.config.n_channels:
            raise ProgramError(
                f"program runs at {program.sample_rate_hz:g} S/s on {program.n_channels} channels, the card is set up for "
                f"{self.config.sample_rate_hz:g} S/s on {self.config.n_channels}",
                op="load",
            )

    # ------------------------------------------------------------------ uploads

    def load(self, program: CompiledSequenceProgram) -> None:
        """Full upload: stop, check against the card, write every slot and the step table."""
        program.validate(self.card)
        self._require_config(program)
        self.program = None  # from here on the card's memory is in flux
        self.stop()
        self._guarded("full upload", lambda: self._load(program))
        self.program = program

    def update_segments(self, program: CompiledSequenceProgram, indices: Sequence[int]) -> None:
        """Rewrite the data of memory slots ``indices`` (same lengths as loaded)."""
        self._check_same_layout(program, "update_segments")
        self._check_slots(program, indices, "update_segments")
        self._guarded("segment update", lambda: self._update_segments(program, list(indices)))
        self.program = program

    def write_steps(self, program: CompiledSequenceProgram) -> None:
        """Rewrite the step table only (slot layout and samples unchanged)."""
        self._check_same_layout(program, "write_steps")
        self._check_same_samples(program, set(), "write_steps")
        self._guarded("step table update", lambda: self._write_steps(program))
        self.program = program

    def write_live(self, program: CompiledSequenceProgram, slots: Sequence[int], steps: Sequence[int]) -> None:
        """Write memory slots ``slots``, then step entries ``steps`` (in that order), checking
        ``program`` once: everything else in it must equal what the card holds. Does not stop the
        card (the caller keeps the slots out of the sequencer's reach until their entries are
        written)."""
        self._check_same_layout(program, "write_live")
        self._check_slots(program, slots, "write_live")
        order = self._check_entries(program, steps, "write_live")

        def write() -> None:
            if slots:
                self._update_segments(program, list(slots))
            if order:
                self._write_step_entries(program, order)

        self._guarded("live write", write)
        self.program = program

    @staticmethod
    def _line_modes(program: CompiledSequenceProgram, current: Sequence[int]) -> dict[int, int]:
        """The multi-purpose line modes a full upload of ``program`` writes, given the card's
        ``current`` ones: its marker lines' synchronous digital outputs, and disabled any other
        line left in synchronous digital output (it would take a bit of a channel this program
        fills whole); lines in other modes are left as they are."""
        wanted = program.x_modes()
        stale = {line: sp.SPCM_XMODE_DISABLE for line, mode in enumerate(current) if line not in wanted and mode & sp.SPCM_XMODE_DIGOUT}
        return stale | wanted

    def _check_slots(self, program: CompiledSequenceProgram, indices: Sequence[int], op: str) -> None:
        """Slots ``indices`` exist and keep their lengths; every other slot keeps its samples."""
        assert self.program is not None  # the layout check needs a loaded program
        for i in indices:
            if not 0 <= i < len(program.segments):
                raise ProgramError(f"slot {i} out of range 0..{len(program.segments) - 1}", op=op, value=i)
            if program.segments[i].n_samples != self.program.segments[i].n_samples:
                raise ProgramError(
                    f"slot {i} changes length {self.program.segments[i].n_samples} -> {program.segments[i].n_samples}: needs a full upload",
                    segment=program.segments[i].name,
                    op=op,
                )
        self._check_same_samples(program, set(indices), op)

    def _check_entries(self, program: CompiledSequenceProgram, indices: Sequence[int], op: str) -> list[int]:
        """Steps ``indices`` exist; every other entry and the start step equal the card's."""
        assert self.program is not None  # the layout check needs a loaded program
        order = list(indices)
        for i in order:
            if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < len(program.steps):
                raise ProgramError(f"step {i!r} out of range 0..{len(program.steps) - 1}", op=op, value=i)
        loaded = self.program.steps
        others = [i for i, b in enumerate(program.steps) if i not in order and (i >= len(loaded) or (loaded[i] is not b and loaded[i].entry != b.entry))]
        if others or self.program.start_step != program.start_step:
            what = f"steps {others}" if others else f"the start step ({self.program.start_step} -> {program.start_step})"
            raise ProgramError(f"the program's {what} differ from what the card holds and are not written", op=op, value=others)
        return order

    def _check_same_samples(self, program: CompiledSequenceProgram, written: set[int], op: str) -> None:
        """``program`` must hold the loaded samples in every slot not being written, so that
        ``self.program`` keeps describing the card."""
        assert self.program is not None
        differ = list(self.program.changed_slots(program, skip=written))
        if differ:
            raise ProgramError(f"the program's samples differ from what the card holds in slots {differ}: write them with update_segments", op=op, value=differ)

    def _check_same_layout(self, program: CompiledSequenceProgram, op: str) -> None:
        """``program`` passes the card's checks and keeps the loaded program's memory layout,
        sample rate and channels (what only a full upload with a new set-up changes)."""
        program.validate(self.card)
        if self.program is None:
            raise ProgramError("nothing is loaded yet: use load()", op=op)
        loaded = self.program
        for what, old, new in (
            ("sample rate (Hz)", loaded.sample_rate_hz, program.sample_rate_hz),
            ("channel count", loaded.n_channels, program.n_channels),
            ("hardware channels", dict(loaded.hardware_channels), dict(program.hardware_channels)),
        ):
            if old != new:
                raise ProgramError(f"the {what} changed ({old} -> {new}): needs a new set-up and a full upload", op=op, value=new)
        if not loaded.same_layout(program):
            raise ProgramError("the memory layout (slot count or lengths) changed: needs a full upload", op=op)

    def _guarded(self, what: str, action: Callable[[], None]) -> None:
        """Run an upload; on any failure or interrupt (any ``BaseException``) stop the card,
        forget what is loaded (:meth:`abandon`) and re-raise: awgrt errors and interrupts as
        they are, anything else as a :class:`~awgrt.errors.CardError` saying what was being done."""
        try:
            action()
        except BaseException as exc:
            self.abandon()
            if isinstance(exc, AWGRTError) or not isinstance(exc, Exception):
                raise
            raise CardError(f"{what} failed: {type(exc).__name__}: {exc}", code=None) from exc

    def abandon(self) -> None:
        """Stop the card and forget what is loaded, so that the next upload is a full one. Called
        after any failure or interrupt during an upload; never raises."""
        self.program = None
        self._stop_quietly()

    def _stop_quietly(self) -> None:
        try:
            self._stop()
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass

    # ------------------------------------------------------------------ run control

    def start(self, *, force_trigger: bool = False) -> None:
        if self.program is None:
            raise ProgramError("nothing is loaded: load a program before start()", op="start")
        self._start(force_trigger)

    def stop(self) -> None:
        self._stop()

    def add_step_listener(self, fn: Callable[[StepEvent], None]) -> None:
        """Call ``fn`` with a :class:`~awgrt.program.StepEvent` each time the sequencer enters a step."""
        if not self.supports_step_events:
            raise UnsupportedError(
                f"{type(self).__name__} cannot report step entries (supports_step_events is False)", op="add_step_listener"
            )
        self._listeners.append(fn)

    def remove_step_listener(self, fn: Callable[[StepEvent], None]) -> None:
        if fn not in self._listeners:
            raise ProgramError(f"{fn!r} is not a step listener of this backend", op="remove_step_listener")
        self._listeners.remove(fn)

    def _notify(self, notices: Sequence[StepEvent]) -> None:
        """Deliver every notice to every listener exactly once; a listener that raises does not
        stop the others, and the first error is re-raised after all were delivered."""
        first: BaseException | None = None
        for notice in notices:
            for fn in list(self._listeners):
                try:
                    fn(notice)
                except Exception as exc:  # noqa: BLE001 - re-raised below, once
                    first = first or exc
        if first is not None:
            raise first

    # ------------------------------------------------------------------ card operations

    @abc.abstractmethod
    def _configure(self, config: OutputConfig) -> None: ...

    @abc.abstractmethod
    def _load(self, program: CompiledSequenceProgram) -> None: ...

    @abc.abstractmethod
    def _update_segments(self, program: CompiledSequenceProgram, indices: list[int]) -> None: ...

    @abc.abstractmethod
    def _write_steps(self, program: CompiledSequenceProgram) -> None: ...

    @abc.abstractmethod
    def _write_step_entries(self, program: CompiledSequenceProgram, indices: list[int]) -> None: ...

    @abc.abstractmethod
    def _start(self, force_trigger: bool) -> None: ...

    @abc.abstractmethod
    def _stop(self) -> None: ...

    @abc.abstractmethod
    def force_trigger(self) -> None: ...

    @abc.abstractmethod
    def current_step(self) -> int: ...

    @abc.abstractmethod
    def is_running(self) -> bool: ...

    @abc.abstractmethod
    def wait_ready(self, timeout_s: float) -> None: ...

    @abc.abstractmethod
    def read_back(self, n_steps: int, n_slots: int) -> CardReadback: ...
