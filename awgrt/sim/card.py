"""A cycle-accurate model of a Spectrum card's sequence memory: pure state and time, no I/O.

:class:`SimulatedCard` holds what the card holds (data memory split into ``MAXSEGMENTS`` equal
slots, the step memory, the start step, channel and stop-level settings) and offers the
operations the driver offers. Time is a virtual sample clock owned by the caller: sample 0 is the
start command, :meth:`SimulatedCard.advance` moves the clock on, :meth:`SimulatedCard.render`
moves it on and returns what the DACs received meanwhile. Every host operation happens at the
current sample ("now").

The sequencer is event-driven: it moves a whole step at a time (a step's ``loops`` passes are
one arithmetic step), an ENDLOOPONTRIG step waiting for a trigger costs nothing however long it
waits, and once a trigger-free walk comes round to a step it entered before, the card knows the
walk repeats itself (an *epoch*): it then jumps to any later time arithmetically and renders by
copying one period. Simulating seconds of a looping program costs microseconds. Samples are only
produced for the windows asked for.

Behaviour the vendor does not document is a named :class:`SimPolicy` with a documented default.

Besides sequence replay the card plays the standard modes (:meth:`SimulatedCard.set_replay_mode`):
``"single"`` (MEMSIZE samples, LOOPS times; 0 = until stopped), ``"continuous"`` (MEMSIZE samples
over and over until stopped, whatever LOOPS says), ``"singlerestart"`` (MEMSIZE samples once per
trigger, the card re-arming after each; LOOPS triggers, 0 = until stopped; [assume, as for multi:
triggers while the memory plays are not seen, and between plays the outputs sit at their stop
level]), ``"multi"`` (one SEGMENTSIZE
segment per trigger, the card re-arming after each [assume: triggers while a segment plays are not
seen, and between segments the outputs sit at their stop level]), ``"fifo"`` (FIFO single: the
samples the host supplies, played in order from the first trigger; when they run out before the
replay's end, SEGMENTSIZE x LOOPS or never for LOOPS 0, replay stops there with an underrun) and
``"fifo_multi"`` (the stream's next SEGMENTSIZE samples per trigger, LOOPS segments, 0 = endless;
a segment whose data has not all arrived when it plays ends replay with an underrun), and
``"gate"`` (standard gated replay [doc]: the memory plays while the gate is open and pauses, at the
stop level, while it is closed, going on where it paused at the next gate; LOOPS 0 wraps to the
memory's start with no gap and runs until stopped, LOOPS 1 plays the memory once, the last gate cut
off at its end, then the card is READY. Gates come from :meth:`SimulatedCard.external_gate` on an
input in the OR mask while triggers are enabled [assume: a gate's start and its end reach the
output after the same latency as a trigger; a forced trigger opens no gate]).

Timing rules:

- After ``start()`` the card is armed and outputs each channel's stop level. The first trigger
  (external, if enabled, or forced) starts replay: the first sample of the start step is output
  ``latency`` samples after the trigger, where latency = 238.5 clocks + 16 ns at up to 625 MS/s
  and 476.5 clocks + 16 ns above, rounded *up* to a whole sample (the first sample at or after
  the measured delay). At 625 MS/s that is ceil(248.5) = 249 samples.
- Each step plays its segment ``loops`` times back to back, with no gap and no repeated sample.
- ENDLOOPONTRIG: after its passes the step repeats its segment until a trigger has been seen and
  leaves at the end of the first pass that ends after it; never mid-segment.
- END: the step plays its passes whole, then the card is READY and outputs the stop levels.
- A host write to a slot takes effect from the sample it is made at: a pass in progress plays old
  samples before that point and new ones after (the card gives a mix; awgrt's runtime never
  writes a slot that is playing without saying so). The card counts such writes in
  ``live_slot_writes``.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, NoReturn, get_args

import numpy as np

from .. import spectrum as sp
from ..card import INTERNAL_CLOCK, XIO_LINES, XIO_MODES, CardSpec, ClockConfig, StepEntry, decode_step_entry
from ..errors import CardError, ProgramError
from ..program import StepEvent
from ..spectrum import StopLevel

INF = math.inf
#: Replay modes the simulated card plays (SPC_CARDMODE): see :meth:`SimulatedCard.set_replay_mode`.
REPLAY_MODES = ("sequence", "single", "continuous", "singlerestart", "multi", "gate", "fifo", "fifo_multi")
#: LOOPS of standard gated replay: 0 (the memory over and over, across gates, until stopped) or 1
#: (the memory once, the last gate cut off at its end) [doc: the M4i/M4x.66xx manual, "Gated Replay"].
GATE_LOOPS = (0, 1)
#: The standard modes' limits [doc: the manual's "Limits of segment size, memory size" table of the
#: generation modes]: MEMSIZE in steps of 32 from 32 up to the memory of the enabled channels;
#: SEGMENTSIZE (multi, FIFO) in steps of 16 from 16, at most half that memory (multi, FIFO multi)
#: or 8 Gi - 16 (FIFO single); LOOPS 0..1 for standard multi and gate, else 0..4 Gi - 1.
STANDARD_MEMSIZE_STEP = 32
STANDARD_SEGMENTSIZE_STEP = 16
FIFO_SINGLE_MAX_SEGMENT = 8 * 2**30 - 16
FIFO_MODES = ("fifo", "fifo_multi")
#: Standard-mode registers and the largest SPC_LOOPS accepted (a 32-bit register).
SPC_MEMSIZE = 10000
SPC_SEGMENTSIZE = 10010
SPC_LOOPS = 10020
MAX_STANDARD_LOOPS = 2**32 - 1
#: Trigger sources in SPC_TRIG_ORMASK / SPC_TRIG_ANDMASK.
TMASK_SOFTWARE, TMASK_EXT0, TMASK_EXT1 = sp.SPC_TMASK_SOFTWARE, sp.SPC_TMASK_EXT0, sp.SPC_TMASK_EXT1
#: M2STATUS bit for a FIFO overrun (acquisition) or underrun (replay).
M2STAT_DATA_OVERRUN = 0x400
#: Samples rendered per walk while no epoch is known (bounds the work between epoch checks).
RENDER_CHUNK = 1 << 18


#: When a trigger may end an ENDLOOPONTRIG step with loops > 1 (see :class:`SimPolicy`).
EndloopCheck = Literal["after_all_loops", "every_pass"]
ENDLOOP_CHECKS: tuple[str, ...] = get_args(EndloopCheck)


@dataclass(frozen=True)
class SimPolicy:
    """Choices where the card's behaviour is not documented.

    ``endloop_check``: ``"after_all_loops"`` (default) plays all ``loops`` passes of an
    ENDLOOPONTRIG step before a trigger can end it; ``"every_pass"`` lets it leave at the end of
    any pass once a trigger was seen. (awgrt emits loops = 1 on every wait step, so the two agree
    for its programs.)

    ``latch_earlier_triggers``: False (default): only a trigger that arrives while an
    ENDLOOPONTRIG step is playing ends it; True: a trigger that arrived earlier and has not
    ended a step yet counts too.

    ``prefetch``: 1 (default): the sequencer reads the entry of the next step when it starts the
    current one, so rewriting that entry during the current step takes effect only the next time
    it is fetched; 0: it reads each entry at the moment it enters the step.

    ``endloop_setup_samples``: a trigger must arrive at least this many samples before a pass
    ends for that pass to be the last (default 0).
    """

    endloop_check: EndloopCheck = "after_all_loops"
    latch_earlier_triggers: bool = False
    prefetch: int = 1
    endloop_setup_samples: int = 0

    def __post_init__(self) -> None:
        if self.endloop_check not in ENDLOOP_CHECKS:
            raise ProgramError(f"endloop_check={self.endloop_check!r} must be one of {ENDLOOP_CHECKS}", op="SimPolicy", value=self.endloop_check)
        if self.prefetch not in (0, 1):
            raise ProgramError(f"prefetch={self.prefetch!r} must be 0 or 1", op="SimPolicy", value=self.prefetch)
        if self.endloop_setup_samples < 0:
            raise ProgramError(f"endloop_setup_samples={self.endloop_setup_samples!r} must be >= 0", op="SimPolicy", value=self.endloop_setup_samples)


@dataclass
class _Epoch:
    """A stretch where the sequencer's walk repeats itself exactly: from ``anchor`` on, every
    ``period`` samples the steps in ``pattern`` (offset, step, entry) are entered again. It
    holds while no step entry, slot or trigger changes; events at samples < ``until`` belong to
    it. The sequencer jumps through it arithmetically and renders it by copying one period."""

    anchor: int
    period: int
    pattern: tuple[tuple[int, int, StepEntry], ...]
    until: float = INF

    def __post_init__(self) -> None:
        self.offsets = [p[0] for p in self.pattern]

    def events_between(self, a: int, b: float) -> list[StepEvent]:
        lo, hi = max(a, self.anchor), min(b, self.until)
        out: list[StepEvent] = []
        if lo >= hi:
            return out
        k = (lo - self.anchor) // self.period
        while True:
            base = self.anchor + k * self.period
            if base >= hi:
                return out
            for off, step, entry in self.pattern:
                t = base + off
                if lo <= t < hi:
                    out.append(StepEvent(t, step, entry.segment))
            k += 1

    def state_at(self, t: int) -> tuple[int, int, StepEntry]:
        """(origin, step, entry) of the step playing at sample ``t`` >= anchor."""
        k, pos = divmod(t - self.anchor, self.period)
        j = bisect.bisect_right(self.offsets, pos) - 1
        off, step, entry = self.pattern[j]
        return self.anchor + k * self.period + off, step, entry


class _TriggerQueue:
    """Pending trigger samples, sorted; consumed ones are skipped by an index, not copied."""

    def __init__(self) -> None:
        self.t: list[int] = []
        self.i = 0

    def add(self, x: int) -> None:
        bisect.insort(self.t, x, lo=self.i)

    def first_at_or_after(self, floor: int) -> int | None:
        j = bisect.bisect_left(self.t, floor, lo=self.i)
        return self.t[j] if j < len(self.t) else None

    def first(self) -> int | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def pop_first(self) -> int:
        x = self.t[self.i]
        self.i += 1
        return x

    def drop_before(self, x: float) -> int | None:
        """Drop triggers < x; return the last one dropped (None if none)."""
        j = bisect.bisect_left(self.t, x, lo=self.i)
        last = self.t[j - 1] if j > self.i else None
        self.i = j
        if self.i > 1024 and self.i * 2 > len(self.t):
            del self.t[: self.i]
            self.i = 0
        return last

    def clear(self) -> None:
        self.t, self.i = [], 0


@dataclass
class _Run:
    """The current step: slot ``slot`` of ``n`` samples played in passes from ``origin``."""

    step: int
    entry: StepEntry
    slot: int
    n: int
    origin: int


@dataclass
class _Slot:
    size: int = 0
    data: Any = None  # int16 (size, channels) once the slot has memory


def trigger_latency_samples(sample_rate_hz: float) -> int:
    """Samples from trigger to first output sample (see module doc for the rounding rule)."""
    clocks = 238.5 if sample_rate_hz <= 625e6 else 476.5
    return math.ceil(clocks + 16e-9 * sample_rate_hz - 1e-9)


class CardState(StrEnum):
    """Where the simulated card is: stopped with nothing started (idle), started and waiting for
    its first trigger (armed), replaying (running), or ended after an END step (ready). The
    values compare equal to their names as strings."""

    IDLE = "idle"
    ARMED = "armed"
    RUNNING = "running"
    READY = "ready"


IDLE, ARMED, RUNNING, READY = CardState


@dataclass
class SimulatedCard:
    """The sequence memory and sequencer of one card (see module doc).

    Every operation that the driver would reject raises :class:`~awgrt.errors.CardError` with
    Spectrum's error code and leaves the card unchanged.
    """

    spec: CardSpec
    policy: SimPolicy = field(default_factory=SimPolicy)

    def __post_init__(self) -> None:
        self.sample_rate_hz = min(625e6, self.spec.max_sample_rate_hz)
        self.n_channels = 1
        self.amplitude_mv = [1000] * self.spec.physical_channels
        #: Whether each output is switched on (SPC_ENABLEOUTn). The simulator's own default is on;
        #: the emulated driver switches them off on open, as a card opens.
        self.output_enabled = [True] * self.spec.physical_channels
        self.stop_levels = [StopLevel.ZERO] * self.spec.physical_channels
        self.custom_stop = [0] * self.spec.physical_channels
        self.max_segments = 0
        self.slots: list[_Slot] = []
        self.write_segment = 0
        self.steps: dict[int, StepEntry] = {}
        self.start_step = 0
        self.trigger_enabled = False
        self.now = 0
        self.state: CardState = IDLE
        self.triggered = False
        self.live_slot_writes = 0
        self._triggers = _TriggerQueue()  # pending trigger times, sequencer-visible
        self._trigger_floor = 0  # triggers before this sample no longer count (latch policy)
        self._run: _Run | None = None
        self._prefetched: tuple[int, StepEntry] | None = None
        self._ready_at = INF
        self._hold = np.zeros(self.spec.physical_channels, dtype=np.int16)  # last output sample per channel
        self._log: list[StepEvent | _Epoch] = []
        self._epoch: _Epoch | None = None  # the walk repeats itself: see _Epoch
        self._marks: dict[int, tuple[int, int]] = {}
        self._last_step = 0
        self._prev_run: _Run | None = None
        self.trigger_log: list[int] = []
        #: Replay mode: "sequence" (the default), or the standard modes "single" (the memory
        #: played ``loops`` times, 0 = until stopped) and "multi" (one segment of
        #: ``segment_size`` samples per trigger, ``loops`` rounds of all segments, 0 = endless).
        self.replay_mode = "sequence"
        self.memsize = 0
        self.segment_size = 0
        self.loops = 1
        self._memory: Any = None  # int16 (memsize, channels) once the standard modes have memory
        self._sequence_memory: tuple | None = None  # sequence slots/steps kept while a standard mode plays
        self._plays_left: float = INF  # multi: segment plays still to come
        # fifo: the stream the host supplied (chunks from stream sample _stream_base on), the
        # runs played from it (origin, first stream sample, length), and whether it ran dry
        self._stream: list[np.ndarray] = []
        self._stream_base = 0
        self._supplied = 0
        self._fifo_runs: list[tuple[int, int, float]] = []
        self.underrun = False
        # gate: the gates taken (input samples: open, close), and the hold before the first
        self._gates: list[tuple[int, int]] = []
        self._gate_hold0: np.ndarray | None = None
        self._gate_cut: float = INF  # CARD_STOP: nothing plays from here on
        #: Trigger sources (see :meth:`set_trigger_masks`); the simulator's default is EXT0.
        self.trigger_or_mask = TMASK_EXT0
        self.trigger_and_mask = 0
        #: SPC_TRIG_EXT0_LEVEL0 (mV): stored and read back; the simulated input has no analogue level.
        self.ext0_level_mv = 0
        #: The clock set-up (source, reference, clock output): stored and read back; the simulated
        #: sample clock is ideal whatever it says.
        #: The multi-purpose lines' modes (SPCM_X0_MODE ...): a line in synchronous digital output
        #: mode outputs one bit of a channel's samples, and that channel's DAC then plays the bits
        #: below the lowest one taken, as a two's complement number scaled to full range [seen: spcm's
        #: SynchronousDigitalIOs shifts the samples right by the bits it takes and puts the lines'
        #: levels on top].
        self.x_modes = [sp.SPCM_XMODE_DISABLE] * XIO_LINES
        self.clock: ClockConfig = INTERNAL_CLOCK
        self._and_edges: dict[int, set[int]] = {}  # AND mask: edges seen per sample

    # ================================================================== errors

    def _fail(self, code: int, message: str, register: int | str | None = None) -> NoReturn:
        raise CardError(f"{self.spec.name} (simulated): {message}", code=code, register=register)

    def _require_not_running(self, what: str, register: int | str | None = None) -> None:
        if self.state in (ARMED, RUNNING):
            self._fail(sp.ERR_RUNNING, f"{what} is not allowed while the card runs", register)

    # ================================================================== configuration

    def set_sample_rate(self, sample_rate_hz: float) -> None:
        problem = self.spec.sample_rate_problem(sample_rate_hz)
        if problem:
            self._fail(sp.ERR_VALUE, problem, "SPC_SAMPLERATE")
        self._require_not_running("changing the sample rate", "SPC_SAMPLERATE")
        self.sample_rate_hz = float(sample_rate_hz)

    def set_channels(self, n_channels: int) -> None:
        """Enable hardware channels 0 .. n_channels-1."""
        if n_channels not in self.spec.channel_counts:
            self._fail(sp.ERR_CHANNEL, f"{n_channels} enabled channels; the card runs with {list(self.spec.channel_counts)}", "SPC_CHENABLE")
        self._require_not_running("changing the enabled channels", "SPC_CHENABLE")
        if n_channels != self.n_channels:
            self.slots = [_Slot() for _ in self.slots]  # memory is laid out per channel count
        self.n_channels = n_channels

    def set_amplitude(self, channel: int, amplitude_mv: int) -> None:
        self._check_channel(channel, "SPC_AMP0")
        if not self.spec.min_amplitude_mv <= amplitude_mv <= self.spec.max_amplitude_mv or int(amplitude_mv) != amplitude_mv:
            self._fail(sp.ERR_VALUE, f"amplitude {amplitude_mv!r} mV outside {self.spec.min_amplitude_mv}..{self.spec.max_amplitude_mv} mV", "SPC_AMP0")
        self.amplitude_mv[channel] = int(amplitude_mv)

    def set_stop_level(self, channel: int, level: StopLevel | int, custom: int = 0) -> None:
        self._check_channel(channel, sp.SPC_CH0_STOPLEVEL + channel)
        try:
            level = StopLevel(level)
        except ValueError:
            self._fail(sp.ERR_VALUE, f"stop level {level!r} unknown", sp.SPC_CH0_STOPLEVEL + channel)
        if not -32768 <= custom <= 32767:
            self._fail(sp.ERR_VALUE, f"custom stop level {custom} outside int16", sp.SPC_CH0_STOPLEVEL + channel)
        self.stop_levels[channel] = level
        self.custom_stop[channel] = int(custom)

    def _check_channel(self, channel: int, register: int | str) -> None:
        if not 0 <= channel < self.spec.physical_channels:
            self._fail(sp.ERR_CHANNEL, f"channel {channel} does not exist ({self.spec.physical_channels} channels)", register)

    # ================================================================== sequence memory

    def set_max_segments(self, n: int) -> None:
        """Split the data memory into ``n`` equal slots (``SPC_SEQMODE_MAXSEGMENTS``)."""
        reg = sp.SPC_SEQMODE_MAXSEGMENTS
        if not isinstance(n, int) or n < self.spec.min_segments or n > self.spec.max_segments or n & (n - 1):
            self._fail(sp.ERR_VALUE, f"MAXSEGMENTS={n!r} must be a power of two in {self.spec.min_segments}..{self.spec.max_segments}", reg)
        self._require_not_running("changing MAXSEGMENTS", reg)
        self.max_segments = n
        self.slots = [_Slot() for _ in range(n)]
        self.write_segment = 0

    @property
    def slot_capacity(self) -> int:
        """Samples per channel one slot can hold."""
        if not self.max_segments:
            return 0
        return self.spec.max_segment_length(self.n_channels, self.max_segments)

    def select_segment(self, index: int) -> None:
        reg = sp.SPC_SEQMODE_WRITESEGMENT
        if not self.max_segments:
            self._fail(sp.ERR_SEQUENCE, "set MAXSEGMENTS before selecting a segment", reg)
        if not isinstance(index, int) or not 0 <= index < self.max_segments:
            self._fail(sp.ERR_VALUE, f"segment {index!r} outside 0..{self.max_segments - 1}", reg)
        self.write_segment = index

    def set_segment_size(self, n_samples: int) -> None:
        """Valid samples per channel of the selected slot (``SPC_SEQMODE_SEGMENTSIZE``)."""
        reg = sp.SPC_SEQMODE_SEGMENTSIZE
        if not self.max_segments:
            self._fail(sp.ERR_SEQUENCE, "set MAXSEGMENTS before a segment size", reg)
        g = self.spec.segment_granularity
        least = self.spec.min_segment_length(self.n_channels)
        if not isinstance(n_samples, int) or n_samples < least or n_samples % g or n_samples > self.slot_capacity:
            self._fail(
                sp.ERR_VALUE,
                f"segment {self.write_segment}: size {n_samples!r} must be a multiple of {g} in {least}..{self.slot_capacity} "
                f"for {self.n_channels} channels and {self.max_segments} slots",
                reg,
            )
        slot = self.slots[self.write_segment]
        if self.state in (ARMED, RUNNING) and n_samples != slot.size and self._slot_in_use(self.write_segment):
            self._fail(sp.ERR_RUNNING, f"segment {self.write_segment} is in use: its size cannot change while the card runs", reg)
        if n_samples != slot.size:
            slot.data = np.zeros((n_samples, self.n_channels), dtype=np.int16)
        slot.size = n_samples

    def write_segment_data(self, data: np.ndarray, offset: int = 0) -> None:
        """Write int16 samples (interleaved 1-D, or (n, channels)) into the selected slot from
        sample ``offset`` on, as a DMA transfer does."""
        slot = self.slots[self.write_segment] if self.max_segments else None
        if slot is None or not slot.size:
            self._fail(sp.ERR_SEQUENCE, f"segment {self.write_segment} has no size: set SEGMENTSIZE before writing data", "DMA")
        arr = self._as_samples(data)
        if offset < 0 or offset + arr.shape[0] > slot.size:
            self._fail(
                sp.ERR_VALUE,
                f"segment {self.write_segment}: {arr.shape[0]} samples at offset {offset} are longer than its size {slot.size}",
                "DMA",
            )
        if self.state == RUNNING and self._run is not None and self._run.slot == self.write_segment and self.now >= self._run.origin:
            self.live_slot_writes += 1
        slot.data[offset : offset + arr.shape[0]] = arr
        self._invalidate()

    def _as_samples(self, data: np.ndarray) -> np.ndarray:
        """DMA data as (samples, enabled channels) int16, or the driver's error."""
        arr = np.asarray(data)
        if arr.dtype != np.int16:
            self._fail(sp.ERR_VALUE, f"data must be int16, got {arr.dtype}", "DMA")
        if arr.ndim == 1:
            if arr.size % self.n_channels:
                self._fail(sp.ERR_VALUE, f"{arr.size} interleaved values do not fill whole samples of {self.n_channels} channels", "DMA")
            arr = arr.reshape(-1, self.n_channels)
        if arr.ndim != 2 or arr.shape[1] != self.n_channels:
            self._fail(sp.ERR_VALUE, f"data shape {np.asarray(data).shape} does not match {self.n_channels} enabled channels", "DMA")
        return arr

    def segment_data(self, index: int) -> np.ndarray:
        """A read-only view of slot ``index`` (its valid samples)."""
        slot = self.slots[index]
        view = (slot.data if slot.data is not None else np.zeros((0, self.n_channels), np.int16))[: slot.size]
        view = view.view()
        view.flags.writeable = False
        return view

    def write_step(self, index: int, word: int) -> None:
        """Write the 64-bit entry of step ``index`` (unsigned or the signed int64 view)."""
        reg = sp.SPC_SEQMODE_STEPMEM0 + index if isinstance(index, int) else "STEPMEM"
        if not isinstance(index, int) or not 0 <= index < self.spec.max_steps:
            self._fail(sp.ERR_VALUE, f"step {index!r} outside 0..{self.spec.max_steps - 1}", reg)
        try:
            entry = decode_step_entry(word)
        except Exception as exc:  # noqa: BLE001 - any decoding problem is a register value error
            self._fail(sp.ERR_VALUE, f"step {index}: {exc}", reg)
        if not 1 <= entry.loops <= self.spec.max_loops:
            self._fail(sp.ERR_VALUE, f"step {index}: loops={entry.loops} outside 1..{self.spec.max_loops}", reg)
        if self.max_segments and entry.segment >= self.max_segments:
            self._fail(sp.ERR_VALUE, f"step {index}: segment {entry.segment} outside 0..{self.max_segments - 1}", reg)
        if entry.next >= self.spec.max_steps:
            self._fail(sp.ERR_VALUE, f"step {index}: next step {entry.next} outside 0..{self.spec.max_steps - 1}", reg)
        if self.state in (ARMED, RUNNING) and not self.slots[entry.segment].size:
            self._fail(sp.ERR_SEQUENCE, f"step {index}: segment {entry.segment} is empty and the card is running", reg)
        self.steps[index] = entry
        self._invalidate()

    def set_start_step(self, index: int) -> None:
        reg = sp.SPC_SEQMODE_STARTSTEP
        if not isinstance(index, int) or not 0 <= index < self.spec.max_steps:
            self._fail(sp.ERR_VALUE, f"start step {index!r} outside 0..{self.spec.max_steps - 1}", reg)
        self._require_not_running("changing the start step", reg)
        self.start_step = index

    def _slot_in_use(self, slot: int) -> bool:
        """Referenced by the step table, playing now, or in the prefetched entry."""
        playing = self._run is not None and self._run.slot == slot
        prefetched = self._prefetched is not None and self._prefetched[1].segment == slot
        return playing or prefetched or any(e.segment == slot for e in self.steps.values())

    def set_x_mode(self, line: int, mode: int) -> None:
        """SPCM_X<line>_MODE: one of :data:`~awgrt.card.XIO_MODES`; a synchronous digital
        output names one physical channel and one bit, 15 .. 12."""
        reg = sp.SPCM_X0_MODE + line if isinstance(line, int) else "XMODE"
        if not isinstance(line, int) or not 0 <= line < XIO_LINES:
            self._fail(sp.ERR_VALUE, f"line X{line!r} outside X0..X{XIO_LINES - 1}", reg)
        base = mode & 0xFFFFF
        try:
            source = sp.digout_source(mode)
        except ProgramError as exc:
            self._fail(sp.ERR_VALUE, f"X{line}: {exc.detail}", reg)
        extra = mode & ~0xFFFFF if source is None else 0
        if base & ~XIO_MODES or extra or bin(base).count("1") > 1:
            self._fail(sp.ERR_VALUE, f"X{line} mode {mode:#x} is not one this card offers ({XIO_MODES:#x}, one at a time)", reg)
        if source is not None and source[0] >= self.spec.physical_channels:
            self._fail(sp.ERR_VALUE, f"X{line}: channel {source[0]} does not exist on {self.spec.name}", reg)
        self.x_modes[line] = mode
        self._invalidate()

    def _digital_outputs(self, out: np.ndarray, lines: np.ndarray | None) -> None:
        """The synchronous digital outputs of rendered samples ``out`` (see ``x_modes``): each
        DIGOUT line's level into ``lines`` (samples x lines, 0/1), and each channel that lends
        bits the analog value of the bits below them, in place."""
        if lines is not None:
            lines[...] = 0
        sources = [(line, sp.digout_source(m)) for line, m in enumerate(self.x_modes)]
        taken = [(line, src) for line, src in sources if src is not None]
        if not taken:
            return
        words = out.view(np.uint16)
        lowest: dict[int, int] = {}
        for line, (ch, bit) in taken:
            if lines is not None:
                lines[:, line] = (words[:, ch] >> bit) & 1
            lowest[ch] = min(lowest.get(ch, 16), bit)
        for ch, bit in lowest.items():
            out[:, ch] = (words[:, ch] << (16 - bit)).view(np.int16)

    # ================================================================== standard replay modes

    def set_replay_mode(self, mode: str) -> None:
        """One of :data:`REPLAY_MODES` (SPC_CARDMODE); not while running."""
        if mode not in REPLAY_MODES:
            self._fail(sp.ERR_FEATURE, f"replay mode {mode!r} is not emulated (emulated: {', '.join(REPLAY_MODES)})", sp.SPC_CARDMODE)
        self._require_not_running("changing the card mode", sp.SPC_CARDMODE)
        if mode == "sequence" and self._sequence_memory is not None:
            self.max_segments, self.slots, self.steps, self.start_step = self._sequence_memory
            self._sequence_memory = None
        self.replay_mode = mode

    def _standard_only(self, what: str, register: int) -> None:
        if self.replay_mode == "sequence":
            self._fail(sp.ERR_SEQUENCE, f"{what} is for the standard replay modes; the card is in sequence mode", register)
        self._require_not_running(f"changing {what}", register)

    def set_memsize(self, n_samples: int) -> None:
        """SPC_MEMSIZE: samples per channel the standard modes replay (see
        :data:`STANDARD_MEMSIZE_STEP`: from 32 in steps of 32, within the memory of the enabled
        channels)."""
        self._standard_only("MEMSIZE", SPC_MEMSIZE)
        g = least = STANDARD_MEMSIZE_STEP
        most = self.spec.max_segment_length(self.n_channels, 1) // g * g
        if not isinstance(n_samples, int) or n_samples < least or n_samples % g or n_samples > most:
            self._fail(sp.ERR_VALUE, f"MEMSIZE={n_samples!r} must be a multiple of {g} in {least}..{most} for {self.n_channels} channels", SPC_MEMSIZE)
        if n_samples != self.memsize or self._memory is None or self._memory.shape[1] != self.n_channels:
            self._memory = np.zeros((n_samples, self.n_channels), dtype=np.int16)
        self.memsize = n_samples

    def set_standard_segment_size(self, n_samples: int) -> None:
        """SPC_SEGMENTSIZE (multi, FIFO): samples per channel replayed per trigger (FIFO single: per
        loop), from 16 in steps of 16 (:data:`STANDARD_SEGMENTSIZE_STEP`; the mode's largest is
        checked at start)."""
        self._standard_only("SEGMENTSIZE", SPC_SEGMENTSIZE)
        g = STANDARD_SEGMENTSIZE_STEP
        if not isinstance(n_samples, int) or n_samples < g or n_samples % g or n_samples > FIFO_SINGLE_MAX_SEGMENT:
            self._fail(sp.ERR_VALUE, f"SEGMENTSIZE={n_samples!r} must be a multiple of {g} in {g}..{FIFO_SINGLE_MAX_SEGMENT}", SPC_SEGMENTSIZE)
        self.segment_size = n_samples

    def set_loops(self, loops: int) -> None:
        """SPC_LOOPS: how often the memory (single) or the round of segments (multi) is replayed;
        0 replays until the card is stopped."""
        self._standard_only("LOOPS", SPC_LOOPS)
        if not isinstance(loops, int) or not 0 <= loops <= MAX_STANDARD_LOOPS:
            self._fail(sp.ERR_VALUE, f"LOOPS={loops!r} must be in 0..{MAX_STANDARD_LOOPS} (0: until stopped)", SPC_LOOPS)
        if self.replay_mode in ("gate", "multi") and loops not in GATE_LOOPS:
            self._fail(sp.ERR_VALUE, f"LOOPS={loops!r}: {self._mode_loops_rule()}", SPC_LOOPS)
        self.loops = loops

    def _mode_loops_rule(self) -> str:
        if self.replay_mode == "gate":
            return "gated replay takes 0 (the memory over and over until stopped) or 1 (the memory once)"
        return "standard multi replay takes 0 (its segments round and round until stopped) or 1 (each segment once)"

    def write_memory(self, data: np.ndarray, offset: int = 0) -> None:
        """A DMA in a standard mode: int16 samples into the replay memory from sample ``offset``."""
        if self._memory is None:
            self._fail(sp.ERR_SEQUENCE, "set MEMSIZE before writing data in a standard replay mode", "DMA")
        arr = self._as_samples(data)
        if offset < 0 or offset + arr.shape[0] > self.memsize:
            self._fail(sp.ERR_VALUE, f"{arr.shape[0]} samples at offset {offset} do not fit MEMSIZE={self.memsize}", "DMA")
        self._memory[offset : offset + arr.shape[0]] = arr
        self._invalidate()

    # ------------------------------------------------------------------ fifo

    @property
    def fifo_capacity(self) -> int:
        """Samples per channel the on-board FIFO holds (the data memory of the enabled channels)."""
        return self.spec.memory_samples // self.n_channels

    def fifo_fill(self) -> int:
        """Samples supplied and not yet played (the on-board FIFO's fill) at the current sample."""
        self._advance_to(self.now, None)
        return self._supplied - self._consumed(self.now)

    def supply(self, data: np.ndarray) -> None:
        """FIFO modes: samples moved from the host's buffer into the on-board FIFO, played after
        everything supplied before them; refused beyond the FIFO's capacity."""
        if self.replay_mode not in FIFO_MODES:
            self._fail(sp.ERR_SEQUENCE, "streaming data is for FIFO replay", "DMA")
        arr = self._as_samples(data)
        if self.fifo_fill() + arr.shape[0] > self.fifo_capacity:
            self._fail(sp.ERR_FIFOHWOVERRUN, f"{arr.shape[0]} samples do not fit the on-board FIFO ({self.fifo_capacity - self.fifo_fill()} free)", "DMA")
        if self.state == READY and self._fifo_runs:
            return  # replay has ended (underrun or its length played): the card takes no more
        self._stream.append(arr.copy())
        self._supplied += arr.shape[0]

    def _run_end(self, run: tuple[int, int, float]) -> float:
        """The sample a FIFO run (origin, first stream sample, length) stops at: its length or
        the end of what was supplied, whichever comes first."""
        origin, k0, n = run
        return origin + min(n, self._supplied - k0)

    def _consumed(self, t: float) -> int:
        """Stream samples played before sample ``t``."""
        if not self._fifo_runs:
            return 0
        origin, k0, _ = self._fifo_runs[-1]
        return k0 + int(max(0, min(t, self._run_end(self._fifo_runs[-1])) - origin))

    def _stream_samples(self, k0: int, k1: int) -> np.ndarray:
        """Stream samples [k0, k1) (indices since the stream's start)."""
        parts, pos = [], self._stream_base
        for chunk in self._stream:
            lo, hi = max(k0, pos), min(k1, pos + chunk.shape[0])
            if lo < hi:
                parts.append(chunk[lo - pos : hi - pos])
            pos += chunk.shape[0]
        return np.concatenate(parts) if parts else np.zeros((0, self.n_channels), np.int16)

    def _start_fifo_run(self, origin: int) -> None:
        """A trigger was taken: FIFO single plays the whole stream (SEGMENTSIZE x LOOPS, or
        endless), FIFO multi its next segment."""
        if self.replay_mode == "fifo":
            length = self.segment_size * self.loops if self.loops else INF
            self._fifo_runs.append((origin, 0, length))
        else:
            k0 = self._fifo_runs[-1][1] + self.segment_size if self._fifo_runs else 0
            self._fifo_runs.append((origin, k0, self.segment_size))

    def _advance_fifo(self, target: int) -> None:
        """Play the current FIFO run up to ``target``: it ends whole (FIFO multi re-arms for the
        next segment unless the last one has played), or early where the data ran out."""
        if self.state != RUNNING:
            return
        run = self._fifo_runs[-1]
        end = self._run_end(run)
        if target < end:
            return
        origin, k0, n = run
        played = int(end - origin)
        if played:
            self._hold[: self.n_channels] = self._stream_samples(k0 + played - 1, k0 + played)[0]
        if played < n:  # ran dry: an underrun ends replay
            self.underrun = True
        elif self.replay_mode == "fifo_multi":
            self._plays_left -= 1
            if self._plays_left > 0:
                self.state = ARMED
                self._triggers.drop_before(int(end))  # triggers during a segment are not seen
                return
        self.state = READY
        self._ready_at = int(end)

    def _forget_played(self) -> None:
        """Drop stream chunks that have played whole (the FIFO's memory is what is still to play)."""
        consumed = self._consumed(self.now)
        while self._stream and self._stream_base + self._stream[0].shape[0] < consumed:
            self._stream_base += self._stream.pop(0).shape[0]

    def _render_fifo(self, out: np.ndarray, w0: int, a: int, b: int) -> None:
        held = self._hold.copy()
        first = len(self._fifo_runs)
        self._advance_to(b, None)
        active = out[:, : self.n_channels]
        cursor = a
        for run in self._fifo_runs[max(0, first - 1) :]:  # the run in play at a, and those begun since
            origin, k0, _ = run
            lo, hi = int(max(a, min(origin, b))), int(max(a, min(self._run_end(run), b)))
            if lo >= hi:
                continue
            active[cursor - w0 : lo - w0] = self._stop_values(held)[: self.n_channels]
            active[lo - w0 : hi - w0] = self._stream_samples(k0 + lo - origin, k0 + hi - origin)
            held = np.concatenate([active[hi - 1 - w0], held[self.n_channels :]]).astype(np.int16)
            cursor = hi
        active[cursor - w0 : b - w0] = self._stop_values(held)[: self.n_channels]
        self._hold = held

    def standard_problems(self) -> list[str]:
        """What :meth:`start` refuses in a standard mode."""
        half = self.spec.max_segment_length(self.n_channels, 1) // 2 // STANDARD_SEGMENTSIZE_STEP * STANDARD_SEGMENTSIZE_STEP
        if self.replay_mode in FIFO_MODES:
            if (self.loops or self.replay_mode == "fifo_multi") and not self.segment_size:
                return [f"LOOPS={self.loops} replays that many segments: set SEGMENTSIZE (or LOOPS 0 to stream until stopped)"]
            if self.replay_mode == "fifo_multi" and self.segment_size > half:
                return [f"SEGMENTSIZE={self.segment_size} is more than FIFO multi replay takes for {self.n_channels} channels ({half})"]
            return []
        if not self.memsize or self._memory is None:
            return ["MEMSIZE is not set"]
        if self._memory.shape[1] != self.n_channels:
            return [f"MEMSIZE was set for {self._memory.shape[1]} channels, {self.n_channels} are enabled now: set it again"]
        if self.replay_mode in ("gate", "multi") and self.loops not in GATE_LOOPS:
            return [f"LOOPS={self.loops}: {self._mode_loops_rule()}"]
        if self.replay_mode == "multi":  # continuous and singlerestart replay the whole memory
            if not self.segment_size:
                return ["SEGMENTSIZE is not set"]
            if self.segment_size > half:
                return [f"SEGMENTSIZE={self.segment_size} is more than standard multi replay takes for {self.n_channels} channels ({half})"]
            if self.memsize % self.segment_size:
                return [f"MEMSIZE={self.memsize} is not a whole number of segments of SEGMENTSIZE={self.segment_size}"]
        return []

    def _load_standard(self) -> None:
        """Express the standard mode as the sequencer's slots and steps (the sequence memory is
        kept and comes back with sequence mode): single is one step of ``loops`` passes over the
        memory (0: a step that repeats itself); multi has one step per segment, each ending like
        END, after which the card re-arms for the next segment's trigger (see ``_advance_to``)."""
        if self._sequence_memory is None:
            self._sequence_memory = (self.max_segments, self.slots, self.steps, self.start_step)
        if self.replay_mode in FIFO_MODES:  # no steps: the stream is played as it comes
            self._fifo_runs = []
            self.underrun = False
            self._plays_left = INF if self.loops == 0 else self.loops
            return
        if self.replay_mode == "gate":  # no steps: the memory plays while a gate is open
            self._gates = []
            self._gate_hold0 = self._hold.copy()
            self._gate_cut = INF
            return
        mem = self._memory
        if self.replay_mode in ("single", "continuous"):
            loops = self.loops if self.replay_mode == "single" else 0
            self.slots = [_Slot(self.memsize, mem)]
            self.steps = {0: StepEntry(0, 0, max(1, loops), False, loops > 0)}
            self._plays_left = INF
        elif self.replay_mode == "singlerestart":  # one play of the memory per trigger, re-arming
            self.slots = [_Slot(self.memsize, mem)]
            self.steps = {0: StepEntry(0, 0, 1, False, True)}
            self._plays_left = INF if self.loops == 0 else self.loops
        else:
            k = self.memsize // self.segment_size
            n = self.segment_size
            self.slots = [_Slot(n, mem[i * n : (i + 1) * n]) for i in range(k)]
            self.steps = {i: StepEntry(i, (i + 1) % k, 1, False, True) for i in range(k)}
            self._plays_left = INF if self.loops == 0 else k * self.loops
        self.max_segments = len(self.slots)
        self.start_step = 0

    # ================================================================== commands

    def sequence_problems(self) -> list[str]:
        """What :meth:`start` would refuse: the walk from the start step must only meet written
        steps that point at slots holding data."""
        if not self.max_segments:
            return ["MAXSEGMENTS is not set"]
        out, seen, i = [], set(), self.start_step
        while i not in seen:
            seen.add(i)
            entry = self.steps.get(i)
            if entry is None:
                out.append(f"step {i} is reached but was never written")
                break
            if entry.segment >= self.max_segments:
                out.append(f"step {i} points at segment {entry.segment} beyond MAXSEGMENTS={self.max_segments}")
            elif not self.slots[entry.segment].size:
                out.append(f"step {i} points at empty segment {entry.segment}")
            if entry.end:
                break
            i = entry.next
        return out

    def start(self) -> None:
        """CARD_START: check the sequence, arm, and wait for the first trigger."""
        self._require_not_running("CARD_START", sp.SPC_M2CMD)
        if self.replay_mode != "sequence":
            problems = self.standard_problems()
            if problems:
                self._fail(sp.ERR_SEQUENCE, "cannot start: " + "; ".join(problems), sp.SPC_M2CMD)
            self._load_standard()
        problems = self.sequence_problems() if self.replay_mode not in (*FIFO_MODES, "gate") else []
        if problems:
            self._fail(sp.ERR_SEQUENCE, "cannot start: " + "; ".join(problems), sp.SPC_M2CMD)
        self.state = ARMED
        self.triggered = False
        self._last_step = self.start_step
        self._prev_run = None
        self._triggers.drop_before(self.now)
        self._run = None
        self._prefetched = None
        self._ready_at = INF
        self._invalidate()

    def set_trigger_masks(self, or_mask: int, and_mask: int) -> None:
        """SPC_TRIG_ORMASK / SPC_TRIG_ANDMASK: which sources trigger (bits: software 0x1, EXT0
        0x2, EXT1 0x4). A source in the OR mask triggers on its own; the sources of the AND mask
        trigger together, when each has an edge at the same sample [assume: the card combines
        edge-mode inputs that way]; the software trigger can only be in the OR mask."""
        known = TMASK_SOFTWARE | TMASK_EXT0 | TMASK_EXT1
        if or_mask & ~known or and_mask & ~(TMASK_EXT0 | TMASK_EXT1):
            bad = "OR" if or_mask & ~known else "AND"
            self._fail(sp.ERR_VALUE, f"trigger {bad} mask {(or_mask if bad == 'OR' else and_mask):#x} names a source this card does not have", "TRIG_MASK")
        self.trigger_or_mask, self.trigger_and_mask = or_mask, and_mask

    def enable_trigger(self) -> None:
        """CARD_ENABLETRIGGER: let the selected trigger sources in; a software trigger in the OR
        mask fires at once on an armed card."""
        self.trigger_enabled = True
        if self.trigger_or_mask & TMASK_SOFTWARE and self.state == ARMED and self.replay_mode != "gate":
            self._add_trigger(self.now)

    def force_trigger(self) -> None:
        """CARD_FORCETRIGGER: a software trigger now (works whether or not triggers are enabled)."""
        if self.state not in (ARMED, RUNNING):
            self._fail(sp.ERR_SEQUENCE, "FORCETRIGGER needs a started card", sp.SPC_M2CMD)
        if self.replay_mode == "gate":  # [assume] a software trigger has no length: it opens no gate
            return
        self._add_trigger(self.now)

    def external_trigger(self, sample: int, line: int = 0) -> None:
        """A trigger edge on input EXT<line> at ``sample`` (now or later); it counts only while
        triggers are enabled and the masks select that input (see :meth:`set_trigger_masks`)."""
        if sample < self.now:
            raise ProgramError(f"trigger at sample {sample} is in the past (now {self.now})", op="external trigger", value=sample)
        if line not in (0, 1):
            raise ProgramError(f"trigger input EXT{line} does not exist (EXT0, EXT1)", op="external trigger", value=line)
        if not self.trigger_enabled:
            return
        bit = TMASK_EXT0 if line == 0 else TMASK_EXT1
        if self.trigger_or_mask & bit:
            self._add_trigger(int(sample))
        elif self.trigger_and_mask & bit:
            edges = self._and_edges.setdefault(int(sample), set())
            edges.add(bit)
            if sum(edges) == self.trigger_and_mask:
                self._add_trigger(int(sample))

    def external_gate(self, start: int, stop: int, line: int = 0) -> None:
        """Gated replay: the gate condition on input EXT<line> holds from sample ``start`` (now or
        later) to ``stop`` (as the input's trigger mode reads the signal: a rising edge to the
        falling one, a level while it lasts). It counts only while triggers are enabled and the OR
        mask selects that input; gates come in time order and do not overlap."""
        if self.replay_mode != "gate":
            raise ProgramError(f"a gate is for gated replay; the card is in {self.replay_mode} mode", op="external gate", value=self.replay_mode)
        if start < self.now:
            raise ProgramError(f"gate opening at sample {start} is in the past (now {self.now})", op="external gate", value=start)
        if stop <= start:
            raise ProgramError(f"a gate closes after it opens (open {start}, close {stop})", op="external gate", value=(start, stop))
        if line not in (0, 1):
            raise ProgramError(f"trigger input EXT{line} does not exist (EXT0, EXT1)", op="external gate", value=line)
        if self._gates and start < self._gates[-1][1]:
            raise ProgramError(f"gate [{start}, {stop}) begins before the last one closes ({self._gates[-1][1]})", op="external gate", value=start)
        if self.trigger_enabled and self.state in (ARMED, RUNNING) and self.trigger_or_mask & (TMASK_EXT0 if line == 0 else TMASK_EXT1):
            self._gates.append((int(start), int(stop)))

    def _gate_spans(self) -> tuple[list[tuple[int, int, int]], float]:
        """Gated replay's played spans (first and end output sample, memory samples played before)
        and the sample replay ends at (LOOPS 1: the memory played once; else never)."""
        lat = trigger_latency_samples(self.sample_rate_hz)
        total = self.memsize if self.loops == 1 else INF
        spans, played = [], 0
        for s, e in self._gates:
            n = int(min(e - s, total - played, self._gate_cut - (s + lat)))
            if n <= 0:
                break
            spans.append((s + lat, s + lat + n, played))
            played += n
            if played >= total:
                return spans, s + lat + n
        return spans, INF

    def _gate_sample(self, position: int) -> np.ndarray:
        """The hold after memory sample ``position`` (of the whole replay) played last."""
        held = self._hold.copy()
        held[: self.n_channels] = self._memory[position % self.memsize]
        return held

    def _advance_gate(self, target: int) -> None:
        if self.state not in (ARMED, RUNNING):
            return
        spans, end = self._gate_spans()
        lat = trigger_latency_samples(self.sample_rate_hz)
        for sa, _, _ in spans:  # a gate that plays is a trigger taken (M2STAT_CARD_TRIGGER)
            if sa - lat < target and sa - lat not in self.trigger_log:
                self.trigger_log.append(sa - lat)
                self.triggered = True
                self.state = RUNNING
        if end <= target:
            a, b, p0 = spans[-1]
            self._hold = self._gate_sample(p0 + b - a - 1)
            self.state = READY
            self._ready_at = int(end)

    def _gate_hold_before(self, t: int) -> np.ndarray:
        """What the outputs hold at sample t-1 in gated replay: the last sample played before t,
        or the stop level if none has played yet."""
        held = self._gate_hold0 if self._gate_hold0 is not None else self._hold
        for a, b, p0 in self._gate_spans()[0]:
            if a >= t:
                break
            held = self._gate_sample(p0 + min(b, t) - a - 1)
        return held

    def _render_gate(self, out: np.ndarray, w0: int, a: int, b: int) -> None:
        self._advance_gate(b)
        active = out[:, : self.n_channels]
        held = self._gate_hold_before(a)
        cursor = a
        for sa, sb, p0 in self._gate_spans()[0]:
            lo, hi = max(a, sa), min(b, sb)
            if lo >= hi:
                continue
            active[cursor - w0 : lo - w0] = self._stop_values(held)[: self.n_channels]
            idx = (p0 + (lo - sa) + np.arange(hi - lo)) % self.memsize
            active[lo - w0 : hi - w0] = self._memory[idx]
            held = self._gate_sample(p0 + hi - sa - 1)
            cursor = hi
        active[cursor - w0 : b - w0] = self._stop_values(held)[: self.n_channels]

    def _add_trigger(self, sample: int) -> None:
        self._triggers.add(sample)
        self._invalidate()

    def stop(self) -> None:
        """CARD_STOP: end replay now; outputs go to their stop levels, the card reports READY."""
        if self.state in (ARMED, RUNNING):
            self._advance_to(self.now, None)
            if self.state == RUNNING:
                self._hold = self._gate_hold_before(self.now) if self.replay_mode == "gate" else self._last_output_before(self.now)
        if self.replay_mode == "gate":
            self._gate_cut = min(self._gate_cut, self.now)
        self.state = READY if self.state != IDLE else IDLE
        self._ready_at = min(self._ready_at, self.now)
        self._invalidate()
        self._run = None
        self.trigger_enabled = False
        self._triggers.clear()

    # ================================================================== status

    def status(self) -> int:
        """M2STATUS bits at the current sample."""
        bits = 0
        if self.state in (ARMED, RUNNING, READY):
            bits |= sp.M2STAT_CARD_PRETRIGGER
        if self.triggered:
            bits |= sp.M2STAT_CARD_TRIGGER
        if self.state == READY:
            bits |= sp.M2STAT_CARD_READY
        if self.replay_mode in FIFO_MODES and self.underrun:
            bits |= M2STAT_DATA_OVERRUN  # replay ran out of data (an underrun)
        return bits

    @property
    def ready_at(self) -> int | None:
        """Sample at which the card became READY (END played, or stopped), None while it is not."""
        return None if self._ready_at == INF else int(self._ready_at)

    def current_step(self) -> int:
        """SPC_SEQMODE_STATUS: the step playing now (the start step until replay begins)."""
        if self._run is not None:
            return self._run.step
        return self._last_step if self.state == READY else self.start_step

    # ================================================================== time

    def advance(self, n_samples: int) -> None:
        """Move the clock on by ``n_samples`` without producing samples."""
        if n_samples < 0:
            raise ProgramError(f"time only moves forward (asked to advance by {n_samples!r} samples)", op="advance", value=n_samples)
        self._advance_to(self.now + n_samples, None)
        self.now += n_samples
        if self.replay_mode in FIFO_MODES:
            self._forget_played()

    def render(self, n_samples: int, out: np.ndarray | None = None, lines: np.ndarray | None = None) -> np.ndarray:
        """Move the clock on by ``n_samples`` and return what the DACs played meanwhile:
        int16 of shape (n_samples, physical_channels of the card), disabled channels at their stop level.
        ``out`` (optional) is a C-contiguous int16 array of that shape to fill and return.
        ``lines`` (optional): a uint8 array (n_samples, :data:`~awgrt.card.XIO_LINES`) that
        receives the multi-purpose lines in synchronous digital output mode (0 or 1; other lines 0);
        a channel that lends them bits plays the bits below (see ``x_modes``)."""
        if lines is not None and (lines.shape != (n_samples, XIO_LINES) or lines.dtype != np.uint8):
            raise ProgramError(f"lines must be uint8 of shape {(n_samples, XIO_LINES)}", op="render", value=getattr(lines, "shape", None))
        if n_samples < 0:
            raise ProgramError(f"time only moves forward (asked to advance by {n_samples!r} samples)", op="advance", value=n_samples)
        w0, w1 = self.now, self.now + n_samples
        shape = (n_samples, self.spec.physical_channels)
        if out is None:
            out = np.empty(shape, dtype=np.int16)
        elif out.shape != shape or out.dtype != np.int16 or not out.flags.c_contiguous:
            raise ProgramError(f"out must be C-contiguous int16 of shape {shape}", op="render", value=getattr(out, "shape", None))
        if self.n_channels < self.spec.physical_channels:
            out[:, self.n_channels :] = self._stop_values(self._hold)[self.n_channels :]
        pos = w0
        off = [ch for ch in range(self.spec.physical_channels) if not self.output_enabled[ch]]
        while pos < w1:
            ep = self._epoch
            if ep is not None and pos - ep.period >= max(w0, ep.anchor):
                # the output repeats with the epoch's period: copy what is already rendered
                src = pos - ep.period
                while pos < w1:
                    m = min(pos - src, w1 - pos)
                    out[pos - w0 : pos - w0 + m] = out[src - w0 : src - w0 + m]
                    pos += m
                self._advance_to(w1, None)
                self._hold[: self.n_channels] = out[-1, : self.n_channels]
                break
            end = min(w1, pos + (ep.period if ep is not None else RENDER_CHUNK))
            render = self._render_fifo if self.replay_mode in FIFO_MODES else self._render_gate if self.replay_mode == "gate" else self._render_walk
            render(out, w0, pos, end)
            pos = end
        self.now = w1
        if self.replay_mode in FIFO_MODES:
            self._forget_played()
        if off:  # an output that is not enabled passes nothing of what the DAC plays
            out[:, off] = self._stop_values(self._hold)[off]
        self._digital_outputs(out, lines)
        return out

    def _render_walk(self, out: np.ndarray, w0: int, a: int, b: int) -> None:
        """Render samples [a, b) into ``out`` (row 0 = sample w0) by walking the steps."""
        runs: list[tuple[int, float, _Run]] = []
        held = self._hold.copy()  # what the outputs hold before anything in this stretch plays
        self._advance_to(b, runs)
        active = out[:, : self.n_channels]
        cursor = a
        last = None
        for ra, rb, run in runs:
            ra, rb = max(ra, a), int(min(rb, b))
            if ra >= rb:
                continue
            if ra > cursor:  # armed, or between trigger and first output (multi: between segments)
                active[cursor - w0 : ra - w0] = self._stop_values(held)[: self.n_channels]
            self._copy_run(active[ra - w0 : rb - w0], run, ra, rb)
            cursor, last = rb, run
            held = self._sample_at(run, rb - 1)
        if last is not None:
            self._hold = self._sample_at(last, cursor - 1)
        if cursor < b:  # idle before replay, or READY after END / stop
            active[cursor - w0 : b - w0] = self._stop_values(self._hold)[: self.n_channels]

    def events_between(self, a: int, b: int) -> list[StepEvent]:
        """Step entries with a <= sample < b, in order."""
        out: list[StepEvent] = []
        i = len(self._log)  # the log is in time order: skip back only over what can matter
        while i > 0:
            last = self._log[i - 1]
            if (last.sample + 1 if isinstance(last, StepEvent) else last.until) <= a:
                break
            i -= 1
        for item in self._log[i:]:
            if isinstance(item, StepEvent):
                if a <= item.sample < b:
                    out.append(item)
            else:
                out.extend(item.events_between(a, b))
        return out

    @property
    def events(self) -> list[StepEvent]:
        """Every step entry so far."""
        return self.events_between(0, self.now + 1)

    # ================================================================== sequencer

    def _stop_values(self, hold: np.ndarray) -> np.ndarray:
        values = np.zeros(self.spec.physical_channels, dtype=np.int16)
        for ch, level in enumerate(self.stop_levels):
            if level == StopLevel.HOLDLAST:
                values[ch] = hold[ch]
            elif level == StopLevel.HIGH:
                values[ch] = 32767
            elif level == StopLevel.LOW:
                values[ch] = -32768
            elif level == StopLevel.CUSTOM:
                values[ch] = self.custom_stop[ch]
        return values

    def _sample_at(self, run: _Run, t: int) -> np.ndarray:
        values = self._hold.copy()
        values[: self.n_channels] = self.slots[run.slot].data[(t - run.origin) % run.n]
        return values

    def _copy_run(self, dest: np.ndarray, run: _Run, a: int, b: int) -> None:
        """Fill ``dest`` with samples a..b-1 of ``run``: slice copies, whole passes by doubling."""
        data = self.slots[run.slot].data
        n = run.n
        total = b - a
        k = (a - run.origin) % n
        first = min(n - k, total)
        dest[:first] = data[k : k + first]
        pos = first
        if pos < total:
            m = min(n, total - pos)
            dest[pos : pos + m] = data[:m]
            start, pos = pos, pos + m
            while pos < total:  # copy what is already there: doubles each time
                m = min(pos - start, total - pos)
                dest[pos : pos + m] = dest[start : start + m]
                pos += m

    def _fetch(self, index: int) -> StepEntry:
        entry = self.steps.get(index)
        if entry is None:  # start() checked the walk; a rewrite cannot unwrite a step
            raise CardError(f"{self.spec.name} (simulated): step {index} fetched but never written", code=sp.ERR_SEQUENCE)
        return entry

    def _invalidate(self) -> None:
        """Something the walk depends on changed: the current epoch ends at the step now playing."""
        if self._epoch is not None:
            self._epoch.until = (self._run.origin + 1) if self._run is not None else self.now
            self._epoch = None
        self._marks.clear()

    def _last_output_before(self, t: int) -> np.ndarray:
        """What each channel output at sample t-1 (the current hold if nothing played yet)."""
        if self._run is not None and self._run.origin < t:
            return self._sample_at(self._run, t - 1)
        if self._epoch is not None and t - 1 >= self._epoch.anchor:
            origin, step, entry = self._epoch.state_at(t - 1)
            return self._sample_at(_Run(step, entry, entry.segment, self.slots[entry.segment].size, origin), t - 1)
        if self._prev_run is not None:
            return self._sample_at(self._prev_run, t - 1)
        return self._hold

    def _enter(self, index: int, t: int) -> None:
        """Enter step ``index`` at sample ``t``. Everything that can fail is checked before the
        card's state changes."""
        if self._prefetched is not None and self._prefetched[0] == index:
            entry = self._prefetched[1]
        else:
            entry = self._fetch(index)
        size = self.slots[entry.segment].size
        if not size:
            raise CardError(f"{self.spec.name} (simulated): step {index} reached an empty segment {entry.segment}", code=sp.ERR_SEQUENCE)
        self._prev_run = self._run
        self._run = _Run(index, entry, entry.segment, size, t)
        self._last_step = index
        if not self.policy.latch_earlier_triggers:  # triggers before this step can never count
            self._triggers.drop_before(t)
        # the next entry is read now (prefetch 1); one not written yet is read at the transition
        upcoming = None if (entry.end or not self.policy.prefetch) else self.steps.get(entry.next)
        self._prefetched = None if upcoming is None else (entry.next, upcoming)
        if self._epoch is None and not self._detect_epoch(index, entry, t):
            self._log.append(StepEvent(t, index, entry.segment))

    def _detect_epoch(self, index: int, entry: StepEntry, t: int) -> bool:
        """Entering ``index`` at ``t``: if the trigger-free walk since its last entry came round,
        start an epoch (the entry at ``t`` is its second period's first event) and say so."""
        if entry.end or entry.on_trigger or entry != self.steps.get(index):
            self._marks.clear()
            return False
        mark = self._marks.get(index)
        if mark is None:
            self._marks[index] = (t, len(self._log))
            return False
        t_prev, i_prev = mark
        pattern = tuple((ev.sample - t_prev, ev.step, self.steps[ev.step]) for ev in self._log[i_prev:] if isinstance(ev, StepEvent))
        del self._log[i_prev:]
        self._epoch = _Epoch(t_prev, t - t_prev, pattern)
        self._log.append(self._epoch)
        self._marks.clear()
        return True

    def _step_end(self, run: _Run) -> float:
        """Sample at which the current step ends (inf while it waits for a trigger)."""
        e = run.entry
        if not e.on_trigger:
            return run.origin + e.loops * run.n
        k_min = e.loops if self.policy.endloop_check == "after_all_loops" else 1
        floor = self._trigger_floor if self.policy.latch_earlier_triggers else run.origin
        t = self._triggers.first_at_or_after(floor)
        if t is None:
            return INF
        k = max(k_min, (t + self.policy.endloop_setup_samples - run.origin) // run.n + 1)
        return run.origin + k * run.n

    def _consume_trigger(self, end: int) -> None:
        """The ENDLOOPONTRIG step ending at ``end`` used up its trigger and all earlier ones
        (several edges within one pass count as one)."""
        last = self._triggers.drop_before(end - self.policy.endloop_setup_samples)
        if last is not None:
            self._trigger_floor = last + 1

    def _advance_to(self, target: int, runs: list | None) -> None:
        """Play the sequence up to sample ``target``: arm -> first trigger -> steps, with every
        step entry at or before ``target`` made. With ``runs``, collect (start, end, run) for
        every step overlapping the window; without, jump through an epoch arithmetically."""
        if self.replay_mode == "gate":
            self._advance_gate(target)
            return
        while True:
            if self.state == ARMED:
                t0 = self._triggers.first()
                if t0 is None or t0 >= target:
                    return
                self._triggers.pop_first()
                self._trigger_floor = t0 + 1
                self.trigger_log.append(t0)
                self.triggered = True
                self.state = RUNNING
                if self.replay_mode in FIFO_MODES:
                    self._start_fifo_run(t0 + trigger_latency_samples(self.sample_rate_hz))
                else:
                    self._enter(self.start_step, t0 + trigger_latency_samples(self.sample_rate_hz))
            if self.replay_mode in FIFO_MODES:
                self._advance_fifo(target)
                if self.state == ARMED:  # FIFO multi: on to the next segment's trigger
                    continue
                return
            if self.state != RUNNING:
                return
            self._advance_steps(target, runs)
            if self.state != ARMED:  # multi mode re-arms after each segment; all else is done
                return

    def _advance_steps(self, target: int, runs: list | None) -> None:
        """The running part of :meth:`_advance_to`: walk the steps up to ``target``."""
        while self.state == RUNNING and self._run is not None:
            run = self._run
            ep = self._epoch
            if runs is None and ep is not None and target - run.origin > ep.period:
                origin, step, entry = ep.state_at(target)
                self._run = run = _Run(step, entry, entry.segment, self.slots[entry.segment].size, origin)
                self._last_step = step
                self._prefetched = (entry.next, self.steps[entry.next]) if self.policy.prefetch else None
            end = self._step_end(run)
            if runs is not None:
                runs.append((run.origin, min(end, target), run))
            if end > target:
                return
            if run.entry.on_trigger:
                self._consume_trigger(int(end))
            if run.entry.end:
                self._hold = self._sample_at(run, int(end) - 1)
                self._run = None
                if self.replay_mode in ("multi", "singlerestart"):
                    self._plays_left -= 1
                    if self._plays_left > 0:  # multi: wait for the next segment's trigger
                        self._prev_run = run
                        self.state = ARMED
                        self.start_step = run.entry.next
                        self._triggers.drop_before(int(end))  # triggers during a segment are not seen
                        return
                self.state = READY
                self._ready_at = int(end)
                return
            self._enter(run.entry.next, int(end))
